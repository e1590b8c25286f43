import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { installCniPlugin } from '../../src/cni/installer.js';
import { CNI_ERROR, SUPPORTED_CNI_VERSIONS } from '../../src/cni/plugin.js';
import { addRequestBody, cniEnv, fakeAgent, listen, netConf, prevResult, runPlugin } from '../helpers/cni-plugin.js';

// The self-contained dist/warren-cni (scripts/build-cni-plugin.mjs), installed
// the way the agent installs it and run the way a container runtime runs it:
// from the CNI bin dir, with only the CNI variables (no PATH, no node).
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXECUTABLE = join(ROOT, 'dist', 'warren-cni');
const PLUGIN_MAIN = fileURLToPath(new URL('../../src/cni/plugin-main.js', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'warren-cni-exe-'));
let installed = '';

before(
  () => {
    // Built by scripts/install.sh; rebuilt here only when missing or its bundle or node changed since.
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-cni-plugin.mjs'), '--if-stale'], { stdio: 'pipe' });
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(confDir, '10-bridge.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'wrn', plugins: [{ type: 'bridge' }] }));
    installed = installCniPlugin({
      confDir,
      binDir: join(dir, 'bin'),
      plugin: { kind: 'binary', path: EXECUTABLE },
      pluginConfig: { agentSocket: join(dir, 'cni.sock'), excludeNamespaces: ['kube-system'], timeoutSeconds: 5 },
    }).binPath;
  },
  { timeout: 300_000 },
);
after(() => rmSync(dir, { recursive: true, force: true }));

test('VERSION prints the supported versions and nothing on stderr', async (t) => {
  const out = await runPlugin(installed, [], { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stderr, '', 'no experimental-feature warning for the runtime to log');
  assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', supportedVersions: [...SUPPORTED_CNI_VERSIONS] });

  // Reported, not asserted: a shared CI machine is too noisy for a timing bound.
  const median = async (command: string, args: string[]): Promise<number> => {
    const ms: number[] = [];
    for (let i = 0; i < 5; i++) ms.push((await runPlugin(command, args, { CNI_COMMAND: 'VERSION' }, '')).ms);
    return ms.sort((a, b) => a - b)[2]!;
  };
  t.diagnostic(`VERSION startup, median of 5: executable ${await median(installed, [])} ms, shim (node + dist JS) ${await median(process.execPath, [PLUGIN_MAIN])} ms`);
});

test('ADD tells the agent over its unix socket and passes prevResult through', async () => {
  const { server, received } = fakeAgent();
  const socket = join(dir, 'cni.sock');
  await listen(server, socket);
  try {
    const out = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), prevResult);
    assert.deepEqual(received, [{ url: '/v1/cni/add', body: addRequestBody }]);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('ADD with no agent listening fails closed with the CNI error JSON', async () => {
  const out = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: join(dir, 'nobody.sock') })));
  assert.equal(out.code, 1, out.stdout + out.stderr);
  const err = JSON.parse(out.stdout) as { cniVersion: string; code: number; msg: string; details: string };
  assert.equal(err.cniVersion, '1.0.0');
  assert.equal(err.code, CNI_ERROR.tryAgainLater);
  assert.match(err.msg, /ENOENT.*is the warren node agent running/);
  assert.equal(err.details, 'ENOENT');
});
