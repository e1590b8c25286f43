import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { execa } from 'execa';
import { rootTest } from '../helpers/root.js';
import { inNetns, ip } from '../helpers/netns.js';
import { discoverNetnsCandidates, findPodNetns } from '../../src/k8s/netns-discovery.js';
import { WarrenError } from '../../src/errors/warren-error.js';

const netnsInode = async (path: string): Promise<number> => (await stat(path)).ino;

/** Waits until `ip netns exec` has switched the process into the netns (it execs sleep in place). */
async function waitInNetns(pid: number, inode: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const link = await readlink(`/proc/${pid}/ns/net`).catch(() => '');
    if (link === `net:[${inode}]`) return;
    await sleep(20);
  }
  throw new Error(`process ${pid} never entered netns ${inode}`);
}

rootTest('findPodNetns finds a running pod’s netns by IP, once per inode, via /proc and /var/run/netns', async () => {
  const id = randomBytes(3).toString('hex');
  const x = 1 + (randomBytes(1)[0]! % 254);
  const a = `wrt-${id}-a`;
  const b = `wrt-${id}-b`;
  const made: string[] = [];
  let sleeper: ChildProcess | undefined;
  const empty = await mkdtemp(join(tmpdir(), 'warren-netns-'));
  try {
    await ip('netns', 'add', a);
    made.push(a);
    await ip('netns', 'add', b);
    made.push(b);
    // A veth pair between the two (this kernel has no dummy module); no traffic is sent.
    await inNetns(a, 'ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v0', 'netns', b]);
    for (const [ns, host] of [
      [a, 2],
      [b, 3],
    ] as const) {
      await inNetns(ns, 'ip', ['addr', 'add', `10.78.${x}.${host}/24`, 'dev', 'v0']);
      // The same address in both: what a recycled IP in a stale netns looks like.
      await inNetns(ns, 'ip', ['addr', 'add', `10.78.${x}.4/32`, 'dev', 'v0']);
      await inNetns(ns, 'ip', ['link', 'set', 'v0', 'up']);
    }
    const aInode = await netnsInode(`/var/run/netns/${a}`);
    const bInode = await netnsInode(`/var/run/netns/${b}`);
    assert.notEqual(aInode, bInode);

    sleeper = spawn('ip', ['netns', 'exec', a, 'sleep', '30'], { stdio: 'ignore' });
    const pid = sleeper.pid;
    assert.ok(pid !== undefined, 'sleep started');
    await waitInNetns(pid, aInode);

    const uid = randomUUID();
    const path = await findPodNetns({ uid, ips: [`10.78.${x}.2`] });
    assert.equal(await netnsInode(path), aInode);
    assert.equal(path, `/var/run/netns/${a}`, 'the pinned path is preferred over /proc/<pid>/ns/net');
    assert.equal(await netnsInode(await findPodNetns({ uid, ips: [`10.78.${x}.3`] })), bInode, 'a netns without processes, from /var/run/netns');

    const all = await discoverNetnsCandidates();
    const ofA = all.filter((c) => c.inode === aInode);
    assert.equal(ofA.length, 1, 'the netns seen through /proc and /var/run/netns appears once');
    assert.deepEqual(ofA[0]?.addresses.filter((addr) => addr.startsWith('10.78.')), [`10.78.${x}.2`, `10.78.${x}.4`]);
    assert.equal(all.filter((c) => c.inode === bInode).length, 1);
    const self = await readlink('/proc/self/ns/net');
    assert.equal(all.some((c) => `net:[${c.inode}]` === self), false, 'the caller’s own netns is not a candidate');

    // Only /proc: the netns is reached through the sleeping process, the pinned-only one is gone.
    const procOnly = { netnsDir: empty };
    assert.equal(await findPodNetns({ uid, ips: [`10.78.${x}.2`] }, procOnly), `/proc/${pid}/ns/net`);
    await assert.rejects(
      findPodNetns({ uid, ips: [`10.78.${x}.3`] }, procOnly),
      (e: unknown) => e instanceof WarrenError && e.code === 'ERR_NETNS_NOT_FOUND',
    );

    await assert.rejects(
      findPodNetns({ uid, ips: [`10.78.${x}.99`], namespace: 'shop', name: 'web-1' }),
      (e: unknown) =>
        e instanceof WarrenError &&
        e.code === 'ERR_NETNS_NOT_FOUND' &&
        e.retryable &&
        e.message.includes('shop/web-1') &&
        e.message.includes(`10.78.${x}.99`),
    );
    await assert.rejects(
      findPodNetns({ uid, ips: [`10.78.${x}.4`] }),
      (e: unknown) => e instanceof WarrenError && e.code === 'ERR_NETNS_AMBIGUOUS',
    );
  } finally {
    if (sleeper?.pid !== undefined && sleeper.exitCode === null && sleeper.signalCode === null) {
      const exited = once(sleeper, 'exit');
      sleeper.kill('SIGKILL');
      await exited;
    }
    for (const ns of made.reverse()) {
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
    await rm(empty, { recursive: true, force: true });
  }
});
