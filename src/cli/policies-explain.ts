import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import type { ConnectionExplanation } from '../policy/explain.js';
import { ADMIN_HELP, ADMIN_OPTIONS, getAdmin, targetNodes, type AdminTarget } from './admin-client.js';

const HELP = `Usage: warren policies explain --from NS/POD --to NS/POD:PORT [options]

How warren would decide a TCP connection from one pod to another, and why:
whether it arrives over mTLS (the client is enrolled) or as plaintext, what
PeerAuthentication says (STRICT refuses plaintext), and which
AuthorizationPolicy and rule allow or deny it, with every policy of the root
and destination namespaces and the conditions each rule compared. Nothing is
sent to the pods: the agent evaluates its live policies and cluster view.
Exits 0 whatever the decision.

  --from NS/POD|IP     the client (an IP that is no pod's: a client outside the mesh)
  --to NS/POD:PORT     the server and port (or IP:PORT, [IPv6]:PORT)
${ADMIN_HELP}

Without --node or --admin-address, on the simulator: any agent finds the
destination's node, then that node's agent (the one that enforces it) answers.`;

const headline = (e: ConnectionExplanation): string => {
  const f = e.from;
  const client = f.pod === undefined ? `${f.ip} (no pod, plaintext)` : `${f.pod} (sa ${f.serviceAccount}, ${e.mtls ? 'mTLS' : f.enrolled ? 'enrolled' : 'not enrolled: plaintext'})`;
  return `${e.decision.toUpperCase()}  ${client} → ${e.to.pod} :${e.to.port} (${e.to.node})`;
};

function verdict(e: ConnectionExplanation): string[] {
  if ((e.basis === 'deny-rule' || e.basis === 'allow-rule') && e.policy !== null && e.rule !== null) {
    const rule = e.evaluated.find((p) => p.policy === e.policy)?.rules[e.rule];
    const why = rule === undefined || rule.conditions.length === 0 ? 'an empty rule matches every connection' : rule.conditions.join('; ');
    return [`by AuthorizationPolicy ${e.policy} rule ${e.rule}: ${why}`, ...(rule?.http ? [rule.http] : [])];
  }
  return [e.reason];
}

/** `warren policies explain` for people: the decision, what made it, then every policy evaluated. */
export function renderExplanation(e: ConnectionExplanation, agent: string): string {
  const pa = e.peerAuthentication;
  const lines = [headline(e), ...verdict(e).map((l) => `  ${l}`)];
  if (e.dryRun) lines.push(`  dry run: would ${e.dryRun.decision} with the istio.io/dry-run policies enforced (${e.dryRun.reason})`);
  for (const w of e.waypoints ?? []) {
    lines.push(
      w.applied
        ? `  through waypoint ${w.waypoint} (${w.via}): this pod's L4 policies see the waypoint's identity ${w.principal}, not the client's`
        : `  traffic addressed to ${w.via} goes through waypoint ${w.waypoint}: there this pod's L4 policies see ${w.principal}, not the client's (explain --from the waypoint's pod for that hop)`,
    );
  }
  lines.push(`  PeerAuthentication ${pa.mode} (${pa.policy ? `${pa.policy}, ${pa.level} level` : 'default'}); answered by ${agent}'s agent`);
  if (e.evaluated.length > 0) lines.push('', 'evaluated (mesh-wide and destination namespace, DENY first):');
  for (const p of e.evaluated) {
    if (!p.applies) {
      lines.push(`  ${p.action.padEnd(5)}  ${p.policy}: does not apply (${p.note})`);
      continue;
    }
    lines.push(`  ${p.action.padEnd(5)}  ${p.policy}${p.note ? `: ${p.note}` : ''}`);
    for (const r of p.rules) {
      lines.push(`         rule ${r.rule}: ${r.matched ? 'matched' : 'no match'}${r.conditions.length === 0 && !r.http ? ' (empty rule)' : ''}`);
      for (const c of r.conditions) lines.push(`           ${c}`);
      if (r.http) lines.push(`           ${r.http}`);
    }
  }
  return lines.join('\n');
}

export async function runPoliciesExplain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { ...ADMIN_OPTIONS, from: { type: 'string' }, to: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.from === undefined || values.to === undefined) throw new WarrenError('ERR_USAGE', `${values.from === undefined ? '--from' : '--to'} is required (see warren policies explain --help)`);
  if (values.output !== 'table' && values.output !== 'json') throw new WarrenError('ERR_USAGE', `-o: ${values.output} is not table or json`);
  const query = new URLSearchParams({ from: values.from, to: values.to });
  const base: AdminTarget = { stateDir: values['state-dir'], adminAddress: values['admin-address'] };
  const nodes = targetNodes(values, argv.some((a) => a.startsWith('--admin-address')));
  let agent = nodes[0] ?? values['admin-address'];
  let reply = await getAdmin(nodes.length === 0 ? base : { ...base, node: agent }, '/explain', query);
  // Every agent holds the whole cluster view and every policy, so any can answer; the
  // destination node's agent is asked again when it is another, since it is the one
  // that enforces the decision (and its informers are what count if they lag).
  if (values.node === undefined && nodes.includes(reply.to.node) && reply.to.node !== agent) {
    agent = reply.to.node;
    reply = await getAdmin({ ...base, node: agent }, '/explain', query);
  }
  console.log(values.output === 'json' ? JSON.stringify(reply, null, 2) : renderExplanation(reply, agent));
  return 0;
}
