import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import type { AdminStatus } from '../agent/admin-types.js';
import { ADMIN_HELP, ADMIN_OPTIONS, formatTable, getAdmin, getReadiness, targetNodes, type AdminTarget } from './admin-client.js';
import { NODE_PORTS } from '../redirect/constants.js';

const HELP = `Usage: warren status [options]

One row per node agent: READY (its /healthz/ready answers 200), the
redirection BACKEND (nft or iptables), ENROLLED pods, workload CERTS (held;
valid/held when some are not valid) and the soonest certificate expiry,
POLICIES in force (AuthorizationPolicies/PeerAuthentications) and live
proxied CONNECTIONS.
Exits 1 when an agent is not ready or cannot be reached, 0 otherwise.

${ADMIN_HELP}
  --readiness-address H:P
                       the agent's /healthz/ready (127.0.0.1:${NODE_PORTS.readiness}; inside the node's
                       netns with --node or on the simulator)`;

export type StatusRow = { node: string; ready: boolean; notReady?: string } & ({ status: AdminStatus } | { error: string });

/** "23h 59m", "6d 2h", "expired": how long until `iso`, coarse enough to read at a glance. */
export function timeLeft(iso: string | null, now: number): string {
  if (iso === null) return '-';
  const minutes = Math.floor((Date.parse(iso) - now) / 60_000);
  if (minutes < 0) return 'expired';
  const [d, h, m] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60), minutes % 60];
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m`;
}

/** The table for people, sized for 100 columns; errors follow it, one line per agent. */
export function renderStatus(rows: StatusRow[], now: number): string {
  const header = ['NODE', 'READY', 'BACKEND', 'ENROLLED', 'CERTS', 'NEXT-EXPIRY', 'POLICIES', 'CONNECTIONS'];
  const table = rows.map((r) => {
    if (!('status' in r)) return [r.node, r.ready ? 'yes' : 'no', '-', '-', '-', '-', '-', '-'];
    const s = r.status;
    const c = s.certificates;
    return [r.node, r.ready ? 'yes' : 'no', s.backend, String(s.enrolled), c.valid === c.count ? String(c.count) : `${c.valid}/${c.count}`, timeLeft(c.soonestExpiry, now), `${s.policies.authorization}/${s.policies.peerAuthentication}`, String(s.connections)];
  });
  const notes = rows.flatMap((r) => [...(r.notReady ? [`${r.node}: not ready: ${r.notReady}`] : []), ...('error' in r ? [`${r.node}: ${r.error}`] : [])]);
  // Every agent sees the same cluster: each waypoint problem once.
  const waypoints = new Set(rows.flatMap((r) => ('status' in r ? (r.status.waypoints ?? []) : []).map((w) => `waypoint ${w.waypoint} of Service ${w.service}: ${w.problem}`)));
  notes.push(...waypoints);
  return [formatTable(header, table), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { ...ADMIN_OPTIONS, 'readiness-address': { type: 'string', default: `127.0.0.1:${NODE_PORTS.readiness}` }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.output !== 'table' && values.output !== 'json') throw new WarrenError('ERR_USAGE', `-o: ${values.output} is not table or json`);
  const base: AdminTarget = { stateDir: values['state-dir'], adminAddress: values['admin-address'] };
  const nodes = targetNodes(values, argv.some((a) => a.startsWith('--admin-address')));
  const targets = nodes.length === 0 ? [{ label: values['admin-address'], target: base }] : nodes.map((node) => ({ label: node, target: { ...base, node } }));
  const rows = await Promise.all(
    targets.map(async ({ label, target }): Promise<StatusRow> => {
      const [ready, status] = await Promise.all([
        getReadiness(target, values['readiness-address']),
        getAdmin(target, '/status').then(
          (s) => ({ status: s }),
          (err: Error) => {
            if (err instanceof WarrenError && err.code === 'ERR_ADMIN') return { error: err.message };
            throw err;
          },
        ),
      ]);
      const node = 'status' in status && nodes.length === 0 ? status.status.node : label;
      return { node, ready: ready === true, ...(ready === true ? {} : { notReady: ready }), ...status };
    }),
  );
  console.log(values.output === 'json' ? JSON.stringify(rows, null, 2) : renderStatus(rows, Date.now()));
  return rows.every((r) => r.ready && 'status' in r) ? 0 : 1;
}
