import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before } from 'node:test';
import { createRootCa, type CaMaterial } from '../../src/ca/signer.js';
import { issueWorkloadCert } from './workload-certs.js';
import { joinPem } from '../../src/identity/pem.js';
import { formatSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { Dataplane, type CloseEvent, type DataplaneEvent, type DecideCaptured, type DecideConnect, type Decision } from '../../src/native/dataplane.js';
import { createListener } from '../../src/native/netns-socket.js';

export const CLIENT: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'client' };
export const SERVER: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };

export async function testCa(): Promise<{ ca: CaMaterial; rootPem: string }> {
  const root = await createRootCa('cluster.local');
  return { ca: root, rootPem: root.certPem };
}

/** A free loopback port (bind 0, read, release): the native listeners take fds, not ports. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export type EchoServer = { server: Server; port: number; sockets: Set<Socket> };

export async function echoServer(): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  // A deep accept queue: under AddressSanitizer this process accepts slowly while the
  // workers connect at full speed, and an overflowing queue leaves connections half-open
  // (SYN-RECV here, established at the relay) until TCP gives up, minutes later.
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

export interface LoopbackOptions {
  threads?: number;
  /** the outbound decision; default: HBONE to the harness's own HBONE listener, CONNECT to `target` */
  route?: (e: DecideCaptured, h: LoopbackDataplane) => Decision;
  /** the CONNECT decision; default: connect to the authority when it is 127.0.0.1 */
  authorize?: (e: DecideConnect, h: LoopbackDataplane) => Decision;
}

/**
 * One native data path on loopback, both ends of an HBONE tunnel in this
 * process: an outbound listener whose connections go over HBONE (client
 * identity CLIENT) to its own HBONE listener (identity SERVER), which
 * delivers each CONNECT to `target`.
 */
export class LoopbackDataplane {
  readonly decided: DataplaneEvent[] = [];
  readonly closed = new Map<number, CloseEvent>();
  /** HBONE connections the server end accepted (all admitted here), and those that ended */
  readonly sessions = new Set<number>();
  readonly sessionsClosed = new Map<number, CloseEvent>();
  readonly opened = new Set<number>();
  target = 0;
  outboundPort = 0;
  hbonePort = 0;
  expected = formatSpiffeId(SERVER);
  readonly dp: Dataplane;
  private waiters: Array<() => void> = [];

  private constructor(private readonly o: LoopbackOptions) {
    this.dp = new Dataplane(o.threads ?? 2, (events) => this.onEvents(events));
  }

  static async start(ca: CaMaterial, rootPem: string, o: LoopbackOptions = {}): Promise<LoopbackDataplane> {
    const h = new LoopbackDataplane(o);
    for (const id of [CLIENT, SERVER]) {
      const c = await issueWorkloadCert(ca, id);
      h.dp.setIdentity(formatSpiffeId(id), c.privateKeyPem, joinPem(c.chainPem), [rootPem]);
    }
    h.outboundPort = await freePort();
    h.dp.listen(createListener({ address: '127.0.0.1', port: h.outboundPort }), 'outbound');
    h.hbonePort = await freePort();
    h.dp.listen(createListener({ address: '127.0.0.1', port: h.hbonePort }), 'hbone', formatSpiffeId(SERVER));
    return h;
  }

  /** Resolves once `check` holds after some batch of events (or throws after `ms`). */
  async until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stats ${JSON.stringify(this.dp.stats())}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  stop(): void {
    this.dp.stop();
  }

  private onEvents(events: DataplaneEvent[]): void {
    for (const e of events) {
      if (e.type === 'decide' && e.kind === 'session') {
        this.sessions.add(e.id);
        this.dp.resolve(e.id, { action: 'admit' });
      } else if (e.type === 'decide') {
        this.decided.push(e);
        this.dp.resolve(e.id, e.kind === 'connect' ? (this.o.authorize ?? defaultAuthorize)(e, this) : (this.o.route ?? defaultRoute)(e, this));
      } else if (e.type === 'open') this.opened.add(e.id);
      else if (this.sessions.has(e.id)) this.sessionsClosed.set(e.id, e);
      else this.closed.set(e.id, e);
    }
    for (const w of this.waiters.splice(0)) w();
  }
}

function defaultRoute(e: DecideCaptured, h: LoopbackDataplane): Decision {
  return { action: 'hbone', netns: '', ip: '127.0.0.1', port: h.hbonePort, identity: formatSpiffeId(CLIENT), expected: h.expected, authority: `127.0.0.1:${h.target}`, forwarded: `for=${e.srcIp}` };
}

function defaultAuthorize(e: DecideConnect): Decision {
  const m = /^127\.0\.0\.1:(\d+)$/.exec(e.authority);
  if (e.method !== 'CONNECT' || m === null) return { action: 'reject', status: 400, reason: `bad CONNECT ${e.method} ${e.authority}` };
  return { action: 'connect', netns: '', ip: '127.0.0.1', port: Number(m[1]) };
}

/** What a test file of the native data path shares: one CA and one echo server (the CONNECT target). */
export interface NativeFixture {
  ca: CaMaterial;
  rootPem: string;
  echo: EchoServer;
}

/**
 * Registers the file's before/after hooks that make and close the fixture; its
 * fields are set once `before` ran (a file's own `before` may not run after
 * this one: it awaits `ready()`).
 */
export function nativeFixture(): NativeFixture & { ready(): Promise<void> } {
  let made: Promise<void> | undefined;
  const f = {
    ready: () =>
      (made ??= (async () => {
        Object.assign(f, await testCa());
        f.echo = await echoServer();
      })()),
  } as NativeFixture & { ready(): Promise<void> };
  before(() => f.ready());
  after(() => f.echo.server.close());
  return f;
}

/** A loopback data path delivering to the fixture's echo server for the length of `fn`. */
export async function withLoopback(f: NativeFixture, fn: (h: LoopbackDataplane) => Promise<void>, o: LoopbackOptions = {}): Promise<void> {
  const h = await LoopbackDataplane.start(f.ca, f.rootPem, o);
  h.target = f.echo.port;
  try {
    await fn(h);
  } finally {
    h.stop();
  }
}

/** Writes `data` to 127.0.0.1:port (backpressure honoured), half-closes, collects until the peer's FIN. */
export function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => {
      s.end();
      resolve(Buffer.concat(chunks));
    });
    s.once('error', reject);
    s.end(data);
  });
}

/** `n` connections to 127.0.0.1:port, each echoed once: held open until destroyed. */
export const holdOpen = (port: number, n: number): Promise<Socket[]> =>
  Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ port, host: '127.0.0.1' });
          s.once('error', reject);
          s.once('data', () => resolve(s));
          s.write(`held ${i}`);
        }),
    ),
  );
