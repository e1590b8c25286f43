import { X509Certificate } from 'node:crypto';
import type { ConnectionOptions, DetailedPeerCertificate, PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import type { WorkloadCertificate } from './cert-manager.js';
import { joinPem } from './pem.js';
import type { SpiffeId } from './spiffe.js';
import type { TrustBundle } from './trust-bundle.js';
import { verifyPeer } from './verify-peer.js';

/** HBONE's TLS (docs/architecture.md §5): 1.3 only, ALPN h2, our workload certificate and chain, the bundle's roots. */
function common(local: WorkloadCertificate, bundle: TrustBundle) {
  return {
    minVersion: 'TLSv1.3' as const,
    maxVersion: 'TLSv1.3' as const,
    ALPNProtocols: ['h2'],
    key: local.privateKeyPem,
    cert: joinPem(local.chainPem),
    ca: [...bundle.pems()],
  };
}

/**
 * Server side: the client must present a certificate that chains to the
 * bundle (OpenSSL refuses the handshake otherwise); which identities may
 * connect is policy's decision after the handshake, via `verifyTlsPeer`.
 */
export function serverTlsOptions(local: WorkloadCertificate, bundle: TrustBundle): TlsOptions {
  return { ...common(local, bundle), requestCert: true, rejectUnauthorized: true };
}

/**
 * Client side: the server's chain must lead to the bundle and its SPIFFE ID
 * be one of `expected` in `trustDomain`. The check runs inside the
 * handshake, so nothing is sent to a server that fails it.
 */
export function clientTlsOptions(local: WorkloadCertificate, bundle: TrustBundle, expectation: { trustDomain: string; expected: readonly SpiffeId[] }): ConnectionOptions {
  return {
    ...common(local, bundle),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      try {
        verifyPeer(chainOf(cert as DetailedPeerCertificate), bundle.pems(), expectation);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
  };
}

/** The peer identity of an established connection, verified against the bundle (server side, after the handshake). */
export function verifyTlsPeer(socket: TLSSocket, bundle: TrustBundle, expectation: { trustDomain: string; expected: readonly SpiffeId[] }): SpiffeId {
  return verifyPeer(chainOf(socket.getPeerCertificate(true)), bundle.pems(), expectation);
}

/** Leaf-first PEM chain from Node's linked peer certificate (which ends in a self-reference at the root). */
function chainOf(cert: PeerCertificate | DetailedPeerCertificate): string[] {
  const chain: string[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = cert as DetailedPeerCertificate;
  while (c?.raw !== undefined && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw).toString());
    c = c.issuerCertificate;
  }
  return chain;
}
