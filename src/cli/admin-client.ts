import { request } from 'node:http';
import { WarrenError } from '../errors/warren-error.js';
import { httpGetInNetns } from '../net/netns-http.js';
import { readLocalAgents } from './local-agents.js';
import { splitHostPort } from '../telemetry/http-endpoints.js';

export interface AdminTarget {
  /** a simulator node: its agent's admin port is reached inside that node's netns */
  node?: string;
  stateDir: string;
  adminAddress: string;
}

export const ADMIN_OPTIONS = {
  node: { type: 'string' as const },
  'admin-address': { type: 'string' as const, default: process.env.WARREN_ADMIN_ADDRESS ?? '127.0.0.1:15000' },
  'state-dir': { type: 'string' as const, default: process.env.WARREN_SIM_STATE_DIR ?? '/run/warren-sim' },
  output: { type: 'string' as const, short: 'o', default: 'table' },
};

export const ADMIN_HELP = `  --node NAME          a simulator node's agent (reached inside that node's netns)
  --admin-address H:P  the agent's admin API otherwise ($WARREN_ADMIN_ADDRESS; 127.0.0.1:15000;
                       on a real cluster: kubectl -n warren-system port-forward <agent pod> 15000)
  --state-dir DIR      simulator state ($WARREN_SIM_STATE_DIR; /run/warren-sim)
  -o, --output FORMAT  table | json`;

/** GET over plain HTTP with a 5 s bound, for warren's local admin ports. */
export function localGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
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
      const res = await httpGetInNetns({ netns: agent.netns, host, port, path, timeoutMs: 5000 });
      return { status: res.status, body: res.body.toString() };
    }
    return await localGet(host, port, path);
  } catch (err) {
    if (err instanceof WarrenError) throw err;
    throw new WarrenError('ERR_ADMIN', `cannot reach the agent at ${target.node ? `node ${target.node} ` : ''}${address}: ${(err as Error).message}`);
  }
}

/** GET `path` from a node agent's admin API (docs/architecture.md §7), parsed as JSON; an error answer's message is passed on. */
export async function getAdmin(target: AdminTarget, path: string): Promise<unknown> {
  const { status, body } = await agentGet(target, target.adminAddress, path);
  if (status !== 200) {
    let message = body.slice(0, 200);
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? message;
    } catch {
      // not JSON: the raw text is the message
    }
    throw new WarrenError('ERR_ADMIN', `the agent's admin API answered ${status} for ${path.split('?')[0]}: ${message}`);
  }
  return JSON.parse(body);
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
export async function queryAgents(values: AgentFlags, path: string, explicitAddress: boolean): Promise<Array<{ node: string; body: unknown }>> {
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
