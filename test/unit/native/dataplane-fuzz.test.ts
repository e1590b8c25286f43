import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { joinPem } from '../../../src/identity/pem.js';
import { CLIENT, LoopbackDataplane, nativeFixture } from '../../helpers/native-dataplane.js';
import { issueWorkloadCert } from '../../helpers/workload-certs.js';

// Every byte a peer sends the native data path is untrusted. This throws
// FUZZ_CASES hostile conversations at one data path —
// random bytes and mutated ClientHellos before TLS, random and mutated
// HTTP/2 frames after a valid mutual TLS handshake, CONNECTs to random
// targets, early closes, half-closes and resets on captured connections —
// then requires: the process alive, every connection and session released,
// as many descriptors open as before, and a clean round trip still working.
// Run under scripts/sanitized-addon.sh, any memory error aborts it.

// The unit tier runs 2 000; CI runs 10 000 under the sanitizers (.ci/run).
const CASES = Number(process.env.FUZZ_CASES ?? 2_000);
const PARALLEL = 32;

const fx = nativeFixture();
let h: LoopbackDataplane;
let clientKey: string;
let clientChain: string;
let clientHello: Buffer;

const fds = (): number => readdirSync('/proc/self/fd').length;

before(async () => {
  await fx.ready();
  h = await LoopbackDataplane.start(fx.ca, fx.rootPem, { threads: 2 });
  h.target = fx.echo.port;
  const c = await issueWorkloadCert(fx.ca, CLIENT);
  clientKey = c.privateKeyPem;
  clientChain = joinPem(c.chainPem);
  clientHello = await captureClientHello();
});

after(() => h.stop());

/** The first flight of a real client, to mutate. */
async function captureClientHello(): Promise<Buffer> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer((s) => {
      s.once('data', (d: Buffer) => {
        s.destroy();
        srv.close();
        resolve(d);
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      const c = tlsConnect({ port, host: '127.0.0.1', ALPNProtocols: ['h2'], rejectUnauthorized: false, minVersion: 'TLSv1.3' });
      c.on('error', () => c.destroy());
    });
  });
}

function mutate(b: Buffer): Buffer {
  const out = Buffer.from(b);
  const n = 1 + randomInt(8);
  for (let i = 0; i < n; i++) {
    const at = randomInt(out.length);
    switch (randomInt(3)) {
      case 0:
        out[at] = randomInt(256);
        break;
      case 1:
        out[at] = out[at]! ^ (1 << randomInt(8));
        break;
      default:
        out[at] = [0, 0xff, 0x7f, 0x80][randomInt(4)]!;
    }
  }
  return randomInt(4) === 0 ? out.subarray(0, randomInt(out.length)) : out;
}

// --- HTTP/2 frames (RFC 9113 §4.1) and literal HPACK headers (RFC 7541 §6.2.2)
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}
function hpack(headers: [string, string][]): Buffer {
  return Buffer.concat(headers.map(([n, v]) => Buffer.concat([Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)])));
}
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function randomAuthority(): string {
  switch (randomInt(6)) {
    case 0:
      return `127.0.0.1:${fx.echo.port}`;
    case 1:
      return `127.0.0.1:${randomInt(70000)}`;
    case 2:
      return `[::1]:${randomInt(65536)}`;
    case 3:
      return randomBytes(randomInt(40)).toString('latin1').replace(/[\r\n]/g, '');
    case 4:
      return 'x'.repeat(100 + randomInt(100));
    default:
      return '';
  }
}

function h2Conversation(): Buffer {
  const frames: Buffer[] = [PREFACE, frame(4, 0, 0, Buffer.alloc(0))];
  const streams = 1 + randomInt(4);
  for (let s = 0; s < streams; s++) {
    const id = 1 + 2 * s;
    const method = randomInt(5) === 0 ? 'GET' : 'CONNECT';
    frames.push(frame(1, 4 | (randomInt(4) === 0 ? 1 : 0), id, hpack([[':method', method], [':authority', randomAuthority()]])));
    const more = randomInt(5);
    for (let i = 0; i < more; i++) {
      switch (randomInt(7)) {
        case 0:
          frames.push(frame(0, randomInt(2), id, randomBytes(randomInt(2000))));
          break;
        case 1:
          frames.push(frame(3, 0, id, Buffer.from([0, 0, 0, randomInt(14)])));
          break;
        case 2:
          frames.push(frame(8, 0, randomInt(2) === 0 ? 0 : id, Buffer.from([randomInt(256), 0, 0, randomInt(256)])));
          break;
        case 3:
          frames.push(frame(6, 0, 0, randomBytes(8)));
          break;
        case 4:
          frames.push(frame(7, 0, 0, Buffer.concat([Buffer.alloc(4), Buffer.from([0, 0, 0, randomInt(14)])])));
          break;
        case 5:
          frames.push(frame(randomInt(256), randomInt(256), randomInt(8), randomBytes(randomInt(64))));
          break;
        default:
          frames.push(frame(4, randomInt(2), 0, randomBytes(6 * randomInt(4))));
      }
    }
  }
  const bytes = Buffer.concat(frames);
  return randomInt(3) === 0 ? Buffer.concat([PREFACE, mutate(bytes.subarray(PREFACE.length))]) : bytes;
}

/** Ends after the peer closes or `ms`, whichever first; never throws. */
function settle(s: Socket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      s.destroy();
      resolve();
    };
    const t = setTimeout(done, ms);
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => {});
  });
}

async function rawCase(bytes: Buffer): Promise<void> {
  const s = connect({ port: h.hbonePort, host: '127.0.0.1' });
  s.on('error', () => {});
  s.once('connect', () => (randomInt(3) === 0 ? s.resetAndDestroy() : s.end(bytes)));
  await settle(s, 1000);
}

async function h2Case(): Promise<void> {
  const s = tlsConnect({ port: h.hbonePort, host: '127.0.0.1', key: clientKey, cert: clientChain, ca: [fx.rootPem], ALPNProtocols: ['h2'], checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
  s.on('error', () => {});
  s.once('secureConnect', () => {
    const bytes = h2Conversation();
    const ending = randomInt(4);
    if (ending === 0) s.write(bytes, () => s.destroy());
    else if (ending === 1) s.end(bytes);
    else s.write(bytes);
  });
  await settle(s, 300 + randomInt(300));
}

async function capturedCase(): Promise<void> {
  const s = connect({ port: h.outboundPort, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  const bytes = randomBytes(randomInt(64 * 1024));
  s.once('connect', () => {
    switch (randomInt(4)) {
      case 0:
        s.resetAndDestroy();
        break;
      case 1:
        s.end(bytes);
        break;
      case 2:
        s.write(bytes, () => s.resetAndDestroy());
        break;
      default:
        s.write(bytes);
    }
  });
  await settle(s, 200 + randomInt(800));
}

test(`${CASES} hostile conversations: no crash, nothing left open, still serving`, async () => {
  const before = fds();
  let next = 0;
  const kinds = { raw: 0, hello: 0, h2: 0, captured: 0 };
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < CASES) {
        const i = next++;
        const k = i % 10;
        if (k < 2) {
          kinds.raw++;
          await rawCase(randomBytes(randomInt(2048)));
        } else if (k < 4) {
          kinds.hello++;
          await rawCase(mutate(clientHello));
        } else if (k < 7) {
          kinds.h2++;
          await h2Case();
        } else {
          kinds.captured++;
          // targets change under the captured connections too
          h.target = randomInt(4) === 0 ? randomInt(1, 65536) : fx.echo.port;
          await capturedCase();
        }
      }
    }),
  );
  h.target = fx.echo.port;
  await h.until(() => h.dp.stats().flows === 0, 'every flow released', 30_000);
  // Idle pooled client sessions stay (closed after 5 idle minutes; under load a worker may
  // have opened more than one, at 100 streams each), and each has its server end here;
  // every other server session — its peer gone, mid-handshake or after — is closed.
  const serverSessions = (): number => h.sessions.size - h.sessionsClosed.size;
  await h.until(() => h.dp.stats().sessions === 2 * serverSessions(), 'no server session without its pooled client', 30_000);
  assert.equal(h.dp.stats().streams, 0, 'no stream left on the idle sessions');
  const back = await new Promise<string>((resolve, reject) => {
    const s = connect({ port: h.outboundPort, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.once('end', () => {
      s.end();
      resolve(got);
    });
    s.once('error', reject);
    s.end('still serving');
  });
  assert.equal(back, 'still serving');
  await h.until(() => h.dp.stats().flows === 0, 'the last flow released');
  const open = h.dp.stats().sessions;
  assert.ok(fds() <= before + open, `descriptors ${before} before, ${fds()} after (${open} pooled sessions)`);
  const connects = h.decided.filter((e) => e.type === 'decide' && e.kind === 'connect').length;
  console.log(`# fuzz cases ${JSON.stringify(kinds)}; CONNECTs decided ${connects}; descriptors ${before} → ${fds()}; sessions left ${open} (${serverSessions()} of them server ends)`);
});
