import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WarrenError } from '../errors/warren-error.js';
import { netnsAddresses } from '../native/netns-socket.js';
import { canonicalIp, podUidFromCgroup, resolvePodNetns, type NetnsCandidate } from './netns-candidates.js';

/**
 * Finding an already-running pod's netns (docs/architecture.md §4), the side-effect half:
 * scan /proc/<pid>/ns/net and the pinned namespaces in /var/run/netns (containerd's
 * cni-<uuid>, the simulator's pods), then let netns-candidates.ts decide.
 */

export interface DiscoveryOptions {
  /** default /proc */
  procRoot?: string;
  /** default /var/run/netns */
  netnsDir?: string;
  /** global-scope addresses in the netns at `path`; default: read by the native addon over rtnetlink */
  listAddresses?: (path: string) => Promise<string[]>;
}

export interface PodRef {
  uid: string;
  ips: string[];
  namespace?: string;
  name?: string;
}

export const DEFAULT_PROC_ROOT = '/proc';
export const DEFAULT_NETNS_DIR = '/var/run/netns';
// Enough to overlap the nsenter spawns without a fork storm on a busy node.
const CONCURRENCY = 16;

// Processes exit and namespaces are deleted while we look: those entries are skipped.
const GONE = new Set(['ENOENT', 'ESRCH', 'EACCES', 'EPERM', 'ENOTDIR', 'EINVAL']);
const isGone = (err: unknown): boolean => GONE.has((err as NodeJS.ErrnoException | undefined)?.code ?? '');

async function orSkip<T>(op: Promise<T>): Promise<T | undefined> {
  try {
    return await op;
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Inode of a netns link: from `net:[N]` when it is the /proc magic link, else stat. */
async function netnsInode(path: string): Promise<number | undefined> {
  const link = await readlink(path).catch(() => undefined);
  const m = link === undefined ? null : /^net:\[(\d+)\]$/.exec(link);
  if (m?.[1] !== undefined) return Number(m[1]);
  return (await orSkip(stat(path)))?.ino;
}

/** Default listAddresses: read over rtnetlink from inside the netns by the native addon (no process per netns). */
export async function listNetnsAddresses(path: string): Promise<string[]> {
  return [...new Set(netnsAddresses(path).map(canonicalIp))];
}

interface Group {
  pids: number[];
  uids: Set<string>;
  pinned?: string;
}

/**
 * Every network namespace on the node except the caller's own, one entry per
 * inode, with the pod UIDs of its processes and its global addresses.
 */
export async function discoverNetnsCandidates(options: DiscoveryOptions = {}): Promise<NetnsCandidate[]> {
  const procRoot = options.procRoot ?? DEFAULT_PROC_ROOT;
  const netnsDir = options.netnsDir ?? DEFAULT_NETNS_DIR;
  const listAddresses = options.listAddresses ?? listNetnsAddresses;

  const selfPath = join(procRoot, 'self', 'ns', 'net');
  const selfInode = await netnsInode(selfPath);
  // Entries of netnsDir that are not nsfs bind mounts (the placeholder file of a
  // half-created or half-deleted netns) would stat as an unrelated tmpfs inode.
  const nsfsDev = (await stat(selfPath).catch(() => undefined))?.dev;

  const groups = new Map<number, Group>();
  const group = (inode: number): Group => {
    let g = groups.get(inode);
    if (g === undefined) {
      g = { pids: [], uids: new Set() };
      groups.set(inode, g);
    }
    return g;
  };

  const pids = ((await orSkip(readdir(procRoot))) ?? []).filter((n) => /^\d+$/.test(n)).map(Number);
  const scanned = await mapLimit(pids, 64, async (pid) => {
    const dir = join(procRoot, String(pid));
    const inode = await netnsInode(join(dir, 'ns', 'net'));
    if (inode === undefined || inode === selfInode) return undefined;
    const cgroup = await orSkip(readFile(join(dir, 'cgroup'), 'utf8'));
    return { pid, inode, uid: cgroup === undefined ? undefined : podUidFromCgroup(cgroup) };
  });
  for (const entry of scanned) {
    if (entry === undefined) continue;
    const g = group(entry.inode);
    g.pids.push(entry.pid);
    if (entry.uid !== undefined) g.uids.add(entry.uid);
  }

  const names = ((await orSkip(readdir(netnsDir))) ?? []).sort();
  for (const name of names) {
    const path = join(netnsDir, name);
    const st = await orSkip(stat(path));
    if (st === undefined || st.ino === selfInode) continue;
    if (nsfsDev !== undefined && st.dev !== nsfsDev) continue;
    const g = group(st.ino);
    g.pinned ??= path;
  }

  const entries = [...groups.entries()].map(([inode, g]) => ({
    inode,
    path: g.pinned ?? join(procRoot, String(Math.min(...g.pids)), 'ns', 'net'),
    podUids: [...g.uids].sort(),
  }));
  return mapLimit(entries, CONCURRENCY, async (entry): Promise<NetnsCandidate> => {
    let addresses: string[] = [];
    try {
      addresses = await listAddresses(entry.path);
    } catch (err) {
      // A missing addon breaks every lookup: say so instead of "not found".
      if (err instanceof WarrenError && err.code === 'ERR_NATIVE_MISSING') throw err;
      // Otherwise the netns went away mid-scan; without addresses it can never match.
    }
    return { ...entry, addresses };
  });
}

function describePod(pod: PodRef): string {
  const name = pod.name === undefined ? `uid ${pod.uid}` : `${pod.namespace ?? 'default'}/${pod.name} (uid ${pod.uid})`;
  return `pod ${name} with IPs ${pod.ips.length === 0 ? '(none)' : pod.ips.join(', ')}`;
}

/**
 * The path of an already-running pod's netns (prefers /var/run/netns/<name>, else
 * /proc/<pid>/ns/net — the latter is only valid while that process lives).
 * Rejects with WarrenError ERR_NETNS_NOT_FOUND or ERR_NETNS_AMBIGUOUS, both
 * retryable: a sandbox still starting or a stale one being torn down resolves itself.
 */
export async function findPodNetns(pod: PodRef, options: DiscoveryOptions = {}): Promise<string> {
  return pickPodNetns(await discoverNetnsCandidates(options), pod);
}

/** The match among already-scanned candidates, or the typed errors of findPodNetns. */
export function pickPodNetns(candidates: readonly NetnsCandidate[], pod: PodRef): string {
  const match = resolvePodNetns(candidates, pod);
  switch (match.kind) {
    case 'found':
      return match.candidate.path;
    case 'not-found':
      throw new WarrenError(
        'ERR_NETNS_NOT_FOUND',
        `no network namespace on this node holds ${describePod(pod)}: is the pod running on this node and its IP assigned yet?`,
        { retryable: true },
      );
    case 'ambiguous':
      throw new WarrenError(
        'ERR_NETNS_AMBIGUOUS',
        `${match.candidates.length} network namespaces could be ${describePod(pod)} (${match.candidates
          .map((c) => c.path)
          .join(', ')}): a stale pod sandbox may still hold a recycled IP; retry once it is gone`,
        { retryable: true },
      );
  }
}

/**
 * findPodNetns for many pods at once: labeling a namespace of 100 pods must
 * not scan /proc and every netns 100 times. Requests within `maxAgeMs` of a
 * scan (or while one runs) share it; a pod not found in a shared scan is
 * looked up again in a fresh one before giving up.
 */
export class NetnsFinder {
  private scan: { startedAt: number; result: Promise<NetnsCandidate[]> } | undefined;

  constructor(
    private readonly options: DiscoveryOptions = {},
    private readonly maxAgeMs = 1000,
  ) {}

  private candidates(fresh: boolean): { startedAt: number; result: Promise<NetnsCandidate[]> } {
    if (fresh || this.scan === undefined || Date.now() - this.scan.startedAt > this.maxAgeMs) {
      const result = discoverNetnsCandidates(this.options);
      this.scan = { startedAt: Date.now(), result };
      result.catch(() => {
        if (this.scan?.result === result) this.scan = undefined;
      });
    }
    return this.scan;
  }

  async find(pod: PodRef): Promise<string> {
    const asked = Date.now();
    const shared = this.candidates(false);
    try {
      return pickPodNetns(await shared.result, pod);
    } catch (err) {
      // The shared scan may predate the pod's netns: one fresh scan decides.
      if (shared.startedAt >= asked) throw err;
      return pickPodNetns(await this.candidates(true).result, pod);
    }
  }
}
