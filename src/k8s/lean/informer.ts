import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { WarrenError } from '../../errors/warren-error.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ResilientInformer } from '../resilient-informer.js';
import { KubeApiError, type KubeApi, type Query } from './api-client.js';

/** A watch asks the server to end it after a random 5–10 min, so a node's agents do not all re-watch at once. */
const WATCH_SECONDS_MIN = 300;
/** One watch event larger than this is not an object the agent can use: the stream is cut and resumed. */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;
/** A watch ended sooner than this without an error counts as a failure (backoff), so a server closing at once cannot spin the loop. */
const SHORT_WATCH_MS = 1000;

/** What every cached object has: its key and version. Everything else is the parser's business. */
const objectMeta = z.looseObject({ metadata: z.looseObject({ name: z.string().min(1), namespace: z.string().optional(), resourceVersion: z.string().optional() }) });
const watchEvent = z.object({ type: z.enum(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']), object: z.record(z.string(), z.unknown()) });
const listAnswer = z.object({ metadata: z.looseObject({ resourceVersion: z.string().min(1) }), items: z.array(z.unknown()) });
/** A bookmark's object has only a version; so may others, for this purpose. */
const versionOnly = z.looseObject({ metadata: z.looseObject({ resourceVersion: z.string().min(1) }) });
const errorStatus = z.looseObject({ code: z.number().optional(), message: z.string().optional() });

export interface LeanInformerOptions<T extends KubernetesObject> {
  api: KubeApi;
  /** the collection's path: `/api/v1/pods`, `/apis/discovery.k8s.io/v1/endpointslices`, `/api/v1/namespaces/x/configmaps` */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** validates one object and keeps the fields the agent uses; throws on an object it cannot use */
  parse?: (object: unknown) => T;
  /** any add, update or delete, and every (re)list */
  onChange: () => void;
  /** the first wait after a failure; it doubles up to maxRestartDelayMs and resets after a good list or watch */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  log: (msg: string, fields: Record<string, unknown>) => void;
}

/** The stream said the version we watch from is gone (410): only a new list helps. */
class Expired extends Error {}

/**
 * List, then watch from the list's resourceVersion with bookmarks, resume
 * from the last version seen when a watch ends, list again on 410 Gone, back
 * off on failures; the informer the node agent's caches are built on, with
 * the same contract as the client-node one (docs/architecture.md §4, §6).
 * A watch event the parser refuses is dropped and logged with
 * ERR_K8S_WATCH_EVENT; the object keeps its last good version.
 */
export function startLeanInformer<T extends KubernetesObject>(options: LeanInformerOptions<T>): ResilientInformer<T> {
  const parse = options.parse ?? ((o: unknown) => objectMeta.parse(o) as T);
  const base = options.restartDelayMs ?? 1000;
  const maxDelay = options.maxRestartDelayMs ?? 30_000;
  const selectors: Query = { fieldSelector: options.fieldSelector, labelSelector: options.labelSelector };
  const cache = new Map<string, T>();
  let snapshot: T[] | undefined;
  let version: string | undefined;
  let stopped = false;
  let current: IncomingMessage | undefined;
  let wake: (() => void) | undefined;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));

  const changed = (): void => {
    snapshot = undefined;
    options.onChange();
  };
  const dropped = (what: string, err: unknown): void => options.log('watch event dropped', { path: options.path, code: 'ERR_K8S_WATCH_EVENT', err: `${what}: ${describe(err)}` });
  const keyOf = (o: unknown): string => {
    const m = objectMeta.parse(o).metadata;
    return `${m.namespace ?? ''}/${m.name}`;
  };

  const relist = async (): Promise<void> => {
    const answer = listAnswer.parse(await options.api.get(options.path, selectors));
    if (stopped) return;
    cache.clear();
    for (const item of answer.items) {
      try {
        cache.set(keyOf(item), parse(item));
      } catch (err) {
        dropped(`list of ${options.path}`, err);
      }
    }
    version = answer.metadata.resourceVersion;
    changed();
    markSynced();
  };

  const apply = (line: string): void => {
    let event: z.infer<typeof watchEvent>;
    try {
      event = watchEvent.parse(JSON.parse(line));
    } catch (err) {
      return dropped(`watch of ${options.path}`, err);
    }
    if (event.type === 'ERROR') {
      const status = errorStatus.safeParse(event.object);
      const code = status.success ? status.data.code : undefined;
      if (code === 410) throw new Expired(status.data?.message ?? 'resource version expired');
      throw new WarrenError('ERR_K8S_API', `watch of ${options.path}: the API server sent an error${code === undefined ? '' : ` (${code})`}: ${status.data?.message ?? ''}`);
    }
    const rv = versionOnly.safeParse(event.object);
    if (event.type === 'BOOKMARK') {
      // A bookmark carries only a version: resuming from it skips what this watcher had no interest in.
      if (rv.success) version = rv.data.metadata.resourceVersion;
      return;
    }
    let object: T;
    let key: string;
    try {
      object = parse(event.object);
      key = keyOf(event.object);
    } catch (err) {
      return dropped(`${event.type} in the watch of ${options.path}`, err);
    }
    if (event.type === 'DELETED') cache.delete(key);
    else cache.set(key, object);
    if (rv.success) version = rv.data.metadata.resourceVersion;
    changed();
  };

  /** One watch from `version`: resolves when the server ends it, throws on a failure or Expired. */
  const watchOnce = async (): Promise<void> => {
    const timeoutSeconds = WATCH_SECONDS_MIN + Math.floor(Math.random() * WATCH_SECONDS_MIN);
    const res = await options.api.stream(
      options.path,
      { ...selectors, watch: 'true', allowWatchBookmarks: 'true', resourceVersion: version, timeoutSeconds: String(timeoutSeconds) },
      (timeoutSeconds + 60) * 1000,
    );
    // stop() came while the server was answering: it could not cut this stream yet.
    if (stopped) return void res.destroy();
    current = res;
    // decoded by the stream, so a character cut between two chunks arrives whole
    res.setEncoding('utf8');
    try {
      let pending = '';
      for await (const chunk of res as AsyncIterable<string>) {
        pending += chunk;
        if (pending.length > MAX_EVENT_BYTES) throw new WarrenError('ERR_K8S_WATCH_EVENT', `watch of ${options.path}: an event over ${MAX_EVENT_BYTES} bytes`);
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line !== '') apply(line);
        }
      }
    } finally {
      current = undefined;
      res.destroy();
    }
  };

  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const run = async (): Promise<void> => {
    let delay = base;
    while (!stopped) {
      const started = Date.now();
      try {
        if (version === undefined) await relist();
        if (stopped) break;
        delay = base;
        await watchOnce();
        if (Date.now() - started < SHORT_WATCH_MS) await pause(base);
      } catch (err) {
        if (stopped) break;
        if (err instanceof Expired || (err instanceof KubeApiError && err.status === 410)) {
          options.log('watch expired, listing again', { path: options.path, err: describe(err) });
          version = undefined;
          continue;
        }
        options.log('informer stopped, restarting', { path: options.path, err: describe(err), retryInMs: delay });
        await pause(delay);
        delay = Math.min(delay * 2, maxDelay);
      }
    }
  };
  void run();

  return {
    list: () => (snapshot ??= [...cache.values()]),
    synced,
    async stop() {
      stopped = true;
      wake?.();
      current?.destroy();
      // A list in flight is not waited for (the API server may be gone): its answer is ignored.
    },
  };
}

function describe(err: unknown): string {
  if (err instanceof z.ZodError) return err.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; ');
  return err instanceof Error ? err.message : String(err);
}
