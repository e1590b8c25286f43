import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';
import { startResilientInformer } from './resilient-informer.js';
import type { Watcher, WatchSpec } from './watcher.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;
type List = () => Promise<KubernetesListObject<KubernetesObject>>;
type Selectors = { fieldSelector?: string; labelSelector?: string };

/** A Watcher over @kubernetes/client-node, for processes that load it anyway (the waypoint). */
export function clientNodeWatcher(kc: KubeConfig, log: Log): Watcher {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const lists: Record<string, (s: Selectors) => List> = {
    '/api/v1/pods': (s) => () => core.listPodForAllNamespaces(s),
    '/api/v1/services': (s) => () => core.listServiceForAllNamespaces(s),
    '/api/v1/namespaces': (s) => () => core.listNamespace(s),
    '/apis/discovery.k8s.io/v1/endpointslices': (s) => () => discovery.listEndpointSliceForAllNamespaces(s),
  };
  const listOf = (path: string, s: Selectors): List => {
    const known = lists[path];
    if (known !== undefined) return known(s);
    const crd = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(path);
    if (crd === null) throw new WarrenError('ERR_CONFIG', `no client-node list for ${path}`);
    return () => custom.listClusterCustomObject({ group: crd[1]!, version: crd[2]!, plural: crd[3]!, ...s }) as ReturnType<List>;
  };
  return <T extends KubernetesObject>(spec: WatchSpec<T>) => {
    const selectors: Selectors = {
      ...(spec.fieldSelector === undefined ? {} : { fieldSelector: spec.fieldSelector }),
      ...(spec.labelSelector === undefined ? {} : { labelSelector: spec.labelSelector }),
    };
    return startResilientInformer<T>(kc, { path: spec.path, list: listOf(spec.path, selectors) as () => Promise<KubernetesListObject<T>>, ...selectors, onChange: spec.onChange, log });
  };
}
