import type { webcrypto as WebCrypto } from 'node:crypto';
import { WarrenError } from '../errors/warren-error.js';
import { formatSpiffeId, parseSpiffeId, sameIdentity, type SpiffeId } from './spiffe.js';
import { EC_P256, webcrypto, x509 } from './x509-provider.js';

export interface WorkloadKey {
  /** PKCS#8 PEM; stays on the node, never logged */
  privateKeyPem: string;
  csrPem: string;
}

export async function toPkcs8Pem(key: WebCrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

/** A CSR for `keys` asking for exactly one SAN: the identity's SPIFFE URI. */
export async function createCsr(keys: WebCrypto.CryptoKeyPair, id: SpiffeId): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(id) }])],
  });
  return csr.toString('pem');
}

export async function generateWorkloadKeys(): Promise<WebCrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as WebCrypto.CryptoKeyPair;
}

/** A fresh ECDSA P-256 key and its CSR for the identity. */
export async function createWorkloadKey(id: SpiffeId): Promise<WorkloadKey> {
  const keys = await generateWorkloadKeys();
  return { privateKeyPem: await toPkcs8Pem(keys.privateKey), csrPem: await createCsr(keys, id) };
}

export class CsrError extends WarrenError {
  constructor(reason: string) {
    super('ERR_BAD_CSR', reason);
  }
}

export interface CheckedCsr {
  request: x509.Pkcs10CertificateRequest;
  identity: SpiffeId;
}

/**
 * What the CA checks before signing (issue 6 (d)): the CSR parses and its
 * signature is made by the key it carries, that key is ECDSA P-256, it asks
 * for no subject and no extension other than a SAN holding exactly one
 * URI — the SPIFFE ID of the identity requested.
 */
export async function checkCsr(csrPem: string, requested: SpiffeId): Promise<CheckedCsr> {
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new CsrError(`the CSR does not parse as PKCS#10 PEM: ${(err as Error).message}`);
  }
  // A key whose algorithm parameters are damaged parses but makes WebCrypto throw on import:
  // that is the requester's malformed CSR (400), not the CA failing to decide (503).
  const verified = await request.verify().catch((err: Error) => {
    throw new CsrError(`the CSR's public key cannot be used: ${err.message}`);
  });
  if (!verified) throw new CsrError('the CSR signature does not verify with its own public key');
  const alg = request.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new CsrError(`the CSR key must be ECDSA P-256, not ${alg.name ?? '?'} ${alg.namedCurve ?? ''}`.trim());
  if (request.subject !== '') throw new CsrError(`the CSR must not ask for a subject (got "${request.subject}")`);
  const others = request.extensions.filter((e) => !(e instanceof x509.SubjectAlternativeNameExtension));
  if (others.length > 0) throw new CsrError(`the CSR may carry only a subjectAltName extension (also got ${others.map((e) => e.type).join(', ')})`);
  const san = request.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  const names = san?.names.items ?? [];
  if (names.length !== 1 || names[0]!.type !== 'url') {
    throw new CsrError(`the CSR must ask for exactly one URI SAN (got ${names.map((n) => `${n.type}:${n.value}`).join(', ') || 'none'})`);
  }
  let identity: SpiffeId;
  try {
    identity = parseSpiffeId(names[0]!.value);
  } catch (err) {
    throw new CsrError((err as Error).message);
  }
  if (!sameIdentity(identity, requested)) throw new CsrError(`the CSR asks for ${names[0]!.value}, not the requested ${formatSpiffeId(requested)}`);
  return { request, identity };
}
