/**
 * Per-connection cost of L4 authorization (src/policy/authorization.ts) with
 * 1, 100 and 1000 AuthorizationPolicies in the cluster: a realistic mix over
 * 50 namespaces (namespace-wide and selector policies; principals,
 * namespaces, ipBlocks, ports and `when` conditions; a few mesh-wide ones in
 * the root namespace), of which only a few apply to the destination. The
 * baseline, in the same run, is the same request against only the policies
 * that apply to it: what the rest of the cluster's policies add per connection.
 * With WARREN_BENCH_BASELINE_DIST=<another build's dist/>, that build's
 * parser and authorize() run interleaved in the same run (e.g. the commit
 * before a parser change: what the change costs per connection and per policy).
 */
import { execa } from 'execa';
import * as current from '../src/policy/authorization.js';
import { authorize, explainAuthorization, parseAuthorizationPolicy, type AuthorizationPolicy, type L4Request } from '../src/policy/authorization.js';

type AuthzModule = Pick<typeof current, 'authorize' | 'parseAuthorizationPolicy'>;

const ROOT = 'warren-system';
const NAMESPACES = 50;

/** Policy i lives in ns-(i % 50); its kind cycles every 50 policies, so each namespace gets every kind. */
function policySet(n: number, parse: (o: unknown) => AuthorizationPolicy = parseAuthorizationPolicy): AuthorizationPolicy[] {
  return policyObjects(n).map(parse);
}

export function policyObjects(n: number): object[] {
  return Array.from({ length: n }, (_, i) => {
    const m = Math.floor(i / NAMESPACES);
    const ns = i % 250 === 249 ? ROOT : `ns-${i % NAMESPACES}`;
    const selector = { matchLabels: { app: `app-${Math.floor(m / 5)}` } };
    const peer = (k: number): string => `ns-${(i + k) % NAMESPACES}`;
    const specs = [
      { selector, rules: [{ from: [{ source: { principals: ['cluster.local/ns/ns-7/sa/sa-7', `cluster.local/ns/${peer(3)}/sa/*`] } }], to: [{ operation: { ports: ['8080', '8443'] } }] }] },
      { rules: [{ from: [{ source: { namespaces: [peer(1), peer(2)] } }], to: [{ operation: { ports: ['8080'] } }] }] },
      { selector, action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['192.168.0.0/16', '172.16.0.0/12'] } }] }] },
      { rules: [{ when: [{ key: 'source.namespace', values: [peer(4), 'ns-7'] }, { key: 'destination.port', notValues: ['9090'] }] }] },
      { selector, action: 'DENY', rules: [{ from: [{ source: { notNamespaces: Array.from({ length: 10 }, (_, k) => `ns-${k}`) } }], to: [{ operation: { notPorts: ['15021'] } }] }] },
    ];
    const spec = ns === ROOT ? { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['203.0.113.0/24'] } }] }] } : specs[m % specs.length];
    return { metadata: { namespace: ns, name: `policy-${i}` }, spec };
  });
}

const destination = { namespace: 'ns-0', labels: { app: 'app-0', 'pod-template-hash': '7d9f8c6b5' }, ip: '10.0.0.9', port: 8080 };
const REQUESTS: Record<string, L4Request> = {
  'allowed (mTLS, an ALLOW rule matches)': { source: { ip: '10.7.0.5', principal: 'spiffe://cluster.local/ns/ns-7/sa/sa-7' }, destination },
  'denied (plaintext, no ALLOW rule matches)': { source: { ip: '10.99.0.1' }, destination },
};

const applicable = (policies: readonly AuthorizationPolicy[]): AuthorizationPolicy[] =>
  policies.filter((p) => (p.namespace === ROOT || p.namespace === destination.namespace) && Object.entries(p.selector ?? {}).every(([k, v]) => destination.labels[k as 'app'] === v));

export interface Timing {
  /** median over short timed batches of ns per call */
  p50Ns: number;
  /** 1e9 / p50: one core's rate, without the preemptions a shared machine adds to a mean */
  opsPerSecond: number;
}

/**
 * Times each function in short batches (~50 µs, so that most batches run
 * unpreempted on a busy machine), the functions interleaved round by round
 * so that a noisy stretch hits all of them; per function the median ns/call.
 */
function timeInterleaved(fns: Record<string, () => boolean>, rounds = 20, batchesPerRound = 40): Record<string, Timing> {
  let sink = 0;
  const perBatch = Object.fromEntries(
    Object.entries(fns).map(([k, fn]) => {
      for (let i = 0; i < 1000; i++) if (fn()) sink++; // warm-up, so the calibration sees optimized code
      let n = 0;
      const t = process.hrtime.bigint();
      for (; process.hrtime.bigint() - t < 50_000n; n++) if (fn()) sink++;
      return [k, Math.max(1, n)];
    }),
  );
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [k, fn] of Object.entries(fns)) {
      const n = perBatch[k]!;
      for (let b = 0; b < batchesPerRound; b++) {
        const t = process.hrtime.bigint();
        for (let i = 0; i < n; i++) if (fn()) sink++;
        samples[k]!.push(Number(process.hrtime.bigint() - t) / n);
      }
    }
  }
  if (sink < 0) throw new Error('unreachable');
  return Object.fromEntries(
    Object.entries(samples).map(([k, xs]) => {
      xs.sort((a, b) => a - b);
      const p50Ns = xs[Math.floor(xs.length / 2)]!;
      return [k, { p50Ns, opsPerSecond: 1e9 / p50Ns }];
    }),
  );
}

export interface PolicyEvalRow {
  policies: number;
  applicable: number;
  request: string;
  authorize: Timing;
  /** the same request against only the applicable policies (baseline) */
  applicableOnly: Timing;
  explain: Timing;
  /** authorize() of the WARREN_BENCH_BASELINE_DIST build, same policies and request */
  baselineBuild?: Timing;
}

export interface PolicyEvalResult {
  rows: PolicyEvalRow[];
  /** parseAuthorizationPolicy per policy of the 1000-policy set (once per policy change, not per connection) */
  parse: Timing;
  /** the commit measured (`git describe --always --dirty` of this tree) */
  commit: string;
  baselineBuild?: { dist: string; commit: string; parse: Timing };
}

const commitOf = async (dir: string): Promise<string> => (await execa('git', ['describe', '--always', '--dirty'], { cwd: dir, reject: false })).stdout || 'unknown';

async function baselineModule(): Promise<{ dist: string; m: AuthzModule } | undefined> {
  const dist = process.env.WARREN_BENCH_BASELINE_DIST;
  if (!dist) return undefined;
  return { dist, m: (await import(`${dist.replace(/\/$/, '')}/src/policy/authorization.js`)) as AuthzModule };
}

export async function benchPolicyEval(): Promise<PolicyEvalResult> {
  const base = await baselineModule();
  const rows: PolicyEvalRow[] = [];
  for (const n of [1, 100, 1000]) {
    const all = policySet(n);
    const few = applicable(all);
    const baseAll = base === undefined ? undefined : policySet(n, (o) => base.m.parseAuthorizationPolicy(o));
    for (const [name, request] of Object.entries(REQUESTS)) {
      const expected = authorize(few, ROOT, request).allow;
      if (authorize(all, ROOT, request).allow !== expected) throw new Error(`${n} policies: the decision depends on policies that do not apply`);
      if (baseAll !== undefined && base!.m.authorize(baseAll, ROOT, request).allow !== expected) throw new Error(`${n} policies: the baseline build decides otherwise`);
      const t = timeInterleaved({
        authorize: () => authorize(all, ROOT, request).allow,
        applicableOnly: () => authorize(few, ROOT, request).allow,
        explain: () => explainAuthorization(all, ROOT, request).decision.allow,
        ...(baseAll === undefined ? {} : { baselineBuild: () => base!.m.authorize(baseAll, ROOT, request).allow }),
      });
      rows.push({ policies: n, applicable: few.length, request: name, authorize: t.authorize!, applicableOnly: t.applicableOnly!, explain: t.explain!, ...(t.baselineBuild ? { baselineBuild: t.baselineBuild } : {}) });
    }
  }
  const objects = policyObjects(1000);
  let i = 0;
  let j = 0;
  const p = timeInterleaved(
    {
      parse: () => parseAuthorizationPolicy(objects[i++ % objects.length]).rules.length > 0,
      ...(base === undefined ? {} : { baselineBuild: () => base.m.parseAuthorizationPolicy(objects[j++ % objects.length]).rules.length > 0 }),
    },
    10,
    20,
  );
  const commit = await commitOf(new URL('.', import.meta.url).pathname);
  const baselineBuild = base === undefined ? {} : { baselineBuild: { dist: base.dist, commit: await commitOf(base.dist), parse: p.baselineBuild! } };
  return { rows, parse: p.parse!, commit, ...baselineBuild };
}
