import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  chooseCniConfFile,
  installCniPlugin,
  uninstallCniPlugin,
  watchCniConfig,
  withoutWarrenEntry,
  withWarrenEntry,
  type Conflist,
  type InstallOptions,
} from '../../src/cni/installer.js';
import { WarrenError } from '../../src/errors/warren-error.js';

/** The static plugin node-gyp builds (src/cni/warren-cni.c). */
const PLUGIN_BINARY = fileURLToPath(new URL('../../../build/Release/warren-cni', import.meta.url));
const pluginConfig = { agentSocket: '/var/run/warren/cni.sock', excludeNamespaces: ['kube-system'], timeoutSeconds: 5 };
const entry = { type: 'warren-cni', ...pluginConfig };

const bridge = {
  type: 'bridge',
  bridge: 'cni0',
  isGateway: true,
  ipMasq: true,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
};
const bridgeList = { cniVersion: '1.0.0', name: 'wrn', plugins: [bridge, { type: 'portmap', capabilities: { portMappings: true } }] };
// Written the way other CNIs do (not our 2-space format), to see what we rewrite.
const BRIDGE_TEXT = JSON.stringify(bridgeList);

function withDirs(fn: (opts: InstallOptions & { logs: string[]; root: string }) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'warren-cni-inst-'));
    const confDir = join(root, 'net.d');
    const binDir = join(root, 'bin');
    mkdirSync(confDir);
    mkdirSync(binDir);
    const logs: string[] = [];
    try {
      await fn({ confDir, binDir, plugin: PLUGIN_BINARY, pluginConfig, log: (m) => logs.push(m), logs, root });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

const readJson = (path: string): Conflist => JSON.parse(readFileSync(path, 'utf8')) as Conflist;

async function waitFor(what: string, check: () => boolean, withinMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    let ok = false;
    try {
      ok = check();
    } catch {
      // a file mid-replacement
    }
    if (ok) return Date.now() - started;
    if (Date.now() - started > withinMs) assert.fail(`${what}: not within ${withinMs} ms`);
    await sleep(10);
  }
}

test('chooseCniConfFile picks the lexically first usable file, skipping broken ones with a message', () => {
  const logs: string[] = [];
  const chosen = chooseCniConfFile(
    [
      { name: '20-b.conflist', text: BRIDGE_TEXT },
      { name: '10-a.conf', text: JSON.stringify({ cniVersion: '0.4.0', name: 'a', ...bridge }) },
      { name: '05-notype.json', text: '{"cniVersion":"1.0.0","name":"x"}' },
      { name: '00-broken.conflist', text: '{"plugins": [' },
      { name: '01-empty.conflist', text: '{"name":"e","plugins":[]}' },
      { name: '000-readme.md', text: 'not a conf' },
    ],
    (m) => logs.push(m),
  );
  assert.equal(chosen?.name, '10-a.conf');
  assert.equal(chosen?.fromSingle, true);
  assert.deepEqual(chosen?.list, { cniVersion: '0.4.0', name: 'a', plugins: [{ cniVersion: '0.4.0', name: 'a', ...bridge }] });
  assert.equal(logs.length, 3);
  assert.match(logs[0] ?? '', /00-broken\.conflist: not valid JSON/);
  assert.match(logs[1] ?? '', /01-empty\.conflist/);
  assert.match(logs[2] ?? '', /05-notype\.json: no "type"/);
  assert.equal(chooseCniConfFile([]), undefined);
});

test('withWarrenEntry appends once, last, replacing a stale entry; withoutWarrenEntry undoes it', () => {
  const once = withWarrenEntry(bridgeList, pluginConfig);
  assert.deepEqual(once.plugins, [...bridgeList.plugins, entry]);
  assert.deepEqual(withWarrenEntry(once, pluginConfig), once);
  const stale: Conflist = { ...bridgeList, plugins: [bridge, { type: 'warren-cni', timeoutSeconds: 1 }, bridgeList.plugins[1]!] };
  assert.deepEqual(withWarrenEntry(stale, pluginConfig).plugins, [...bridgeList.plugins, entry]);
  assert.deepEqual(withoutWarrenEntry(once), bridgeList);
  assert.deepEqual(bridgeList.plugins.length, 2, 'inputs are not mutated');
});

test(
  'install chains the entry last in the bridge conflist and is idempotent',
  withDirs((opts) => {
    writeFileSync(join(opts.confDir, '10-bridge.conflist'), BRIDGE_TEXT);
    writeFileSync(join(opts.confDir, '99-other.conflist'), BRIDGE_TEXT);
    const first = installCniPlugin(opts);
    const path = join(opts.confDir, '10-bridge.conflist');
    assert.deepEqual(first, { binPath: join(opts.binDir, 'warren-cni'), confPath: path, binChanged: true, confChanged: true });
    assert.deepEqual(readJson(path), { ...bridgeList, plugins: [...bridgeList.plugins, entry] });
    assert.equal(readFileSync(join(opts.confDir, '99-other.conflist'), 'utf8'), BRIDGE_TEXT, 'lower-priority files untouched');

    const before = { conf: statSync(path), bin: statSync(first.binPath) };
    const second = installCniPlugin(opts);
    assert.deepEqual([second.binChanged, second.confChanged], [false, false]);
    assert.equal(statSync(path).ino, before.conf.ino, 'conflist not rewritten');
    assert.equal(statSync(first.binPath).ino, before.bin.ino, 'binary not rewritten');

    const changed = installCniPlugin({ ...opts, pluginConfig: { ...pluginConfig, timeoutSeconds: 3 } });
    assert.equal(changed.confChanged, true);
    assert.deepEqual(readJson(path).plugins.at(-1), { ...entry, timeoutSeconds: 3 });
    assert.equal(readJson(path).plugins.filter((p) => p.type === 'warren-cni').length, 1);
    assert.deepEqual(opts.logs, []);
  }),
);

test(
  'install converts a plain .conf into a .conflist',
  withDirs((opts) => {
    const single = { cniVersion: '1.0.0', name: 'wrn', ...bridge };
    writeFileSync(join(opts.confDir, '10-bridge.conf'), JSON.stringify(single));
    const res = installCniPlugin(opts);
    assert.equal(res.confPath, join(opts.confDir, '10-bridge.conflist'));
    assert.equal(existsSync(join(opts.confDir, '10-bridge.conf')), false);
    assert.deepEqual(readJson(join(opts.confDir, '10-bridge.conflist')), { cniVersion: '1.0.0', name: 'wrn', plugins: [single, entry] });
    assert.equal(installCniPlugin(opts).confChanged, false);
  }),
);

test(
  'install with no network config yet installs the binary and reports no conf file',
  withDirs((opts) => {
    writeFileSync(join(opts.confDir, '05-broken.conflist'), '{');
    const res = installCniPlugin(opts);
    assert.equal(res.confPath, undefined);
    assert.equal(existsSync(res.binPath), true);
    assert.match(opts.logs.join('\n'), /05-broken\.conflist: not valid JSON/);
  }),
);

test(
  'uninstall restores the original plugin list everywhere and removes the binary',
  withDirs((opts) => {
    const path = join(opts.confDir, '10-bridge.conflist');
    writeFileSync(path, BRIDGE_TEXT);
    writeFileSync(join(opts.confDir, '20-old.conflist'), JSON.stringify(withWarrenEntry(bridgeList, pluginConfig)));
    writeFileSync(join(opts.confDir, '30-untouched.conflist'), BRIDGE_TEXT);
    installCniPlugin(opts);
    const res = uninstallCniPlugin({ confDir: opts.confDir, binDir: opts.binDir });
    assert.deepEqual(res.changedFiles.sort(), [path, join(opts.confDir, '20-old.conflist')]);
    assert.equal(readFileSync(path, 'utf8'), `${JSON.stringify(bridgeList, null, 2)}\n`);
    assert.deepEqual(readJson(join(opts.confDir, '20-old.conflist')), bridgeList);
    assert.equal(readFileSync(join(opts.confDir, '30-untouched.conflist'), 'utf8'), BRIDGE_TEXT);
    assert.equal(existsSync(join(opts.binDir, 'warren-cni')), false);
    assert.deepEqual(uninstallCniPlugin({ confDir: opts.confDir, binDir: opts.binDir }), { changedFiles: [] });
  }),
);

test(
  'the watcher re-inserts the entry within 1 s when another CNI rewrites, replaces or outranks the file',
  withDirs(async (opts) => {
    const path = join(opts.confDir, '10-bridge.conflist');
    const hasEntry = (p: string) => (): boolean => readJson(p).plugins.at(-1)?.type === 'warren-cni';
    writeFileSync(path, BRIDGE_TEXT);
    installCniPlugin(opts);
    const watcher = watchCniConfig(opts);
    try {
      writeFileSync(path, BRIDGE_TEXT); // in place, as a CNI daemon rewriting its config
      await waitFor('re-insert after an in-place overwrite', hasEntry(path), 1000);

      writeFileSync(join(opts.confDir, 'fresh.tmp'), BRIDGE_TEXT);
      renameSync(join(opts.confDir, 'fresh.tmp'), path); // replaced by a new file
      await waitFor('re-insert after a replacement', hasEntry(path), 1000);

      writeFileSync(path, '{"cniVersion": "1.0.0", "plug'); // half-written: skipped and logged, nothing thrown
      await waitFor('an invalid file is reported', () => opts.logs.some((m) => /10-bridge\.conflist: not valid JSON/.test(m)), 1000);
      writeFileSync(path, BRIDGE_TEXT);
      await waitFor('re-insert once the file is valid again', hasEntry(path), 1000);

      const higher = join(opts.confDir, '05-cilium.conflist');
      writeFileSync(higher, JSON.stringify({ cniVersion: '1.0.0', name: 'cilium', plugins: [{ type: 'cilium-cni' }] }));
      await waitFor('insert into a new higher-priority file', hasEntry(higher), 1000);
    } finally {
      watcher.stop();
    }
  }),
);

test(
  'the installed plugin is executable and runs alone (VERSION)',
  withDirs((opts) => {
    const { binPath } = installCniPlugin(opts);
    assert.equal(statSync(binPath).mode & 0o777, 0o755);
    // As the runtime runs it: a bare environment, config on stdin.
    const res = spawnSync(binPath, [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', timeout: 10_000 });
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  }),
);

test(
  'the executable is copied with mode 0755, only when it differs, and removed with any partial copy on uninstall',
  withDirs(async (opts) => {
    const source = join(opts.root, 'warren-cni-build');
    // Stands in for the build: installing is copying bytes, whatever they are.
    writeFileSync(source, '#!/bin/sh\necho release-1\n', { mode: 0o644 });
    const withBinary = { ...opts, plugin: source };
    writeFileSync(join(opts.confDir, '10-bridge.conflist'), BRIDGE_TEXT);
    installCniPlugin(opts); // another build before

    const first = installCniPlugin(withBinary);
    assert.equal(first.binChanged, true);
    assert.equal(readFileSync(first.binPath, 'utf8'), '#!/bin/sh\necho release-1\n');
    assert.equal(statSync(first.binPath).mode & 0o777, 0o755);
    assert.equal(spawnSync(first.binPath, [], { encoding: 'utf8' }).stdout, 'release-1\n');

    const ino = statSync(first.binPath).ino;
    assert.equal(installCniPlugin(withBinary).binChanged, false);
    assert.equal(statSync(first.binPath).ino, ino, 'not rewritten');

    writeFileSync(first.binPath, '#!/bin/sh\necho release-X\n'); // same size, other bytes
    assert.equal(installCniPlugin(withBinary).binChanged, true);
    assert.equal(readFileSync(first.binPath, 'utf8'), '#!/bin/sh\necho release-1\n');

    chmodSync(first.binPath, 0o644);
    assert.equal(installCniPlugin(withBinary).binChanged, true);
    assert.equal(statSync(first.binPath).mode & 0o777, 0o755);

    writeFileSync(`${source}.new`, '#!/bin/sh\necho release-2\n');
    renameSync(`${source}.new`, source); // an upgrade brings a new build
    assert.equal(installCniPlugin(withBinary).binChanged, true);
    assert.equal(readFileSync(first.binPath, 'utf8'), '#!/bin/sh\necho release-2\n');

    const watcher = watchCniConfig({ ...withBinary, pollMs: 50 });
    try {
      unlinkSync(first.binPath);
      await waitFor('the watcher puts a deleted executable back', () => readFileSync(first.binPath, 'utf8') === '#!/bin/sh\necho release-2\n', 1000);
    } finally {
      watcher.stop();
    }
    assert.equal(installCniPlugin(opts).binChanged, true, 'back to the other build');
    assert.ok(readFileSync(first.binPath).equals(readFileSync(PLUGIN_BINARY)));

    installCniPlugin(withBinary);
    writeFileSync(join(opts.binDir, 'warren-cni.tmp-4242'), 'half a copy');
    writeFileSync(join(opts.binDir, 'bridge'), 'another plugin');
    uninstallCniPlugin({ confDir: opts.confDir, binDir: opts.binDir });
    assert.deepEqual(readdirSync(opts.binDir), ['bridge']);
    assert.deepEqual(opts.logs, [`re-installed ${first.binPath}`]);
  }),
);

test(
  'a configured executable that does not exist is an install error naming the flag',
  withDirs((opts) => {
    const missing = join(opts.root, 'nowhere', 'warren-cni');
    assert.throws(
      () => installCniPlugin({ ...opts, plugin: missing }),
      (e: unknown) => e instanceof WarrenError && e.code === 'ERR_CNI_INSTALL' && e.message.includes(missing) && e.message.includes('--cni-plugin-binary'),
    );
  }),
);
