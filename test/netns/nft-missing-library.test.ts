import assert from 'node:assert/strict';
import { execa } from 'execa';
import { rootTest } from '../helpers/root.js';

const NFT_APPLY = new URL('../../src/redirect/nft-apply.js', import.meta.url).href;

/**
 * A node whose libnftables is missing: in a private mount namespace the library file is
 * covered by /dev/null (dlopen then fails), so the host is untouched. The nft backend must
 * say what is missing with a stable code, not crash or report a failed script.
 */
rootTest('[nft] libnftables that cannot be loaded is ERR_COMMAND_MISSING naming the library and the package', async () => {
  const found = /libnftables\.so\.1 \([^)]*\) => (\S+)/.exec((await execa('ldconfig', ['-p'])).stdout);
  assert.ok(found, 'libnftables.so.1 is installed on this machine (scripts/install-deps.sh)');
  const child = [
    "import { execFileSync } from 'node:child_process';",
    `execFileSync('mount', ['--bind', '/dev/null', ${JSON.stringify(found[1])}]);`,
    `const { applyNftScript } = await import(${JSON.stringify(NFT_APPLY)});`,
    "try { await applyNftScript(undefined, 'list tables'); console.log(JSON.stringify({ ok: true })); }",
    'catch (err) { console.log(JSON.stringify({ name: err.name, code: err.code, retryable: err.retryable, message: err.message })); }',
  ].join('\n');
  const run = await execa('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, '--input-type=module', '-e', child], { timeout: 30_000 });
  const answer = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  assert.equal(answer.name, 'WarrenError');
  assert.equal(answer.code, 'ERR_COMMAND_MISSING');
  assert.equal(answer.retryable, false, 'a missing library does not come back by retrying');
  assert.match(String(answer.message), /libnftables cannot be loaded .*libnftables1 package/);
});
