import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, loadYaml, setHeaderOptions, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { planTopology } from '../../src/sim/topology/plan.js';
import { readAccessLog } from '../../src/telemetry/access-log-file.js';
import { eventually } from '../helpers/apiserver.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { rootTest } from '../helpers/root.js';
import { warren } from '../helpers/warren-cli.js';
import { connectionOutcome, netnsOf } from '../helpers/sim-pods.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const GROUP = { group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies' };

/** A pod of the manifest: its containers run the simulator's stand-ins (tcp-echo on each port, http-echo, or sleep). */
const pod = (ns: string, name: string, node: string, sa: string, labels: string, image: string, ports: number[]): string => `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}${labels ? `, labels: {${labels}}` : ''}}
spec:
  nodeName: ${node}
  serviceAccountName: ${sa}
  containers:
${ports.length === 0 ? `  - {name: c, image: ${image}}` : ports.map((p) => `  - {name: c${p}, image: ${image}, ports: [{containerPort: ${p}}], readinessProbe: {tcpSocket: {port: ${p}}, periodSeconds: 1}}`).join('\n')}`;

// The workloads of Istio's authorization docs: tcp-echo listening on 9000, 9001 and 9002
// (and 8080 for the reference's port example) with sleep beside it in foo; httpbin and
// sleep in bar; the ambient L4 page's httpbin, sleep and another client in ambient-demo;
// and a client outside the mesh.
const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: foo, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: bar, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ambient-demo, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
${pod('foo', 'tcp-echo', 'node-2', 'tcp-echo', 'app: tcp-echo', 'istio/tcp-echo-server', [9000, 9001, 9002, 8080])}
${pod('foo', 'sleep', 'node-1', 'sleep', 'app: sleep', 'curlimages/curl', [])}
${pod('bar', 'sleep', 'node-1', 'sleep', 'app: sleep', 'curlimages/curl', [])}
${pod('bar', 'httpbin', 'node-2', 'httpbin', 'app: httpbin', 'kennethreitz/httpbin', [8000])}
${pod('ambient-demo', 'httpbin', 'node-2', 'httpbin', 'app: httpbin', 'kennethreitz/httpbin', [8000])}
${pod('ambient-demo', 'sleep', 'node-1', 'sleep', 'app: sleep', 'curlimages/curl', [])}
${pod('ambient-demo', 'notsleep', 'node-1', 'notsleep', 'app: notsleep', 'curlimages/curl', [])}
${pod('legacy', 'sleep', 'node-1', 'default', '', 'curlimages/curl', [])}
`;

/**
 * Istio's documented examples, copied as published; the test changes only the apiVersion
 * line (security.istio.io → security.warren.io). A document without a namespace is
 * applied in the namespace the page applies it to (kubectl -n).
 */
const ISTIO_DOCS = {
  // https://istio.io/latest/docs/reference/config/security/authorization-policy/
  allowNothing: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
 name: allow-nothing
 namespace: foo
spec:
  {}
`,
  },
  allowAll: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
 name: allow-all
 namespace: foo
spec:
 rules:
 - {}
`,
  },
  allowNothingHttpbin: {
    namespace: 'bar',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: bar
spec:
  selector:
    matchLabels:
      app: httpbin
`,
  },
  denyPost8080: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: foo
spec:
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["POST"]
        ports: ["8080"]
`,
  },
  // https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/
  tcpAllowPorts: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: tcp-policy
  namespace: foo
spec:
  selector:
    matchLabels:
      app: tcp-echo
  action: ALLOW
  rules:
  - to:
    - operation:
        ports: ["9000", "9001"]
`,
  },
  tcpAllowGet: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: tcp-policy
  namespace: foo
spec:
  selector:
    matchLabels:
      app: tcp-echo
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: ["GET"]
        ports: ["9000"]
`,
  },
  tcpDenyGet: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: tcp-policy
  namespace: foo
spec:
  selector:
    matchLabels:
      app: tcp-echo
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["GET"]
`,
  },
  tcpDenyGet9000: {
    namespace: 'foo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: tcp-policy
  namespace: foo
spec:
  selector:
    matchLabels:
      app: tcp-echo
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["GET"]
        ports: ["9000"]
`,
  },
  // https://istio.io/latest/docs/ambient/usage/l4-policy/ (applied in ambient-demo; the
  // page's blocks end with a stray heredoc "EOF" line, which is not part of the policy).
  ambientL4: {
    namespace: 'ambient-demo',
    yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
 name: allow-sleep-to-httpbin
spec:
 selector:
   matchLabels:
     app: httpbin
 action: ALLOW
 rules:
 - from:
   - source:
       principals:
       - cluster.local/ns/ambient-demo/sa/sleep
`,
  },
  ambientL7: {
    namespace: 'ambient-demo',
    yaml: `apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
 name: allow-sleep-to-httpbin
spec:
 selector:
   matchLabels:
     app: httpbin
 action: ALLOW
 rules:
 - from:
   - source:
       principals:
       - cluster.local/ns/ambient-demo/sa/sleep
   to:
   - operation:
       methods: ["GET"]
`,
  },
} as const;
type DocExample = (typeof ISTIO_DOCS)[keyof typeof ISTIO_DOCS];

/** warren's own policies for what the docs have no L4 example of (root namespace, ipBlocks, `when`, relabeling, live connections). */
const OWN: Record<string, object> = {
  'deny-all': { metadata: { name: 'deny-all', namespace: 'warren-system' }, spec: { action: 'DENY', rules: [{}] } },
  'deny-ip': { metadata: { name: 'deny-ip', namespace: 'foo' }, spec: { selector: { matchLabels: { app: 'tcp-echo' } }, action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['LEGACY_IP'] } }] }] } },
  'when-namespace': { metadata: { name: 'when-namespace', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ when: [{ key: 'source.namespace', values: ['bar'] }] }] } },
  'sleep-9001': {
    metadata: { name: 'sleep-9001', namespace: 'foo' },
    spec: { selector: { matchLabels: { app: 'tcp-echo' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/bar/sa/sleep'] } }], to: [{ operation: { ports: ['9001'] } }] }] },
  },
  'deny-locked': { metadata: { name: 'deny-locked', namespace: 'foo' }, spec: { selector: { matchLabels: { locked: 'yes' } }, action: 'DENY', rules: [{}] } },
  'http-get-only': { metadata: { name: 'http-get-only', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['bar'] } }], to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }] }] } },
  // Not Istio's: an ALLOW the CRD schema accepts and the agent refuses (an empty value, as Istio's validation does).
  'invalid-allow': { metadata: { name: 'invalid-allow', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['bar', ''] } }] }] } },
};

for (const dataplane of testDataplanes())
rootTest(`AuthorizationPolicy at L4 (--dataplane ${dataplane}): Istio's documented examples, only apiVersion changed; refusals are resets logged as denied; live connections closed on a new DENY`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-authz-`);
  try {
    const kc = await simClusterWith(stateDir, 16546, MANIFEST, dataplane);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const NAMESPACES = ['foo', 'bar', 'ambient-demo', 'legacy'];
    const pods = async (): Promise<V1Pod[]> => (await Promise.all(NAMESPACES.map((namespace) => core.listNamespacedPod({ namespace })))).flatMap((l) => l.items);
    await eventually(
      async () => (await pods()).every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && (p.metadata?.namespace === 'legacy' || p.metadata?.annotations?.['warren.io/redirection'] === 'enabled')),
      'pods ready and enrolled',
      90_000,
    );
    const byRef = new Map((await pods()).map((p) => [`${p.metadata!.namespace}/${p.metadata!.name}`, p]));
    const podOf = (ref: string): V1Pod => byRef.get(ref) ?? assert.fail(`no pod ${ref}`);
    const plan = planTopology(stateDir, ['node-1', 'node-2']);
    const nodeOf = (ref: string) => plan.nodes.find((n) => n.name === podOf(ref).spec!.nodeName)!;
    const legacyIp = podOf('legacy/sleep').status!.podIP!;

    /** The destination agent's own answer for from → to:port (its admin API): the positive signal that it holds the policy state under test. */
    const explain = async (from: string, to: string, port: number): Promise<{ decision: string }> => {
      const res = await httpGetInNetns({ netns: nodeOf(to).netns, host: '127.0.0.1', port: 15000, path: `/explain?from=${encodeURIComponent(from)}&to=${encodeURIComponent(`${to}:${port}`)}` });
      assert.equal(res.status, 200, res.body.toString());
      return JSON.parse(res.body.toString()) as { decision: string };
    };

    /**
     * from → to:port is allowed or denied. First the destination agent settles (its
     * explain gives the expected decision), then one real connection: allowed answers;
     * denied is a reset, and the destination agent logs `outcome: denied` naming `policy`
     * (the DENY policy, or the ALLOW policies none of whose rules matched).
     */
    const expectDecision = async (from: string, to: string, port: number, want: 'allow' | 'deny', policy?: string): Promise<void> => {
      const what = `${from} → ${to}:${port} ${want}${policy ? ` by ${policy}` : ''}`;
      await eventually(async () => (await explain(from, to, port)).decision === want, `${what}: the destination agent to hold that policy state`);
      const log = agentPaths(nodeOf(to)).log;
      const linesBefore = (await readAccessLog(log)).length;
      const outcome = await connectionOutcome(netnsOf(podOf(from)), podOf(to).status!.podIP!, port);
      assert.equal(outcome, want === 'allow' ? 'ok' : 'reset', what);
      if (want === 'allow') return;
      const srcIp = podOf(from).status!.podIP!;
      await eventually(
        async () =>
          (await readAccessLog(log))
            .slice(linesBefore)
            .some((e) => e.reporter === 'destination' && e.outcome === 'denied' && e.src.ip === srcIp && e.dst.port === port && (policy === undefined || (e.policy ?? '').split(',').includes(policy))),
        `${what}: the destination agent's access log line with outcome denied`,
        5000,
      );
    };

    /** kubectl apply of a documented example (apiVersion changed, nothing else): create, or replace the one of that name. */
    const applyDoc = async (doc: DocExample): Promise<string> => {
      const text = doc.yaml.replace(/^apiVersion: security\.istio\.io\/v1(beta1)?$/m, 'apiVersion: security.warren.io/v1');
      const obj = loadYaml<KubernetesObject>(text);
      obj.metadata = { ...obj.metadata, namespace: obj.metadata?.namespace ?? doc.namespace };
      // The agents write the policy's status, which moves its resourceVersion: like kubectl,
      // a replace that meets a 409 reads again and retries (a few times, then fails).
      for (let attempt = 1; ; attempt++) {
        const existing = await objects.read(obj as KubernetesObject & { metadata: { name: string } }).catch(() => undefined);
        try {
          if (existing) await objects.replace({ ...obj, metadata: { ...obj.metadata, resourceVersion: existing.metadata!.resourceVersion! } });
          else await objects.create(obj);
          return `${obj.metadata.namespace}/${obj.metadata.name}`;
        } catch (err) {
          if (attempt >= 5 || (err as { code?: number }).code !== 409) throw err;
        }
      }
    };
    const deleteDoc = async (ref: string): Promise<void> => {
      const [namespace, name] = ref.split('/') as [string, string];
      await custom.deleteNamespacedCustomObject({ ...GROUP, namespace, name });
    };
    /** The policies an agent enforces (its admin API): the positive signal that a change reached it. */
    const agentPolicies = async (node: string): Promise<string[]> => {
      const res = await httpGetInNetns({ netns: plan.nodes.find((n) => n.name === node)!.netns, host: '127.0.0.1', port: 15000, path: '/policies' });
      return (JSON.parse(res.body.toString()) as { authorizationPolicies: Array<{ policy: string }> }).authorizationPolicies.map((p) => p.policy);
    };
    const onBothAgents = (ref: string, present: boolean) =>
      eventually(async () => (await agentPolicies('node-1')).includes(ref) === present && (await agentPolicies('node-2')).includes(ref) === present, `both agents ${present ? 'holding' : 'without'} ${ref}`);
    const ownRef = (name: string): string => {
      const { metadata } = OWN[name] as { metadata: { name: string; namespace: string } };
      return `${metadata.namespace}/${metadata.name}`;
    };
    const applyOwn = async (name: string) => {
      const body = JSON.parse(JSON.stringify(OWN[name]).replace('LEGACY_IP', legacyIp)) as { metadata: { namespace: string } };
      await custom.createNamespacedCustomObject({ ...GROUP, namespace: body.metadata.namespace, body: { apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', ...body } });
      await onBothAgents(ownRef(name), true);
    };
    const removeOwn = async (name: string) => {
      const { metadata } = OWN[name] as { metadata: { name: string; namespace: string } };
      await custom.deleteNamespacedCustomObject({ ...GROUP, namespace: metadata.namespace, name: metadata.name });
      await onBothAgents(ownRef(name), false);
    };

    await t.test('no policy: mesh clients and the plaintext client reach every port', async () => {
      for (const port of [9000, 9001, 9002, 8080]) await expectDecision('foo/sleep', 'foo/tcp-echo', port, 'allow');
      await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
      await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'allow');
      await expectDecision('bar/sleep', 'bar/httpbin', 8000, 'allow');
      await expectDecision('ambient-demo/notsleep', 'ambient-demo/httpbin', 8000, 'allow');
    });

    await t.test('reference: allow-nothing in foo denies every request to foo; allow-all beside it allows them again', async () => {
      const nothing = await applyDoc(ISTIO_DOCS.allowNothing);
      try {
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/allow-nothing');
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9001, 'deny', 'foo/allow-nothing');
        await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/allow-nothing');
        await expectDecision('bar/sleep', 'bar/httpbin', 8000, 'allow');
        const all = await applyDoc(ISTIO_DOCS.allowAll);
        try {
          await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'allow');
          await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'allow');
        } finally {
          await deleteDoc(all);
        }
      } finally {
        await deleteDoc(nothing);
      }
      await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'allow');
    });

    await t.test('reference: allow-nothing selecting app: httpbin in bar denies bar/httpbin only', async () => {
      const ref = await applyDoc(ISTIO_DOCS.allowNothingHttpbin);
      try {
        await expectDecision('bar/sleep', 'bar/httpbin', 8000, 'deny', 'bar/allow-nothing');
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
        await expectDecision('ambient-demo/sleep', 'ambient-demo/httpbin', 8000, 'allow');
      } finally {
        await deleteDoc(ref);
      }
    });

    await t.test('reference: DENY POST on port 8080 denies all TCP traffic on 8080 (HTTP fields unseen at L4), other ports stay open', async () => {
      const ref = await applyDoc(ISTIO_DOCS.denyPost8080);
      try {
        await expectDecision('foo/sleep', 'foo/tcp-echo', 8080, 'deny', 'foo/httpbin');
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'allow');
      } finally {
        await deleteDoc(ref);
      }
    });

    await t.test('TCP traffic task: each step of tcp-policy gives the documented outcome on 9000, 9001 and 9002', async () => {
      const ref = await applyDoc(ISTIO_DOCS.tcpAllowPorts);
      try {
        // ALLOW ports 9000, 9001: those succeed, 9002 is rejected.
        // (The denial first: once it shows, the agent holds the policy and the allows below mean something.)
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9002, 'deny', 'foo/tcp-policy');
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'allow');
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9001, 'allow');
        // ALLOW with methods (HTTP-only) on 9000: the rule can never match at L4, both rejected.
        await applyDoc(ISTIO_DOCS.tcpAllowGet);
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/tcp-policy');
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9001, 'deny', 'foo/tcp-policy');
        // DENY with methods and no port: denies everything.
        await applyDoc(ISTIO_DOCS.tcpDenyGet);
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/tcp-policy');
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9001, 'deny', 'foo/tcp-policy');
        // DENY with methods on 9000: 9000 rejected, 9001 succeeds.
        await applyDoc(ISTIO_DOCS.tcpDenyGet9000);
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/tcp-policy');
        await expectDecision('foo/sleep', 'foo/tcp-echo', 9001, 'allow');
      } finally {
        await deleteDoc(ref);
      }
    });

    await t.test('ambient L4 page: only sleep\'s principal reaches httpbin; adding methods: GET makes ztunnel-style L4 deny it too', async () => {
      const ref = await applyDoc(ISTIO_DOCS.ambientL4);
      try {
        await expectDecision('ambient-demo/notsleep', 'ambient-demo/httpbin', 8000, 'deny', 'ambient-demo/allow-sleep-to-httpbin');
        await expectDecision('legacy/sleep', 'ambient-demo/httpbin', 8000, 'deny', 'ambient-demo/allow-sleep-to-httpbin');
        await expectDecision('ambient-demo/sleep', 'ambient-demo/httpbin', 8000, 'allow');
        await applyDoc(ISTIO_DOCS.ambientL7);
        await expectDecision('ambient-demo/sleep', 'ambient-demo/httpbin', 8000, 'deny', 'ambient-demo/allow-sleep-to-httpbin');
      } finally {
        await deleteDoc(ref);
      }
    });

    const cases: Array<[string, 'allow' | 'deny', 'allow' | 'deny', string]> = [
      ['deny-all', 'deny', 'deny', 'warren-system/deny-all'],
      ['deny-ip', 'allow', 'deny', 'foo/deny-ip'],
      ['when-namespace', 'allow', 'deny', 'foo/when-namespace'],
    ];
    for (const [name, mesh, legacy, policy] of cases) {
      await t.test(`${name}: bar/sleep → ${mesh}, legacy → ${legacy}; deleting it restores access`, async () => {
        await applyOwn(name);
        try {
          await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, mesh, mesh === 'deny' ? policy : undefined);
          await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, legacy, legacy === 'deny' ? policy : undefined);
        } finally {
          await removeOwn(name);
        }
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
        await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'allow');
      });
    }

    await t.test('warren policies explain names the deciding policy and rule; warren status shows both agents ready', async () => {
      const explain = async (from: string, to: string): Promise<{ decision: string; basis: string; policy: string | null; rule: number | null; mtls: boolean; to: { node: string } }> => {
        const r = await warren('policies', 'explain', '--from', from, '--to', to, '--state-dir', stateDir, '-o', 'json');
        assert.equal(r.exitCode, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      await applyOwn('sleep-9001');
      try {
        const allowed = await explain('bar/sleep', 'foo/tcp-echo:9001');
        assert.deepEqual([allowed.decision, allowed.policy, allowed.rule, allowed.mtls, allowed.to.node], ['allow', 'foo/sleep-9001', 0, true, 'node-2']);
        const otherPort = await explain('bar/sleep', 'foo/tcp-echo:9000');
        assert.deepEqual([otherPort.decision, otherPort.basis, otherPort.to.node], ['deny', 'no-allow-match', 'node-2']);
        const legacy = await explain('legacy/sleep', 'foo/tcp-echo:9001');
        assert.deepEqual([legacy.decision, legacy.mtls], ['deny', false]);
        const human = await warren('policies', 'explain', '--from', 'bar/sleep', '--to', 'foo/tcp-echo:9001', '--state-dir', stateDir);
        assert.match(human.stdout, /^ALLOW {2}bar\/sleep \(sa sleep, mTLS\) → foo\/tcp-echo :9001 \(node-2\)\n {2}by AuthorizationPolicy foo\/sleep-9001 rule 0: from\[0\]\.source\.principals/);
        assert.match(human.stdout, /answered by node-2's agent/);
      } finally {
        await removeOwn('sleep-9001');
      }
      const status = await warren('status', '--state-dir', stateDir);
      assert.equal(status.exitCode, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /^node-1\s+yes\s+(nft|iptables)\s+\d+/m);
      assert.match(status.stdout, /^node-2\s+yes\s+(nft|iptables)\s+\d+/m);
    });

    await t.test('an ALLOW policy with HTTP fields denies at L4 and its status says a waypoint is needed', async () => {
      await applyOwn('http-get-only');
      try {
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/http-get-only');
        await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/http-get-only');
        await eventually(async () => {
          const p = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: 'foo', name: 'http-get-only' })) as { status?: { conditions?: Array<{ reason: string; message: string }> } };
          const c = p.status?.conditions?.[0];
          return c?.reason === 'WaypointRequired' && /operation\.methods/.test(c.message);
        }, 'the WaypointRequired condition');
        // Both node agents see the policy; one Event names the fields, not one per agent.
        await eventually(async () => (await core.listNamespacedEvent({ namespace: 'foo' })).items.some((e) => e.reason === 'WaypointRequired' && e.involvedObject.name === 'http-get-only'), 'the WaypointRequired Event');
        // Both agents hold the policy (applyOwn waited for that): any Event of theirs is written by now.
        const events = (await core.listNamespacedEvent({ namespace: 'foo' })).items.filter((e) => e.reason === 'WaypointRequired' && e.involvedObject.name === 'http-get-only');
        assert.equal(events.length, 1, JSON.stringify(events.map((e) => e.metadata?.name)));
        assert.match(events[0]!.message ?? '', /operation\.methods/);
      } finally {
        await removeOwn('http-get-only');
      }
      await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
    });

    await t.test('an ALLOW policy the agent cannot parse denies everyone it selects (never allow-all), with status Invalid naming the field', async () => {
      await applyOwn('invalid-allow');
      try {
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'deny');
        await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'deny');
        await eventually(async () => {
          const p = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: 'foo', name: 'invalid-allow' })) as { status?: { conditions?: Array<{ reason: string; message: string }> } };
          const c = p.status?.conditions?.[0];
          return c?.reason === 'Invalid' && /source\.namespaces\.1: empty value not allowed/.test(c.message);
        }, 'the Invalid condition');
      } finally {
        await removeOwn('invalid-allow');
      }
      await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
      await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'allow');
    });

    await t.test('relabeling a running pod changes which policies select it', async () => {
      const label = (value: string | null) => core.patchNamespacedPod({ namespace: 'foo', name: 'tcp-echo', body: { metadata: { labels: { locked: value } } } }, mergePatch);
      await applyOwn('deny-locked');
      try {
        // The agents hold deny-locked (applyOwn waited): it selects no pod yet.
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
        await label('yes');
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/deny-locked');
        await expectDecision('legacy/sleep', 'foo/tcp-echo', 9000, 'deny', 'foo/deny-locked');
        await label(null);
        await expectDecision('bar/sleep', 'foo/tcp-echo', 9000, 'allow');
      } finally {
        await label(null).catch(() => undefined);
        await removeOwn('deny-locked');
      }
    });

    await t.test('a live connection is closed when a new DENY covers it', async () => {
      const socket = await connectFromNetns({ netns: `/var/run/netns/${netnsOf(podOf('bar/sleep'))}`, host: podOf('foo/tcp-echo').status!.podIP!, port: 9000, mark: 0, timeoutMs: 3000 });
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      socket.on('error', () => {});
      await new Promise<void>((resolve) => {
        socket.once('data', () => resolve());
        socket.write('live');
      });
      const appliedAt = Date.now();
      await custom.createNamespacedCustomObject({ ...GROUP, namespace: 'warren-system', body: { apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', ...OWN['deny-all'] } });
      try {
        const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
        assert.notEqual(at, -1, 'the connection was closed');
        t.diagnostic(`closed ${at - appliedAt} ms after the DENY policy was created`);
      } finally {
        socket.destroy();
        await removeOwn('deny-all');
      }
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
