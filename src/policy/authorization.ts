import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import { inBlock, isBlock, parseAddress, parseBlocks, type Address } from './ip-blocks.js';
import { selectorMatches } from './selector.js';
import { z } from 'zod';

/**
 * Fields Istio defines that only a waypoint (L7) can see; the L4 agent never
 * silently ignores them. remoteIpBlocks is the client's address as HTTP
 * headers (X-Forwarded-For) tell it, so it is HTTP too, as in istiod.
 */
export const HTTP_ONLY_FIELDS = ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks', 'hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
/** `when` keys the L4 agent evaluates (istiod's list for ztunnel); `remote.ip` is HTTP, like remoteIpBlocks. */
const L4_WHEN_KEYS = new Set(['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port']);
/** `when` keys that exist but need a waypoint; any other key is a typo and makes the policy invalid (as Istio's validation). */
const HTTP_WHEN_KEY = /^(remote\.ip|source\.serviceAccount|request\.auth\.(principal|audiences|presenter)|connection\.sni|(request\.headers|request\.auth\.claims)\[.+\]|experimental\.envoy\.filters\..+)$/;
/** `istio.io/dry-run: "true"`: evaluated, logged and counted, never enforced (Istio's annotation). */
const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

// An empty value would match a plaintext client's empty identity; Istio's validation refuses it too.
const value = z.string().min(1, 'empty value not allowed');
const strings = z.array(value).optional();
const blocks = z.array(z.string().refine(isBlock, 'must be an IP address or CIDR block, e.g. 10.0.0.0/16')).optional();
const isPort = (p: string): boolean => /^\d{1,5}$/.test(p) && Number(p) >= 1 && Number(p) <= 65535;
const ports = z.array(z.string().refine(isPort, 'must be a port number 1-65535')).optional();
const serviceAccounts = z.array(z.string().regex(/^([^/]+\/)?[^/]+$/, 'must be SERVICE_ACCOUNT or NAMESPACE/SERVICE_ACCOUNT')).optional();
const sourceSchema = z.strictObject({
  principals: strings,
  notPrincipals: strings,
  requestPrincipals: strings,
  notRequestPrincipals: strings,
  namespaces: strings,
  notNamespaces: strings,
  serviceAccounts,
  notServiceAccounts: serviceAccounts,
  ipBlocks: blocks,
  notIpBlocks: blocks,
  remoteIpBlocks: blocks,
  notRemoteIpBlocks: blocks,
});
const operationSchema = z.strictObject({ ports, notPorts: ports, hosts: strings, notHosts: strings, methods: strings, notMethods: strings, paths: strings, notPaths: strings });
const ruleSchema = z.strictObject({
  from: z.array(z.strictObject({ source: sourceSchema })).optional(),
  to: z.array(z.strictObject({ operation: operationSchema })).optional(),
  when: z.array(z.strictObject({ key: z.string().min(1), values: strings, notValues: strings })).optional(),
});
const targetRef = z.strictObject({ group: z.string().optional(), kind: z.string().min(1), name: z.string().min(1), namespace: z.string().optional() });
const selectorSchema = z.strictObject({ matchLabels: z.record(z.string(), z.string()).optional() });
const policySchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), annotations: z.record(z.string(), z.string()).optional() }),
  spec: z
    .strictObject({
      selector: selectorSchema.optional(),
      targetRef: targetRef.optional(),
      targetRefs: z.array(targetRef).optional(),
      action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']).default('ALLOW'),
      rules: z.array(ruleSchema).optional(),
      provider: z.strictObject({ name: z.string() }).optional(),
    })
    .default({ action: 'ALLOW' }),
});

type RawSource = z.infer<typeof sourceSchema>;
type RawOperation = z.infer<typeof operationSchema>;
type RawRule = z.infer<typeof ruleSchema>;
/** A service account as istiod translates `serviceAccounts`: "sa" is in the policy's namespace. */
interface ServiceAccount {
  namespace: string;
  name: string;
}
/** A source with its empty lists removed (Istio: an empty list is not set) and service accounts split. */
type Source = Omit<RawSource, 'serviceAccounts' | 'notServiceAccounts'> & { serviceAccounts?: ServiceAccount[]; notServiceAccounts?: ServiceAccount[] };
/** A rule as parsed: empty lists dropped, and whether it uses HTTP-only fields (found once at parse time, not per connection). */
interface L4Rule {
  from?: Source[];
  to?: RawOperation[];
  when?: NonNullable<RawRule['when']>;
  usesHttp: boolean;
}

export interface AuthorizationPolicy {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  action: 'ALLOW' | 'DENY';
  /** empty when the policy has no `rules` (ALLOW: allow-nothing) */
  rules: readonly L4Rule[];
  /** HTTP-only fields the policy uses (empty when it is pure L4), e.g. "rules[0].to[0].operation.methods" */
  httpFields: readonly string[];
  /** `istio.io/dry-run: "true"`: evaluated and reported, not enforced */
  dryRun: boolean;
  /** set on the stand-in for a policy that failed to parse (see failClosedPolicy): why, naming the field */
  invalid?: string;
  /** the policy attaches by targetRef(s): it is for a waypoint, and the node agent does not apply it */
  targeted: boolean;
}

const invalid = (message: string): WarrenError => new WarrenError('ERR_POLICY_INVALID', message);

/** Istio's proto semantics: an empty list is the same as no list. */
function setOnly<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!(Array.isArray(v) && v.length === 0)) out[k] = v;
  return out as T;
}
const portText = (p: string): string => String(Number(p));
const nonEmpty = <T>(xs: T[] | undefined): T[] | undefined => (xs === undefined || xs.length === 0 ? undefined : xs);

const splitAccounts = (xs: string[], namespace: string): ServiceAccount[] =>
  xs.map((x) => {
    const at = x.indexOf('/');
    return at < 0 ? { namespace, name: x } : { namespace: x.slice(0, at), name: x.slice(at + 1) };
  });

/** Istio's validation rules that a schema cannot say: no empty source or operation, a `when` with values, known keys. */
function checkRule(r: RawRule, i: number): void {
  r.from?.forEach((f, j) => {
    const s = setOnly(f.source);
    if (Object.keys(s).length === 0) throw invalid(`spec.rules.${i}.from.${j}.source: must not be empty`);
    if ((s.serviceAccounts || s.notServiceAccounts) && (s.principals || s.notPrincipals || s.namespaces || s.notNamespaces))
      throw invalid(`spec.rules.${i}.from.${j}.source.serviceAccounts: cannot be set with namespaces or principals`);
  });
  r.to?.forEach((t, j) => {
    if (Object.keys(setOnly(t.operation)).length === 0) throw invalid(`spec.rules.${i}.to.${j}.operation: must not be empty`);
  });
  r.when?.forEach((w, j) => {
    const at = `spec.rules.${i}.when.${j}`;
    if (!L4_WHEN_KEYS.has(w.key) && !HTTP_WHEN_KEY.test(w.key)) throw invalid(`${at}.key: unknown attribute ${JSON.stringify(w.key)}`);
    if (nonEmpty(w.values) === undefined && nonEmpty(w.notValues) === undefined) throw invalid(`${at}: at least one of values or notValues must be set`);
    const check = w.key.endsWith('.ip') ? isBlock : w.key === 'destination.port' ? isPort : undefined;
    for (const field of ['values', 'notValues'] as const) {
      const bad = check === undefined ? -1 : (w[field] ?? []).findIndex((v) => !check(v));
      if (bad >= 0) throw invalid(`${at}.${field}.${bad}: ${JSON.stringify(w[field]![bad])} is not ${check === isPort ? 'a port number 1-65535' : 'an IP address or CIDR block'}`);
    }
  });
}

/** Go's strconv.ParseBool, as istiod reads the annotation; anything else is refused rather than guessed. */
function parseDryRun(annotations: Record<string, string> | undefined): boolean {
  const v = annotations?.[DRY_RUN_ANNOTATION];
  if (v === undefined) return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw invalid(`metadata.annotations.${DRY_RUN_ANNOTATION}: ${JSON.stringify(v)} is not true or false`);
}

/**
 * Parses one API object; throws ERR_POLICY_INVALID naming the bad field:
 * unknown fields anywhere in the spec (a typo must not turn a rule into
 * match-all), empty values, and what Istio's validation refuses. AUDIT and
 * CUSTOM are not L4 decisions and are refused.
 */
export function parseAuthorizationPolicy(obj: unknown): AuthorizationPolicy {
  const parsed = policySchema.safeParse(obj);
  if (!parsed.success) throw invalid(describeIssue(parsed.error));
  const { metadata, spec } = parsed.data;
  if (spec.action === 'AUDIT' || spec.action === 'CUSTOM') throw invalid(`spec.action: ${spec.action} is not supported by warren`);
  if (spec.provider !== undefined) throw invalid('spec.provider: only for CUSTOM, which warren does not support');
  const dryRun = parseDryRun(metadata.annotations);
  const targeted = spec.targetRef !== undefined || nonEmpty(spec.targetRefs) !== undefined;
  if (targeted && spec.selector !== undefined) throw invalid('spec.selector: cannot be set with targetRef or targetRefs');
  const httpFields: string[] = [];
  const rules = (spec.rules ?? []).map((r, i): L4Rule => {
    checkRule(r, i);
    const before = httpFields.length;
    const from = nonEmpty(r.from)?.map((f, j): Source => {
      const s = setOnly(f.source);
      HTTP_ONLY_FIELDS.forEach((k) => k in s && httpFields.push(`rules[${i}].from[${j}].source.${k}`));
      const { serviceAccounts: sa, notServiceAccounts: notSa, ...rest } = s;
      return { ...rest, ...(sa ? { serviceAccounts: splitAccounts(sa, metadata.namespace) } : {}), ...(notSa ? { notServiceAccounts: splitAccounts(notSa, metadata.namespace) } : {}) };
    });
    const to = nonEmpty(r.to)?.map((t, j) => {
      const o = setOnly(t.operation);
      HTTP_ONLY_FIELDS.forEach((k) => k in o && httpFields.push(`rules[${i}].to[${j}].operation.${k}`));
      // 8080 and 08080 are the same port: compared as the number's text
      return { ...o, ...(o.ports ? { ports: o.ports.map(portText) } : {}), ...(o.notPorts ? { notPorts: o.notPorts.map(portText) } : {}) };
    });
    const when = nonEmpty(r.when)?.map((w, j) => {
      if (!L4_WHEN_KEYS.has(w.key)) httpFields.push(`rules[${i}].when[${j}].key=${w.key}`);
      const norm = (vs: string[] | undefined): string[] | undefined => (w.key === 'destination.port' ? nonEmpty(vs)?.map(portText) : nonEmpty(vs));
      return setOnly({ key: w.key, values: norm(w.values), notValues: norm(w.notValues) });
    });
    return { ...(from ? { from } : {}), ...(to ? { to } : {}), ...(when ? { when } : {}), usesHttp: httpFields.length > before };
  });
  const labels = spec.selector?.matchLabels;
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    ...(labels !== undefined && Object.keys(labels).length > 0 ? { selector: labels } : {}),
    action: spec.action,
    rules,
    httpFields,
    dryRun,
    targeted,
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
 * `no-allow-match` ALLOW policies apply (listed) but none of their rules match;
 * `invalid-policy` a policy that applies could not be parsed, so it denies
 * everything it selects until it is fixed.
 */
export type EnforcedDecision =
  | { allow: true; basis: 'no-allow-policy'; reason: string }
  | { allow: true; basis: 'allow-rule'; policy: string; rule: number; reason: string }
  | { allow: false; basis: 'deny-rule'; policy: string; rule: number; http: boolean; reason: string }
  | { allow: false; basis: 'no-allow-match'; allowPolicies: readonly string[]; reason: string }
  | { allow: false; basis: 'invalid-policy'; policy: string; reason: string };

/**
 * The decision enforced and, when a dry-run policy applies to the
 * destination, `dryRun`: the decision were the dry-run policies enforced
 * too (what removing the annotation would do), for logs and metrics only.
 */
export type AuthzDecision = EnforcedDecision & { dryRun?: EnforcedDecision };

/** The policy (or ALLOW policies, comma-separated) a denial is owed to, for logs and access log lines. */
export function denyingPolicy(d: AuthzDecision): string | undefined {
  if (d.allow) return undefined;
  return d.basis === 'no-allow-match' ? d.allowPolicies.join(',') : d.policy;
}

/** Istio's string match, in istiod's order: "*" (present), "*suffix", "prefix*", exact. */
export const matchString = (pattern: string, value: string): boolean =>
  pattern === '*' ? value !== '' : pattern.startsWith('*') ? value.endsWith(pattern.slice(1)) : pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;

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
  /** the principal's namespace; '' for plaintext */
  namespace: string;
  /** the principal's service account, derived on first use (few policies name one) */
  serviceAccount: string | undefined;
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
  return { r, principal, namespace: end < 0 ? '' : principal.slice(at + 4, end), serviceAccount: undefined, port: String(r.destination.port), parsedIp: undefined, parsed: undefined };
}

function whenValue(key: string, f: Facts): string | undefined {
  switch (key) {
    case 'source.ip':
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

/** How a condition compares: IP blocks, Istio strings, or Istio strings against a principal, which a plaintext client never has (ztunnel). */
type Kind = 'ip' | 'text' | 'principal';

function note(trace: Trace, section: string, j: number, name: string, negated: boolean, patterns: unknown, hit: boolean, value: string): void {
  const field = section === 'when' ? `when[${j}].${negated ? 'notValues' : 'values'} (${name})` : `${section}[${j}].${name}`;
  trace!.push(`${field} ${JSON.stringify(patterns)} ${hit ? 'matched' : 'did not match'} ${value === '' ? '(none: plaintext)' : value}`);
}

/**
 * One condition: `patterns` (absent: no condition) against `value`; a
 * `negated` field (notPrincipals, notValues…) holds when nothing matches.
 * The note is only built when tracing.
 */
function condition(kind: Kind, patterns: readonly string[] | undefined, negated: boolean, value: string, f: Facts, trace: Trace, section: string, j: number, name: string): boolean {
  if (patterns === undefined) return true;
  const hit = kind === 'ip' ? inBlocks(patterns, addressOf(f, value)) : kind === 'principal' && value === '' ? false : matchAny(patterns, value);
  if (trace !== undefined) note(trace, section, j, name, negated, patterns, hit, value);
  return hit !== negated;
}

/** serviceAccounts: the principal's namespace and account, whatever its trust domain (as ztunnel); never a plaintext client. */
function accountCondition(accounts: readonly ServiceAccount[] | undefined, negated: boolean, f: Facts, trace: Trace, j: number, name: string): boolean {
  if (accounts === undefined) return true;
  if (f.serviceAccount === undefined) {
    const at = f.principal.indexOf('/sa/', f.principal.indexOf('/ns/') + 4);
    f.serviceAccount = at < 0 ? '' : f.principal.slice(at + 4);
  }
  let hit = false;
  if (f.principal !== '') for (const a of accounts) if (a.namespace === f.namespace && a.name === f.serviceAccount) hit = true;
  if (trace !== undefined) note(trace, 'from', j, name, negated, accounts.map((a) => `${a.namespace}/${a.name}`), hit, f.principal === '' ? '' : `${f.namespace}/${f.serviceAccount}`);
  return hit !== negated;
}

function fromMatches(rule: L4Rule, f: Facts, trace: Trace): boolean {
  if (rule.from === undefined) return true;
  const ip = f.r.source.ip;
  for (let j = 0; j < rule.from.length; j++) {
    const s = rule.from[j]!;
    if (
      condition('ip', s.ipBlocks, false, ip, f, trace, 'from', j, 'source.ipBlocks') &&
      condition('ip', s.notIpBlocks, true, ip, f, trace, 'from', j, 'source.notIpBlocks') &&
      condition('principal', s.principals, false, f.principal, f, trace, 'from', j, 'source.principals') &&
      condition('principal', s.notPrincipals, true, f.principal, f, trace, 'from', j, 'source.notPrincipals') &&
      condition('text', s.namespaces, false, f.namespace, f, trace, 'from', j, 'source.namespaces') &&
      condition('text', s.notNamespaces, true, f.namespace, f, trace, 'from', j, 'source.notNamespaces') &&
      accountCondition(s.serviceAccounts, false, f, trace, j, 'source.serviceAccounts') &&
      accountCondition(s.notServiceAccounts, true, f, trace, j, 'source.notServiceAccounts')
    )
      return true;
  }
  return false;
}

function toMatches(rule: L4Rule, f: Facts, trace: Trace): boolean {
  if (rule.to === undefined) return true;
  for (let j = 0; j < rule.to.length; j++) {
    const o = rule.to[j]!;
    if (condition('text', o.ports, false, f.port, f, trace, 'to', j, 'operation.ports') && condition('text', o.notPorts, true, f.port, f, trace, 'to', j, 'operation.notPorts')) return true;
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
    const kind: Kind = w.key.endsWith('.ip') ? 'ip' : w.key === 'source.principal' ? 'principal' : 'text';
    if (!condition(kind, w.values, false, value, f, trace, 'when', j, w.key) || !condition(kind, w.notValues, true, value, f, trace, 'when', j, w.key)) return false;
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
  decisions: readonly EnforcedDecision[];
}
interface Lists {
  deny: Indexed[];
  allow: Indexed[];
}
/** A namespace's enforced policies, and with its dry-run policies (`dry`) all of them in order, when it has any. */
interface Bucket extends Lists {
  withDryRun?: Lists & { dry: Indexed[] };
}

function decisionsOf(policy: AuthorizationPolicy, ref: string): EnforcedDecision[] {
  if (policy.invalid !== undefined) return [{ allow: false, basis: 'invalid-policy', policy: ref, reason: `denied: AuthorizationPolicy ${ref} is invalid (${policy.invalid}); it denies everything it selects until fixed` }];
  return policy.rules.map((rule, i): EnforcedDecision =>
    policy.action === 'DENY'
      ? { allow: false, basis: 'deny-rule', policy: ref, rule: i, http: rule.usesHttp, reason: `denied by AuthorizationPolicy ${ref} rule ${i}${rule.usesHttp ? ' (its HTTP fields are not visible at L4: the L4 part alone denies)' : ''}` }
      : { allow: true, basis: 'allow-rule', policy: ref, rule: i, reason: `allowed by AuthorizationPolicy ${ref} rule ${i}` },
  );
}

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
  const all = new Map<string, Lists & { dry: Indexed[] }>();
  for (const policy of policies) {
    if (policy.targeted) continue; // a waypoint's policy, never a namespace policy of the node agent
    const ref = `${policy.namespace}/${policy.name}`;
    const entry = { policy, ref, decisions: decisionsOf(policy, ref) };
    let bucket = byNamespace.get(policy.namespace);
    if (bucket === undefined) byNamespace.set(policy.namespace, (bucket = { deny: [], allow: [] }));
    let every = all.get(policy.namespace);
    if (every === undefined) all.set(policy.namespace, (every = { deny: [], allow: [], dry: [] }));
    const list = policy.action === 'DENY' ? 'deny' : 'allow';
    every[list].push(entry);
    if (policy.dryRun) every.dry.push(entry);
    else bucket[list].push(entry);
  }
  for (const [namespace, every] of all) if (every.dry.length > 0) byNamespace.get(namespace)!.withDryRun = every;
  index = byNamespace;
  indexes.set(policies, index);
  return index;
}

const applies = (e: Indexed, f: Facts): boolean => e.policy.selector === undefined || selectorMatches(e.policy.selector, f.r.destination.labels);

/** The decision of the first matching rule of the policies that apply, or how many applied when none matched. */
function firstMatch(entries: readonly Indexed[] | undefined, f: Facts, action: 'ALLOW' | 'DENY'): EnforcedDecision | number {
  if (entries === undefined) return 0;
  let applied = 0;
  for (const e of entries) {
    if (!applies(e, f)) continue;
    applied++;
    if (e.policy.invalid !== undefined) return e.decisions[0]!;
    const rules = e.policy.rules;
    for (let i = 0; i < rules.length; i++) if (ruleMatches(rules[i]!, f, action)) return e.decisions[i]!;
  }
  return applied;
}

const NO_ALLOW_POLICY: EnforcedDecision = Object.freeze({ allow: true, basis: 'no-allow-policy', reason: 'no ALLOW policy applies to the destination' });

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
  const d = decide(mesh, local, f);
  const meshDry = mesh?.withDryRun;
  const localDry = local?.withDryRun;
  if (meshDry === undefined && localDry === undefined) return d;
  if (!(meshDry?.dry.some((e) => applies(e, f)) || localDry?.dry.some((e) => applies(e, f)))) return d;
  return { ...d, dryRun: decide(meshDry ?? mesh, localDry ?? local, f) };
}

/** DENY first (mesh-wide, then the namespace's), then ALLOW, over one set of lists (enforced, or with dry-run). */
function decide(mesh: Lists | undefined, local: Lists | undefined, f: Facts): EnforcedDecision {
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
  /** why it does not apply, that it has no rules, is invalid or is a dry run */
  note?: string;
  /** `istio.io/dry-run`: evaluated for the dry-run decision only */
  dryRun?: boolean;
  rules: RuleTrace[];
}

export interface AuthzExplanation {
  decision: AuthzDecision;
  /** the root namespace's and the destination namespace's policies, DENY first, each rule traced */
  evaluated: PolicyTrace[];
}

function tracePolicy(e: Indexed, f: Facts): PolicyTrace {
  const { policy: p, ref: policy } = e;
  const dry = p.dryRun ? { dryRun: true } : {};
  if (!applies(e, f)) return { policy, action: p.action, applies: false, note: `selector ${JSON.stringify(p.selector)} does not match the destination's labels`, ...dry, rules: [] };
  if (p.invalid !== undefined) return { policy, action: p.action, applies: true, note: `invalid (${p.invalid}): denies everything it selects until fixed`, ...dry, rules: [] };
  const rules = p.rules.map((rule, i): RuleTrace => {
    const conditions: string[] = [];
    const matched = ruleMatches(rule, f, p.action, conditions);
    if (!rule.usesHttp) return { rule: i, matched, conditions };
    const fields = p.httpFields.filter((x) => x.startsWith(`rules[${i}].`)).join(', ');
    const http = p.action === 'ALLOW' ? `HTTP fields (${fields}) need a waypoint: at L4 this ALLOW rule matches nothing` : `HTTP fields (${fields}) are not visible at L4: this DENY rule denies whatever its L4 part matches`;
    return { rule: i, matched, conditions, http };
  });
  const notes = [...(p.rules.length > 0 ? [] : [p.action === 'ALLOW' ? 'no rules: allows nothing' : 'no rules: denies nothing']), ...(p.dryRun ? ['dry run: evaluated and reported, not enforced'] : [])];
  return { policy, action: p.action, applies: true, ...(notes.length > 0 ? { note: notes.join('; ') } : {}), ...dry, rules };
}

/**
 * `authorize` with its working shown, for `warren policies explain`: the
 * same decision, plus every policy of the root and destination namespaces
 * (dry-run ones too, marked) with each rule's conditions as compared. Not for the connection path.
 */
export function explainAuthorization(policies: readonly AuthorizationPolicy[], rootNamespace: string, r: L4Request): AuthzExplanation {
  const buckets = [meshBucket(policies, rootNamespace), localBucket(policies, rootNamespace, r.destination.namespace)];
  const f = factsOf(r);
  const lists = buckets.map((b) => b?.withDryRun ?? b);
  const evaluated = [...lists.flatMap((b) => b?.deny ?? []), ...lists.flatMap((b) => b?.allow ?? [])].map((e) => tracePolicy(e, f));
  return { decision: authorize(policies, rootNamespace, r), evaluated };
}

/**
 * What stands in for an AuthorizationPolicy that failed to parse: a DENY
 * of everything it selects (its selector if that much is readable, else
 * its whole namespace), so a typo never widens access, whether the policy
 * was an ALLOW or a DENY. Not kept from a last good version: every agent,
 * restarted or not, must enforce the same thing for the same object. A
 * policy with targetRef(s) stays the waypoint's, and dry-run stays dry-run.
 */
export function failClosedPolicy(obj: unknown, message: string): AuthorizationPolicy | undefined {
  const o = obj as { metadata?: { name?: unknown; namespace?: unknown; annotations?: Record<string, string> }; spec?: { selector?: unknown; targetRef?: unknown; targetRefs?: unknown } } | null;
  const { name, namespace, annotations } = o?.metadata ?? {};
  if (typeof name !== 'string' || typeof namespace !== 'string') return undefined;
  const selector = selectorSchema.safeParse(o?.spec?.selector);
  const labels = selector.success ? selector.data.matchLabels : undefined;
  const refs = o?.spec?.targetRefs;
  let dryRun = false;
  try {
    dryRun = parseDryRun(annotations);
  } catch {
    // a malformed annotation: enforced, the stricter reading
  }
  return {
    namespace,
    name,
    ...(labels !== undefined && Object.keys(labels).length > 0 ? { selector: labels } : {}),
    action: 'DENY',
    rules: [],
    httpFields: [],
    dryRun,
    invalid: message,
    targeted: (typeof o?.spec?.targetRef === 'object' && o.spec.targetRef !== null) || (Array.isArray(refs) && refs.length > 0),
  };
}
