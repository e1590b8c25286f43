import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';

const BIN = new URL('../../../../bin/warren', import.meta.url).pathname;
const GOLDEN = new URL('../../../../test/golden/', import.meta.url).pathname;
const warren = (...args: string[]) => execa(BIN, args, { reject: false });

test('--help lists only the commands that exist, version prints the package version', async () => {
  const help = await warren('--help');
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /^\s+rules\s/m);
  assert.match(help.stdout, /^\s+version\s/m);
  const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const version = await warren('version');
  assert.equal(version.stdout, `warren ${pkg.version} (node ${process.version})`);
  const unknown = await warren('frobnicate');
  assert.equal(unknown.exitCode, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
});

test('warren rules prints exactly the builder output and names a bad field', async () => {
  const nft = await warren('rules', '--pod-ip', '10.244.1.5', '--pod-ip', 'fd00:10:244::5');
  assert.equal(nft.exitCode, 0);
  assert.equal(nft.stdout + '\n', readFileSync(GOLDEN + 'pod-dual.nft', 'utf8'));
  const bad = await warren('rules', '--pod-ip', '10.244.1.500');
  assert.equal(bad.exitCode, 1);
  assert.match(bad.stderr, /podIPs\[0\]: not an IP address: "10\.244\.1\.500" \[ERR_INVALID_REDIRECT_SPEC\]/);
  const badBackend = await warren('rules', '--pod-ip', '10.0.0.1', '--backend', 'ebpf');
  assert.equal(badBackend.exitCode, 2, 'usage errors exit 2');
  assert.match(badBackend.stderr, /--backend must be nft or iptables/);
  const badFlag = await warren('rules', '--bogus');
  assert.equal(badFlag.exitCode, 2);
});

test('warren demo --help describes the story, --keep and --dataplane; an unknown option or data path is a usage error before anything starts', async () => {
  const help = await warren('demo', '--help');
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /--keep\s+leave the cluster/);
  assert.match(help.stdout, /--dataplane node\|native\s+the agents' data path/);
  const path = await warren('demo', '--dataplane', 'kernel');
  assert.equal(path.exitCode, 2);
  assert.match(path.stderr, /--dataplane: "kernel" is not a data path; known: node, native.*\[ERR_USAGE\]/);
  assert.doesNotMatch(path.stdout, /▸/);
  assert.match(help.stdout, /policies explain/);
  const bad = await warren('demo', '--nodes', '3');
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /Unknown option '--nodes'.*\[ERR_USAGE\]/);
  assert.doesNotMatch(bad.stdout, /▸/);
});

test('warren sim mesh: --help says what uninstall and install do; an unknown action is a usage error', async () => {
  const sim = await warren('sim', '--help');
  assert.match(sim.stdout, /^\s+mesh uninstall\|install\s/m);
  const help = await warren('sim', 'mesh', '--help');
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /^Usage: warren sim mesh uninstall\|install/);
  assert.match(help.stdout, /warren node --uninstall/);
  const bad = await warren('sim', 'mesh', 'remove');
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /^Usage: warren sim mesh/);
});
