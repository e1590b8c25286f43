import { parseCertificateBundle } from './pem.js';

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
