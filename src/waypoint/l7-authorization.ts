import { z } from 'zod';
import { WarrenError } from '../errors/warren-error.js';
import { failClosedPolicy, matchString, parseAuthorizationPolicy, type AuthorizationPolicy } from '../policy/authorization.js';
import { inBlock, parseAddress, parseBlocks } from '../policy/ip-blocks.js';
import { linearRegex } from './linear-regex.js';

/**
 * L7 AuthorizationPolicy in the waypoint (docs/architecture.md, "The
 * waypoint"): the policies that attach by targetRefs to this waypoint's
 * Gateway or to the destination Service, with every HTTP field. DENY before
 * ALLOW; with no ALLOW policy the request is allowed; otherwise an ALLOW rule
 * must match. Policies are parsed by src/policy/authorization.ts (the same
 * validation the node agents use); this module decides.
 */

export interface PolicyTarget {
  kind: 'Gateway' | 'Service';
  namespace: string;
  name: string;
}

/** A policy as the waypoint holds it: parsed (or its fail-closed stand-in) and what it attaches to. */
export interface TargetedPolicy {
  policy: AuthorizationPolicy;
  /** empty for an invalid policy whose targets could not be read: it denies everything through the waypoint in its namespace */
  targets: readonly PolicyTarget[];
}

export interface JwtAuth {
  /** iss/sub, Istio's request principal */
  principal: string;
  claims: Record<string, unknown>;
  audiences: readonly string[];
  presenter?: string;
}

export interface L7Request {
  source: { ip: string; principal?: string };
  destination: { ip: string; port: number; namespace: string; service?: { namespace: string; name: string } };
  /** absent for TCP: HTTP conditions then decide as at L4 (an ALLOW rule with them matches nothing, a DENY rule's L4 part denies) */
  http?: { method: string; path: string; host: string; header(name: string): string | undefined; auth?: JwtAuth };
}

export type L7Decision = { allow: true; policy?: string; reason: string } | { allow: false; policy: string; reason: string };

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const targetRef = z.object({ group: z.string().optional(), kind: z.string(), name: z.string(), namespace: z.string().optional() });
const targetsSchema = z.object({ metadata: z.object({ namespace: z.string() }), spec: z.object({ targetRef: targetRef.optional(), targetRefs: z.array(targetRef).optional() }) });
/** `when` keys the waypoint evaluates; other keys Istio's validation accepts (connection.sni, experimental.*) fail the policy closed. */
const WHEN_KEY = /^(source\.(ip|namespace|principal)|destination\.(ip|port)|remote\.ip|request\.auth\.(principal|audiences|presenter)|request\.headers\[[^\]]+\]|request\.auth\.claims(\[[^\]]+\])+)$/;

const invalid = (message: string): WarrenError => new WarrenError('ERR_POLICY_INVALID', message);

/**
 * The targets of an AuthorizationPolicy object (Gateway or Service in its
 * own namespace, Istio's rule); throws ERR_POLICY_INVALID for others.
 */
export function policyTargets(obj: unknown): PolicyTarget[] {
  const parsed = targetsSchema.safeParse(obj);
  if (!parsed.success) throw invalid('spec.targetRefs: unreadable');
  const ns = parsed.data.metadata.namespace;
  const refs = [...(parsed.data.spec.targetRef ? [parsed.data.spec.targetRef] : []), ...(parsed.data.spec.targetRefs ?? [])];
  return refs.map((r, i) => {
    const at = parsed.data.spec.targetRef ? (i === 0 ? 'spec.targetRef' : `spec.targetRefs.${i - 1}`) : `spec.targetRefs.${i}`;
    if (r.namespace !== undefined && r.namespace !== ns) throw invalid(`${at}.namespace: must be the policy's own namespace`);
    if (r.kind === 'Gateway' && (r.group ?? GATEWAY_GROUP) === GATEWAY_GROUP) return { kind: 'Gateway', namespace: ns, name: r.name };
    if (r.kind === 'Service' && ['', 'core'].includes(r.group ?? '')) return { kind: 'Service', namespace: ns, name: r.name };
    throw invalid(`${at}.kind: ${r.group ? `${r.group}/` : ''}${r.kind} is not a target warren's waypoint enforces (Gateway or Service)`);
  });
}

/** What the node agents accept but the waypoint cannot evaluate: refused so the policy fails closed with a condition. */
export function checkWaypointSupport(p: AuthorizationPolicy): void {
  p.rules.forEach((r, i) =>
    r.when?.forEach((w, j) => {
      if (!WHEN_KEY.test(w.key)) throw invalid(`spec.rules.${i}.when.${j}.key: ${JSON.stringify(w.key)} is not evaluated by warren's waypoint`);
    }),
  );
}

/**
 * An AuthorizationPolicy object as the waypoint holds it (undefined for a node
 * agent's policy, one without targetRefs): parsed, or when it cannot be read
 * its fail-closed stand-in with `error` saying why. The waypoint and
 * `warren policies explain --path/--method` both read policies through this.
 */
export function waypointPolicy(obj: unknown): { policy?: TargetedPolicy; targets: PolicyTarget[]; error?: string } | undefined {
  const o = obj as { spec?: { targetRef?: unknown; targetRefs?: unknown[] } } | null;
  if (o?.spec?.targetRef === undefined && !(o?.spec?.targetRefs?.length ?? 0)) return undefined;
  let targets: PolicyTarget[] = [];
  try {
    targets = policyTargets(obj);
    const policy = parseAuthorizationPolicy(obj);
    checkWaypointSupport(policy);
    return { policy: { policy, targets }, targets };
  } catch (err) {
    const error = (err as Error).message;
    const stand = failClosedPolicy(obj, error);
    return { ...(stand === undefined ? {} : { policy: { policy: stand, targets } }), targets, error };
  }
}

export function appliesTo(t: TargetedPolicy, gateway: { namespace: string; name: string }, r: L7Request): boolean {
  if (t.targets.length === 0) return t.policy.namespace === gateway.namespace || t.policy.namespace === r.destination.service?.namespace;
  const svc = r.destination.service;
  return t.targets.some((x) => (x.kind === 'Gateway' ? x.namespace === gateway.namespace && x.name === gateway.name : svc !== undefined && x.namespace === svc.namespace && x.name === svc.name));
}

/** Istio path patterns: `{*}` one segment, `{**}` any rest (templates), else Istio strings. */
const templates = new Map<string, RegExp>();
function pathMatches(pattern: string, path: string): boolean {
  if (!pattern.includes('{')) return matchString(pattern, path);
  let re = templates.get(pattern);
  if (re === undefined) {
    const source = pattern
      .split(/(\{\*\*\}|\{\*\})/)
      .map((part) => (part === '{**}' ? '.*' : part === '{*}' ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    templates.set(pattern, (re = linearRegex(source)));
  }
  return re.test(path);
}

const anyMatch = (patterns: readonly string[], value: string, match: (p: string, v: string) => boolean = matchString): boolean => patterns.some((p) => match(p, value));

function ipMatch(blocks: readonly string[], ip: string): boolean {
  const a = parseAddress(ip);
  return a !== undefined && parseBlocks(blocks).some((b) => inBlock(b, a));
}

/** Host as the policy compares it: case-insensitive, with and without a port. */
function hostMatch(patterns: readonly string[], host: string): boolean {
  const h = host.toLowerCase();
  const bare = h.replace(/:\d+$/, '');
  return patterns.some((p) => matchString(p.toLowerCase(), h) || matchString(p.toLowerCase(), bare));
}

function claimValues(claims: Record<string, unknown>, key: string): string[] {
  const path = [...key.matchAll(/\[([^\]]+)\]/g)].map((m) => m[1]!);
  let v: unknown = claims;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  if (typeof v === 'number' || typeof v === 'boolean') return [String(v)];
  return [];
}

const principalText = (id: string | undefined): string => (id === undefined ? '' : id.startsWith('spiffe://') ? id.slice(9) : id);
const namespaceOf = (p: string): string => /\/ns\/([^/]+)\//.exec(p)?.[1] ?? '';

/** The values a `when` key has for this request; undefined when it needs HTTP and the stream is TCP. */
function whenValues(key: string, r: L7Request): string[] | undefined {
  const principal = principalText(r.source.principal);
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
      return [r.source.ip];
    case 'source.principal':
      return principal === '' ? [] : [principal];
    case 'source.namespace':
      return principal === '' ? [] : [namespaceOf(principal)];
    case 'destination.ip':
      return [r.destination.ip];
    case 'destination.port':
      return [String(r.destination.port)];
  }
  const http = r.http;
  if (http === undefined) return undefined;
  if (key === 'request.auth.principal') return http.auth ? [http.auth.principal] : [];
  if (key === 'request.auth.audiences') return http.auth ? [...http.auth.audiences] : [];
  if (key === 'request.auth.presenter') return http.auth?.presenter ? [http.auth.presenter] : [];
  if (key.startsWith('request.headers[')) {
    const v = http.header(key.slice('request.headers['.length, -1).toLowerCase());
    return v === undefined ? [] : [v];
  }
  return http.auth ? claimValues(http.auth.claims, key.slice('request.auth.claims'.length)) : [];
}

type Rule = AuthorizationPolicy['rules'][number];

/** One list condition; `http` conditions on a TCP stream hold for DENY and fail for ALLOW (fail closed). */
function cond(patterns: readonly string[] | undefined, negated: boolean, values: readonly string[] | undefined, action: 'ALLOW' | 'DENY', match: (p: string, v: string) => boolean = matchString): boolean {
  if (patterns === undefined) return true;
  if (values === undefined) return action === 'DENY';
  const hit = values.some((v) => v !== '' && anyMatch(patterns, v, match));
  return hit !== negated;
}

function ruleMatches(rule: Rule, r: L7Request, action: 'ALLOW' | 'DENY'): boolean {
  const principal = principalText(r.source.principal);
  const ns = principal === '' ? '' : namespaceOf(principal);
  const sa = /\/sa\/([^/]+)$/.exec(principal)?.[1] ?? '';
  const reqPrincipal = r.http === undefined ? undefined : r.http.auth ? [r.http.auth.principal] : [];
  const fromOk =
    rule.from === undefined ||
    rule.from.some((s) => {
      const accounts = (list: readonly { namespace: string; name: string }[] | undefined, negated: boolean): boolean =>
        list === undefined || (principal !== '' && list.some((a) => a.namespace === ns && a.name === sa)) !== negated;
      return (
        cond(s.principals, false, [principal], action) &&
        cond(s.notPrincipals, true, [principal], action) &&
        cond(s.namespaces, false, [ns], action) &&
        cond(s.notNamespaces, true, [ns], action) &&
        accounts(s.serviceAccounts, false) &&
        accounts(s.notServiceAccounts, true) &&
        (s.ipBlocks === undefined || ipMatch(s.ipBlocks, r.source.ip)) &&
        (s.notIpBlocks === undefined || !ipMatch(s.notIpBlocks, r.source.ip)) &&
        (s.remoteIpBlocks === undefined || (r.http === undefined ? action === 'DENY' : ipMatch(s.remoteIpBlocks, r.source.ip))) &&
        (s.notRemoteIpBlocks === undefined || (r.http === undefined ? action === 'DENY' : !ipMatch(s.notRemoteIpBlocks, r.source.ip))) &&
        cond(s.requestPrincipals, false, reqPrincipal, action) &&
        cond(s.notRequestPrincipals, true, reqPrincipal, action)
      );
    });
  if (!fromOk) return false;
  const http = r.http;
  const toOk =
    rule.to === undefined ||
    rule.to.some(
      (o) =>
        cond(o.ports, false, [String(r.destination.port)], action) &&
        cond(o.notPorts, true, [String(r.destination.port)], action) &&
        cond(o.methods, false, http && [http.method], action) &&
        cond(o.notMethods, true, http && [http.method], action) &&
        cond(o.paths, false, http && [http.path], action, pathMatches) &&
        cond(o.notPaths, true, http && [http.path], action, pathMatches) &&
        (o.hosts === undefined || (http === undefined ? action === 'DENY' : hostMatch(o.hosts, http.host))) &&
        (o.notHosts === undefined || (http === undefined ? action === 'DENY' : !hostMatch(o.notHosts, http.host))),
    );
  if (!toOk) return false;
  for (const w of rule.when ?? []) {
    const values = whenValues(w.key, r);
    const match = w.key.endsWith('.ip') ? (p: string, v: string) => ipMatch([p], v) : matchString;
    if (!cond(w.values, false, values, action, match) || !cond(w.notValues, true, values, action, match)) return false;
  }
  return true;
}

/**
 * The decision for one request (or TCP stream) through this waypoint.
 * An invalid policy's stand-in is a DENY without rules and `invalid` set: it
 * denies everything it applies to.
 */
export function authorizeL7(policies: readonly TargetedPolicy[], gateway: { namespace: string; name: string }, r: L7Request): L7Decision {
  const applying = policies.filter((t) => !t.policy.dryRun && appliesTo(t, gateway, r));
  for (const { policy: p } of applying) {
    const ref = `${p.namespace}/${p.name}`;
    if (p.invalid !== undefined) return { allow: false, policy: ref, reason: `AuthorizationPolicy ${ref} is invalid (${p.invalid}); it denies until fixed` };
    if (p.action !== 'DENY') continue;
    const i = p.rules.findIndex((rule) => ruleMatches(rule, r, 'DENY'));
    if (i >= 0) return { allow: false, policy: ref, reason: `denied by AuthorizationPolicy ${ref} rule ${i}` };
  }
  const allows = applying.filter((t) => t.policy.action === 'ALLOW');
  if (allows.length === 0) return { allow: true, reason: 'no ALLOW policy applies' };
  for (const { policy: p } of allows) {
    const ref = `${p.namespace}/${p.name}`;
    const i = p.rules.findIndex((rule) => ruleMatches(rule, r, 'ALLOW'));
    if (i >= 0) return { allow: true, policy: ref, reason: `allowed by AuthorizationPolicy ${ref} rule ${i}` };
  }
  const refs = allows.map((t) => `${t.policy.namespace}/${t.policy.name}`).join(',');
  return { allow: false, policy: refs, reason: `no rule of the ALLOW policies that apply matches (${refs})` };
}
