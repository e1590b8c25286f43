import { connect as http2Connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { WarrenError } from '../errors/warren-error.js';
import type { WorkloadCertificate } from '../identity/cert-manager.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { clientTlsOptions, verifyTlsPeer } from '../identity/tls-context.js';
import type { TrustBundle } from '../identity/trust-bundle.js';
import { PROXY_MARK } from '../redirect/constants.js';
import type { HboneLimits } from './hbone-limits.js';
import { HBONE, HBONE_HTTP2_SETTINGS, formatAuthority } from './hbone-settings.js';
import { connectFromNetns } from './netns-connect.js';

export class HboneError extends WarrenError {
  constructor(
    message: string,
    /** the peer's CONNECT answer when there was one (401 denied, 503 unreachable…) */
    readonly status?: number,
  ) {
    super('ERR_HBONE', message, { retryable: status === undefined || status === 503 });
  }
}

interface PooledSession {
  /** its pool's key (destination identity and IP) */
  key: string;
  session: ClientHttp2Session;
  streams: number;
  serial: string;
  tls: TLSSocket;
  expected: SpiffeId;
}

export interface HbonePoolOptions {
  /** the source pod's netns: tunnels leave from it, so peers see the pod's IP */
  netns: string;
  certificate(): WorkloadCertificate | undefined;
  bundle: TrustBundle;
  trustDomain: string;
  /** the peers' HBONE port (15008; tests use another) */
  port?: number;
  /** the handshake time and per-stream window of hbone-limits.ts, as the servers have them */
  limits: Pick<HboneLimits, 'handshakeTimeoutMs' | 'streamBufferBytes' | 'outboundPooling'>;
}

/**
 * Outbound HBONE connections of one pod (docs/architecture.md §2): pooled per
 * {destination identity, destination IP} (the source identity is the
 * pod's), up to 100 streams each, closed after 5 idle minutes. A new
 * certificate is used for new connections; open ones keep theirs.
 */
export class HbonePool {
  private readonly pools = new Map<string, PooledSession[]>();
  /**
   * Per key, the sessions that had a free stream slot when last seen, so a new stream finds one
   * without walking every full session a pod holds (100 of them with 10 000 held connections to
   * one peer: README "Reliability", scenario 6). Stale entries (full, closed, an older
   * certificate) are dropped when met; a stream's close puts its session back.
   */
  private readonly free = new Map<string, Set<PooledSession>>();
  private readonly pending = new Map<string, Promise<PooledSession>>();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(private readonly o: HbonePoolOptions) {
    this.unsubscribe = o.bundle.onChange(() => this.reverify());
  }

  /** Opens a CONNECT stream to `target` through the agent of `peerIp`, which must prove `expected`. */
  async open(peerIp: string, expected: SpiffeId, target: { ip: string; port: number }, headers: OutgoingHttpHeaders = {}): Promise<ClientHttp2Stream> {
    const pooled = await this.session(peerIp, expected);
    let stream: ClientHttp2Stream;
    try {
      stream = pooled.session.request({ ':method': 'CONNECT', ':authority': formatAuthority(target.ip, target.port), ...headers }, { endStream: false });
    } catch (err) {
      this.release(pooled);
      throw new HboneError(`the tunnel to ${peerIp} is gone: ${(err as Error).message}`);
    }
    stream.once('close', () => {
      this.release(pooled);
      if (this.o.limits.outboundPooling === false) pooled.session.close();
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        reject(new HboneError(`no CONNECT answer from ${peerIp} within ${HBONE.connectTimeoutMs} ms`));
      }, HBONE.connectTimeoutMs);
      stream.once('response', (h) => {
        clearTimeout(timer);
        const status = Number(h[':status']);
        if (status === 200) return resolve(stream);
        stream.close();
        reject(new HboneError(`${formatSpiffeId(expected)} at ${peerIp} answered ${status} for ${formatAuthority(target.ip, target.port)}`, status));
      });
      stream.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(new HboneError(`the tunnel to ${peerIp} failed: ${err.message}`));
      });
    });
  }

  /** Live connections and their streams, for the admin API. */
  stats(): { key: string; connections: number; streams: number }[] {
    return [...this.pools.entries()].map(([key, list]) => ({ key, connections: list.length, streams: list.reduce((n, s) => n + s.streams, 0) }));
  }

  /**
   * Cuts every tunnel, with CANCEL: a stream reset with NO_ERROR reaches the
   * peer's app as a FIN. A tunnel still being dialed is cut when it connects.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const list of this.pools.values()) for (const p of list) cut(p);
    this.pools.clear();
    this.free.clear();
  }

  /** The roots changed: a tunnel whose server chain no longer leads to one of them is cut, with its streams. */
  private reverify(): void {
    for (const list of this.pools.values()) {
      for (const p of list) {
        try {
          verifyTlsPeer(p.tls, this.o.bundle, { trustDomain: this.o.trustDomain, expected: [p.expected] });
        } catch {
          cut(p);
        }
      }
    }
  }

  /** A pooled connection with one stream slot reserved for the caller. */
  private async session(peerIp: string, expected: SpiffeId): Promise<PooledSession> {
    if (this.closed) throw new HboneError('the pod is leaving the mesh; no new tunnel');
    const key = `${formatSpiffeId(expected)}|${peerIp}`;
    const cert = this.o.certificate();
    if (cert === undefined) throw new HboneError('this pod has no valid certificate; refusing to open a tunnel');
    if (this.o.limits.outboundPooling === false) {
      const own = this.track(key, await this.dial(key, peerIp, expected, cert));
      own.streams++;
      return own;
    }
    const usable = this.withFreeSlot(key, cert.serial);
    if (usable) {
      usable.streams++;
      return usable;
    }
    // Concurrent first connections to one peer share one handshake.
    let pending = this.pending.get(key);
    if (pending === undefined) {
      pending = this.dial(key, peerIp, expected, cert).then((p) => this.track(key, p));
      this.pending.set(key, pending);
      void pending.finally(() => this.pending.delete(key)).catch(() => undefined);
    }
    const p = await pending;
    // The slot is taken here, synchronously, so callers that waited on one handshake never overfill it.
    if (p.streams >= HBONE.maxStreams || p.session.closed) return this.session(peerIp, expected);
    p.streams++;
    return p;
  }

  /** A session of `key` with a free stream slot and the current certificate; O(1) amortized (each entry of `free` is dropped at most once per time it was added). */
  private withFreeSlot(key: string, serial: string): PooledSession | undefined {
    const free = this.free.get(key);
    if (free === undefined) return undefined;
    for (const p of free) {
      if (p.streams < HBONE.maxStreams && !p.session.closed && !p.session.destroyed && p.serial === serial) return p;
      free.delete(p);
    }
    return undefined;
  }

  /** One of its streams ended: its slot is free for the next stream to the same peer. */
  private release(p: PooledSession): void {
    p.streams--;
    if (!p.session.closed && !p.session.destroyed) this.free.get(p.key)?.add(p);
  }

  /** Listed under `key` (stats, re-verification, close) until its session closes. */
  private track(key: string, p: PooledSession): PooledSession {
    if (this.closed) {
      cut(p);
      throw new HboneError('the pod left the mesh while its tunnel was dialed');
    }
    this.pools.set(key, [...(this.pools.get(key) ?? []), p]);
    let free = this.free.get(key);
    if (free === undefined) this.free.set(key, (free = new Set()));
    free.add(p);
    p.session.once('close', () => {
      const rest = (this.pools.get(key) ?? []).filter((x) => x !== p);
      this.free.get(key)?.delete(p);
      if (rest.length === 0) {
        this.pools.delete(key);
        this.free.delete(key);
      } else this.pools.set(key, rest);
    });
    return p;
  }

  private async dial(key: string, peerIp: string, expected: SpiffeId, cert: WorkloadCertificate): Promise<PooledSession> {
    const port = this.o.port ?? HBONE.port;
    const tcp = await connectFromNetns({ netns: this.o.netns, host: peerIp, port, mark: PROXY_MARK.value, timeoutMs: HBONE.connectTimeoutMs }).catch((err: Error) => {
      throw new HboneError(`cannot reach the HBONE port of ${peerIp}: ${err.message} (is a NetworkPolicy blocking port ${HBONE.port}?)`);
    });
    const tls: TLSSocket = await new Promise((resolve, reject) => {
      const s = tlsConnect({ socket: tcp, ...clientTlsOptions(cert, this.o.bundle, { trustDomain: this.o.trustDomain, expected: [expected] }) });
      const timer = setTimeout(() => s.destroy(new Error(`no handshake within ${this.o.limits.handshakeTimeoutMs} ms`)), this.o.limits.handshakeTimeoutMs);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        tcp.destroy();
        reject(new HboneError(`mutual TLS with ${peerIp} failed: ${err.message}`));
      });
    });
    if (tls.alpnProtocol !== 'h2') {
      tls.destroy();
      throw new HboneError(`${peerIp} did not negotiate h2 (got ${String(tls.alpnProtocol)})`);
    }
    const settings = { ...HBONE_HTTP2_SETTINGS, initialWindowSize: this.o.limits.streamBufferBytes };
    const session = http2Connect(`https://${formatAuthority(peerIp, port)}`, { createConnection: () => tls, settings });
    session.on('error', () => {});
    // The TCP socket is half-open capable (netns-connect.ts): a server that ends the connection
    // (idle close, or cut because its trust changed) must end the session too, or it lingers.
    tls.once('end', () => {
      session.destroy();
      tls.destroy();
    });
    session.once('connect', () => session.setLocalWindowSize(HBONE.connectionWindow));
    session.setTimeout(HBONE.idleCloseMs, () => session.close());
    return { key, session, streams: 0, serial: cert.serial, tls, expected };
  }
}

function cut(p: PooledSession): void {
  p.session.destroy(new Error('HBONE session cut'), constants.NGHTTP2_CANCEL);
  p.tls.destroy();
}
