import { WarrenError } from '../errors/warren-error.js';
import { native } from './netns-socket.js';

/**
 * The native data path (DESIGN.md §12, issue 19): worker threads in the
 * addon move the bytes (TLS 1.3 and HTTP/2 CONNECT by the OpenSSL and
 * nghttp2 inside Node); this process decides. Every accepted connection and
 * every inbound CONNECT arrives here once as a `decide` event and waits for
 * `resolve()`; `open`/`close` events report what happened, in batches.
 */
export type DataplaneEvent = DecideCaptured | DecideConnect | DecideSession | { type: 'open'; id: number } | CloseEvent;

/**
 * A TCP connection accepted on an HBONE listener, before any TLS: admitted
 * (`{ action: 'admit' }`, HboneGuard's connection caps) or reset. Its `close`
 * event comes when the HBONE connection ends.
 */
export interface DecideSession {
  type: 'decide';
  id: number;
  kind: 'session';
  listener: number;
  srcIp: string;
  srcPort: number;
}

/** A connection accepted on a capture listener (:15001 outbound, :15006 plaintext inbound). */
export interface DecideCaptured {
  type: 'decide';
  id: number;
  kind: 'outbound' | 'inbound';
  listener: number;
  srcIp: string;
  srcPort: number;
  /** before REDIRECT rewrote it; empty when the connection was not redirected */
  dstIp: string;
  dstPort: number;
  /** the accepted socket's own address (the listener's, as the client reached it) */
  localIp: string;
  localPort: number;
}

/** A CONNECT on an HBONE listener (:15008), after mutual TLS verified the peer against the bundle. */
export interface DecideConnect {
  type: 'decide';
  id: number;
  kind: 'connect';
  listener: number;
  srcIp: string;
  srcPort: number;
  /** the peer certificate's one URI SAN (spiffe://…), verified natively against the trust bundle */
  peer: string;
  method: string;
  authority: string;
  /** the CONNECT's `Forwarded` header, when it had one (a waypoint CONNECT names its client's port there) */
  forwarded?: string;
}

export interface CloseEvent {
  type: 'close';
  id: number;
  fromClient: number;
  fromServer: number;
  /** false: it was refused or failed before carrying a byte */
  opened: boolean;
  /** the HTTP status a CONNECT was answered with (either side), when one was */
  status?: number;
  error?: string;
  /** an HBONE connection or inbound stream ended by one of the server's bounds (HboneRefusal in tunnel/hbone-limits.ts) */
  refusal?: 'handshake-timeout' | 'stream-idle' | 'protocol-error' | 'trust-revoked';
}

/** Where a connection is made from: the pod's netns, the agent's mark, the client's IP (transparent). */
interface From {
  /** '' for this process's own netns */
  netns: string;
  mark?: number;
  sourceIp?: string;
}

export type Decision =
  | { action: 'reset'; reason: string }
  /** a `session` may go on to its TLS handshake */
  | { action: 'admit' }
  /** inbound CONNECT only: answer this HTTP status (400, 401, 503) */
  | { action: 'reject'; status: number; reason: string }
  /** `prefix`: written upstream before the client's bytes (a waypoint hand-off's PROXY v2 header); over 512 bytes the addon resets the flow */
  | ({ action: 'connect'; ip: string; port: number; prefix?: Buffer } & From)
  | ({ action: 'hbone'; ip: string; port: number; identity: string; expected: string; authority: string; forwarded?: string } & From);

export type ListenerKind = 'outbound' | 'inbound' | 'hbone';

interface NativeDataplane {
  listen(id: number, fd: number, kind: ListenerKind, identity?: string): void;
  unlisten(id: number): void;
  setIdentity(name: string, keyPem: string, chainPem: string, bundlePems: readonly string[]): void;
  dropIdentity(name: string): void;
  resolve(id: number, decision: Decision): void;
  close(id: number, reason?: string): void;
  poll(): DataplaneEvent[];
  stats(): DataplaneStats;
  pools(): DataplanePool[];
  ref(): void;
  unref(): void;
  stop(): void;
}

export interface DataplaneStats {
  flows: number;
  sessions: number;
  streams: number;
  /** bytes of buffer storage the sessions and flows hold (and each worker's TLS read buffer), as of the workers' last once-a-second tick */
  buffered: number;
  /** bytes nghttp2 holds for the HBONE sessions (frame buffers, HPACK tables, streams, queued frames), now */
  http2Bytes: number;
}

/** One worker's pooled outbound HBONE sessions from a pod (`netns`, `identity`) to a peer (`ip`, `expected` identity). */
export interface DataplanePool {
  netns: string;
  identity: string;
  expected: string;
  ip: string;
  sessions: number;
  /** their open streams */
  streams: number;
}

/** The HBONE server's bounds the workers enforce (the same fields as HboneLimits in tunnel/hbone-limits.ts). */
export interface DataplaneLimits {
  handshakeTimeoutMs: number;
  streamIdleTimeoutMs: number;
  /** each inbound stream's HTTP/2 receive window */
  streamBufferBytes: number;
}

type Constructor = new (options: { threads: number; onWake: () => void; handshakeTimeoutMs?: number; streamIdleTimeoutMs?: number; streamWindow?: number }) => NativeDataplane;

export class Dataplane {
  private readonly engine: NativeDataplane;
  private nextListener = 1;
  private readonly listening = new Set<number>();
  private stopped = false;

  /** `onEvents` runs on the event loop with every batch, in order. */
  constructor(threads: number, private readonly onEvents: (events: DataplaneEvent[]) => void, limits?: DataplaneLimits) {
    const Ctor = (native() as unknown as { Dataplane?: Constructor }).Dataplane;
    if (Ctor === undefined) throw new WarrenError('ERR_NATIVE_MISSING', 'the native addon has no data path; rebuild it (`npm rebuild`)');
    this.engine = new Ctor({ threads, onWake: () => this.drain(), ...(limits === undefined ? {} : { handshakeTimeoutMs: limits.handshakeTimeoutMs, streamIdleTimeoutMs: limits.streamIdleTimeoutMs, streamWindow: limits.streamBufferBytes }) });
  }

  /** Hands a listening socket (made in a pod's netns) to the workers; they own it from now on. */
  listen(fd: number, kind: ListenerKind, identity?: string): number {
    const id = this.nextListener++;
    this.engine.listen(id, fd, kind, identity);
    // Like a net.Server: the process stays up while something listens.
    if (this.listening.size === 0) this.engine.ref();
    this.listening.add(id);
    return id;
  }

  unlisten(id: number): void {
    this.engine.unlisten(id);
    if (this.listening.delete(id) && this.listening.size === 0) this.engine.unref();
  }

  /** Credentials of one identity (new connections use them; live ones keep theirs). The key stays in this process. */
  setIdentity(name: string, keyPem: string, chainPem: string, bundlePems: readonly string[]): void {
    try {
      this.engine.setIdentity(name, keyPem, chainPem, bundlePems);
    } catch (err) {
      throw new WarrenError('ERR_NATIVE_IDENTITY', `credentials of ${name} refused: ${(err as Error).message}`);
    }
  }

  dropIdentity(name: string): void {
    this.engine.dropIdentity(name);
  }

  resolve(id: number, decision: Decision): void {
    this.engine.resolve(id, decision);
  }

  /** Resets a connection (policy no longer allows it, pod drained). */
  close(id: number, reason: string): void {
    this.engine.close(id, reason);
  }

  stats(): DataplaneStats {
    return this.engine.stats();
  }

  /** The workers' pooled HBONE sessions (each worker answers on its own thread; the call waits for them, at most 200 ms). */
  pools(): DataplanePool[] {
    return this.engine.pools();
  }

  /** Stops the workers; every connection is reset, no event follows. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.engine.stop();
  }

  private drain(): void {
    if (this.stopped) return;
    const events = this.engine.poll();
    if (events.length > 0) this.onEvents(events);
  }
}
