import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import type { AdminAnswers, AdminAuthorizationPolicy } from '../agent/admin-types.js';
import { ADMIN_HELP, ADMIN_OPTIONS, formatTable, queryAgents } from './admin-client.js';

interface View<P extends keyof AdminAnswers> {
  path: P;
  summary: string;
  /** subcommands, for --help */
  more?: string;
  header: string[];
  rows(body: AdminAnswers[P], node: string): string[][];
}

type AnyView = { [P in keyof AdminAnswers]: View<P> }[keyof AdminAnswers];

/** What the agent does with an AuthorizationPolicy, when it is not simply its rules. */
const policyNote = (p: AdminAuthorizationPolicy): string =>
  p.invalid !== undefined
    ? 'INVALID: denies all it selects'
    : p.targeted
      ? 'targetRefs: for a waypoint, not applied'
      : `${p.dryRun ? 'dry run: not enforced, ' : ''}${p.httpFields.length ? 'HTTP fields: waypoint needed' : `${p.rules} rule(s)`}`;

const short = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
const id = (spiffe: string): string => spiffe.replace(/^spiffe:\/\/[^/]+\/ns\//, '').replace('/sa/', '/');

/** What each inspection command shows, one row per item, sized for a 100-column terminal. */
const VIEWS: Record<string, AnyView> = {
  workloads: {
    path: '/workloads',
    summary: 'pods each agent has enrolled: IPs and SPIFFE identity (ns/sa)',
    header: ['NODE', 'POD', 'IPS', 'IDENTITY'],
    rows: (b, node) => b.enrolled.map((w) => [node, short(w.pod, 40), w.ips.join(','), id(w.identity)]),
  },
  services: {
    path: '/services',
    summary: 'services as the data plane balances them: VIPs, port, ready endpoints',
    header: ['SERVICE', 'VIP:PORT', 'ENDPOINTS', 'WAYPOINT'],
    rows: (b) => b.map((s) => [short(s.service, 32), `${s.vips[0]}:${s.port}`, short(s.endpoints.join(',') || '(none ready)', 40), s.waypoint ?? '-']),
  },
  policies: {
    path: '/policies',
    summary: 'policies in force and what needs a waypoint; `explain`: why a connection is allowed or denied',
    more: 'warren policies explain --from NS/POD --to NS/POD:PORT: how a connection would be decided, and by which policy and rule (see its --help)',
    header: ['KIND', 'POLICY', 'ACTION/MODE', 'SELECTOR', 'NOTE'],
    rows: (b) => [
      ...b.authorizationPolicies.map((p) => ['AuthorizationPolicy', short(p.policy, 30), p.action, short(JSON.stringify(p.selector ?? 'namespace'), 18), policyNote(p)]),
      ...b.peerAuthentications.map((p) => ['PeerAuthentication', short(p.policy, 30), p.mode, short(JSON.stringify(p.selector ?? 'namespace'), 18), Object.keys(p.portLevel).length ? `ports ${JSON.stringify(p.portLevel)}` : '']),
    ],
  },
  connections: {
    path: '/connections',
    summary: 'live traffic per enrolled pod: captured connections, HBONE tunnels and streams',
    header: ['NODE', 'POD', 'CAPTURED', 'INBOUND', 'TUNNELS (peer: connections/streams)'],
    rows: (b, node) => b.map((c) => [node, short(c.pod, 30), String(c.captured + c.plaintextInbound), String(c.inboundStreams), short(c.outboundTunnels.map((t) => `${t.key.split('|')[1]}: ${t.connections}/${t.streams}`).join(' ') || '-', 40)]),
  },
};

const show = (name: string, argv: string[]): Promise<number> => showView(name, VIEWS[name]!, argv);

async function showView<P extends keyof AdminAnswers>(name: string, view: View<P>, argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: { ...ADMIN_OPTIONS, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    console.log(`Usage: warren ${name} [options]\n\n${view.summary}. Without --node, every node of a running simulator.\n\n${ADMIN_HELP}${view.more ? `\n\n${view.more}` : ''}`);
    return 0;
  }
  if (values.output !== 'table' && values.output !== 'json') throw new WarrenError('ERR_USAGE', `-o: ${values.output} is not table or json`);
  const replies = await queryAgents(values, view.path, argv.some((a) => a.startsWith('--admin-address')));
  if (values.output === 'json') {
    console.log(JSON.stringify(replies.length === 1 ? replies[0]!.body : Object.fromEntries(replies.map((r) => [r.node, r.body])), null, 2));
    return 0;
  }
  // Services and policies are the same on every node: show the first agent's view.
  const sources = name === 'services' || name === 'policies' ? replies.slice(0, 1) : replies;
  const rows = sources.flatMap((r) => view.rows(r.body, r.node));
  console.log(rows.length === 0 ? `no ${name}` : formatTable(view.header, rows));
  return 0;
}

export const runWorkloads = (argv: string[]): Promise<number> => show('workloads', argv);
export const runServices = (argv: string[]): Promise<number> => show('services', argv);
// `explain` reads the API server through @kubernetes/client-node: imported on use, so main.ts's static graph (the agent's too) stays without it.
export const runPolicies = async (argv: string[]): Promise<number> => (argv[0] === 'explain' ? (await import('./policies-explain.js')).runPoliciesExplain(argv.slice(1)) : show('policies', argv));
export const runConnections = (argv: string[]): Promise<number> => show('connections', argv);
export const INSPECT_SUMMARIES = Object.fromEntries(Object.entries(VIEWS).map(([k, v]) => [k, v.summary]));
