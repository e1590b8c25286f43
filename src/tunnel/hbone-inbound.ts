import { constants, createSecureServer, type Http2Session, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { WorkloadCertificate } from '../identity/cert-manager.js';
import type { SpiffeId } from '../identity/spiffe.js';
import { serverTlsOptions, verifyTlsPeer } from '../identity/tls-context.js';
import type { TrustBundle } from '../identity/trust-bundle.js';
import { PROXY_MARK } from '../redirect/constants.js';
import { HBONE, HBONE_HTTP2_SETTINGS, formatAuthority, parseAuthority } from './hbone-settings.js';
import { connectFromNetns } from './netns-connect.js';
import { resetStream, spliceStream } from './stream-splice.js';
import type { OpenConnection } from '../telemetry/connection-observer.js';
import { agentLoop } from './agent-loop.js';
import type { HboneGuard } from './hbone-limits.js';
import type { PodConnections } from './connection-registry.js';

export interface InboundRequest {
  peer: SpiffeId;
  sourceIp: string;
  target: { ip: string; port: number };
}

export type Authorize = (request: InboundRequest) => { allow: true; policy?: string } | { allow: false; policy?: string; reason: string };

/** A CONNECT that carried no byte: what was known when it was refused. */
export interface InboundRefusal {
  sourceIp: string;
  sourcePort: number;
  peer?: SpiffeId;
  target?: { ip: string; port: number };
  /** the HTTP status answered: 400 bad request, 401 not authenticated or denied, 503 app unreachable */
  status: number;
  reason: string;
  policy?: string;
}

export interface HboneInboundOptions {
  netns: string;
  podIps: readonly string[];
  certificate(): WorkloadCertificate | undefined;
  bundle: TrustBundle;
  trustDomain: string;
  authorize: Authorize;
  /** a stream was accepted and reached the app: bytes flow until the handle is closed */
  opened(request: InboundRequest & { sourcePort: number }): OpenConnection;
  refused(refusal: InboundRefusal): void;
  /** the node's HBONE bounds (hbone-limits.ts): connections per peer and in total, handshake and idle times, stream windows */
  guard: HboneGuard;
  /** the pod's entry in the agent's connection registry: each stream is tracked there, re-checked with `authorize` when policies change */
  connections: PodConnections;
  /** a CONNECT named one of the agent's own ports in this pod (agent-loop.ts) and got 400 */
  loopRefused?(reason: string): void;
  /**
   * In a waypoint's pod (docs/architecture.md §13): CONNECTs whose target is an address this
   * waypoint serves (a Service VIP, not the pod) go to the waypoint process instead.
   */
  waypoint?: {
    serves(target: { ip: string; port: number }): boolean;
    connect(request: InboundRequest & { sourcePort: number; forwarded: string | string[] | undefined }): Promise<Socket>;
  };
}

/**
 * The HBONE server of one pod (:15008 in its netns, docs/architecture.md §2): mutual
 * TLS 1.3 with the pod's own certificate, then HTTP/2 CONNECT streams, each
 * checked (CONNECT to an address of this pod, peer identity verified,
 * authorized) and delivered to the app from inside the pod with the
 * caller's IP as source. 200 ok, 400 bad request, 401 denied, 503 the app
 * is not reachable. Bounded (hbone-limits.ts): connections per peer IP and
 * in total, the handshake time, idle streams, the bytes a stream may hold;
 * and when the trust bundle changes, sessions whose peer no longer verifies
 * are cut.
 */
export class HboneInbound {
  private server: Http2SecureServer | undefined;
  private serial = '';
  private roots: readonly string[] = [];
  private readonly sessions = new Set<ServerHttp2Session>();
  /** the verified peer of each session until its certificate expires: streams reuse the check */
  private readonly peers = new WeakMap<Http2Session, { peer: SpiffeId; until: number }>();
  /** set by close(): sessions that start later are closed at once */
  private closing: 'drain' | 'cut' | undefined;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: HboneInboundOptions) {
    this.unsubscribe = o.bundle.onChange(() => this.reverify());
  }

  /** Takes a raw TCP connection from the pod's :15008 listener. */
  accept(socket: Socket): boolean {
    const cert = this.o.certificate();
    if (cert === undefined || this.closing !== undefined) {
      // Fail closed: no valid certificate, no TLS (and none once closed).
      socket.resetAndDestroy();
      return false;
    }
    // Counted before any TLS work: a peer over its bound costs one accept and one RST.
    const peer = socket.remoteAddress ?? '';
    const admitted = this.o.guard.admit(peer);
    if (typeof admitted === 'string') {
      socket.resetAndDestroy();
      this.o.guard.refused(admitted, { peer, message: this.o.guard.refusedMessage(peer, admitted) });
      return false;
    }
    socket.once('close', admitted);
    this.ensureServer(cert).emit('connection', socket);
    return true;
  }

  /**
   * Stops new streams; open ones finish (GOAWAY), or are cut when `force`.
   * Cut streams are reset with CANCEL: a reset with NO_ERROR reaches the peer's
   * client as a FIN, and a half-open client never notices the RST that follows.
   * Sessions still in their handshake now are closed (or cut) when they start.
   */
  close(force: boolean): void {
    if (this.closing === undefined) this.unsubscribe();
    this.closing = force ? 'cut' : 'drain';
    for (const s of this.sessions) this.end(s);
    this.server?.close();
  }

  private end(session: ServerHttp2Session): void {
    if (this.closing === 'drain') return void session.close();
    session.destroy(new Error('HBONE session cut'), constants.NGHTTP2_CANCEL);
    session.socket?.destroy();
  }

  /** The roots changed: a session whose peer chain no longer leads to one of them is cut, with its streams. */
  private reverify(): void {
    for (const session of this.sessions) {
      const tls = session.socket as TLSSocket | undefined;
      if (tls === undefined || session.destroyed) continue;
      this.peers.delete(session);
      try {
        this.peerOf(session, tls);
      } catch (err) {
        const peer = tls.remoteAddress ?? '';
        session.destroy(new Error('HBONE session cut'), constants.NGHTTP2_CANCEL);
        tls.destroy();
        this.o.guard.refused('trust-revoked', { peer, message: `HBONE session from ${peer} cut: ${(err as Error).message}` });
      }
    }
  }

  private ensureServer(cert: WorkloadCertificate): Http2SecureServer {
    const roots = this.o.bundle.pems();
    if (this.server !== undefined && cert.serial === this.serial && roots === this.roots) return this.server;
    const limits = this.o.guard.limits;
    const tls = { ...serverTlsOptions(cert, this.o.bundle), settings: { ...HBONE_HTTP2_SETTINGS, initialWindowSize: limits.streamBufferBytes }, allowHTTP1: false };
    if (this.server === undefined) {
      this.server = createSecureServer({ ...tls, handshakeTimeout: limits.handshakeTimeoutMs });
      this.server.on('session', (session: ServerHttp2Session) => this.onSession(session));
      this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void this.onStream(stream, headers));
      this.server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
        if (err.code !== 'ERR_TLS_HANDSHAKE_TIMEOUT') return;
        const peer = socket.remoteAddress ?? '';
        this.o.guard.refused('handshake-timeout', { peer, message: `HBONE connection from ${peer} closed: no TLS handshake within ${limits.handshakeTimeoutMs} ms` });
      });
    } else this.server.setSecureContext(tls);
    [this.serial, this.roots] = [cert.serial, roots];
    return this.server;
  }

  private onSession(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.setLocalWindowSize(HBONE.connectionWindow);
    session.setTimeout(HBONE.idleCloseMs, () => session.close());
    // nghttp2 ends a session whose peer broke the protocol, e.g. sent past its flow-control
    // window: Node 26's nghttp2 answers that with GOAWAY FLOW_CONTROL_ERROR for the whole
    // connection where older ones reset the stream. Either way the peer is refused and counted.
    session.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_HTTP2_ERROR') return;
      const peer = session.socket?.remoteAddress ?? '';
      this.o.guard.refused('protocol-error', { peer, message: `HBONE connection from ${peer} closed: ${err.message}` });
    });
    session.once('close', () => this.sessions.delete(session));
    if (this.closing !== undefined) this.end(session);
  }

  private peerOf(session: Http2Session, tls: TLSSocket): SpiffeId {
    const cached = this.peers.get(session);
    if (cached !== undefined && Date.now() < cached.until) return cached.peer;
    const peer = verifyTlsPeer(tls, this.o.bundle, { trustDomain: this.o.trustDomain, expected: [] });
    this.peers.set(session, { peer, until: Date.parse(tls.getPeerCertificate().valid_to) });
    return peer;
  }

  private async onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const tls = stream.session?.socket as TLSSocket | undefined;
    const source = { sourceIp: tls?.remoteAddress ?? '', sourcePort: tls?.remotePort ?? 0 };
    const refuse = (status: number, reason: string, extra: Partial<InboundRefusal> = {}): void => {
      if (!stream.destroyed) stream.respond({ ':status': status }, { endStream: true });
      this.o.refused({ ...source, ...extra, status, reason });
    };
    stream.on('error', () => {});
    const registration = this.o.connections.register('hbone', () => resetStream(stream, constants.NGHTTP2_CONNECT_ERROR));
    stream.once('close', () => registration.release());
    let peer: SpiffeId;
    try {
      peer = this.peerOf(stream.session!, tls!);
    } catch (err) {
      return refuse(401, (err as Error).message);
    }
    if (headers[':method'] !== 'CONNECT') return refuse(400, `method ${String(headers[':method'])} is not CONNECT`, { peer });
    const target = parseAuthority(headers[':authority']);
    const toWaypoint = target !== undefined && !this.o.podIps.includes(target.ip) && this.o.waypoint?.serves(target) === true;
    if (target === undefined || (!toWaypoint && !this.o.podIps.includes(target.ip))) return refuse(400, `CONNECT target ${String(headers[':authority'])} is not this pod`, { peer });
    const loop = agentLoop(target, { podIps: this.o.podIps });
    if (loop !== undefined) {
      this.o.loopRefused?.(loop);
      return refuse(400, loop, { peer, target });
    }
    const request = { peer, sourceIp: source.sourceIp, target };
    const decision = this.o.authorize(request);
    if (!decision.allow) return refuse(401, decision.reason, { peer, target, ...(decision.policy ? { policy: decision.policy } : {}) });
    let upstream: Socket;
    try {
      upstream = toWaypoint
        ? await this.o.waypoint!.connect({ ...request, sourcePort: source.sourcePort, forwarded: headers.forwarded })
        : await connectFromNetns({ netns: this.o.netns, host: target.ip, port: target.port, mark: PROXY_MARK.value, sourceAddress: source.sourceIp, timeoutMs: HBONE.connectTimeoutMs });
    } catch (err) {
      return refuse(503, (err as Error).message, { peer, target });
    }
    if (stream.destroyed) {
      upstream.resetAndDestroy();
      return;
    }
    stream.respond({ ':status': 200 });
    registration.authorizedBy(() => this.o.authorize(request).allow);
    const handle = this.o.opened({ ...request, sourcePort: source.sourcePort });
    stream.once('close', () => {
      // nghttp2 resets a stream whose peer sent past its window: the per-stream buffer bound.
      if (stream.rstCode === constants.NGHTTP2_FLOW_CONTROL_ERROR) this.o.guard.refused('stream-buffer', { peer: source.sourceIp, message: `HBONE stream from ${source.sourceIp} reset: it sent past its ${this.o.guard.limits.streamBufferBytes}-byte window` });
    });
    // Node's timer counts bytes either way on the stream. The app side fails and the
    // splice resets the stream (CONNECT_ERROR), as for any upstream error.
    stream.setTimeout(this.o.guard.limits.streamIdleTimeoutMs, () => {
      stream.setTimeout(0);
      upstream.destroy(new Error('idle stream'));
      this.o.guard.refused('stream-idle', { peer: source.sourceIp, message: `HBONE stream from ${source.sourceIp} to ${formatAuthority(target.ip, target.port)} reset: idle for ${this.o.guard.limits.streamIdleTimeoutMs} ms` });
    });
    const result = await spliceStream(upstream, stream);
    handle.closed({ bytesSent: result.bytesBtoA, bytesReceived: result.bytesAtoB, ...(result.error ? { error: result.error.message } : {}) });
  }
}
