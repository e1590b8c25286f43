import { ApiException, KubernetesObjectApi, PatchStrategy, loadAllYaml, type KubernetesObject } from '@kubernetes/client-node';
import { WarrenError } from '../../errors/warren-error.js';
import type { SimClient } from './cluster-client.js';

function describe(obj: KubernetesObject): string {
  const kind = (obj.kind ?? '?').toLowerCase();
  const group = (obj.apiVersion ?? '').includes('/') ? `.${obj.apiVersion!.split('/')[0]}` : '';
  return `${kind}${group}/${obj.metadata?.name ?? '?'}`;
}

/** The server's message when it refused, else the client's; never the request (it may carry secrets). */
function reason(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as unknown;
    try {
      const status = typeof body === 'string' ? JSON.parse(body) : body;
      if (typeof status?.message === 'string') return status.message;
    } catch {
      // not JSON
    }
    return `HTTP ${err.code}`;
  }
  return (err as Error).message;
}

/**
 * `kubectl apply` for the common case, without kubectl: each document is
 * created, or merge-patched onto the existing object. CRDs in the same file
 * are applied first so their custom resources find their kinds.
 */
export async function applyManifests(client: SimClient, text: string): Promise<string[]> {
  let docs: unknown[];
  try {
    docs = loadAllYaml(text).filter((d: unknown) => d !== null && d !== undefined);
  } catch (err) {
    throw new WarrenError('ERR_USAGE', `the manifest is not valid YAML: ${(err as Error).message}`);
  }
  const objects = docs.map((d, i) => {
    const o = d as KubernetesObject;
    if (typeof o !== 'object' || !o.apiVersion || !o.kind || !o.metadata?.name) {
      throw new WarrenError('ERR_USAGE', `document ${i + 1} of the manifest needs apiVersion, kind and metadata.name`);
    }
    return o;
  });
  objects.sort((a, b) => Number(b.kind === 'CustomResourceDefinition') - Number(a.kind === 'CustomResourceDefinition') || Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
  const api = KubernetesObjectApi.makeApiClient(client.kc);
  const lines: string[] = [];
  for (const obj of objects) {
    let exists = true;
    try {
      await api.read({ apiVersion: obj.apiVersion!, kind: obj.kind!, metadata: { name: obj.metadata!.name!, ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}) } });
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw new WarrenError('ERR_SIM_APPLY', `${describe(obj)}: ${reason(err)}`);
      exists = false;
    }
    try {
      if (exists) await api.patch(obj, undefined, undefined, 'warren-sim', undefined, PatchStrategy.MergePatch);
      else await api.create(obj, undefined, undefined, 'warren-sim');
    } catch (err) {
      throw new WarrenError('ERR_SIM_APPLY', `${describe(obj)}: ${reason(err)}`);
    }
    lines.push(`${describe(obj)} ${exists ? 'configured' : 'created'}`);
  }
  return lines;
}
