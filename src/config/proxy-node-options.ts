/**
 * The Node.js flags warren's long-running proxies, the node agent and the waypoint, run
 * with, as NODE_OPTIONS: deploy/daemonset.yaml sets it (a unit test holds it to this
 * value), the waypoint controller writes it into every waypoint Deployment, the simulator
 * starts its agents with it.
 *
 * `--max-semi-space-size=1` (MiB): V8 grows a busy process's young generation up to
 * 16 MiB of semi-spaces and keeps them after a full GC; bounding them takes ~13 MiB off
 * the idle agent's RSS and off a loaded waypoint's, and on the `node` data path it even
 * costs less CPU per byte (short-lived buffers die in scavenges instead of full GCs);
 * the waypoint pays ~2 % CPU per request (bench/results/semi-space-2026-12-06.md,
 * docs/architecture.md §12).
 */
export const PROXY_NODE_OPTIONS = '--max-semi-space-size=1';

/** NODE_OPTIONS for a proxy started by a process whose own NODE_OPTIONS (a bench's --expose-gc) it keeps. */
export const withProxyNodeOptions = (inherited: string | undefined): string => [inherited, PROXY_NODE_OPTIONS].filter((o) => o !== undefined && o !== '').join(' ');
