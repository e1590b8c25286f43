/**
 * Load generator for the TCP benchmarks; run as a separate process inside a
 * netns so the proxy under test does not share its event loop.
 *
 *   node dist/bench/tcp-load.js server <port>
 *   node dist/bench/tcp-load.js throughput <host> <port> <streams> <MiB per stream>
 *   node dist/bench/tcp-load.js latency <host> <port> <round trips>
 *   node dist/bench/tcp-load.js rr <host> <port> <requests/s> <requests> [bytes=1024]
 *   node dist/bench/tcp-load.js connrate <host> <port> <seconds> <concurrency> [bytes=1024]
 *   node dist/bench/tcp-load.js hold <host> <port> <connections> <concurrency>
 *   node dist/bench/tcp-load.js rate <host> <port> <connections/s> <seconds> [bytes=64]
 *
 * rr: one persistent connection, a `bytes` request echoed back, sent on a
 * fixed schedule (start + i / rate; a request never overlaps the previous
 * answer, a late one goes out as soon as that arrives). Latency is timed from
 * each request's scheduled send, as wrk2 does: a slow answer delays the next
 * sends, and that queueing is the user's wait too (timing from the actual send
 * would hide it: coordinated omission). Also reported: the achieved rate, how
 * many requests went out more than one interval late, the RTT from the actual
 * send, and `behind` when the run could not keep the schedule (achieved rate
 * below 95% of the target, or more than 1% of the requests late). connrate: `concurrency` workers, each in a loop for
 * `seconds`: connect, a `bytes` request and its echo, close, wait for the
 * close. hold: opens `connections` echo connections (`concurrency` at a time,
 * one byte through each so every one is established end to end), prints one
 * JSON line, then holds them idle until SIGTERM. rate: open loop, a new connection
 * (request, echo, close) every 1/rate s whatever the earlier ones do, at most
 * 4 × rate in flight (beyond that a due connection counts as `skipped`: the
 * path fell behind), each one failed if not done within 10 s.
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
  // The dataplane benchmark weighs this server's idle sockets after a full GC (with --expose-gc).
  process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
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

function connected(socket: net.Socket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
}

async function requestResponse(host: string, port: number, rate: number, requests: number, bytes: number): Promise<void> {
  const socket = net.connect({ host, port, noDelay: true });
  await connected(socket);
  socket.write('P');
  const message = Buffer.alloc(bytes, 0x62);
  const intervalNs = BigInt(Math.round(1e9 / rate));
  const fromSchedule: number[] = [];
  const fromSend: number[] = [];
  let late = 0;
  let pending = 0;
  let dueAt = 0n;
  let sentAt = 0n;
  const first = process.hrtime.bigint() + 2_000_000n;
  let i = 0;
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    const send = (): void => {
      pending = bytes;
      sentAt = process.hrtime.bigint();
      socket.write(message);
    };
    const next = (): void => {
      if (i === requests) return resolve();
      dueAt = first + BigInt(i++) * intervalNs;
      const waitNs = dueAt - process.hrtime.bigint();
      if (waitNs <= 0n) {
        if (waitNs < -intervalNs) late++;
        send();
      } else setTimeout(send, Number(waitNs) / 1e6);
    };
    socket.on('data', (d: Buffer) => {
      pending -= d.length;
      if (pending > 0) return;
      const now = process.hrtime.bigint();
      fromSchedule.push(Number(now - dueAt) / 1000);
      fromSend.push(Number(now - sentAt) / 1000);
      next();
    });
    next();
  });
  const seconds = Number(process.hrtime.bigint() - first) / 1e9;
  socket.destroy();
  // Drop the warm-up tenth: JIT and the first round trips through a fresh path.
  const warm = Math.floor(requests / 10);
  const sorted = fromSchedule.slice(warm).sort((a, b) => a - b);
  const sortedSend = fromSend.slice(warm).sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const achievedRate = requests / seconds;
  process.stdout.write(
    JSON.stringify({
      requests,
      seconds,
      targetRate: rate,
      achievedRate,
      late,
      behind: achievedRate < 0.95 * rate || late > requests / 100,
      p50us: percentile(sorted, 50),
      p99us: percentile(sorted, 99),
      meanUs: mean,
      sendP50us: percentile(sortedSend, 50),
      sendP99us: percentile(sortedSend, 99),
    }) + '\n',
  );
}

/** connect, `bytes` request, its echo, close; true when all of it worked. */
function oneConnection(host: string, port: number, request: Buffer, bytes: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, noDelay: true });
    let got = 0;
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= bytes) socket.end();
    });
    socket.on('error', () => undefined);
    socket.on('close', (hadError) => resolve(!hadError && got >= bytes));
  });
}

async function connectionRate(host: string, port: number, seconds: number, concurrency: number, bytes: number): Promise<void> {
  const request = Buffer.concat([Buffer.from('P'), Buffer.alloc(bytes, 0x63)]);
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  let connections = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (process.hrtime.bigint() < until) {
        if (await oneConnection(host, port, request, bytes)) connections++;
        else errors++;
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(JSON.stringify({ connections, errors, seconds: elapsed, perSecond: connections / elapsed }) + '\n');
}

async function connectionsAtRate(host: string, port: number, rate: number, seconds: number, bytes: number): Promise<void> {
  const request = Buffer.concat([Buffer.from('P'), Buffer.alloc(bytes, 0x63)]);
  const total = Math.round(rate * seconds);
  const maxInFlight = Math.ceil(4 * rate);
  let inFlight = 0;
  let ok = 0;
  let errors = 0;
  let skipped = 0;
  const latencies: number[] = [];
  const started: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= maxInFlight) {
      skipped++;
      continue;
    }
    inFlight++;
    const begin = performance.now();
    started.push(
      Promise.race([oneConnection(host, port, request, bytes), new Promise<boolean>((r) => setTimeout(r, 10_000, false).unref())]).then((done) => {
        inFlight--;
        if (done) {
          ok++;
          latencies.push(performance.now() - begin);
        } else errors++;
      }),
    );
  }
  await Promise.all(started);
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ attempted: total, ok, errors, skipped, seconds: elapsed, perSecond: ok / elapsed, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) }) + '\n');
  // a connection given up on at 10 s may still be open: it must not keep the process alive
  process.exit(0);
}

async function hold(host: string, port: number, count: number, concurrency: number): Promise<void> {
  const open = new Set<net.Socket>();
  let failed = 0;
  let dropped = 0;
  let lastError = '';
  let started = 0;
  const t0 = process.hrtime.bigint();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = net.connect({ host, port, noDelay: true });
      let established = false;
      const timer = setTimeout(() => socket.destroy(new Error('no echo within 30 s')), 30_000);
      socket.on('connect', () => socket.write('Px'));
      socket.once('data', () => {
        clearTimeout(timer);
        established = true;
        open.add(socket);
        resolve();
      });
      socket.on('error', (err: Error) => {
        lastError = err.message;
      });
      socket.on('close', () => {
        clearTimeout(timer);
        if (established) {
          open.delete(socket);
          dropped++;
        } else {
          failed++;
          resolve();
        }
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < count) {
        started++;
        await one();
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ opened: open.size, failed, seconds, ...(lastError ? { lastError } : {}) }) + '\n');
  // Held until told to stop; the kernel closes them all on exit.
  const keepAlive = setInterval(() => undefined, 60_000);
  process.on('SIGTERM', () => {
    clearInterval(keepAlive);
    if (dropped > 0) process.stderr.write(`tcp-load hold: ${dropped} held connections were closed by the other side\n`);
    process.exit(0);
  });
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
        : mode === 'rr'
          ? requestResponse(args[0] ?? '', num(1), num(2), num(3), args[4] === undefined ? 1024 : num(4))
          : mode === 'connrate'
            ? connectionRate(args[0] ?? '', num(1), num(2), num(3), args[4] === undefined ? 1024 : num(4))
            : mode === 'hold'
              ? hold(args[0] ?? '', num(1), num(2), num(3))
              : mode === 'rate'
                ? connectionsAtRate(args[0] ?? '', num(1), num(2), num(3), args[4] === undefined ? 64 : num(4))
                : Promise.reject(new Error('usage: tcp-load server|throughput|latency|rr|connrate|hold|rate …'));
run.catch((err: unknown) => {
  process.stderr.write(`tcp-load: ${String(err)}\n`);
  process.exit(1);
});
