import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  canonicalIp,
  matchPodNetns,
  podUidFromCgroup,
  resolvePodNetns,
  type NetnsCandidate,
} from '../../src/k8s/netns-candidates.js';
import { discoverNetnsCandidates, findPodNetns } from '../../src/k8s/netns-discovery.js';
import { WarrenError } from '../../src/errors/warren-error.js';

const UID = '1f5a3c2e-7b4d-4e8f-9a01-23456789abcd';
const OTHER = '9e8d7c6b-5a49-4382-a716-fedcba987654';
const underscored = (uid: string): string => uid.replaceAll('-', '_');

test('podUidFromCgroup: cgroupfs layouts, v1 and v2, every QoS class', () => {
  assert.equal(podUidFromCgroup(`0::/kubepods/besteffort/pod${UID}/0123abcd\n`), UID);
  assert.equal(podUidFromCgroup(`0::/kubepods/burstable/pod${UID}/0123abcd`), UID);
  assert.equal(podUidFromCgroup(`0::/kubepods/pod${UID}/0123abcd`), UID, 'guaranteed pods have no QoS level');
  assert.equal(podUidFromCgroup(`0::/kubepods/besteffort/pod${UID}`), UID, 'the pod cgroup itself');
  const v1 = [
    '12:hugetlb:/kubepods/burstable/pod' + UID + '/c0ffee',
    '11:memory:/kubepods/burstable/pod' + UID + '/c0ffee',
    '1:name=systemd:/kubepods/burstable/pod' + UID + '/c0ffee',
    '0::/',
  ].join('\n');
  assert.equal(podUidFromCgroup(v1), UID);
  assert.equal(podUidFromCgroup(`0::/docker/abc123/kubepods/besteffort/pod${UID}/c0ffee`), UID, 'nested under docker');
});

test('podUidFromCgroup: systemd layouts with _ in place of -', () => {
  const u = underscored(UID);
  assert.equal(
    podUidFromCgroup(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${u}.slice/cri-containerd-abc.scope\n`),
    UID,
  );
  assert.equal(podUidFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice/crio-abc.scope`), UID);
  assert.equal(podUidFromCgroup(`0::/kubepods.slice/kubepods-pod${u}.slice/cri-containerd-abc.scope`), UID, 'guaranteed');
  assert.equal(
    podUidFromCgroup(
      `0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${u}.slice/cri-containerd-abc.scope`,
    ),
    UID,
    'kind / nested kubelet',
  );
  assert.equal(podUidFromCgroup(`4:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice/docker-abc.scope`), UID);
});

test('podUidFromCgroup: static pods (hash UIDs), case and CRLF', () => {
  const hash = '6b4c7a8d9e0f11223344556677889900';
  assert.equal(podUidFromCgroup(`0::/kubepods/burstable/pod${hash}/c0ffee`), hash);
  assert.equal(podUidFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${hash}.slice/x.scope`), hash);
  assert.equal(podUidFromCgroup(`0::/kubepods/besteffort/pod${UID.toUpperCase()}/c0ffee\r\n`), UID);
});

test('podUidFromCgroup: processes outside pod cgroups give undefined', () => {
  assert.equal(podUidFromCgroup(''), undefined);
  assert.equal(podUidFromCgroup('0::/\n'), undefined);
  assert.equal(podUidFromCgroup('0::/system.slice/containerd.service\n'), undefined);
  assert.equal(podUidFromCgroup('0::/user.slice/user-0.slice/session-1.scope'), undefined);
  assert.equal(podUidFromCgroup('4:memory:/process_api/a8d6aef1465be17c3c87d16b076dc9a1\n0::/'), undefined);
  assert.equal(podUidFromCgroup('0::/kubepods/besteffort'), undefined, 'the QoS cgroup is no pod');
  assert.equal(podUidFromCgroup(`0::/elsewhere/pod${UID}/x`), undefined, 'a pod<uid> dir outside kubepods');
  assert.equal(podUidFromCgroup('0::/kubepods/besteffort/podnot-a-uid/x'), undefined);
  assert.equal(podUidFromCgroup('garbage without colons'), undefined);
});

test('canonicalIp makes equal addresses compare equal', () => {
  assert.equal(canonicalIp('fd00:0:0::0A'), 'fd00::a');
  assert.equal(canonicalIp('10.0.0.1/24'), '10.0.0.1');
  assert.equal(canonicalIp('fe80::1%eth0'), 'fe80::1');
  assert.equal(canonicalIp(' 10.0.0.1 '), '10.0.0.1');
});

const cand = (inode: number, addresses: string[], podUids: string[] = []): NetnsCandidate => ({
  inode,
  path: `/proc/${inode}/ns/net`,
  podUids,
  addresses,
});
const pod = { uid: UID, ips: ['10.0.1.5', 'fd00::5'] };

test('matchPodNetns prefers the netns with the pod UID and its IP', () => {
  const mine = cand(3, ['10.0.1.5'], [UID]);
  const list = [cand(1, ['10.0.1.5']), cand(2, ['10.0.9.9'], [UID]), mine];
  assert.equal(matchPodNetns(list, pod), mine, 'the UID wins over a UID-less netns with the same IP');
  assert.equal(matchPodNetns([cand(1, ['fd00:0::5'], [UID])], pod)?.inode, 1, 'matched by the IPv6 address, canonicalised');
  assert.equal(matchPodNetns([cand(1, ['10.0.1.5'], [UID.toUpperCase()])], { uid: UID, ips: ['10.0.1.5'] })?.inode, 1);
  assert.equal(matchPodNetns([cand(1, ['10.0.1.5'], [OTHER, UID])], pod)?.inode, 1, 'shared with another pod UID is still ours');
});

test('matchPodNetns falls back to the IP when no process is in a pod cgroup (the simulator)', () => {
  const list = [cand(1, ['10.0.1.4']), cand(2, ['10.0.1.5', '10.0.1.6']), cand(3, [])];
  assert.equal(matchPodNetns(list, pod)?.inode, 2);
  assert.deepEqual(resolvePodNetns(list, pod), { kind: 'found', candidate: list[1] });
});

test('matchPodNetns never picks a netns without the pod IP', () => {
  assert.equal(matchPodNetns([cand(1, ['10.0.1.4'], [UID])], pod), undefined, 'UID without the IP: the IP changed or is not assigned yet');
  assert.equal(matchPodNetns([cand(1, [])], pod), undefined);
  assert.equal(matchPodNetns([], pod), undefined);
  assert.equal(matchPodNetns([cand(1, ['10.0.1.5'])], { uid: UID, ips: [] }), undefined, 'a pod without IPs');
  assert.deepEqual(resolvePodNetns([cand(1, ['10.0.1.4'], [UID])], pod), { kind: 'not-found' });
});

test('matchPodNetns: a recycled IP in another pod’s netns is not ours', () => {
  const stale = cand(1, ['10.0.1.5'], [OTHER]);
  assert.equal(matchPodNetns([stale], pod), undefined);
  assert.deepEqual(resolvePodNetns([stale], pod), { kind: 'not-found' });
  // …and does not make a UID-less match ambiguous either.
  assert.equal(matchPodNetns([stale, cand(2, ['10.0.1.5'])], pod)?.inode, 2);
});

test('matchPodNetns: two candidates at the deciding step are ambiguous', () => {
  const a = cand(1, ['10.0.1.5']);
  const b = cand(2, ['fd00::5']);
  assert.equal(matchPodNetns([a, b], pod), undefined);
  assert.deepEqual(resolvePodNetns([a, b], pod), { kind: 'ambiguous', candidates: [a, b] });
  const c = cand(3, ['10.0.1.5'], [UID]);
  const d = cand(4, ['10.0.1.5'], [UID]);
  assert.deepEqual(resolvePodNetns([c, d], pod), { kind: 'ambiguous', candidates: [c, d] });
  // One with the UID settles it even when several hold the IP.
  assert.equal(matchPodNetns([a, b, c], pod), c);
});

/**
 * discoverNetnsCandidates against a fake /proc in a temp dir: symlinks whose
 * target is `net:[N]` read like the kernel's magic links; a regular file stands
 * for a link only stat can read. No root, no real namespaces.
 */
test('discoverNetnsCandidates groups by inode, reads cgroups, prefers pinned paths, skips self and vanished pids', async () => {
  const root = await mkdtemp(join(tmpdir(), 'warren-netns-'));
  try {
    const proc = join(root, 'proc');
    const netnsDir = join(root, 'netns');
    await mkdir(netnsDir, { recursive: true });
    const pinned = join(netnsDir, 'cni-1234');
    await writeFile(pinned, '');
    const pinnedIno = (await stat(pinned)).ino;
    await writeFile(join(netnsDir, 'sim-lonely'), '');
    const lonelyIno = (await stat(join(netnsDir, 'sim-lonely'))).ino;

    const proc_ = async (pid: string, link: string | { file: true }, cgroup?: string): Promise<void> => {
      await mkdir(join(proc, pid, 'ns'), { recursive: true });
      const net = join(proc, pid, 'ns', 'net');
      if (typeof link === 'string') await symlink(link, net);
      else await writeFile(net, '');
      if (cgroup !== undefined) await writeFile(join(proc, pid, 'cgroup'), cgroup);
    };
    await proc_('self', 'net:[1]');
    await proc_('1', 'net:[1]', '0::/init.scope\n'); // the caller's netns: skipped
    await proc_('200', 'net:[500]', `0::/kubepods/besteffort/pod${UID}/pause\n`);
    await proc_('150', 'net:[500]', `0::/kubepods/besteffort/pod${UID}/app\n`);
    await proc_('300', `net:[${pinnedIno}]`, `0::/kubepods.slice/kubepods-pod${underscored(OTHER)}.slice/x.scope\n`);
    await proc_('400', { file: true }); // stat-only link, no cgroup file (vanished halfway)
    await mkdir(join(proc, '999')); // vanished: no ns/net at all
    await mkdir(join(proc, 'sys'));
    const fileIno = (await stat(join(proc, '400', 'ns', 'net'))).ino;

    const addresses: Record<string, string[]> = {
      [join(proc, '150', 'ns', 'net')]: ['10.0.1.5'],
      [pinned]: ['10.0.1.6'],
      [join(netnsDir, 'sim-lonely')]: ['10.0.1.7'],
    };
    const seen: string[] = [];
    const listAddresses = async (path: string): Promise<string[]> => {
      seen.push(path);
      if (path === join(proc, '400', 'ns', 'net')) throw new Error('nsenter: No such file or directory');
      return addresses[path] ?? [];
    };
    const options = { procRoot: proc, netnsDir, listAddresses };
    const found = await discoverNetnsCandidates(options);
    const byInode = new Map(found.map((c) => [c.inode, c]));
    assert.equal(found.length, 4, JSON.stringify(found));
    assert.equal(byInode.has(1), false, 'own netns skipped');
    assert.deepEqual(byInode.get(500), { inode: 500, path: join(proc, '150', 'ns', 'net'), podUids: [UID], addresses: ['10.0.1.5'] });
    assert.deepEqual(byInode.get(pinnedIno), { inode: pinnedIno, path: pinned, podUids: [OTHER], addresses: ['10.0.1.6'] });
    assert.deepEqual(byInode.get(lonelyIno), { inode: lonelyIno, path: join(netnsDir, 'sim-lonely'), podUids: [], addresses: ['10.0.1.7'] });
    assert.deepEqual(byInode.get(fileIno)?.addresses, [], 'a listing failure leaves the netns without addresses');
    assert.equal(seen.length, 4, 'addresses listed once per netns');

    assert.equal(await findPodNetns({ uid: UID, ips: ['10.0.1.5'] }, options), join(proc, '150', 'ns', 'net'));
    assert.equal(await findPodNetns({ uid: OTHER, ips: ['10.0.1.6'] }, options), pinned);
    assert.equal(await findPodNetns({ uid: UID, ips: ['10.0.1.7'] }, options), join(netnsDir, 'sim-lonely'));
    await assert.rejects(
      findPodNetns({ uid: UID, ips: ['10.0.1.6'], namespace: 'shop', name: 'web-1' }, options),
      (e: unknown) =>
        e instanceof WarrenError && e.code === 'ERR_NETNS_NOT_FOUND' && e.retryable && /shop\/web-1/.test(e.message) && e.message.includes('10.0.1.6'),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('discoverNetnsCandidates: a missing /proc or netns dir is empty, a missing native addon is an error', async () => {
  const root = await mkdtemp(join(tmpdir(), 'warren-netns-'));
  try {
    const none = join(root, 'nope');
    assert.deepEqual(await discoverNetnsCandidates({ procRoot: none, netnsDir: none, listAddresses: async () => [] }), []);
    await writeFile(join(root, 'ns1'), '');
    await assert.rejects(
      discoverNetnsCandidates({
        procRoot: none,
        netnsDir: root,
        listAddresses: async () => {
          throw new WarrenError('ERR_NATIVE_MISSING', 'the native addon build/Release/warren_native.node is missing');
        },
      }),
      (e: unknown) => e instanceof WarrenError && e.code === 'ERR_NATIVE_MISSING',
    );
    await writeFile(join(root, 'ns2'), '');
    await assert.rejects(
      findPodNetns({ uid: UID, ips: ['10.0.1.5'] }, { procRoot: none, netnsDir: root, listAddresses: async () => ['10.0.1.5'] }),
      (e: unknown) =>
        e instanceof WarrenError && e.code === 'ERR_NETNS_AMBIGUOUS' && e.retryable && e.message.includes(join(root, 'ns1')) && e.message.includes(join(root, 'ns2')),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
