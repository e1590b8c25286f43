import type { KubeObject } from '../apiserver/store.js';

export const isPodReady = (pod: KubeObject): boolean =>
  pod.status?.phase === 'Running' && ((pod.status?.conditions ?? []) as Array<{ type: string; status: string }>).some((c) => c.type === 'Ready' && c.status === 'True');
