import { parseArgs } from 'node:util';
import { CustomObjectsApi, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';
import type { ConnectionExplanation } from '../policy/explain.js';
import { waypointPolicy } from '../waypoint/l7-authorization.js';
import { explainL7, parseHttpProbe, type HttpProbe, type L7Explanation } from '../waypoint/l7-explain.js';
import { ADMIN_HELP, ADMIN_OPTIONS, getAdmin, targetNodes, type AdminTarget } from './admin-client.js';
import { kubeConfig } from './waypoint.js';

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

L7, through a waypoint (any of these asks for it; defaults GET /):
  --method M           the request's method (an HTTP token: GET, POST, ...)
  --path /P            the request's path (must start with /; the query is ignored)
  --header NAME=VALUE  a request header (repeatable; host= sets the authority)
  --kubeconfig FILE    where the AuthorizationPolicies with targetRefs are read
                       ($KUBECONFIG, then ~/.kube/config; on the simulator the
                       kubeconfig \`warren sim up\` printed)
Each waypoint on the path decides the request as the waypoint does (its
/debug/explain agrees), naming the policy and rule; no JWT is verified here,
so the request has no request principal.

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

/** The L7 part: one line per waypoint on the path. */
export function renderL7(l7: readonly L7Explanation[], probe: HttpProbe): string {
  if (l7.length === 0) return `L7 ${probe.method} ${probe.path}: no waypoint on this path, so HTTP rules are not enforced (the decision above is the whole answer)`;
  return [`L7 ${probe.method} ${probe.path}:`, ...l7.map((x) => `  ${(x.decision.allow ? 'ALLOW' : 'DENY').padEnd(5)}  at waypoint ${x.waypoint} (${x.via}): ${x.decision.reason}`)].join('\n');
}

/** The AuthorizationPolicies a waypoint enforces (those with targetRefs), read from the API as the waypoint reads them. */
async function waypointPolicies(file: string | undefined) {
  const kc = kubeConfig(file);
  const list = (await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies' })) as KubernetesListObject<KubernetesObject>;
  return list.items.flatMap((obj) => waypointPolicy(obj)?.policy ?? []);
}

export async function runPoliciesExplain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...ADMIN_OPTIONS,
      from: { type: 'string' },
      to: { type: 'string' },
      method: { type: 'string' },
      path: { type: 'string' },
      header: { type: 'string', multiple: true },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.from === undefined || values.to === undefined) throw new WarrenError('ERR_USAGE', `${values.from === undefined ? '--from' : '--to'} is required (see warren policies explain --help)`);
  if (values.output !== 'table' && values.output !== 'json') throw new WarrenError('ERR_USAGE', `-o: ${values.output} is not table or json`);
  const l7 = values.method !== undefined || values.path !== undefined || values.header !== undefined;
  // validated before anything is asked, so bad input fails fast with the option named
  const probe = l7 ? parseHttpProbe({ ...(values.method !== undefined ? { method: values.method } : {}), ...(values.path !== undefined ? { path: values.path } : {}), headers: values.header ?? [] }) : undefined;
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
  if (probe === undefined) {
    console.log(values.output === 'json' ? JSON.stringify(reply, null, 2) : renderExplanation(reply, agent));
    return 0;
  }
  const decided = explainL7(reply, (reply.waypoints ?? []).length === 0 ? [] : await waypointPolicies(values.kubeconfig), probe);
  console.log(values.output === 'json' ? JSON.stringify({ ...reply, l7: decided }, null, 2) : `${renderExplanation(reply, agent)}\n\n${renderL7(decided, probe)}`);
  return 0;
}
