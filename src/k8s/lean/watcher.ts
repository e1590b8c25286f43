import type { KubeApi } from './api-client.js';
import { startLeanInformer } from './informer.js';
import type { Watcher } from '../watcher.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

/** A Watcher over the agent's own client. */
export function leanWatcher(api: KubeApi, log: Log): Watcher {
  return (spec) => startLeanInformer({ ...spec, api, log });
}
