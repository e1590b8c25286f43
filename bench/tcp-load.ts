/**
 * Load generator for the TCP benchmarks; run as a separate process inside a
 * netns so the proxy under test does not share its event loop.
 *
 *   node dist/bench/tcp-load.js server <port>
 *   node dist/bench/tcp-load.js throughput <host> <port> <streams> <MiB per stream>
 *   node dist/bench/tcp-load.js latency <host> <port> <round trips>
 *
 * A connection's first byte picks the server's mode: 'T' sinks bytes and
 * answers with the count when the client half-closes; 'P' echoes.
 */
import net from 'node:net';

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function serve(port: number): void {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    let mode: number | undefined;
    let count = 0;
    socket.on('data', (data: Buffer) => {
      if (mode === undefined) {
        mode = data[0];
        data = data.subarray(1);
      }
      if (mode === 0x50) socket.write(data);
      else count += data.length;
    });
    socket.on('end', () => {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(count));
      if (mode === 0x54) socket.end(reply);
      else socket.end();
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen(port, () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => process.exit(0));
}

function sinkStream(host: string, port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const replies: Buffer[] = [];
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const n = Math.min(CHUNK.length, bytes - sent);
        sent += n;
        if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    socket.on('connect', () => {
      socket.write('T');
      pump();
    });
    socket.on('data', (d: Buffer) => replies.push(d));
    socket.on('end', () => resolve(Number(Buffer.concat(replies).readBigUInt64BE(0))));
    socket.on('error', reject);
  });
}

async function throughput(host: string, port: number, streams: number, mib: number): Promise<void> {
  const bytes = mib * 1024 * 1024;
  const start = process.hrtime.bigint();
  const received = await Promise.all(Array.from({ length: streams }, () => sinkStream(host, port, bytes)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const total = received.reduce((a, b) => a + b, 0);
  if (total !== bytes * streams) throw new Error(`server received ${total} bytes, expected ${bytes * streams}`);
  process.stdout.write(JSON.stringify({ bytes: total, seconds, gbitPerSecond: (total * 8) / seconds / 1e9 }) + '\n');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function latency(host: string, port: number, rounds: number): Promise<void> {
  const socket = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write('P');
  const message = Buffer.alloc(64, 0x62);
  const samples: number[] = [];
  let pending = 0;
  let started = 0n;
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    const next = (): void => {
      if (samples.length === rounds) return resolve();
      pending = message.length;
      started = process.hrtime.bigint();
      socket.write(message);
    };
    socket.on('data', (d: Buffer) => {
      pending -= d.length;
      if (pending > 0) return;
      samples.push(Number(process.hrtime.bigint() - started) / 1000);
      next();
    });
    next();
  });
  socket.destroy();
  // Drop the warm-up tenth: connection set-up and JIT, not the steady state.
  const sorted = samples.slice(Math.floor(rounds / 10)).sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ rounds, p50us: percentile(sorted, 50), p99us: percentile(sorted, 99) }) + '\n');
}

const [mode, ...args] = process.argv.slice(2);
const num = (i: number): number => {
  const v = Number(args[i]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`argument ${i + 1} must be a positive number, got ${args[i]}`);
  return v;
};
const run: Promise<void> =
  mode === 'server'
    ? Promise.resolve(serve(num(0)))
    : mode === 'throughput'
      ? throughput(args[0] ?? '', num(1), num(2), num(3))
      : mode === 'latency'
        ? latency(args[0] ?? '', num(1), num(2))
        : Promise.reject(new Error('usage: tcp-load server|throughput|latency …'));
run.catch((err: unknown) => {
  process.stderr.write(`tcp-load: ${String(err)}\n`);
  process.exit(1);
});
