/**
 * The listener hand-off of an agent upgrade on the real kernel
 * (docs/architecture.md §4, "Agent upgrade"): this process is the old agent,
 * holding a pod's :15001 listening socket; a child process is the new one.
 * The old one does not accept, so every connection made before the new one
 * takes over waits in the socket's accept queue — the connections closing a
 * SO_REUSEPORT listener would reset. With the hand-off, the socket itself moves:
 * every queued connection is served by the new process, and so is every later one
 * after the old process closed its descriptor. Without it (the new process binds
 * its own SO_REUSEPORT socket, the old closes its), the queued ones are reset: the
 * baseline, measured in the same run.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { serveHandoff } from '../../src/agent/listener-handoff.js';
import { createListener } from '../../src/native/netns-socket.js';
import { recvPacket, sendPacket, seqpacketConnect } from '../../src/native/fd-passing.js';
import { PORTS } from '../../src/redirect/constants.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { ip } from '../helpers/netns.js';
import { rootTest } from '../helpers/root.js';

const CHILD = new URL('../helpers/handoff-child.js', import.meta.url).pathname;
const UID = '0b6e8f9a-1111-4222-8333-444455556666';
const QUEUED = 40;

/** One connection's outcome: what it read ('old', 'new') or how it failed. */
async function fetchOne(netns: string): Promise<string> {
  try {
    const s = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host: '127.0.0.1', port: PORTS.outbound, mark: 0, timeoutMs: 3000 });
    return await new Promise<string>((resolve) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.once('end', () => resolve(got.trim() || 'empty'));
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      s.setTimeout(5000, () => (s.destroy(), resolve('timeout')));
    });
  } catch (err) {
    return `connect: ${(err as Error).message}`;
  }
}

const tally = (outcomes: string[]): Record<string, number> => outcomes.reduce<Record<string, number>>((t, o) => ((t[o] = (t[o] ?? 0) + 1), t), {});

/** Starts the new agent's process and resolves once it accepts. */
async function newAgent(mode: 'handoff' | 'reuseport', path: string, netns: string): Promise<{ child: ChildProcess; how: string }> {
  const child = spawn(process.execPath, [CHILD, mode, path, `/var/run/netns/${netns}`, UID], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const until = Date.now() + 10_000;
  while (!out.includes('accepting') && Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  assert.match(out, /accepting/, `the new agent accepts (exit ${child.exitCode})`);
  return { child, how: out.trim() };
}

/** The old agent's pod socket, the queued connections, the new agent, then the old one stops: what every connection saw. */
async function upgrade(mode: 'handoff' | 'reuseport', netns: string, dir: string): Promise<{ queued: Record<string, number>; after: Record<string, number>; how: string; oldStopped: boolean }> {
  const fd = createListener({ netns: `/var/run/netns/${netns}`, family: 4, port: PORTS.outbound, reusePort: true });
  let stopped = false;
  const server = serveHandoff({
    path: join(dir, `handoff-${mode}.sock`),
    sources: () => [{ uid: UID, listenerSockets: () => (stopped ? [] : [{ family: 4, port: PORTS.outbound, fd }]), stopAccepting: () => ((stopped = true), closeSync(fd)), rules: () => undefined }],
    onTake: () => {},
    log: () => {},
  });
  let child: ChildProcess | undefined;
  try {
    // connected by the kernel, waiting in the old socket's accept queue
    const queued = Array.from({ length: QUEUED }, () => fetchOne(netns));
    await new Promise((r) => setTimeout(r, 300));
    const started = await newAgent(mode, join(dir, `handoff-${mode}.sock`), netns);
    child = started.child;
    // without a hand-off the old agent stops on its own (SIGTERM): its socket closes
    if (mode === 'reuseport') {
      stopped = true;
      closeSync(fd);
    }
    const until = Date.now() + 5000;
    while (!stopped && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const queuedOutcomes = await Promise.all(queued);
    const after: string[] = [];
    for (let i = 0; i < 20; i++) after.push(await fetchOne(netns));
    return { queued: tally(queuedOutcomes), after: tally(after), how: started.how, oldStopped: stopped };
  } finally {
    if (!stopped) closeSync(fd);
    server.close();
    if (child !== undefined && child.exitCode === null) {
      child.stdin!.end();
      await once(child, 'exit');
    }
  }
}

rootTest('listener hand-off: the new process accepts on the old one’s sockets, queued connections included; without it they are reset', async (t) => {
  const netns = `wrt-${randomBytes(3).toString('hex')}-handoff`;
  const dir = mkdtempSync(join(tmpdir(), 'warren-handoff-'));
  chmodSync(dir, 0o700);
  await ip('netns', 'add', netns);
  try {
    await ip('-n', netns, 'link', 'set', 'lo', 'up');
    const baseline = await upgrade('reuseport', netns, dir);
    const handoff = await upgrade('handoff', netns, dir);
    t.diagnostic(`reuseport overlap, old socket closed: ${JSON.stringify(baseline)}`);
    t.diagnostic(`hand-off: ${JSON.stringify(handoff)}`);
    assert.equal(handoff.how, 'accepting handed', 'the new process received the socket');
    assert.deepEqual(handoff.queued, { new: QUEUED }, 'every connection queued before the hand-off served by the new process');
    assert.deepEqual(handoff.after, { new: 20 }, 'and every one after the old process stopped');
    assert.ok(handoff.oldStopped, 'the old process closed its descriptor once the new one said it accepts');
    // The baseline: the kernel resets what waited in the closed socket's queue (its share of the hash).
    assert.deepEqual(baseline.queued, { ECONNRESET: QUEUED }, 'without the hand-off every connection queued in the closed socket is reset');
    assert.deepEqual(baseline.after, { new: 20 });
  } finally {
    await ip('netns', 'del', netns).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

rootTest('listener hand-off: a peer that is not root gets no descriptor, and the socket file is root-only', async () => {
  const netns = `wrt-${randomBytes(3).toString('hex')}-handoff`;
  const dir = mkdtempSync(join(tmpdir(), 'warren-handoff-'));
  await ip('netns', 'add', netns);
  const fd = createListener({ netns: `/var/run/netns/${netns}`, family: 4, port: PORTS.outbound, reusePort: true });
  const path = join(dir, 'handoff.sock');
  const refused: Array<Record<string, unknown>> = [];
  const server = serveHandoff({
    path,
    sources: () => [{ uid: UID, listenerSockets: () => [{ family: 4, port: PORTS.outbound, fd }], stopAccepting: () => {}, rules: () => undefined }],
    onTake: () => {},
    log: (msg, fields) => refused.push({ msg, ...fields }),
  });
  let serving = true;
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600, 'the socket is 0600');
    // Opened to all for this check: SO_PEERCRED is what refuses, not only the file mode.
    chmodSync(path, 0o666);
    chmodSync(dir, 0o755);
    const probe = `const m = await import(${JSON.stringify(new URL('../../src/native/fd-passing.js', import.meta.url).href)});
      const fd = m.seqpacketConnect(${JSON.stringify(path)});
      m.sendPacket(fd, Buffer.from('{"type":"take"}'), []);
      const until = Date.now() + 3000; let got;
      // closed unread: the kernel reports ECONNRESET rather than an end
      while (Date.now() < until) { try { got = m.recvPacket(fd); } catch { got = { data: Buffer.alloc(0), fds: [] }; } if (got) break; await new Promise((r) => setTimeout(r, 10)); }
      console.log(JSON.stringify({ bytes: got?.data.length ?? -1, fds: got?.fds.length ?? -1 }));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', probe], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await once(child, 'exit');
    assert.deepEqual(JSON.parse(out), { bytes: 0, fds: 0 }, 'the connection was closed without a message or descriptor');
    assert.ok(refused.some((r) => r.msg === 'listener hand-off refused: the peer is not root' && r.uid === 65534), JSON.stringify(refused));
    // a root peer that speaks nonsense is dropped too, without descriptors
    const c = seqpacketConnect(path);
    sendPacket(c, Buffer.from('{"type":"take","extra":1}'));
    let packet;
    for (const until = Date.now() + 3000; Date.now() < until; await new Promise((r) => setTimeout(r, 10))) if ((packet = recvPacket(c)) !== undefined) break;
    closeSync(c);
    assert.deepEqual(packet && { bytes: packet.data.length, fds: packet.fds.length }, { bytes: 0, fds: 0 }, 'an invalid message ends the hand-off, no descriptor sent');
    assert.ok(refused.some((r) => String(r.reason).startsWith('invalid message: (root)')), JSON.stringify(refused));
    server.close();
    serving = false;
    assert.ok(!existsSync(path), 'a stopping agent removes its hand-off socket (no successor bound one there)');
  } finally {
    if (serving) server.close();
    closeSync(fd);
    await ip('netns', 'del', netns).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
