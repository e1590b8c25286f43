import { X509Certificate } from 'node:crypto';
import { WarrenError } from '../errors/warren-error.js';
import { formatSpiffeId, parseSpiffeId, sameIdentity, type SpiffeId } from './spiffe.js';

export class PeerVerificationError extends WarrenError {
  constructor(reason: string) {
    super('ERR_PEER_IDENTITY', reason);
  }
}

export interface PeerExpectation {
  trustDomain: string;
  /** the identities acceptable here; empty: any identity of the trust domain */
  expected: readonly SpiffeId[];
  now?: Date;
}

const fail = (reason: string): never => {
  throw new PeerVerificationError(reason);
};

function checkValidity(cert: X509Certificate, what: string, now: Date): void {
  if (now < new Date(cert.validFrom)) fail(`${what} is not valid before ${cert.validFrom}`);
  if (now > new Date(cert.validTo)) fail(`${what} expired at ${cert.validTo}`);
}

/** The certificate's only URI SAN as an identity (workload certificates carry exactly one). */
export function spiffeIdOf(cert: X509Certificate): SpiffeId {
  const uris = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (uris.length !== 1) fail(`the certificate must carry exactly one URI SAN (has ${uris.length})`);
  try {
    return parseSpiffeId(uris[0]!);
  } catch (err) {
    return fail((err as Error).message);
  }
}

/**
 * Verifies a peer's chain (leaf first, intermediates after) against the
 * trust bundle's roots and returns the peer identity when it is one this
 * side expects: every certificate in its validity window, each signed by
 * the next and the last by a bundle root, the leaf an end-entity certificate
 * for digital signatures, its identity in our trust domain and expected.
 */
export function verifyPeer(chainPem: readonly string[], bundlePem: readonly string[], expectation: PeerExpectation): SpiffeId {
  const now = expectation.now ?? new Date();
  if (chainPem.length === 0) fail('the peer presented no certificate');
  const chain = chainPem.map((p) => new X509Certificate(p));
  const roots = bundlePem.map((p) => new X509Certificate(p));
  const leaf = chain[0]!;
  if (leaf.ca) fail('the peer certificate is a CA certificate');
  if (leaf.keyUsage !== undefined && !leaf.keyUsage.includes('1.3.6.1.5.5.7.3.1') && !leaf.keyUsage.includes('1.3.6.1.5.5.7.3.2')) {
    fail('the peer certificate is not for TLS client or server authentication');
  }
  chain.forEach((c, i) => checkValidity(c, i === 0 ? 'the peer certificate' : `chain certificate ${i}`, now));
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i + 1]!.ca || !chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) fail(`chain certificate ${i} is not signed by certificate ${i + 1}`);
  }
  const top = chain[chain.length - 1]!;
  const root = roots.find((r) => top.checkIssued(r) && top.verify(r.publicKey));
  if (root === undefined) fail('the chain does not lead to a root of the trust bundle');
  checkValidity(root!, 'the trust bundle root', now);
  const id = spiffeIdOf(leaf);
  if (id.trustDomain !== expectation.trustDomain) fail(`the peer is in trust domain ${id.trustDomain}, not ${expectation.trustDomain}`);
  if (expectation.expected.length > 0 && !expectation.expected.some((e) => sameIdentity(e, id))) {
    fail(`the peer is ${formatSpiffeId(id)}, expected ${expectation.expected.map(formatSpiffeId).join(' or ')}`);
  }
  return id;
}
