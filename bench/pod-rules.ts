import { createBackend } from '../src/redirect/detect.js';
import { applyNftScript } from '../src/redirect/nft-apply.js';
import { SYN, chain, resetTable } from '../src/redirect/nft-pod.js';
import { systemRunner } from '../src/redirect/runner.js';
import type { TestPod } from '../test/helpers/netns.js';

const nft = createBackend('nft', systemRunner);

export async function applyBenchPodRules(pod: TestPod): Promise<void> {
  await nft.applyPod(pod.path, { podIPs: [pod.ipv4, pod.ipv6] });
}

export async function removeBenchPodRules(pod: TestPod): Promise<void> {
  await nft.removePod(pod.path);
}

/** Apart from warren's own tables, so that it can never replace or remove them. */
const CAPTURE_TABLE = 'warren-bench-capture';

export interface BenchRedirect {
  daddr: string;
  dport: number;
  /** the local port the connection is redirected to */
  toPort: number;
}

/**
 * The capture of the `stunnel-captured` path (bench/dataplane.ts): the nat output chain of
 * warren's pod rules (src/redirect/nft-pod.ts: same hook and priority, the same SYN-only
 * `redirect`, so conntrack translates every later packet of the connection), applied the same
 * way (libnftables in the addon), but matching only the given destinations, each redirected
 * to its own port: stunnel can neither mark its upstream sockets (SO_MARK) to stay out of a
 * capture of all TCP, as warren's proxies do, nor read SO_ORIGINAL_DST.
 */
export async function applyBenchCapture(pod: TestPod, redirects: BenchRedirect[]): Promise<void> {
  const rules = redirects.map((r) => `ip daddr ${r.daddr} tcp dport ${r.dport} ${SYN} redirect to :${r.toPort}`);
  await applyNftScript(pod.path, [...resetTable(CAPTURE_TABLE), `table inet ${CAPTURE_TABLE} {`, chain('output', 'nat', 'output', '-100', rules), '}', ''].join('\n'));
}

export async function removeBenchCapture(pod: TestPod): Promise<void> {
  await applyNftScript(pod.path, [...resetTable(CAPTURE_TABLE), ''].join('\n'));
}
