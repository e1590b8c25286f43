/**
 * Finding an already-running pod's netns (docs/architecture.md §4), the pure half: reading a
 * pod UID out of /proc/<pid>/cgroup, reading `ip -j addr` output, and choosing
 * among the network namespaces found on the node. The scan itself lives in
 * netns-discovery.ts.
 */

/** One network namespace on the node, deduplicated by inode. */
export interface NetnsCandidate {
  /** nsfs inode: the namespace's identity */
  inode: number;
  /** a path that opens it: /proc/<pid>/ns/net or /var/run/netns/<name> */
  path: string;
  /** UIDs of the pods whose processes live in it (from their cgroups) */
  podUids: string[];
  /** global-scope IPv4/IPv6 addresses configured in it */
  addresses: string[];
}

export interface PodAddressing {
  uid: string;
  ips: string[];
}

export type NetnsMatch =
  | { kind: 'found'; candidate: NetnsCandidate }
  | { kind: 'not-found' }
  | { kind: 'ambiguous'; candidates: NetnsCandidate[] };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Static (mirror) pods get an md5 hex UID without dashes.
const HASH_UID = /^[0-9a-f]{32}$/;
// systemd driver: kubepods-burstable-pod<uid>.slice, kubepods-pod<uid>.slice (guaranteed),
// kubelet-kubepods-…-pod<uid>.slice (kind / nested kubelets); '-' in the UID becomes '_'.
const SYSTEMD_POD_SLICE = /(?:^|-)kubepods(?:-[a-z]+)?-pod([0-9a-z_]+)\.slice$/i;
// cgroupfs driver: …/kubepods[/besteffort|/burstable]/pod<uid>/<container>
const CGROUPFS_POD_DIR = /^pod([0-9a-z-]+)$/i;

function validUid(raw: string): string | undefined {
  const uid = raw.toLowerCase();
  return UUID.test(uid) || HASH_UID.test(uid) ? uid : undefined;
}

function uidFromCgroupPath(path: string): string | undefined {
  const segments = path.split('/');
  let underKubepods = false;
  for (const segment of segments) {
    const slice = SYSTEMD_POD_SLICE.exec(segment);
    if (slice?.[1] !== undefined) {
      const uid = validUid(slice[1].replaceAll('_', '-'));
      if (uid !== undefined) return uid;
    }
    if (underKubepods) {
      const dir = CGROUPFS_POD_DIR.exec(segment);
      if (dir?.[1] !== undefined) {
        const uid = validUid(dir[1]);
        if (uid !== undefined) return uid;
      }
    }
    if (segment === 'kubepods' || segment.endsWith('-kubepods') || segment === 'kubepods.slice') underKubepods = true;
  }
  return undefined;
}

/**
 * The pod UID (lowercase, with dashes) from the text of /proc/<pid>/cgroup, for
 * kubelet's cgroupfs and systemd layouts, cgroup v1 (`N:controller:/path`) and v2
 * (`0::/path`) lines alike; undefined for processes outside any pod cgroup.
 */
export function podUidFromCgroup(cgroupFileText: string): string | undefined {
  for (const rawLine of cgroupFileText.split('\n')) {
    const line = rawLine.trim();
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const uid = uidFromCgroupPath(line.slice(second + 1));
    if (uid !== undefined) return uid;
  }
  return undefined;
}

/**
 * Canonical text of an IP address so that `fd00::0a` and `fd00::a` compare equal;
 * a prefix length (`/24`) or zone (`%eth0`) is dropped. Unparseable input comes
 * back trimmed and lowercased.
 */
export function canonicalIp(address: string): string {
  const bare = address.trim().replace(/\/\d+$/, '').replace(/%.*$/, '').toLowerCase();
  if (!bare.includes(':')) return bare;
  try {
    const host = new URL(`http://[${bare}]/`).hostname;
    return host.slice(1, -1);
  } catch {
    return bare;
  }
}

/**
 * Chooses the pod's netns. A candidate must hold one of the pod's IPs: an IP
 * recycled from a deleted pod may still sit in a stale netns, so a UID alone, or
 * the IP in a netns whose processes belong to another pod, is never enough.
 *  1. holds a pod IP and has the pod's UID in its cgroups → that one;
 *  2. else holds a pod IP and belongs to no pod at all (the simulator, where
 *     processes are not in pod cgroups) → that one;
 * more than one at the deciding step is ambiguous.
 */
export function resolvePodNetns(candidates: readonly NetnsCandidate[], pod: PodAddressing): NetnsMatch {
  const uid = pod.uid.toLowerCase();
  const ips = new Set(pod.ips.map(canonicalIp));
  const withIp = candidates.filter((c) => c.addresses.some((a) => ips.has(canonicalIp(a))));
  const owned = withIp.filter((c) => c.podUids.some((u) => u.toLowerCase() === uid));
  const pick = (list: NetnsCandidate[]): NetnsMatch | undefined => {
    if (list.length === 1) return { kind: 'found', candidate: list[0]! };
    if (list.length > 1) return { kind: 'ambiguous', candidates: list };
    return undefined;
  };
  return pick(owned) ?? pick(withIp.filter((c) => c.podUids.length === 0)) ?? { kind: 'not-found' };
}

/** resolvePodNetns without the reason: the candidate, or undefined when none or several fit. */
export function matchPodNetns(candidates: NetnsCandidate[], pod: { uid: string; ips: string[] }): NetnsCandidate | undefined {
  const match = resolvePodNetns(candidates, pod);
  return match.kind === 'found' ? match.candidate : undefined;
}
