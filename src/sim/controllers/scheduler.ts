import type { KubeObject } from '../apiserver/store.js';

export interface Binding {
  namespace: string;
  pod: string;
  node: string;
}

const isReady = (node: KubeObject): boolean =>
  ((node.status?.conditions ?? []) as Array<{ type: string; status: string }>).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Binds pods without a node to Ready nodes, round-robin starting after
 * `cursor` (carried between rounds so consecutive pods spread out). Pods
 * that name a node are the user's choice and left alone.
 */
export function schedule(pods: KubeObject[], nodes: KubeObject[], cursor: number): { bindings: Binding[]; cursor: number } {
  const ready = nodes.filter(isReady).map((n) => n.metadata.name as string).sort();
  const bindings: Binding[] = [];
  if (ready.length === 0) return { bindings, cursor };
  let next = cursor;
  for (const pod of pods) {
    if (pod.spec?.nodeName || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    bindings.push({ namespace: pod.metadata.namespace, pod: pod.metadata.name, node: ready[next % ready.length]! });
    next++;
  }
  return { bindings, cursor: next % ready.length };
}
