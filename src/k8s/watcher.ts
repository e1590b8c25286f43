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
 * Starts an informer for a collection. The node agent and the waypoint get
 * theirs from the lean client (src/k8s/lean/watcher.ts); modules that only
 * watch, like the cluster index, take one, so tests can hand them another
 * (docs/architecture.md §4).
 */
export type Watcher = <T extends KubernetesObject>(spec: WatchSpec<T>) => ResilientInformer<T>;
