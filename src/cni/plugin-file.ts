import { chmodSync, closeSync, copyFileSync, fsyncSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../errors/warren-error.js';

/**
 * The `warren-cni` file in the CNI bin dir: the static plugin binary
 * (src/cni/warren-cni.c, built by node-gyp into build/Release) copied there.
 * Written atomically with mode 0755 and only when it differs, because the
 * installer's watcher calls this twice a second.
 */

export const PLUGIN_FILE = 'warren-cni';

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

const COMPARE_CHUNK = 1024 * 1024;

/** Byte comparison in chunks: an agent's memory limit may be small, whatever the file's size. */
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
 * the watcher checks twice a second, and re-reading both each time would be
 * waste. Any write to either file changes its identity and forces a
 * byte comparison again.
 */
const verifiedCopies = new Map<string, string>();

function installBinary(source: string, binPath: string): boolean {
  const src = statIfExists(source);
  if (src === undefined) {
    throw new WarrenError('ERR_CNI_INSTALL', `CNI plugin binary ${source} does not exist; build it with \`npx node-gyp rebuild\` (run by \`npm ci\`) or fix --cni-plugin-binary ($WARREN_CNI_PLUGIN_BINARY)`);
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

export function installPluginFile(binDir: string, pluginBinary: string): { binPath: string; changed: boolean } {
  const binPath = join(binDir, PLUGIN_FILE);
  return { binPath, changed: installBinary(pluginBinary, binPath) };
}

/** The plugin, and the partial copy an agent killed mid-install left behind. */
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
