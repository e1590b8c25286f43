import { chmodSync, closeSync, copyFileSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../errors/warren-error.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';

/**
 * The `warren-cni` file in the CNI bin dir: the self-contained executable
 * (scripts/build-cni-plugin.mjs) copied there, or a shim where there is none.
 * Written atomically with mode 0755 and only when it differs, because the
 * installer's watcher calls this twice a second.
 */

export const PLUGIN_FILE = 'warren-cni';

/** What is installed as `<binDir>/warren-cni`. */
export type PluginSource =
  /** the self-contained executable (dist/warren-cni from `npm run build:cni`), copied */
  | { kind: 'binary'; path: string }
  /** a script running dist/src/cni/plugin-main.js with this agent's node */
  | { kind: 'shim'; nodePath: string; pluginEntry: string };

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The container runtime runs the plugin on the node host, where neither this
 * agent's node nor its JS files exist: the self-contained executable
 * (configured, or the one packaged beside the agent) whenever there is one.
 * Only a checkout without `npm run build:cni` falls back to the shim, which
 * works where the host is this machine (the simulator).
 */
export function choosePluginSource(configuredBinary: string | undefined, packagedBinary: string | undefined, shim: { nodePath: string; pluginEntry: string }): PluginSource {
  const path = configuredBinary ?? packagedBinary;
  return path === undefined ? { kind: 'shim', ...shim } : { kind: 'binary', path };
}

/** The shim script: runs the plugin entry with a node binary that must exist on the host. */
export function shimScript(nodePath: string, pluginEntry: string): string {
  return [
    '#!/bin/sh',
    '# warren-cni: chained CNI plugin, written by the warren node agent (do not edit).',
    '# Needs this node and these files on the host: a real node gets the self-contained executable instead.',
    `exec ${shellQuote(nodePath)} ${shellQuote(pluginEntry)} "$@"`,
    '',
  ].join('\n');
}

/** Changes whenever the file is replaced or written to (ctime cannot be set back). */
function fileIdentity(st: Pick<Stats, 'dev' | 'ino' | 'size' | 'mode' | 'mtimeMs' | 'ctimeMs'>): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mode}:${st.mtimeMs}:${st.ctimeMs}`;
}

function statIfExists(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function installShim(binPath: string, script: string): boolean {
  const current = statIfExists(binPath);
  // Size first: the file may be the ~90 MB executable a previous agent installed.
  const same = current !== undefined && current.size === Buffer.byteLength(script) && (current.mode & 0o777) === 0o755 && readFileSync(binPath, 'utf8') === script;
  if (same) return false;
  writeFileAtomic(binPath, script, 0o755);
  chmodSync(binPath, 0o755); // the umask may have narrowed the mode
  return true;
}

const COMPARE_CHUNK = 1024 * 1024;

/** Byte comparison in chunks: the executable is ~90 MB and an agent's memory limit may be small. */
function sameContent(a: string, b: string): boolean {
  const fa = openSync(a, 'r');
  try {
    const fb = openSync(b, 'r');
    try {
      const [ba, bb] = [Buffer.alloc(COMPARE_CHUNK), Buffer.alloc(COMPARE_CHUNK)];
      for (;;) {
        const na = readSync(fa, ba, 0, COMPARE_CHUNK, null);
        const nb = readSync(fb, bb, 0, COMPARE_CHUNK, null);
        if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
        if (na === 0) return true;
      }
    } finally {
      closeSync(fb);
    }
  } finally {
    closeSync(fa);
  }
}

/** Copy, fsync, then rename over the old one: a runtime running the plugin meanwhile gets the old or the new file, never half of one. */
function copyFileAtomic(source: string, dest: string, mode: number): void {
  const tmp = `${dest}.tmp-${process.pid}`;
  try {
    copyFileSync(source, tmp);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode);
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * binPath → identities of source and copy when they were last found equal:
 * the watcher checks twice a second, and re-reading ~180 MB each time would
 * be absurd. Any write to either file changes its identity and forces a
 * byte comparison again.
 */
const verifiedCopies = new Map<string, string>();

function installBinary(source: string, binPath: string): boolean {
  const src = statIfExists(source);
  if (src === undefined) {
    throw new WarrenError('ERR_CNI_INSTALL', `CNI plugin binary ${source} does not exist; build it with \`npm run build:cni\` or fix --cni-plugin-binary ($WARREN_CNI_PLUGIN_BINARY)`);
  }
  const dest = statIfExists(binPath);
  if (dest !== undefined) {
    const identities = `${fileIdentity(src)}|${fileIdentity(dest)}`;
    if (verifiedCopies.get(binPath) === identities) return false;
    if ((dest.mode & 0o777) === 0o755 && dest.size === src.size && sameContent(source, binPath)) {
      verifiedCopies.set(binPath, identities);
      return false;
    }
  }
  copyFileAtomic(source, binPath, 0o755);
  verifiedCopies.set(binPath, `${fileIdentity(src)}|${fileIdentity(statSync(binPath))}`);
  return true;
}

export function installPluginFile(binDir: string, plugin: PluginSource): { binPath: string; changed: boolean } {
  const binPath = join(binDir, PLUGIN_FILE);
  const changed = plugin.kind === 'binary' ? installBinary(plugin.path, binPath) : installShim(binPath, shimScript(plugin.nodePath, plugin.pluginEntry));
  return { binPath, changed };
}

/** The plugin, and the partial copy an agent killed mid-install left behind (the executable is ~90 MB). */
export function removePluginFiles(binDir: string): void {
  let names: string[];
  try {
    names = readdirSync(binDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const name of names.filter((n) => n === PLUGIN_FILE || n.startsWith(`${PLUGIN_FILE}.tmp-`))) rmSync(join(binDir, name), { force: true });
}
