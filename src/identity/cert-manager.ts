import { X509Certificate, createPublicKey } from 'node:crypto';
import { WarrenError } from '../errors/warren-error.js';
import type { CaClient } from './ca-client.js';
import { createWorkloadKey } from './csr.js';
import { renewalTime, retryDelay } from './renewal.js';
import { formatSpiffeId, type SpiffeId } from './spiffe.js';
import type { TrustBundle } from './trust-bundle.js';
import { verifyPeer } from './verify-peer.js';

/** A local identity's key and certificate; the key never leaves the agent and is never logged. */
export interface WorkloadCertificate {
  identity: SpiffeId;
  privateKeyPem: string;
  /** leaf first, then the CA chain as the CA sent it */
  chainPem: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
  receivedAt: Date;
}

/** One row of `warren certs`: everything but the key. */
export interface CertificateStatus {
  identity: string;
  pods: number;
  state: 'valid' | 'pending' | 'expired';
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  renewAt?: string;
  chain: { subject: string; issuer: string; serial: string; notAfter: string }[];
  lastError?: string;
  renewals: number;
}

interface Entry {
  id: SpiffeId;
  users: Set<string>;
  cert?: WorkloadCertificate;
  fetching?: Promise<WorkloadCertificate> | undefined;
  timer?: NodeJS.Timeout;
  renewAt?: number;
  attempts: number;
  renewals: number;
  lastError?: string;
}

export interface CertManagerDeps {
  ca: CaClient;
  bundle: TrustBundle;
  trustDomain: string;
  log(msg: string, fields: Record<string, unknown>): void;
  onRenewal?(identity: string, ok: boolean): void;
  now?(): number;
  random?(): number;
}

const keyOf = (id: SpiffeId): string => formatSpiffeId(id);

/**
 * The agent's workload certificates (docs/architecture.md §5): one per identity, shared
 * by every local pod with that service account, fetched when the first such
 * pod is enrolled, renewed at half-life with jitter, kept while valid when
 * renewal fails (retrying with back-off), dropped with its last pod.
 */
export class CertManager {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly random: () => number;
  private stopped = false;

  constructor(private readonly deps: CertManagerDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  /**
   * Registers `user` (a pod uid) as using `id` and resolves with a valid
   * certificate, fetching one if there is none. Fails (and forgets the
   * user) when none can be had: enrollment then fails closed.
   */
  async acquire(user: string, id: SpiffeId): Promise<WorkloadCertificate> {
    if (id.trustDomain !== this.deps.trustDomain) throw new WarrenError('ERR_IDENTITY', `${formatSpiffeId(id)} is not in this agent's trust domain ${this.deps.trustDomain}`);
    const key = keyOf(id);
    for (const [k, e] of this.entries) if (k !== key && e.users.has(user)) this.release(user, k);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { id, users: new Set(), attempts: 0, renewals: 0 };
      this.entries.set(key, entry);
    }
    entry.users.add(user);
    const valid = this.validCert(entry);
    if (valid) return valid;
    try {
      return await this.fetch(entry);
    } catch (err) {
      this.release(user, key);
      throw err;
    }
  }

  /** `user` no longer uses its identity; the certificate goes with the last user. */
  release(user: string, only?: string): void {
    for (const [key, entry] of this.entries) {
      if ((only !== undefined && key !== only) || !entry.users.delete(user) || entry.users.size > 0) continue;
      clearTimeout(entry.timer);
      this.entries.delete(key);
      if (entry.cert) this.deps.log('certificate dropped: no local pod uses the identity', { identity: key, serial: entry.cert.serial });
    }
  }

  /** The identity's certificate if it is valid now; undefined otherwise (callers fail closed). */
  current(id: SpiffeId): WorkloadCertificate | undefined {
    const entry = this.entries.get(keyOf(id));
    return entry && this.validCert(entry);
  }

  status(): CertificateStatus[] {
    return [...this.entries.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([identity, e]) => {
        const c = e.cert;
        const state = c === undefined ? 'pending' : this.validCert(e) ? 'valid' : 'expired';
        return {
          identity,
          pods: e.users.size,
          state,
          ...(c ? { serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() } : {}),
          ...(e.renewAt !== undefined ? { renewAt: new Date(e.renewAt).toISOString() } : {}),
          chain: (c?.chainPem ?? []).map((pem) => {
            const x = new X509Certificate(pem);
            return { subject: x.subject || `URI:${formatSpiffeId(c!.identity)}`, issuer: x.issuer, serial: x.serialNumber, notAfter: new Date(x.validTo).toISOString() };
          }),
          ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
          renewals: e.renewals,
        };
      });
  }

  /** seconds since the epoch at which each held certificate expires (the expiry metric) */
  expiries(): { identity: string; notAfter: number }[] {
    return [...this.entries.entries()].flatMap(([identity, e]) => (e.cert ? [{ identity, notAfter: e.cert.notAfter.getTime() / 1000 }] : []));
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  private validCert(entry: Entry): WorkloadCertificate | undefined {
    const c = entry.cert;
    const now = this.now();
    return c !== undefined && c.notBefore.getTime() <= now && now < c.notAfter.getTime() ? c : undefined;
  }

  /** One fetch per identity at a time; callers arriving meanwhile share it. */
  private fetch(entry: Entry): Promise<WorkloadCertificate> {
    entry.fetching ??= this.issue(entry.id).then(
      (cert) => {
        entry.fetching = undefined;
        if (this.entries.get(keyOf(entry.id)) !== entry) return cert;
        if (entry.cert !== undefined) entry.renewals++;
        entry.cert = cert;
        entry.attempts = 0;
        delete entry.lastError;
        this.schedule(entry, renewalTime(cert.receivedAt.getTime(), cert.notAfter.getTime(), this.random));
        this.deps.log('certificate issued', { identity: keyOf(entry.id), serial: cert.serial, notAfter: cert.notAfter.toISOString(), renewAt: new Date(entry.renewAt!).toISOString() });
        return cert;
      },
      (err: Error) => {
        entry.fetching = undefined;
        entry.lastError = err.message;
        if (this.entries.get(keyOf(entry.id)) === entry && entry.cert !== undefined) {
          // Renewal failed: keep the certificate we have and try again soon.
          this.schedule(entry, this.now() + retryDelay(entry.attempts++, this.now(), entry.cert.notAfter.getTime(), this.random));
          this.deps.log('certificate renewal failed; keeping the current certificate', {
            identity: keyOf(entry.id),
            err: err.message,
            valid: this.validCert(entry) !== undefined,
            retryAt: new Date(entry.renewAt!).toISOString(),
          });
        }
        throw err;
      },
    );
    return entry.fetching;
  }

  private schedule(entry: Entry, at: number): void {
    clearTimeout(entry.timer);
    if (this.stopped) return;
    entry.renewAt = at;
    entry.timer = setTimeout(() => {
      this.fetch(entry).then(
        () => this.deps.onRenewal?.(keyOf(entry.id), true),
        () => this.deps.onRenewal?.(keyOf(entry.id), false),
      );
    }, Math.max(0, at - this.now()));
    entry.timer.unref();
  }

  /** A fresh key, its CSR, the CA's answer, and a check that the answer is what we asked for. */
  private async issue(id: SpiffeId): Promise<WorkloadCertificate> {
    const { privateKeyPem, csrPem } = await createWorkloadKey(id);
    const chainPem = await this.deps.ca.requestCertificate(id, csrPem);
    const receivedAt = this.now();
    try {
      verifyPeer(chainPem, this.deps.bundle.pems(), { trustDomain: this.deps.trustDomain, expected: [id], now: new Date(receivedAt) });
    } catch (err) {
      throw new WarrenError('ERR_CA_ANSWER', `the CA's certificate for ${formatSpiffeId(id)} does not verify: ${(err as Error).message}`, { retryable: true });
    }
    const leaf = new X509Certificate(chainPem[0]!);
    const ours = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' });
    if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ours)) throw new WarrenError('ERR_CA_ANSWER', `the CA's certificate for ${formatSpiffeId(id)} is not for the key we sent`, { retryable: true });
    return { identity: id, privateKeyPem, chainPem, serial: leaf.serialNumber, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), receivedAt: new Date(receivedAt) };
  }
}
