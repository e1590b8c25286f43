/**
 * Shared suite for both redirect backends on the real kernel: apply is
 * idempotent, removal restores the netns's ruleset exactly, node rules too.
 */
import assert from 'node:assert/strict';
import { rootTest } from '../helpers/root.js';
import { createTopology } from '../helpers/netns.js';
import { BACKENDS, snapshotRules } from '../helpers/pod-rules.js';
import { createBackend } from '../../src/redirect/detect.js';
import { systemRunner } from '../../src/redirect/runner.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { applyNftScript } from '../../src/redirect/nft-apply.js';

for (const name of BACKENDS) {
  const backend = createBackend(name, systemRunner);

  rootTest(`[${name}] pod rules: apply twice = once, remove restores the original ruleset`, async () => {
    const topo = await createTopology(1);
    try {
      const pod = topo.pods[0]!;
      const before = await snapshotRules(pod.netns);
      const spec = { podIPs: [pod.ipv4, pod.ipv6] };
      await backend.applyPod(pod.path, spec);
      const once = await snapshotRules(pod.netns);
      const rules = name === 'nft' ? once.nft : once.iptables + once.ip6tables;
      for (const port of ['15001', '15006']) assert.match(rules, new RegExp(port), `redirect to ${port} present`);
      assert.match(once.rules4, /fwmark 0x111\/0xfff lookup 100/);
      assert.match(once.rules6, /fwmark 0x111\/0xfff lookup 100/);
      assert.match(once.routes4, /local default dev lo/);
      await backend.applyPod(pod.path, spec);
      assert.deepEqual(await snapshotRules(pod.netns), once, 'second apply changed nothing');
      await backend.removePod(pod.path);
      assert.deepEqual(await snapshotRules(pod.netns), before, 'removal restored the original');
      await backend.removePod(pod.path);
      assert.deepEqual(await snapshotRules(pod.netns), before, 'second removal is a no-op');
    } finally {
      await topo.destroy();
    }
  });

  rootTest(`[${name}] unenrollment in two steps: capture goes first, reply routing stays for draining, then all goes`, async () => {
    const topo = await createTopology(1);
    try {
      const pod = topo.pods[0]!;
      const before = await snapshotRules(pod.netns);
      await backend.applyPod(pod.path, { podIPs: [pod.ipv4, pod.ipv6] });
      await backend.removePodCapture(pod.path);
      const draining = await snapshotRules(pod.netns);
      const rules = name === 'nft' ? draining.nft : draining.iptables + draining.ip6tables;
      for (const port of ['15001', '15006']) assert.doesNotMatch(rules, new RegExp(port), `no redirect to ${port} while draining`);
      assert.match(draining.rules4, /fwmark 0x111\/0xfff lookup 100/, 'reply routing kept for drained connections');
      await backend.removePod(pod.path);
      assert.deepEqual(await snapshotRules(pod.netns), before);
    } finally {
      await topo.destroy();
    }
  });

  rootTest(`[${name}] node rules: apply, update, remove`, async () => {
    const topo = await createTopology(2);
    try {
      const node = topo.bridgeNetns;
      const path = `/var/run/netns/${node}`;
      const before = await snapshotRules(node);
      await backend.applyNode(path, { podIPs: [] });
      await backend.applyNode(path, { podIPs: [topo.pods[0]!.ipv4, topo.pods[0]!.ipv6] });
      const applied = await snapshotRules(node);
      const text = name === 'nft' ? applied.nft : applied.iptables + applied.ip6tables;
      assert.match(text, new RegExp(topo.pods[0]!.ipv4.replace(/\./g, '\\.')));
      assert.match(text, /169\.254\.7\.127/);
      assert.doesNotMatch(text, new RegExp(topo.pods[1]!.ipv4.replace(/\./g, '\\.')));
      await backend.applyNode(path, { podIPs: [topo.pods[0]!.ipv4, topo.pods[0]!.ipv6] });
      assert.deepEqual(await snapshotRules(node), applied, 'node apply is idempotent');
      await backend.removeNode(path);
      assert.deepEqual(await snapshotRules(node), before);
    } finally {
      await topo.destroy();
    }
  });

  rootTest(`[${name}] a bad spec or a missing netns fails with a typed error and changes nothing`, async () => {
    const topo = await createTopology(1);
    try {
      const pod = topo.pods[0]!;
      const before = await snapshotRules(pod.netns);
      await assert.rejects(backend.applyPod(pod.path, { podIPs: ['10.1.2.999'] }), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_INVALID_REDIRECT_SPEC');
      await assert.rejects(backend.applyPod('/var/run/netns/wrt-does-not-exist', { podIPs: [pod.ipv4] }), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_COMMAND_FAILED');
      assert.deepEqual(await snapshotRules(pod.netns), before);
    } finally {
      await topo.destroy();
    }
  });
}

rootTest('the rules snapshot fails when a part cannot be read, so "nothing left" cannot pass on an empty read', async () => {
  const topo = await createTopology(1);
  try {
    const pod = topo.pods[0]!;
    const snap = await snapshotRules(pod.netns);
    // A fresh netns still has its default policy rules: the reads really ran.
    assert.match(snap.rules4, /lookup main/);
    assert.match(snap.rules6, /lookup main/);
    await assert.rejects(snapshotRules(`${pod.netns}-missing`), /netns/);
  } finally {
    await topo.destroy();
  }
});

rootTest('[nft] pod rules are applied and removed without starting a process (libnftables and rtnetlink in the addon)', async () => {
  const topo = await createTopology(1);
  const path = process.env.PATH;
  try {
    const pod = topo.pods[0]!;
    const before = await snapshotRules(pod.netns);
    const backend = createBackend('nft', systemRunner);
    // With no PATH, any nft, nsenter or ip process fails with ERR_COMMAND_MISSING.
    process.env.PATH = '';
    try {
      await backend.applyPod(pod.path, { podIPs: [pod.ipv4, pod.ipv6] });
    } finally {
      process.env.PATH = path;
    }
    const applied = await snapshotRules(pod.netns);
    for (const port of ['15001', '15006']) assert.match(applied.nft, new RegExp(port), `redirect to ${port} present`);
    process.env.PATH = '';
    try {
      await backend.removePod(pod.path);
    } finally {
      process.env.PATH = path;
    }
    assert.deepEqual(await snapshotRules(pod.netns), before);
  } finally {
    process.env.PATH = path;
    await topo.destroy();
  }
});

rootTest('[nft] a script nft refuses fails with nft\'s message, typed, and applies none of it', async () => {
  const topo = await createTopology(1);
  try {
    const pod = topo.pods[0]!;
    const before = await snapshotRules(pod.netns);
    // The first two lines are valid: one transaction means they do not stay either.
    const script = ['add table inet wrt-atomic', 'add chain inet wrt-atomic c', 'add rule inet wrt-atomic c tcp dport 99999 accept', ''].join('\n');
    await assert.rejects(
      applyNftScript(pod.path, script),
      (e: unknown) => e instanceof WarrenError && e.code === 'ERR_COMMAND_FAILED' && /: Error: /.test(e.message) && e.message.includes(pod.path),
    );
    assert.deepEqual(await snapshotRules(pod.netns), before);
  } finally {
    await topo.destroy();
  }
});
