import { isIP } from 'node:net';
import { WarrenError } from '../errors/warren-error.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import type { ClusterIndex, Workload } from '../k8s/cluster-index.js';
import type { WaypointIndex } from '../k8s/waypoint-index.js';
import { explainAuthorization, type AuthorizationPolicy, type AuthzDecision, type L4Request, type PolicyTrace } from './authorization.js';
import { resolveMtlsMode, type MtlsResolution, type PeerAuthentication } from './peer-authentication.js';

/** What a node agent knows that decides a connection: the cluster view and the policies in force. */
export interface ExplainState {
  index: ClusterIndex;
  authorizationPolicies: readonly AuthorizationPolicy[];
  peerAuthentications: readonly PeerAuthentication[];
  rootNamespace: string;
  trustDomain: string;
  /** which Services and workloads use which waypoint (docs/architecture.md §13) */
  waypoints?: WaypointIndex;
}

/** What a request through a waypoint is addressed to, as the waypoint sees it: a Service VIP and port, or the pod's IP. */
export interface WaypointDestination {
  ip: string;
  port: number;
  service?: { namespace: string; name: string };
}

export interface ConnectionExplanation {
  from: { pod?: string; ip: string; serviceAccount?: string; enrolled: boolean; principal?: string };
  to: { pod: string; ip: string; port: number; node: string; enrolled: boolean; labels: Readonly<Record<string, string>> };
  /** whether the connection arrives over HBONE (both ends enrolled) rather than as plaintext */
  mtls: boolean;
  peerAuthentication: MtlsResolution;
  decision: 'allow' | 'deny';
  /** what decided: an AuthorizationPolicy rule (see AuthzDecision), STRICT PeerAuthentication, or nothing, the destination not being enrolled */
  basis: AuthzDecision['basis'] | 'peer-authentication' | 'not-enrolled';
  /** "ns/name" of the deciding policy (AuthorizationPolicy, or PeerAuthentication for basis peer-authentication) */
  policy: string | null;
  rule: number | null;
  reason: string;
  /** present when an `istio.io/dry-run` policy applies: the decision were the dry-run policies enforced too */
  dryRun?: { decision: 'allow' | 'deny'; reason: string };
  evaluated: PolicyTrace[];
  /**
   * Where a waypoint stands between client and server (docs/architecture.md §13): its
   * principal is the source the destination's L4 policies see. `applied`: this
   * pod-addressed connection goes through it (waypoint-for workload), so the decision
   * above was made for the waypoint's identity; otherwise traffic addressed to the
   * named Service does.
   */
  waypoints?: Array<{ waypoint: string; principal: string; via: string; applied: boolean; destination: WaypointDestination }>;
}

const POD_REF = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

/** `explain` query errors: status 400 for a malformed parameter, 404 for a pod that is not there. */
const badQuery = (param: string, why: string): WarrenError => new WarrenError('ERR_EXPLAIN_QUERY', `${param}: ${why}`);
const notFound = (param: string, why: string): WarrenError => new WarrenError('ERR_EXPLAIN_NOT_FOUND', `${param}: ${why}`);

type Endpoint = { pod: string } | { ip: string };

function parseEndpoint(param: string, text: string | null, expected: string): Endpoint {
  if (text === null || text === '') throw badQuery(param, `required (${expected})`);
  if (POD_REF.test(text)) return { pod: text };
  const ip = text.replace(/^\[(.*)\]$/, '$1');
  if (isIP(ip) !== 0) return { ip };
  throw badQuery(param, `${JSON.stringify(text)} is not ${expected}`);
}

/** `to` is NS/POD:PORT, IP:PORT or [IPv6]:PORT. */
function parseTo(text: string | null): { target: Endpoint; port: number } {
  const expected = 'NS/POD:PORT or IP:PORT';
  const at = text?.lastIndexOf(':') ?? -1;
  if (text === null || at < 0) throw badQuery('to', text ? `${JSON.stringify(text)} is not ${expected}` : `required (${expected})`);
  const [host, portText] = [text.slice(0, at), text.slice(at + 1)];
  if (host.includes(':') && !host.startsWith('[')) throw badQuery('to', `an IPv6 address needs brackets: [${host}]:${portText}`);
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw badQuery('to', `port ${JSON.stringify(portText)} is not 1-65535`);
  return { target: parseEndpoint('to', host, expected), port };
}

/** The pod behind an endpoint; an IP that is no pod's is undefined (a client outside the mesh), a pod name that is none is an error. */
function lookup(index: ClusterIndex, param: string, e: Endpoint): Workload | undefined {
  if ('ip' in e) return index.workloadByIp(e.ip);
  const [namespace, name] = e.pod.split('/') as [string, string];
  const w = index.workloadByName(namespace, name);
  if (w === undefined) throw notFound(param, `no pod ${e.pod} with an IP (not created, not scheduled yet, host network, or finished)`);
  return w;
}

const sameFamily = (ips: readonly string[], like: string): string => ips.find((ip) => isIP(ip) === isIP(like)) ?? ips[0]!;

/**
 * `warren policies explain`: how the agent of `to` would decide a TCP
 * connection from `from` (NS/POD or IP) to `to` (NS/POD:PORT or IP:PORT),
 * with the same functions and state the connection path uses: whether it
 * arrives over mTLS (the source is enrolled) or as plaintext
 * (PeerAuthentication STRICT refuses that), then AuthorizationPolicy.
 * Throws ERR_EXPLAIN_QUERY (bad parameter) or ERR_EXPLAIN_NOT_FOUND.
 */
export function explainConnection(state: ExplainState, query: { from: string | null; to: string | null }): ConnectionExplanation {
  const fromEndpoint = parseEndpoint('from', query.from, 'NS/POD or an IP address');
  const { target, port } = parseTo(query.to);
  const dst = lookup(state.index, 'to', target);
  if (dst === undefined) throw notFound('to', `no pod has IP ${(target as { ip: string }).ip}`);
  const src = lookup(state.index, 'from', fromEndpoint);
  const dstIp = 'ip' in target ? target.ip : dst.ips[0]!;
  const srcIp = 'ip' in fromEndpoint ? fromEndpoint.ip : sameFamily(src!.ips, dstIp);
  // Only an enrolled source's traffic is captured and tunneled with its identity; anything else arrives as plaintext.
  const principal = src?.enrolled ? formatSpiffeId({ trustDomain: state.trustDomain, namespace: src.namespace, serviceAccount: src.serviceAccount }) : undefined;
  const from = {
    ...(src ? { pod: `${src.namespace}/${src.name}`, serviceAccount: src.serviceAccount } : {}),
    ip: srcIp,
    enrolled: src?.enrolled ?? false,
    ...(principal ? { principal } : {}),
  };
  const to = { pod: `${dst.namespace}/${dst.name}`, ip: dstIp, port, node: dst.node, enrolled: dst.enrolled, labels: dst.labels };
  const peerAuthentication = resolveMtlsMode(state.peerAuthentications, state.rootNamespace, { namespace: dst.namespace, labels: dst.labels }, port);
  const mtls = principal !== undefined && dst.enrolled;
  const base = { from, to, mtls, peerAuthentication };

  if (!dst.enrolled) {
    const reason = `${to.pod} is not enrolled: its node agent does not capture its traffic, so no warren policy applies`;
    return { ...base, decision: 'allow', basis: 'not-enrolled', policy: null, rule: null, reason, evaluated: [] };
  }
  if (!mtls && peerAuthentication.mode === 'STRICT') {
    const reason = `plaintext refused: PeerAuthentication ${peerAuthentication.policy} (${peerAuthentication.level} level) is STRICT, and ${from.pod ?? srcIp} ${src ? 'is not enrolled' : 'is no pod'}, so it has no mesh identity`;
    return { ...base, decision: 'deny', basis: 'peer-authentication', policy: peerAuthentication.policy ?? null, rule: null, reason, evaluated: [] };
  }
  const waypoints = waypointsBetween(state, src, dst, dstIp, port);
  const applied = waypoints.find((w) => w.applied);
  const seen = applied?.principal ?? principal;
  const request: L4Request = {
    source: { ip: srcIp, ...(seen ? { principal: seen } : {}) },
    destination: { namespace: dst.namespace, labels: dst.labels, ip: dstIp, port },
  };
  const { decision: d, evaluated } = explainAuthorization(state.authorizationPolicies, state.rootNamespace, request);
  const named = d.basis === 'deny-rule' || d.basis === 'allow-rule';
  const dryRun = d.dryRun === undefined ? {} : { dryRun: { decision: d.dryRun.allow ? ('allow' as const) : ('deny' as const), reason: d.dryRun.reason } };
  const policy = named || d.basis === 'invalid-policy' ? d.policy : null;
  const reason = applied ? `through waypoint ${applied.waypoint}, seen here as ${applied.principal}: ${d.reason}` : d.reason;
  return { ...base, decision: d.allow ? 'allow' : 'deny', basis: d.basis, policy, rule: named ? d.rule : null, reason, ...dryRun, evaluated, ...(waypoints.length > 0 ? { waypoints } : {}) };
}

/**
 * The waypoints between `src` and the pod `dst`: the pod's own (waypoint-for workload,
 * applied to this pod-addressed connection) and those of the Services it backs on this
 * port. None for the waypoint's own upstream traffic, which goes direct.
 */
function waypointsBetween(state: ExplainState, src: Workload | undefined, dst: Workload, dstIp: string, port: number): NonNullable<ConnectionExplanation['waypoints']> {
  const w = state.waypoints;
  if (w === undefined || src?.enrolled !== true) return [];
  const self = w.waypointOf({ namespace: src.namespace, labels: src.labels, serviceAccount: src.serviceAccount });
  const out: NonNullable<ConnectionExplanation['waypoints']> = [];
  const add = (binding: ReturnType<WaypointIndex['forWorkload']>, via: string, applied: boolean, destination: WaypointDestination): void => {
    if (binding?.state !== 'bound' || (self?.namespace === binding.waypoint.namespace && self.name === binding.waypoint.name)) return;
    const wp = binding.waypoint;
    out.push({ waypoint: `${wp.namespace}/${wp.name}`, principal: formatSpiffeId({ trustDomain: state.trustDomain, namespace: wp.namespace, serviceAccount: wp.serviceAccount }), via, applied, destination });
  };
  add(w.forWorkload(dst), `pod ${dst.namespace}/${dst.name}`, true, { ip: dstIp, port });
  for (const svc of state.index.services()) {
    if (svc.endpoints.some((e) => e.ip === dstIp && e.port === port)) add(w.forService(svc.namespace, svc.name), `Service ${svc.namespace}/${svc.name} (${svc.vips[0]}:${svc.port})`, false, { ip: svc.vips[0]!, port: svc.port, service: { namespace: svc.namespace, name: svc.name } });
  }
  return out;
}
