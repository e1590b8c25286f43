import { X509Certificate } from 'node:crypto';
import { loadCa, signWorkloadCert, type CaMaterial } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import { checkCsr, createWorkloadKey } from '../../src/identity/csr.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';

/** A workload certificate for `id` issued by `root` (valid `ttlMs`, default 1 h), as the CA would answer an agent. */
export async function issueWorkloadCert(root: CaMaterial, id: SpiffeId, ttlMs = 3_600_000): Promise<WorkloadCertificate> {
  const ca = await loadCa(root);
  const key = await createWorkloadKey(id);
  const leaf = await signWorkloadCert(ca, await checkCsr(key.csrPem, id), ttlMs);
  const x = new X509Certificate(leaf);
  return { identity: id, privateKeyPem: key.privateKeyPem, chainPem: [leaf, ...ca.chainPem], serial: x.serialNumber, notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo), receivedAt: new Date() };
}
