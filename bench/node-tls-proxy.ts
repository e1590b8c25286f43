/**
 * The least a Node process can do to carry TCP over mutual TLS: stunnel's design,
 * in Node, as a same-run ceiling for warren in the dataplane benchmark. One TLS 1.3
 * connection per TCP connection (no HTTP/2, pooling, policy or telemetry), the
 * certificates and checks stunnel is given (chain to the root, client certificate
 * required; no SPIFFE check), P-256 key exchange, TCP_NODELAY, warren's socket
 * high-water mark and warren's socket splice (pipe both ways, half-close carried).
 * Not a warren component: if warren's path is near this one, the remaining cost is
 * Node's TLS, not warren's design.
 *
 *   node dist/bench/node-tls-proxy.js client|server <cert dir> <pod> <accept host:port>=<connect host:port> ...
 *
 * Prints "ready" once every listener is up. SIGUSR2 runs a full GC when --expose-gc
 * is set (the benchmark reads RSS after it); SIGTERM exits.
 */
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SOCKET_HIGH_WATER_MARK } from '../src/tunnel/socket-buffers.js';
import { splice } from '../src/tunnel/splice.js';

interface Forward {
  accept: { host: string; port: number };
  connect: { host: string; port: number };
}

function hostPort(text: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (m === null || port < 1 || port > 65535) throw new Error(`"${text}" is not host:port`);
  return { host: m[1]!, port };
}

function parseForward(text: string): Forward {
  const [accept, connect, ...rest] = text.split('=');
  if (accept === undefined || connect === undefined || rest.length > 0) throw new Error(`"${text}" is not <accept host:port>=<connect host:port>`);
  return { accept: hostPort(accept), connect: hostPort(connect) };
}

function main(): void {
  const [side, dir, pod, ...forwardArgs] = process.argv.slice(2);
  if ((side !== 'client' && side !== 'server') || dir === undefined || pod === undefined || forwardArgs.length === 0) {
    process.stderr.write('usage: node-tls-proxy client|server <cert dir> <pod> <accept host:port>=<connect host:port> ...\n');
    process.exit(2);
  }
  const forwards = forwardArgs.map(parseForward);
  const credentials = {
    key: readFileSync(join(dir, `${pod}.key`)),
    cert: readFileSync(join(dir, `${pod}.pem`)),
    ca: readFileSync(join(dir, 'root.pem')),
    minVersion: 'TLSv1.3' as const,
    ecdhCurve: 'prime256v1',
  };
  const socketOptions = { allowHalfOpen: true, noDelay: true, highWaterMark: SOCKET_HIGH_WATER_MARK };
  // net.Socket's typings lack the highWaterMark options that Node accepts (as in netns-connect.ts).
  const plainConnect = (to: Forward['connect']): Socket => net.connect({ ...socketOptions, ...to } as net.NetConnectOpts);
  const tlsConnect = (to: Forward['connect']): TLSSocket => {
    const s = tls.connect({ ...credentials, ...socketOptions, ...to, checkServerIdentity: () => undefined } as tls.ConnectionOptions);
    s.setNoDelay(true);
    return s;
  };
  let pending = forwards.length;
  const listening = (): void => {
    pending -= 1;
    if (pending === 0) process.stdout.write('ready\n');
  };
  for (const f of forwards) {
    const onConnection = (inbound: Socket): void => {
      inbound.setNoDelay(true);
      void splice(inbound, side === 'client' ? tlsConnect(f.connect) : plainConnect(f.connect));
    };
    const server =
      side === 'client'
        ? net.createServer(socketOptions, onConnection)
        : tls.createServer({ ...credentials, ...socketOptions, requestCert: true, rejectUnauthorized: true }, onConnection);
    server.on('error', (err) => {
      process.stderr.write(`node-tls-proxy ${side} ${f.accept.host}:${f.accept.port}: ${err.message}\n`);
      process.exit(1);
    });
    server.listen(f.accept.port, f.accept.host, listening);
  }
  process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
  process.on('SIGTERM', () => process.exit(0));
}

main();
