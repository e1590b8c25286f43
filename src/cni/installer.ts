import { readdirSync, readFileSync, statSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../errors/warren-error.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { PLUGIN_FILE, installPluginFile, removePluginFiles } from './plugin-file.js';

/**
 * The agent side of docs/architecture.md §4's plugin contract: put the `warren-cni`
 * binary in the CNI bin dir (./plugin-file.ts) and chain its entry as the last plugin of the
 * network config the runtime will use, keep it there while other CNIs rewrite
 * their files, and take both away on uninstall. Choosing the file and editing
 * its JSON are pure functions; this module only reads and writes files.
 */

/** The runtime runs the executable named like the entry's type. */
export const PLUGIN_TYPE = PLUGIN_FILE;
export const POLL_INTERVAL_MS = 500;

export interface WarrenPluginConfig {
  agentSocket: string;
  excludeNamespaces: string[];
  timeoutSeconds: number;
}

export interface InstallOptions {
  confDir: string;
  binDir: string;
  /** the plugin binary to copy into binDir */
  plugin: string;
  pluginConfig: WarrenPluginConfig;
  /** problems that do not stop the install (an unreadable or invalid conf file that is skipped) */
  log?: (msg: string) => void;
}

export interface InstallResult {
  binPath: string;
  /** the conflist that now holds the entry; undefined when confDir holds no usable network config yet */
  confPath: string | undefined;
  binChanged: boolean;
  confChanged: boolean;
}

export type Conflist = { cniVersion?: unknown; name?: unknown; plugins: Record<string, unknown>[] } & Record<string, unknown>;

export interface ConfFile {
  name: string;
  text: string;
}

export interface ChosenConf {
  /** file the runtime would load */
  name: string;
  /** its content as a conflist (a single .conf/.json network wrapped the way libcni does) */
  list: Conflist;
  /** true when `name` is a single-network file that has to become a .conflist */
  fromSingle: boolean;
}

const CONF_EXTENSIONS = ['.conflist', '.conf', '.json'];

export function isCniConfName(name: string): boolean {
  return CONF_EXTENSIONS.some((ext) => name.endsWith(ext));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Parses one conf file as libcni would; throws a WarrenError (ERR_CNI_CONFIG) saying why the runtime would not use it. */
export function parseConfFile(file: ConfFile): { list: Conflist; fromSingle: boolean } {
  let json: unknown;
  try {
    json = JSON.parse(file.text);
  } catch (err) {
    throw new WarrenError('ERR_CNI_CONFIG', `${file.name}: not valid JSON (${(err as Error).message}); skipped`);
  }
  if (!isObject(json)) throw new WarrenError('ERR_CNI_CONFIG', `${file.name}: not a JSON object; skipped`);
  if (file.name.endsWith('.conflist')) {
    const plugins = json.plugins;
    if (!Array.isArray(plugins) || plugins.length === 0 || !plugins.every(isObject)) {
      throw new WarrenError('ERR_CNI_CONFIG', `${file.name}: "plugins" must be a non-empty array of objects; skipped`);
    }
    return { list: json as Conflist, fromSingle: false };
  }
  // containerd ignores a single-network file without a type.
  if (typeof json.type !== 'string' || json.type === '') throw new WarrenError('ERR_CNI_CONFIG', `${file.name}: no "type"; skipped as the runtime does`);
  return { list: { cniVersion: json.cniVersion, name: json.name, plugins: [json] }, fromSingle: true };
}

/**
 * The network config containerd and CRI-O use: the lexically first
 * *.conflist/*.conf/*.json file that loads. Unusable files are skipped and
 * reported through `log`, so a broken file from another CNI cannot stop us.
 */
export function chooseCniConfFile(files: ConfFile[], log: (msg: string) => void = () => undefined): ChosenConf | undefined {
  const sorted = files.filter((f) => isCniConfName(f.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const file of sorted) {
    try {
      return { name: file.name, ...parseConfFile(file) };
    } catch (err) {
      log((err as Error).message);
    }
  }
  return undefined;
}

export function warrenEntry(cfg: WarrenPluginConfig): Record<string, unknown> {
  return { type: PLUGIN_TYPE, agentSocket: cfg.agentSocket, excludeNamespaces: [...cfg.excludeNamespaces], timeoutSeconds: cfg.timeoutSeconds };
}

/** The list with exactly one warren entry, last (it must see the final prevResult); other plugins untouched. */
export function withWarrenEntry(list: Conflist, cfg: WarrenPluginConfig): Conflist {
  return { ...list, plugins: [...list.plugins.filter((p) => p.type !== PLUGIN_TYPE), warrenEntry(cfg)] };
}

export function withoutWarrenEntry(list: Conflist): Conflist {
  return { ...list, plugins: list.plugins.filter((p) => p.type !== PLUGIN_TYPE) };
}

export function serializeConflist(list: Conflist): string {
  return `${JSON.stringify(list, null, 2)}\n`;
}

function readConfDir(confDir: string, log: (msg: string) => void): ConfFile[] {
  const out: ConfFile[] = [];
  for (const entry of readdirSync(confDir, { withFileTypes: true })) {
    if (entry.isDirectory() || !isCniConfName(entry.name)) continue;
    try {
      out.push({ name: entry.name, text: readFileSync(join(confDir, entry.name), 'utf8') });
    } catch (err) {
      // Removed between readdir and read (another CNI replacing its file) is normal; the next pass sees the new one.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`${entry.name}: cannot read (${(err as Error).message}); skipped`);
    }
  }
  return out;
}

function fileMode(path: string): number {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return 0o644;
  }
}

/** Puts the entry into the chosen conf file; no write when it is already right. */
function installConf(opts: InstallOptions, log: (msg: string) => void): { confPath: string | undefined; changed: boolean } {
  const chosen = chooseCniConfFile(readConfDir(opts.confDir, log), log);
  if (chosen === undefined) return { confPath: undefined, changed: false };
  const source = join(opts.confDir, chosen.name);
  const desired = withWarrenEntry(chosen.list, opts.pluginConfig);
  if (!chosen.fromSingle) {
    if (serializeConflist(desired) === serializeConflist(chosen.list)) return { confPath: source, changed: false };
    writeFileAtomic(source, serializeConflist(desired), fileMode(source));
    return { confPath: source, changed: true };
  }
  // A plain .conf cannot chain plugins: replace it with a .conflist of the same name, which sorts right after it.
  const target = join(opts.confDir, `${chosen.name.slice(0, chosen.name.lastIndexOf('.'))}.conflist`);
  writeFileAtomic(target, serializeConflist(desired), fileMode(source));
  unlinkSync(source);
  return { confPath: target, changed: true };
}

export function installCniPlugin(opts: InstallOptions): InstallResult {
  const log = opts.log ?? (() => undefined);
  const bin = installPluginFile(opts.binDir, opts.plugin);
  const conf = installConf(opts, log);
  return { binPath: bin.binPath, confPath: conf.confPath, binChanged: bin.changed, confChanged: conf.changed };
}

/**
 * Keeps the entry in place: another CNI (re)writing its conflist, replacing
 * it, or adding a higher-priority file gets the entry back within a second.
 * fs.watch reacts at once; the poll covers what inotify misses (the directory
 * itself replaced, overlay filesystems). Errors are logged, never thrown.
 */
export function watchCniConfig(opts: InstallOptions & { pollMs?: number }): { stop(): void } {
  const log = opts.log ?? (() => undefined);
  const pollMs = opts.pollMs ?? POLL_INTERVAL_MS;
  // The poll would repeat the same complaint twice a second: say it once until it changes.
  let lastProblem = '';
  let lastWatchProblem = '';
  let stopped = false;
  let watcher: FSWatcher | undefined;
  let pending: NodeJS.Timeout | undefined;

  const reconcile = (): void => {
    if (stopped) return;
    const problems: string[] = [];
    try {
      const bin = installPluginFile(opts.binDir, opts.plugin);
      const conf = installConf(opts, (m) => problems.push(m));
      if (bin.changed) log(`re-installed ${bin.binPath}`);
      if (conf.changed) log(`re-inserted the ${PLUGIN_TYPE} entry into ${conf.confPath}`);
      if (conf.confPath === undefined) problems.push(`no usable CNI network config in ${opts.confDir} yet; waiting for the cluster's CNI to write one`);
    } catch (err) {
      problems.push(`CNI config reconcile failed: ${(err as Error).message}`);
    }
    const problem = problems.join('; ');
    if (problem !== '' && problem !== lastProblem) log(problem);
    lastProblem = problem;
  };
  const soon = (): void => {
    // Coalesce the burst of events one rewrite produces (and the one our own write causes).
    pending ??= setTimeout(() => {
      pending = undefined;
      reconcile();
    }, 20);
  };
  const ensureWatch = (): void => {
    if (watcher !== undefined || stopped) return;
    try {
      watcher = watch(opts.confDir, { persistent: false }, soon);
      lastWatchProblem = '';
      watcher.on('error', (err) => {
        log(`watching ${opts.confDir} failed (${err.message}); polling every ${pollMs} ms`);
        watcher?.close();
        watcher = undefined;
      });
    } catch (err) {
      // Logged once per failure kind: the poll retries the watch every tick.
      const msg = `cannot watch ${opts.confDir} (${(err as Error).message}); polling every ${pollMs} ms`;
      if (msg !== lastWatchProblem) log(msg);
      lastWatchProblem = msg;
    }
  };

  const poll = setInterval(() => {
    ensureWatch();
    reconcile();
  }, pollMs);
  poll.unref();
  ensureWatch();
  reconcile();

  return {
    stop(): void {
      stopped = true;
      clearInterval(poll);
      if (pending !== undefined) clearTimeout(pending);
      watcher?.close();
      watcher = undefined;
    },
  };
}

/** Removes the entry from every conflist (stop the watcher first, or it puts the entry back) in confDir (rest re-serialized with 2-space indent) and the plugin binary. */
export function uninstallCniPlugin(opts: { confDir: string; binDir: string; log?: (msg: string) => void }): { changedFiles: string[] } {
  const log = opts.log ?? (() => undefined);
  const changedFiles: string[] = [];
  let files: ConfFile[] = [];
  try {
    files = readConfDir(opts.confDir, log);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const file of files.filter((f) => f.name.endsWith('.conflist'))) {
    let list: Conflist;
    try {
      list = parseConfFile(file).list;
    } catch (err) {
      log((err as Error).message);
      continue;
    }
    if (!list.plugins.some((p) => p.type === PLUGIN_TYPE)) continue;
    const path = join(opts.confDir, file.name);
    writeFileAtomic(path, serializeConflist(withoutWarrenEntry(list)), fileMode(path));
    changedFiles.push(path);
  }
  removePluginFiles(opts.binDir);
  return { changedFiles };
}
