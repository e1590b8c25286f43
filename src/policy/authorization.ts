import { describeIssue } from '../config/zod-issue.js';
import { selectorMatches } from './selector.js';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';

/** Fields Istio defines that only a waypoint (L7) can see; the L4 agent never silently ignores them. */
export const HTTP_ONLY_FIELDS = ['requestPrincipals', 'notRequestPrincipals', 'hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
const L4_WHEN_KEYS = new Set(['source.ip', 'source.principal', 'source.namespace', 'destination.port', 'destination.ip', 'remote.ip']);

const list = z.array(z.string()).optional();
const ruleSchema = z.object({
  from: z.array(z.object({ source: z.object({ principals: list, notPrincipals: list, requestPrincipals: list, notRequestPrincipals: list, namespaces: list, notNamespaces: list, ipBlocks: list, notIpBlocks: list, remoteIpBlocks: list, notRemoteIpBlocks: list }).strict() })).optional(),
  to: z.array(z.object({ operation: z.object({ ports: list, notPorts: list, hosts: list, notHosts: list, methods: list, notMethods: list, paths: list, notPaths: list }).strict() })).optional(),
  when: z.array(z.object({ key: z.string().min(1), values: list, notValues: list })).optional(),
});
const policySchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string() }),
  spec: z
    .object({
      selector: z.object({ matchLabels: z.record(z.string(), z.string()).optional() }).optional(),
      action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']).default('ALLOW'),
      rules: z.array(ruleSchema).optional(),
      provider: z.unknown().optional(),
    })
    .default({ action: 'ALLOW' }),
});

type RawRule = z.infer<typeof ruleSchema>;
/** A rule as parsed, and whether it uses HTTP-only fields (found once at parse time, not per connection). */
type L4Rule = RawRule & { usesHttp: boolean };

export interface AuthorizationPolicy {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  action: 'ALLOW' | 'DENY';
  /** empty when the policy has no `rules` (ALLOW: allow-nothing) */
  rules: readonly L4Rule[];
  /** HTTP-only fields the policy uses (empty when it is pure L4), e.g. "rules[0].to[0].operation.methods" */
  httpFields: readonly string[];
}

/** Parses one API object; throws naming the bad field. AUDIT and CUSTOM are not L4 decisions and are refused. */
export function parseAuthorizationPolicy(obj: unknown): AuthorizationPolicy {
  const parsed = policySchema.safeParse(obj);
  if (!parsed.success) throw new Error(describeIssue(parsed.error));
  const { metadata, spec } = parsed.data;
  if (spec.action === 'AUDIT' || spec.action === 'CUSTOM') throw new Error(`spec.action: ${spec.action} is not supported by warren`);
  const httpFields: string[] = [];
  const rules = (spec.rules ?? []).map((r, i): L4Rule => {
    const before = httpFields.length;
    r.from?.forEach((f, j) => HTTP_ONLY_FIELDS.forEach((k) => k in f.source && httpFields.push(`rules[${i}].from[${j}].source.${k}`)));
    r.to?.forEach((t, j) => HTTP_ONLY_FIELDS.forEach((k) => k in t.operation && httpFields.push(`rules[${i}].to[${j}].operation.${k}`)));
    r.when?.forEach((w, j) => !L4_WHEN_KEYS.has(w.key) && httpFields.push(`rules[${i}].when[${j}].key=${w.key}`));
    return { ...r, usesHttp: httpFields.length > before };
  });
  const labels = spec.selector?.matchLabels;
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    ...(labels !== undefined && Object.keys(labels).length > 0 ? { selector: labels } : {}),
    action: spec.action,
    rules,
    httpFields,
  };
}

/** What the destination agent knows about a connection at L4. */
export interface L4Request {
  source: { ip: string; /** SPIFFE ID; absent for plaintext */ principal?: string };
  destination: { namespace: string; labels: Record<string, string>; ip: string; port: number };
}

export type AuthzDecision = { allow: true; policy?: string } | { allow: false; policy?: string; reason: string };

/** Istio's string match: exact, "*", "prefix*" or "*suffix". */
const matchString = (pattern: string, value: string): boolean =>
  pattern === '*' ? value !== '' : pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern.startsWith('*') ? value.endsWith(pattern.slice(1)) : pattern === value;

/** One BlockList per ipBlocks list of a parsed policy, built on first use rather than per connection. */
const blockLists = new WeakMap<readonly string[], BlockList>();

function inBlocks(blocks: readonly string[], ip: string): boolean {
  let list = blockLists.get(blocks);
  if (list === undefined) {
    list = new BlockList();
    for (const b of blocks) {
      const [addr, len] = b.split('/');
      if (addr === undefined || isIP(addr) === 0) continue;
      const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (len === undefined) list.addAddress(addr, family);
      else list.addSubnet(addr, Number(len), family);
    }
    blockLists.set(blocks, list);
  }
  return list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
}

/** Istio principals omit the scheme: "cluster.local/ns/foo/sa/bar". */
const principalOf = (r: L4Request): string => (r.source.principal ?? '').replace(/^spiffe:\/\//, '');
const namespaceOf = (r: L4Request): string => /\/ns\/([^/]+)\//.exec(principalOf(r))?.[1] ?? '';

const any = (patterns: readonly string[] | undefined, value: string): boolean | undefined => (patterns === undefined ? undefined : patterns.some((p) => matchString(p, value)));

/** One field: `values` must match (when given) and `notValues` must not. */
function field(values: readonly string[] | undefined, notValues: readonly string[] | undefined, value: string): boolean {
  return any(values, value) !== false && any(notValues, value) !== true;
}

function ipField(blocks: readonly string[] | undefined, notBlocks: readonly string[] | undefined, ip: string): boolean {
  return (blocks === undefined || inBlocks(blocks, ip)) && (notBlocks === undefined || !inBlocks(notBlocks, ip));
}

function whenValue(key: string, r: L4Request): string | undefined {
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
      return r.source.ip;
    case 'source.principal':
      return principalOf(r);
    case 'source.namespace':
      return namespaceOf(r);
    case 'destination.port':
      return String(r.destination.port);
    case 'destination.ip':
      return r.destination.ip;
    default:
      return undefined;
  }
}

/**
 * Whether a rule matches at L4. `mode` says what to do with HTTP-only
 * fields: an ALLOW rule using one matches nothing; a DENY rule is evaluated
 * without them, so it denies the whole L4 match (fail closed, as Istio).
 */
function ruleMatches(rule: L4Rule, r: L4Request, action: 'ALLOW' | 'DENY'): boolean {
  if (rule.usesHttp && action === 'ALLOW') return false;
  const principal = principalOf(r);
  const fromOk =
    rule.from === undefined ||
    rule.from.some(({ source: s }) => {
      const ipOk = ipField(s.ipBlocks, s.notIpBlocks, r.source.ip) && ipField(s.remoteIpBlocks, s.notRemoteIpBlocks, r.source.ip);
      return ipOk && field(s.principals, s.notPrincipals, principal) && field(s.namespaces, s.notNamespaces, namespaceOf(r));
    });
  const toOk = rule.to === undefined || rule.to.some(({ operation: o }) => field(o.ports, o.notPorts, String(r.destination.port)));
  const whenOk = (rule.when ?? []).every((w) => {
    const value = whenValue(w.key, r);
    if (value === undefined) return true; // HTTP-only key, reached only for DENY: dropped
    if (w.key.endsWith('.ip')) return ipField(w.values, w.notValues, value);
    return field(w.values, w.notValues, value);
  });
  return fromOk && toOk && whenOk;
}

const applies = (p: AuthorizationPolicy, rootNamespace: string, dst: L4Request['destination']): boolean =>
  (p.namespace === rootNamespace || p.namespace === dst.namespace) && (p.selector === undefined || selectorMatches(p.selector, dst.labels));

/**
 * Istio's L4 authorization for one connection (DESIGN.md §6): any matching
 * DENY rule denies; with no ALLOW policy for the workload it is allowed;
 * otherwise some ALLOW rule must match. Mesh-wide policies live in the root
 * namespace. Names the policy (and rule) that decided.
 */
export function authorize(policies: readonly AuthorizationPolicy[], rootNamespace: string, r: L4Request): AuthzDecision {
  const relevant = policies.filter((p) => applies(p, rootNamespace, r.destination));
  for (const p of relevant.filter((x) => x.action === 'DENY')) {
    const i = p.rules.findIndex((rule) => ruleMatches(rule, r, 'DENY'));
    if (i >= 0) return { allow: false, policy: `${p.namespace}/${p.name}`, reason: `denied by ${p.namespace}/${p.name} rule ${i}` };
  }
  const allows = relevant.filter((x) => x.action === 'ALLOW');
  if (allows.length === 0) return { allow: true };
  for (const p of allows) if (p.rules.some((rule) => ruleMatches(rule, r, 'ALLOW'))) return { allow: true, policy: `${p.namespace}/${p.name}` };
  return { allow: false, reason: `no ALLOW policy matches (${allows.map((p) => `${p.namespace}/${p.name}`).join(', ')})` };
}
