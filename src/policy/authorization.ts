import { describeIssue } from '../config/zod-issue.js';
import { inBlock, isBlock, parseAddress, parseBlocks, type Address } from './ip-blocks.js';
import { selectorMatches } from './selector.js';
import { z } from 'zod';

/** Fields Istio defines that only a waypoint (L7) can see; the L4 agent never silently ignores them. */
export const HTTP_ONLY_FIELDS = ['requestPrincipals', 'notRequestPrincipals', 'hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
const L4_WHEN_KEYS = new Set(['source.ip', 'source.principal', 'source.namespace', 'destination.port', 'destination.ip', 'remote.ip']);

const list = z.array(z.string()).optional();
const blocks = z.array(z.string().refine(isBlock, 'must be an IP address or CIDR block, e.g. 10.0.0.0/16')).optional();
const ruleSchema = z.object({
  from: z.array(z.object({ source: z.object({ principals: list, notPrincipals: list, requestPrincipals: list, notRequestPrincipals: list, namespaces: list, notNamespaces: list, ipBlocks: blocks, notIpBlocks: blocks, remoteIpBlocks: blocks, notRemoteIpBlocks: blocks }).strict() })).optional(),
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

/**
 * How a connection was decided, naming the policy and rule (docs/architecture.md §6):
 * `deny-rule` a DENY rule matched (`http`: the rule has HTTP fields, which
 * L4 cannot see, so its L4 part alone denied); `allow-rule` an ALLOW rule
 * matched; `no-allow-policy` no ALLOW policy applies, so it is allowed;
 * `no-allow-match` ALLOW policies apply (listed) but none of their rules match.
 */
export type AuthzDecision =
  | { allow: true; basis: 'no-allow-policy'; reason: string }
  | { allow: true; basis: 'allow-rule'; policy: string; rule: number; reason: string }
  | { allow: false; basis: 'deny-rule'; policy: string; rule: number; http: boolean; reason: string }
  | { allow: false; basis: 'no-allow-match'; allowPolicies: readonly string[]; reason: string };

/** The policy (or ALLOW policies, comma-separated) a denial is owed to, for logs and access log lines. */
export function denyingPolicy(d: AuthzDecision): string | undefined {
  if (d.allow) return undefined;
  return d.basis === 'deny-rule' ? d.policy : d.allowPolicies.join(',');
}

/** Istio's string match: exact, "*", "prefix*" or "*suffix". */
const matchString = (pattern: string, value: string): boolean =>
  pattern === '*' ? value !== '' : pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern.startsWith('*') ? value.endsWith(pattern.slice(1)) : pattern === value;

function matchAny(patterns: readonly string[], value: string): boolean {
  for (const p of patterns) if (matchString(p, value)) return true;
  return false;
}

/** Each ipBlocks list of a parsed policy, parsed on first use rather than per connection. */
const parsedBlocks = new WeakMap<readonly string[], ReturnType<typeof parseBlocks>>();

function inBlocks(blocks: readonly string[], address: Address | undefined): boolean {
  if (address === undefined) return false;
  let parsed = parsedBlocks.get(blocks);
  if (parsed === undefined) parsedBlocks.set(blocks, (parsed = parseBlocks(blocks)));
  for (const b of parsed) if (inBlock(b, address)) return true;
  return false;
}

/** What the rules compare, derived once per connection rather than per field. */
interface Facts {
  r: L4Request;
  /** Istio principals omit the scheme: "cluster.local/ns/foo/sa/bar"; '' for plaintext */
  principal: string;
  namespace: string;
  port: string;
  /** the last IP parsed for an ipBlocks condition (the source's, nearly always), parsed once */
  parsedIp: string | undefined;
  parsed: Address | undefined;
}

function addressOf(f: Facts, ip: string): Address | undefined {
  if (f.parsedIp !== ip) {
    f.parsedIp = ip;
    f.parsed = parseAddress(ip);
  }
  return f.parsed;
}

function factsOf(r: L4Request): Facts {
  const id = r.source.principal ?? '';
  const principal = id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
  const at = principal.indexOf('/ns/');
  const end = at < 0 ? -1 : principal.indexOf('/', at + 4);
  return { r, principal, namespace: end < 0 ? '' : principal.slice(at + 4, end), port: String(r.destination.port), parsedIp: undefined, parsed: undefined };
}

function whenValue(key: string, f: Facts): string | undefined {
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
      return f.r.source.ip;
    case 'source.principal':
      return f.principal;
    case 'source.namespace':
      return f.namespace;
    case 'destination.port':
      return f.port;
    case 'destination.ip':
      return f.r.destination.ip;
    default:
      return undefined;
  }
}

/** In explain mode, what each compared condition saw, e.g. `from[0].source.namespaces ["bar"] matched bar`. */
type Trace = string[] | undefined;

/**
 * One condition: `patterns` (absent: no condition) against `value`, as IP
 * blocks or strings; a `negated` field (notPrincipals, notValues…) holds
 * when nothing matches. The note is only built when tracing.
 */
function condition(ip: boolean, patterns: readonly string[] | undefined, negated: boolean, value: string, f: Facts, trace: Trace, section: string, j: number, name: string): boolean {
  if (patterns === undefined) return true;
  const hit = ip ? inBlocks(patterns, addressOf(f, value)) : matchAny(patterns, value);
  if (trace !== undefined) {
    const field = section === 'when' ? `when[${j}].${negated ? 'notValues' : 'values'} (${name})` : `${section}[${j}].${name}`;
    trace.push(`${field} ${JSON.stringify(patterns)} ${hit ? 'matched' : 'did not match'} ${value === '' ? '(none: plaintext)' : value}`);
  }
  return hit !== negated;
}

function fromMatches(rule: L4Rule, f: Facts, trace: Trace): boolean {
  if (rule.from === undefined) return true;
  const ip = f.r.source.ip;
  for (let j = 0; j < rule.from.length; j++) {
    const s = rule.from[j]!.source;
    if (
      condition(true, s.ipBlocks, false, ip, f, trace, 'from', j, 'source.ipBlocks') &&
      condition(true, s.notIpBlocks, true, ip, f, trace, 'from', j, 'source.notIpBlocks') &&
      condition(true, s.remoteIpBlocks, false, ip, f, trace, 'from', j, 'source.remoteIpBlocks') &&
      condition(true, s.notRemoteIpBlocks, true, ip, f, trace, 'from', j, 'source.notRemoteIpBlocks') &&
      condition(false, s.principals, false, f.principal, f, trace, 'from', j, 'source.principals') &&
      condition(false, s.notPrincipals, true, f.principal, f, trace, 'from', j, 'source.notPrincipals') &&
      condition(false, s.namespaces, false, f.namespace, f, trace, 'from', j, 'source.namespaces') &&
      condition(false, s.notNamespaces, true, f.namespace, f, trace, 'from', j, 'source.notNamespaces')
    )
      return true;
  }
  return false;
}

function toMatches(rule: L4Rule, f: Facts, trace: Trace): boolean {
  if (rule.to === undefined) return true;
  for (let j = 0; j < rule.to.length; j++) {
    const o = rule.to[j]!.operation;
    if (condition(false, o.ports, false, f.port, f, trace, 'to', j, 'operation.ports') && condition(false, o.notPorts, true, f.port, f, trace, 'to', j, 'operation.notPorts')) return true;
  }
  return false;
}

function whenMatches(rule: L4Rule, f: Facts, trace: Trace): boolean {
  if (rule.when === undefined) return true;
  for (let j = 0; j < rule.when.length; j++) {
    const w = rule.when[j]!;
    const value = whenValue(w.key, f);
    if (value === undefined) {
      // An HTTP-only key, reached only for DENY: dropped, so the rule's L4 part decides.
      trace?.push(`when[${j}] ${w.key}: HTTP-only, not visible at L4 (left out)`);
      continue;
    }
    const ip = w.key.endsWith('.ip');
    if (!condition(ip, w.values, false, value, f, trace, 'when', j, w.key) || !condition(ip, w.notValues, true, value, f, trace, 'when', j, w.key)) return false;
  }
  return true;
}

/**
 * Whether a rule matches at L4. HTTP-only fields: an ALLOW rule using one
 * matches nothing; a DENY rule is evaluated without them, so it denies the
 * whole L4 match (fail closed, as Istio).
 */
function ruleMatches(rule: L4Rule, f: Facts, action: 'ALLOW' | 'DENY', trace?: Trace): boolean {
  if (rule.usesHttp && action === 'ALLOW') return false;
  return fromMatches(rule, f, trace) && toMatches(rule, f, trace) && whenMatches(rule, f, trace);
}

/** A policy as evaluated: its "ns/name" and, per rule, the decision it makes on a match (both built once). */
interface Indexed {
  policy: AuthorizationPolicy;
  ref: string;
  decisions: readonly AuthzDecision[];
}
type Bucket = { deny: Indexed[]; allow: Indexed[] };

/**
 * Policies by namespace, built once per policy list (the agent replaces the
 * list when policies change): a connection looks at its destination's
 * namespace and the root namespace only, not at every policy of the cluster.
 */
const indexes = new WeakMap<readonly AuthorizationPolicy[], ReadonlyMap<string, Bucket>>();

function indexOf(policies: readonly AuthorizationPolicy[]): ReadonlyMap<string, Bucket> {
  let index = indexes.get(policies);
  if (index !== undefined) return index;
  const byNamespace = new Map<string, Bucket>();
  for (const policy of policies) {
    const ref = `${policy.namespace}/${policy.name}`;
    const decisions = policy.rules.map((rule, i): AuthzDecision =>
      policy.action === 'DENY'
        ? { allow: false, basis: 'deny-rule', policy: ref, rule: i, http: rule.usesHttp, reason: `denied by AuthorizationPolicy ${ref} rule ${i}${rule.usesHttp ? ' (its HTTP fields are not visible at L4: the L4 part alone denies)' : ''}` }
        : { allow: true, basis: 'allow-rule', policy: ref, rule: i, reason: `allowed by AuthorizationPolicy ${ref} rule ${i}` },
    );
    let bucket = byNamespace.get(policy.namespace);
    if (bucket === undefined) byNamespace.set(policy.namespace, (bucket = { deny: [], allow: [] }));
    (policy.action === 'DENY' ? bucket.deny : bucket.allow).push({ policy, ref, decisions });
  }
  index = byNamespace;
  indexes.set(policies, index);
  return index;
}

const applies = (e: Indexed, f: Facts): boolean => e.policy.selector === undefined || selectorMatches(e.policy.selector, f.r.destination.labels);

/** The decision of the first matching rule of the policies that apply, or how many applied when none matched. */
function firstMatch(entries: readonly Indexed[] | undefined, f: Facts, action: 'ALLOW' | 'DENY'): AuthzDecision | number {
  if (entries === undefined) return 0;
  let applied = 0;
  for (const e of entries) {
    if (!applies(e, f)) continue;
    applied++;
    const rules = e.policy.rules;
    for (let i = 0; i < rules.length; i++) if (ruleMatches(rules[i]!, f, action)) return e.decisions[i]!;
  }
  return applied;
}

const NO_ALLOW_POLICY: AuthzDecision = Object.freeze({ allow: true, basis: 'no-allow-policy', reason: 'no ALLOW policy applies to the destination' });

/** The root namespace's policies (mesh-wide), or the destination namespace's; the latter none when it is the root. */
const meshBucket = (policies: readonly AuthorizationPolicy[], rootNamespace: string): Bucket | undefined => indexOf(policies).get(rootNamespace);
const localBucket = (policies: readonly AuthorizationPolicy[], rootNamespace: string, namespace: string): Bucket | undefined =>
  namespace === rootNamespace ? undefined : indexOf(policies).get(namespace);

/**
 * Istio's L4 authorization for one connection (docs/architecture.md §6): any matching
 * DENY rule denies; with no ALLOW policy for the workload it is allowed;
 * otherwise some ALLOW rule must match. Mesh-wide policies live in the root
 * namespace. On the connection path: an allow allocates nothing but the
 * request's facts. Treat `policies` as immutable (its index is cached).
 */
export function authorize(policies: readonly AuthorizationPolicy[], rootNamespace: string, r: L4Request): AuthzDecision {
  const mesh = meshBucket(policies, rootNamespace);
  const local = localBucket(policies, rootNamespace, r.destination.namespace);
  if (mesh === undefined && local === undefined) return NO_ALLOW_POLICY;
  const f = factsOf(r);
  const meshDeny = firstMatch(mesh?.deny, f, 'DENY');
  if (typeof meshDeny !== 'number') return meshDeny;
  const localDeny = firstMatch(local?.deny, f, 'DENY');
  if (typeof localDeny !== 'number') return localDeny;
  const meshAllow = firstMatch(mesh?.allow, f, 'ALLOW');
  if (typeof meshAllow !== 'number') return meshAllow;
  const localAllow = firstMatch(local?.allow, f, 'ALLOW');
  if (typeof localAllow !== 'number') return localAllow;
  if (meshAllow + localAllow === 0) return NO_ALLOW_POLICY;
  const allowPolicies = [...(mesh?.allow ?? []), ...(local?.allow ?? [])].filter((e) => applies(e, f)).map((e) => e.ref);
  return { allow: false, basis: 'no-allow-match', allowPolicies, reason: `no rule of the ALLOW policies that apply matches (${allowPolicies.join(', ')})` };
}

export interface RuleTrace {
  rule: number;
  matched: boolean;
  /** the conditions compared, in order, up to the first that failed (none: the rule matches everything) */
  conditions: string[];
  /** the rule's HTTP-only fields and what L4 does with them */
  http?: string;
}

export interface PolicyTrace {
  policy: string;
  action: 'ALLOW' | 'DENY';
  /** whether it selects the destination (its namespace is the destination's or the root) */
  applies: boolean;
  /** why it does not apply, or that it has no rules */
  note?: string;
  rules: RuleTrace[];
}

export interface AuthzExplanation {
  decision: AuthzDecision;
  /** the root namespace's and the destination namespace's policies, DENY first, each rule traced */
  evaluated: PolicyTrace[];
}

function tracePolicy(e: Indexed, f: Facts): PolicyTrace {
  const { policy: p, ref: policy } = e;
  if (!applies(e, f)) return { policy, action: p.action, applies: false, note: `selector ${JSON.stringify(p.selector)} does not match the destination's labels`, rules: [] };
  const rules = p.rules.map((rule, i): RuleTrace => {
    const conditions: string[] = [];
    const matched = ruleMatches(rule, f, p.action, conditions);
    if (!rule.usesHttp) return { rule: i, matched, conditions };
    const fields = p.httpFields.filter((x) => x.startsWith(`rules[${i}].`)).join(', ');
    const http = p.action === 'ALLOW' ? `HTTP fields (${fields}) need a waypoint: at L4 this ALLOW rule matches nothing` : `HTTP fields (${fields}) are not visible at L4: this DENY rule denies whatever its L4 part matches`;
    return { rule: i, matched, conditions, http };
  });
  const note = p.rules.length > 0 ? {} : { note: p.action === 'ALLOW' ? 'no rules: allows nothing' : 'no rules: denies nothing' };
  return { policy, action: p.action, applies: true, ...note, rules };
}

/**
 * `authorize` with its working shown, for `warren policies explain`: the
 * same decision, plus every policy of the root and destination namespaces
 * with each rule's conditions as compared. Not for the connection path.
 */
export function explainAuthorization(policies: readonly AuthorizationPolicy[], rootNamespace: string, r: L4Request): AuthzExplanation {
  const buckets = [meshBucket(policies, rootNamespace), localBucket(policies, rootNamespace, r.destination.namespace)];
  const f = factsOf(r);
  const evaluated = [...buckets.flatMap((b) => b?.deny ?? []), ...buckets.flatMap((b) => b?.allow ?? [])].map((e) => tracePolicy(e, f));
  return { decision: authorize(policies, rootNamespace, r), evaluated };
}
