import { parseCertificateBundle } from './pem.js';

/** Where `warren ca` publishes the bundle and agents read it: Istio's name and key, so tooling that reads istio-ca-root-cert finds the same shape here. */
export const BUNDLE_CONFIGMAP = 'warren-ca-root';
export const BUNDLE_KEY = 'root-cert.pem';
/** On every copy, so all of them can be listed and removed at once (uninstall). */
export const BUNDLE_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/managed-by': 'warren-ca' };

/**
 * The roots this agent trusts (ConfigMap warren-ca-root), replaced as a
 * whole when the ConfigMap changes. A malformed update is refused and the
 * previous roots stay: a bad edit must not make every peer untrusted, nor
 * trust something unparsed.
 */
export class TrustBundle {
  private roots: string[] = [];
  private readonly listeners = new Set<(roots: readonly string[]) => void>();

  constructor(initialPem?: string) {
    if (initialPem !== undefined) this.roots = parseCertificateBundle(initialPem, 'the trust bundle');
  }

  /** current roots, PEM; empty until the bundle is first seen */
  pems(): readonly string[] {
    return this.roots;
  }

  /** Replaces the roots; throws ERR_PEM (keeping the old ones) when `pem` does not parse. Returns whether they changed. */
  update(pem: string, source: string): boolean {
    const next = parseCertificateBundle(pem, source);
    if (next.join('') === this.roots.join('')) return false;
    this.roots = next;
    for (const l of this.listeners) l(next);
    return true;
  }

  onChange(listener: (roots: readonly string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
