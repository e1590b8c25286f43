import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';

export interface ResilientInformer<T extends KubernetesObject> {
  list(): readonly T[];
  /** resolves once a list has succeeded and the watch is started (never after a failed list) */
  synced: Promise<void>;
  stop(): Promise<void>;
}

export interface InformerOptions<T extends KubernetesObject> {
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  /** any add, update or delete (and relists) */
  onChange: () => void;
  restartDelayMs?: number;
  log: (msg: string, fields: Record<string, unknown>) => void;
}

/**
 * A client-node ListWatch that keeps going: client-node stops an informer on
 * a connection error and leaves restarting to its owner (its README's
 * pattern), so a restarting API server would otherwise leave it dead.
 */
export function startResilientInformer<T extends KubernetesObject>(kc: KubeConfig, options: InformerOptions<T>): ResilientInformer<T> {
  // client-node's start() resolves even when its list failed (it reports the failure as an
  // 'error' event): synced must wait for a list that succeeded, or an agent whose first list
  // fails would count as synced with nothing known (docs/architecture.md §4).
  let listed = false;
  const list = async (): Promise<KubernetesListObject<T>> => {
    const answer = await options.list();
    listed = true;
    return answer;
  };
  const informer = new ListWatch<T>(options.path, new Watch(kc), list, false, options.labelSelector, options.fieldSelector);
  let stopped = false;
  let pending: NodeJS.Timeout | undefined;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  const start = (): void => {
    informer.start().then(() => {
      if (listed) markSynced();
    }, restart);
  };
  const restart = (err: unknown): void => {
    // One failure can arrive twice (an 'error' event and a rejected start): restart once.
    if (stopped || pending !== undefined) return;
    options.log('informer stopped, restarting', { path: options.path, err: err instanceof Error ? err.message : String(err) });
    pending = setTimeout(() => {
      pending = undefined;
      if (!stopped) start();
    }, options.restartDelayMs ?? 1000);
  };
  // client-node emits 'connect' synchronously inside start(), before our caller holds the
  // returned handle; a microtask later the handle exists and list() works.
  const changed = (): void => queueMicrotask(() => options.onChange());
  for (const event of ['add', 'update', 'delete'] as const) informer.on(event, changed);
  informer.on('connect', changed);
  informer.on('error', restart);
  start();
  return {
    list: () => informer.list(),
    synced,
    async stop() {
      stopped = true;
      if (pending !== undefined) clearTimeout(pending);
      await informer.stop();
    },
  };
}
