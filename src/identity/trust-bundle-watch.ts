import type { V1ConfigMap } from '@kubernetes/client-node';
import type { ResilientInformer } from '../k8s/resilient-informer.js';
import type { Watcher } from '../k8s/watcher.js';
import { BUNDLE_CONFIGMAP, BUNDLE_KEY, type TrustBundle } from './trust-bundle.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

/** Follows ConfigMap warren-ca-root in `namespace` into `bundle` (hot reload: new handshakes use new roots at once). */
export function watchTrustBundle(watch: Watcher, namespace: string, bundle: TrustBundle, log: Log): ResilientInformer<V1ConfigMap> {
  const selector = `metadata.name=${BUNDLE_CONFIGMAP}`;
  const source = `configmap ${namespace}/${BUNDLE_CONFIGMAP} key ${BUNDLE_KEY}`;
  const informer: ResilientInformer<V1ConfigMap> = watch<V1ConfigMap>({
    path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
    fieldSelector: selector,
    onChange: () => {
      const pem = informer.list()[0]?.data?.[BUNDLE_KEY];
      // A deleted ConfigMap keeps the last roots: the CA puts it back, and trusting nothing would cut every connection.
      if (pem === undefined) return;
      try {
        if (bundle.update(pem, source)) log('trust bundle loaded', { source, roots: bundle.pems().length });
      } catch (err) {
        log('trust bundle refused; keeping the previous roots', { source, err: (err as Error).message });
      }
    },
  });
  return informer;
}
