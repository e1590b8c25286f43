import { ApiException, type CoreV1Api } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';
import { createRootCa, type CaMaterial } from './signer.js';

export const CA_SECRET = 'warren-ca';

/**
 * The CA's root, kept in a Secret so a restarted (or second) CA signs with
 * the same key and certificates already issued stay valid. Two CAs starting
 * at once: the second one's create gets 409 and it reads the winner's root.
 */
export async function loadOrCreateRoot(core: CoreV1Api, namespace: string, trustDomain: string): Promise<CaMaterial> {
  const read = async (): Promise<CaMaterial | undefined> => {
    try {
      const s = await core.readNamespacedSecret({ namespace, name: CA_SECRET });
      const cert = s.data?.['ca.crt'];
      const key = s.data?.['ca.key'];
      if (cert === undefined || key === undefined) throw new WarrenError('ERR_CA_SECRET', `secret ${namespace}/${CA_SECRET} lacks ca.crt or ca.key`);
      return { certPem: Buffer.from(cert, 'base64').toString('utf8'), keyPem: Buffer.from(key, 'base64').toString('utf8') };
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };
  const existing = await read();
  if (existing) return existing;
  const fresh = await createRootCa(trustDomain);
  try {
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: CA_SECRET, labels: { 'app.kubernetes.io/name': 'warren-ca' } },
        type: 'Opaque',
        data: { 'ca.crt': Buffer.from(fresh.certPem).toString('base64'), 'ca.key': Buffer.from(fresh.keyPem).toString('base64') },
      },
    });
    return fresh;
  } catch (err) {
    if (err instanceof ApiException && err.code === 409) return (await read())!;
    throw err;
  }
}
