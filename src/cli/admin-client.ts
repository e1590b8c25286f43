import { WarrenError } from '../errors/warren-error.js';
import { errorBodyMessage, httpCall, httpUrl } from '../net/http-call.js';
import { httpGetInNetns } from '../net/netns-http.js';
import { readLocalAgents } from './local-agents.js';
import { splitHostPort } from '../telemetry/http-endpoints.js';
import { NODE_PORTS } from '../redirect/constants.js';
import { ENV } from '../agent/config.js';
import type { AdminAnswers } from '../agent/admin-types.js';

export interface AdminTarget {
  /** a simulator node: its agent's admin port is reached inside that node's netns */
  node?: string;
  stateDir: string;
  adminAddress: string;
}

export const ADMIN_OPTIONS = {
  node: { type: 'string' as const },
  'admin-address': { type: 'string' as const, default: process.env[ENV.adminAddress] ?? `127.0.0.1:${NODE_PORTS.admin}` },
  'state-dir': { type: 'string' as const, default: process.env.WARREN_SIM_STATE_DIR ?? '/run/warren-sim' },
  output: { type: 'string' as const, short: 'o', default: 'table' },
};

export const ADMIN_HELP = `  --node NAME          a simulator node's agent (reached inside that node's netns)
  --admin-address H:P  the agent's admin API otherwise ($${ENV.adminAddress}; 127.0.0.1:${NODE_PORTS.admin};
                       on a real cluster: kubectl -n warren-system port-forward <agent pod> ${NODE_PORTS.admin})
  --state-dir DIR      simulator state ($WARREN_SIM_STATE_DIR; /run/warren-sim)
  -o, --output FORMAT  table | json`;

/** An agent's largest answer (/config_dump of a full node) is a few MB. */
const MAX_ANSWER = 32 * 1024 * 1024;

/** GET over plain HTTP with a 5 s bound, for warren's local admin ports (agent, waypoint). */
export async function localGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await httpCall({ url: httpUrl(host, port, path), timeoutMs: 5000, maxBytes: MAX_ANSWER });
  return { status: res.status, body: res.body.toString() };
}

/** GET `path` from one of the agent's ports (admin, readiness): inside the simulator node's netns when `node` is set. */
async function agentGet(target: AdminTarget, address: string, path: string): Promise<{ status: number; body: string }> {
  const { host, port } = splitHostPort(address);
  try {
    if (target.node !== undefined) {
      const agents = readLocalAgents(target.stateDir);
      if (agents === undefined) throw new WarrenError('ERR_USAGE', `no simulated cluster in ${target.stateDir} (warren sim up)`);
      const agent = agents.find((a) => a.node === target.node);
      if (agent === undefined) throw new WarrenError('ERR_USAGE', `--node: no node ${target.node}; the cluster has ${agents.map((a) => a.node).join(', ')}`);
      const res = await httpGetInNetns({ netns: agent.netns, host, port, path, timeoutMs: 5000, maxBytes: MAX_ANSWER });
      return { status: res.status, body: res.body.toString() };
    }
    return await localGet(host, port, path);
  } catch (err) {
    if (err instanceof WarrenError) throw err;
    throw new WarrenError('ERR_ADMIN', `cannot reach the agent at ${target.node ? `node ${target.node} ` : ''}${address}: ${(err as Error).message}`);
  }
}

/**
 * GET `path` (with `query`) from a node agent's admin API (docs/architecture.md §7), parsed
 * as JSON of the type the agent writes (admin-types.ts); an error answer's message is passed on.
 */
export async function getAdmin<P extends keyof AdminAnswers>(target: AdminTarget, path: P, query?: URLSearchParams): Promise<AdminAnswers[P]> {
  const { status, body } = await agentGet(target, target.adminAddress, query === undefined ? path : `${path}?${query}`);
  if (status !== 200) {
    throw new WarrenError('ERR_ADMIN', `the agent's admin API answered ${status} for ${path}: ${errorBodyMessage(body)}`);
  }
  return JSON.parse(body) as AdminAnswers[P];
}

/** The agent's readiness (`/healthz/ready` on `readinessAddress`): true, or why not. */
export async function getReadiness(target: AdminTarget, readinessAddress: string): Promise<true | string> {
  try {
    const { status, body } = await agentGet(target, readinessAddress, '/healthz/ready');
    return status === 200 ? true : `${status}: ${body.trim()}`;
  } catch (err) {
    if (err instanceof WarrenError && err.code === 'ERR_ADMIN') return err.message;
    throw err;
  }
}

type AgentFlags = { node?: string | undefined; 'admin-address': string; 'state-dir': string };

/**
 * The simulator nodes whose agents a command talks to: `--node`, or every
 * node of a running simulator when neither `--node` nor `--admin-address` is
 * given; none means the one admin address.
 */
export function targetNodes(values: AgentFlags, explicitAddress: boolean): string[] {
  if (values.node !== undefined) return [values.node];
  return explicitAddress ? [] : (readLocalAgents(values['state-dir'])?.map((a) => a.node) ?? []);
}

/** `path` from each agent of `targetNodes` (or the one admin address), labeled by node. */
export async function queryAgents<P extends keyof AdminAnswers>(values: AgentFlags, path: P, explicitAddress: boolean): Promise<Array<{ node: string; body: AdminAnswers[P] }>> {
  const base = { stateDir: values['state-dir'], adminAddress: values['admin-address'] };
  const nodes = targetNodes(values, explicitAddress);
  if (nodes.length === 0) return [{ node: values['admin-address'], body: await getAdmin(base, path) }];
  return Promise.all(nodes.map(async (node) => ({ node, body: await getAdmin({ ...base, node }, path) })));
}

/** Fixed-width columns, as kubectl prints them. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')).join('\n');
}
