import type { KubernetesObject } from '@kubernetes/client-node';
import type { ResilientInformer } from './resilient-informer.js';

/** One watched collection: the API path, optional selectors, and what to call on any change. */
export interface WatchSpec<T> {
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** validates one object and keeps the fields used; the node agent's own client applies it (src/k8s/lean/informer.ts) */
  parse?: (object: unknown) => T;
  onChange: () => void;
}

/**
 * Starts an informer for a collection. The node agent's comes from its own
 * client (src/k8s/lean/), other processes' from @kubernetes/client-node
 * (src/k8s/client-node-watcher.ts): modules that only watch, like the
 * cluster index, take one and work in both (docs/architecture.md §4).
 */
export type Watcher = <T extends KubernetesObject>(spec: WatchSpec<T>) => ResilientInformer<T>;
