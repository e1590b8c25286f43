import { connect, createServer, type Server, type Socket } from 'node:net';
import { inBlock, parseAddress, parseBlocks } from '../policy/ip-blocks.js';
import { decodeProxyV2, type ProxyV2Header } from './proxy-protocol.js';

/**
 * The waypoint's :15088 (Istio's PROXY/15088 binding; docs/architecture.md
 * §14). Trust: only the node agent of this pod's node hands
 * streams over, from inside the pod (loopback), after it terminated HBONE and
 * checked the client's certificate; so a connection from any other address
 * is refused before a byte is read, and the PROXY v2 header is the only
 * source of the client's address and identity. Each stream is then sniffed:
 * HTTP/2 prior knowledge, HTTP/1.x, or else raw TCP to the original
 * destination.
 */
export type Sniffed = 'http1' | 'http2' | 'tcp';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const METHOD_CHAR = /^[A-Z]$/;
/** Longest method token we wait for before deciding it is not HTTP/1 (e.g. "PROPPATCH", "MKCALENDAR"). */
const MAX_METHOD = 16;
const HEADER_TIMEOUT_MS = 5000;

/** Classifies the first bytes of a stream; 'more' while they could still be either. */
export function sniff(buf: Buffer): Sniffed | 'more' {
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (n > 0 && buf.compare(H2_PREFACE, 0, n, 0, n) === 0) return n === H2_PREFACE.length ? 'http2' : 'more';
  for (let i = 0; i < Math.min(buf.length, MAX_METHOD + 1); i++) {
    const c = String.fromCharCode(buf[i]!);
    if (c === ' ') return i > 0 ? 'http1' : 'tcp';
    if (!METHOD_CHAR.test(c)) return 'tcp';
  }
  return buf.length > MAX_METHOD ? 'tcp' : 'more';
}

export interface InboundDeps {
  trustedSources: readonly string[];
  detectionTimeoutMs: number;
  http1(socket: Socket): void;
  http2(socket: Socket): void;
  tcp(socket: Socket, header: ProxyV2Header): void;
  accepted(socket: Socket, header: ProxyV2Header): void;
  refused(reason: string): void;
}

export function startInboundListener(address: string, port: number, deps: InboundDeps): Promise<Server> {
  const trusted = parseBlocks(deps.trustedSources);
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    const peer = parseAddress(socket.remoteAddress ?? '');
    if (peer === undefined || !trusted.some((b) => inBlock(b, peer))) {
      deps.refused('untrusted_source');
      return void socket.destroy();
    }
    let buf: Buffer = Buffer.alloc(0);
    let header: ProxyV2Header | undefined;
    let detectTimer: NodeJS.Timeout | undefined;
    const headerTimer = setTimeout(() => {
      deps.refused('proxy_header_timeout');
      socket.destroy();
    }, HEADER_TIMEOUT_MS);
    const handOver = (kind: Sniffed): void => {
      clearTimeout(detectTimer);
      socket.removeListener('data', onData);
      socket.pause();
      if (buf.length > 0) socket.unshift(buf);
      deps.accepted(socket, header!);
      if (kind === 'http1') deps.http1(socket);
      else if (kind === 'http2') deps.http2(socket);
      else deps.tcp(socket, header!);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (header === undefined) {
        const d = decodeProxyV2(buf);
        if (d.kind === 'incomplete') return;
        if (d.kind === 'error') {
          deps.refused(d.code);
          clearTimeout(headerTimer);
          return void socket.destroy();
        }
        clearTimeout(headerTimer);
        header = d.header;
        buf = buf.subarray(d.consumed);
        // Server-first protocols send nothing: after the detection timeout the stream is TCP.
        detectTimer = setTimeout(() => handOver('tcp'), deps.detectionTimeoutMs);
        if (buf.length === 0) return;
      }
      const kind = sniff(buf);
      if (kind !== 'more') handOver(kind);
    };
    socket.on('data', onData);
    socket.once('close', () => {
      clearTimeout(headerTimer);
      clearTimeout(detectTimer);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve(server));
  });
}

/** A non-HTTP stream, spliced to one endpoint as is (the destination's node agent applies L4 policy). */
export function forwardTcp(client: Socket, target: { ip: string; port: number }, connectTimeoutMs: number, done: (outcome: 'ok' | 'error') => void): void {
  const upstream = connect({ host: target.ip, port: target.port, noDelay: true });
  let outcome: 'ok' | 'error' = 'ok';
  const timer = setTimeout(() => {
    outcome = 'error';
    upstream.destroy();
  }, connectTimeoutMs);
  upstream.once('connect', () => clearTimeout(timer));
  upstream.on('error', () => {
    outcome = 'error';
    client.destroy();
  });
  client.on('error', () => upstream.destroy());
  upstream.once('close', () => {
    clearTimeout(timer);
    client.destroy();
  });
  client.once('close', () => {
    upstream.destroy();
    done(outcome);
  });
  client.pipe(upstream).pipe(client);
  client.resume();
}
