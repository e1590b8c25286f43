import { ApiException, CoreV1Api, type KubeConfig, type V1ConfigMap, type V1Namespace } from '@kubernetes/client-node';
import { startResilientInformer } from '../k8s/resilient-informer.js';
import { BUNDLE_CONFIGMAP, BUNDLE_KEY, BUNDLE_LABELS } from '../identity/trust-bundle.js';


export interface BundlePublisher {
  /** resolves once every namespace seen at start has the bundle */
  synced: Promise<void>;
  stop(): Promise<void>;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * Keeps ConfigMap warren-ca-root (root-cert.pem = the trust bundle) in every
 * namespace: new namespaces get it, an edited or deleted copy is put back.
 * Watches namespaces and the ConfigMaps themselves, so drift is repaired as
 * soon as it is seen, and a failed write is retried on the next pass.
 */
export function publishTrustBundle(kc: KubeConfig, bundlePem: string, log: Log): BundlePublisher {
  const core = kc.makeApiClient(CoreV1Api);
  const selector = `metadata.name=${BUNDLE_CONFIGMAP}`;
  let running: Promise<void> | undefined;
  let again = false;
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;

  const sync = async (): Promise<void> => {
    const present = new Map(configMaps.list().map((c) => [c.metadata?.namespace ?? '', c]));
    let failed = false;
    for (const ns of namespaces.list()) {
      const name = ns.metadata?.name;
      if (name === undefined || ns.status?.phase === 'Terminating' || ns.metadata?.deletionTimestamp !== undefined) continue;
      const current = present.get(name);
      if (current?.data?.[BUNDLE_KEY] === bundlePem) continue;
      try {
        await writeBundle(core, name, bundlePem, current);
        log('trust bundle published', { namespace: name, configMap: BUNDLE_CONFIGMAP });
      } catch (err) {
        // 404 (namespace just deleted) and 409 (a concurrent writer) settle on the next event.
        if (!(err instanceof ApiException && (err.code === 404 || err.code === 409))) log('trust bundle write failed', { namespace: name, err: (err as Error).message });
        failed = true;
      }
    }
    if (failed && !stopped) retry ??= setTimeout(() => ((retry = undefined), trigger()), 2000);
  };
  // One pass at a time; events during a pass cause exactly one more.
  const trigger = (): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = sync().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        trigger();
      }
    });
  };

  const namespaces = startResilientInformer<V1Namespace>(kc, { path: '/api/v1/namespaces', list: () => core.listNamespace(), onChange: trigger, log });
  const configMaps = startResilientInformer<V1ConfigMap>(kc, {
    path: '/api/v1/configmaps',
    list: () => core.listConfigMapForAllNamespaces({ fieldSelector: selector }),
    fieldSelector: selector,
    onChange: trigger,
    log,
  });
  const synced = Promise.all([namespaces.synced, configMaps.synced]).then(async () => {
    trigger();
    while (running) await running;
  });
  return {
    synced,
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await Promise.all([namespaces.stop(), configMaps.stop()]);
      await running;
    },
  };
}

async function writeBundle(core: CoreV1Api, namespace: string, bundlePem: string, current: V1ConfigMap | undefined): Promise<void> {
  const body: V1ConfigMap = {
    metadata: { name: BUNDLE_CONFIGMAP, namespace, labels: { ...BUNDLE_LABELS } },
    data: { [BUNDLE_KEY]: bundlePem },
  };
  if (current === undefined) {
    await core.createNamespacedConfigMap({ namespace, body });
    return;
  }
  await core.replaceNamespacedConfigMap({
    namespace,
    name: BUNDLE_CONFIGMAP,
    body: { ...body, metadata: { ...body.metadata, ...(current.metadata?.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}) } },
  });
}
