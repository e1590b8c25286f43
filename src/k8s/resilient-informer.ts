import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';

export interface ResilientInformer<T extends KubernetesObject> {
  list(): readonly T[];
  /** resolves after the first successful list */
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
  const informer = new ListWatch<T>(options.path, new Watch(kc), options.list, false, options.labelSelector, options.fieldSelector);
  let stopped = false;
  let pending: NodeJS.Timeout | undefined;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  const start = (): void => {
    informer.start().then(markSynced, restart);
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
