import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ApiextensionsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { startCniServer, CNI_EXIT_CODE_HEADER } from '../../src/agent/cni-server.js';
import { startCaServer } from '../../src/ca/server.js';
import { loadCa, signServingCert } from '../../src/ca/signer.js';
import { loadOrCreateRoot } from '../../src/ca/root-store.js';
import { installCniPlugin } from '../../src/cni/installer.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { CA_TOKEN_AUDIENCE } from '../../src/identity/ca-client.js';
import { createWorkloadKey } from '../../src/identity/csr.js';
import { formatSpiffeId } from '../../src/identity/spiffe.js';
import { parseAuthorizationPolicy } from '../../src/policy/authorization.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { parsePeerAuthentication } from '../../src/policy/peer-authentication.js';
import { startTestAdmin } from '../helpers/admin-server.js';
import { eventually, startTestApiServer } from '../helpers/apiserver.js';
import { addRequestBody, cniEnv, netConf, runPlugin } from '../helpers/cni-plugin.js';
import { damagedText, hostileEnvValue, mutationOf, type Mutation } from '../helpers/hostile.js';
import { recordFigures, scaled } from '../helpers/reliability.js';
import { rootTest } from '../helpers/root.js';

/**
 * Scenario 8 of the reliability suite (README "Reliability"): generated and mutated inputs
 * at every boundary a process of warren parses — 0 crashes, every refusal of a known field
 * names it, the process keeps serving. CASES per boundary: 1 000 in CI, 10 000 under
 * `npm run bench -- reliability` (HOSTILE_CASES overrides).
 */
const CASES = scaled('HOSTILE_CASES', 1000, 10_000);
const PLUGIN = fileURLToPath(new URL('../../../build/Release/warren-cni', import.meta.url));
/** A fixed seed per run, printed, so a failure can be replayed (HOSTILE_SEED). */
const SEED = Number(process.env.HOSTILE_SEED ?? Date.now() % 2 ** 31);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const collect = (resolve: (a: Answer) => void) => (res: import('node:http').IncomingMessage) => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
};

/**
 * A server drops the connection of a body over its limit (src/net/read-body.ts) instead of
 * buffering it: status 0, allowed only for such bodies.
 */
const DROPPED: Answer = { status: 0, headers: {}, text: '' };
const dropped = (err: NodeJS.ErrnoException): boolean => err.code === 'ECONNRESET' || err.code === 'EPIPE';
/** The largest body any of these servers reads (the CNI socket's raw requests: 1 MiB + 64 KiB). */
const overLimit = (text: string, limit: number): boolean => Buffer.byteLength(text) > limit;

function http(options: import('node:http').RequestOptions, body?: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(options, collect(resolve));
    req.on('error', (err: NodeJS.ErrnoException) => (dropped(err) ? resolve(DROPPED) : reject(err)));
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.end(body);
  });
}

function https(options: import('node:https').RequestOptions, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(options, collect(resolve));
    req.on('error', (err: NodeJS.ErrnoException) => (dropped(err) ? resolve(DROPPED) : reject(err)));
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.end(body);
  });
}

/** Tallies of one boundary's run: the figures. */
class Tally {
  /** `aliases`: how a boundary may name a field under another name (the agent checks CNI_NETNS as its request's netns) */
  constructor(private readonly aliases: Record<string, string> = {}) {}
  accepted = 0;
  refused = 0;
  /** refusals of a structured mutation: each must name its field */
  named = 0;
  /** connections dropped because the body was over the server's limit */
  dropped = 0;
  unnamed: string[] = [];
  drop(): void {
    this.dropped++;
  }
  add(accepted: boolean, mutation: Mutation | undefined, message: string): void {
    if (accepted) {
      this.accepted++;
      return;
    }
    this.refused++;
    if (mutation === undefined) return;
    const text = message.toLowerCase();
    const names = [mutation.field, ...(mutation.inner ?? [])].flatMap((n) => [n, this.aliases[n]].filter((x): x is string => x !== undefined));
    if (names.some((n) => text.includes(n.toLowerCase()))) this.named++;
    else if (this.unnamed.length < 20) this.unnamed.push(`${mutation.what} → ${message.slice(0, 200)}`);
  }
  figures(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cases: this.accepted + this.refused + this.dropped, accepted: this.accepted, refused: this.refused, refusalsNamingTheField: this.named, refusalsNotNamingIt: this.unnamed.length, droppedOverBodyLimit: this.dropped, seed: SEED, ...extra };
  }
}

/** A mutation or damaged text, weighted towards mutations (they test the field naming). */
const caseOf = (base: object, under: string[] = []): fc.Arbitrary<{ mutation?: Mutation; text: string }> =>
  fc.oneof(
    { weight: 4, arbitrary: mutationOf(base, under).map((m) => ({ mutation: m, text: JSON.stringify(m.value) })) },
    { weight: 1, arbitrary: damagedText(JSON.stringify(base)).map((text) => ({ text })) },
  );

/** fast-check's report of a counterexample can hold a 70 kB string: cut to what a log can carry. */
async function run<T>(arb: fc.Arbitrary<T>, check: (v: T) => Promise<void>): Promise<void> {
  const details = await fc.check(fc.asyncProperty(arb, check), { numRuns: CASES, seed: SEED, endOnFailure: true });
  if (!details.failed) return;
  const cut = (s: string): string => (s.length > 2000 ? `${s.slice(0, 2000)}… (${s.length} chars)` : s);
  throw new Error(`failed after ${details.numRuns} cases (seed ${SEED}, HOSTILE_SEED replays): ${cut(String((details.errorInstance as Error | undefined)?.message ?? "no error instance"))}\ncounterexample: ${cut(fc.stringify(details.counterexample))}`);
}

rootTest(`hostile inputs (${CASES} cases per boundary, seed ${SEED}): 0 crashes, refusals name the field, every process keeps serving`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-hostile-'));
  const api = await startTestApiServer();
  const admin = await startTestAdmin();
  const closers: Array<() => Promise<void> | void> = [() => admin.close(), () => api.stop()];
  try {
    // --- the agent's CNI socket and the plugin binary, against the agent's real endpoint
    const socket = join(dir, 'cni.sock');
    const cni = await startCniServer(socket, { add: async () => ({ enrolled: false, reason: 'not-labeled' }), del: async () => {} }, () => {});
    closers.push(() => new Promise<void>((resolve) => cni.close(() => resolve())));
    mkdirSync(join(dir, 'net.d'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'net.d', '10-bridge.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'wrn', plugins: [{ type: 'bridge' }] }));
    const plugin = installCniPlugin({ confDir: join(dir, 'net.d'), binDir: join(dir, 'bin'), plugin: PLUGIN, pluginConfig: { agentSocket: socket, excludeNamespaces: ['kube-system'], timeoutSeconds: 5 } }).binPath;
    const conf = netConf({ agentSocket: socket });
    const env = cniEnv() as Record<string, string>;
    const cniOk = async (): Promise<void> => {
      const r = await runPlugin(plugin, [], env, JSON.stringify(conf));
      assert.equal(r.code, 0, `a valid ADD still succeeds: ${r.stdout}`);
    };

    // The agent checks CNI_NETNS and CNI_CONTAINERID as its request's fields; a plugin that cannot
    // reach the socket named by agentSocket says which socket it tried.
    // stdin is the CNI spec's network configuration: a whole stdin that is not a config object is refused as one
    const cniAliases = { CNI_NETNS: 'netns', CNI_CONTAINERID: 'containerId', agentSocket: 'warren node agent at', stdin: 'network config' };

    await t.test('CNI plugin: stdin and environment', async () => {
      const tally = new Tally(cniAliases);
      const envCase = fc.oneof(
        fc.tuple(fc.constantFrom(...Object.keys(env)), hostileEnvValue).map(([k, v]) => ({ env: { ...env, [k]: v }, field: k, what: `env ${k}=${JSON.stringify(v.slice(0, 40))}` })),
        fc.constantFrom(...Object.keys(env)).map((k) => ({ env: { ...env, [k]: undefined }, field: k, what: `env ${k} unset` })),
      );
      const arb = fc.oneof(
        { weight: 1, arbitrary: envCase.map((e) => ({ env: e.env, stdin: JSON.stringify(conf), mutation: { value: undefined, field: e.field, what: e.what } as Mutation | undefined })) },
        { weight: 3, arbitrary: caseOf(conf).map((c) => ({ env: env as Record<string, string | undefined>, stdin: c.text, mutation: c.mutation })) },
      );
      await run(arb, async (c) => {
        const r = await runPlugin(plugin, [], c.env, c.stdin);
        assert.equal(typeof r.code, 'number', `the plugin died by a signal on ${c.mutation?.what ?? 'damaged stdin'}: ${r.stderr}`);
        const out = JSON.parse(r.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
        if (r.code !== 0) {
          assert.equal(typeof out.code, 'number', `a CNI error result: ${r.stdout}`);
          assert.ok(typeof out.msg === 'string' && out.msg.length > 0, `a CNI error message: ${r.stdout}`);
        }
        // The agent's refusal comes in the CNI error's details (the runtime shows msg and details).
        tally.add(r.code === 0, c.mutation, `${String(out.msg ?? '')} ${String(out.details ?? '')}`);
      });
      await cniOk();
      recordFigures(t, 'hostile-inputs/cni-plugin', tally.figures());
      assert.deepEqual(tally.unnamed, [], 'every refusal of a mutated field names it');
    });

    await t.test("agent's CNI socket: add, del and raw requests", async () => {
      const tally = new Tally(cniAliases);
      const raw = { env, stdin: JSON.stringify(conf) };
      const arb = fc.oneof(
        caseOf(addRequestBody).map((c) => ({ path: '/v1/cni/add', ...c })),
        caseOf(addRequestBody).map((c) => ({ path: '/v1/cni/del', ...c })),
        caseOf(raw).map((c) => ({ path: '/v1/cni/raw', ...c })),
        fc.tuple(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 100 })).map(([path, text]) => ({ path: `/${encodeURIComponent(path)}`, text, mutation: undefined })),
      );
      await run(arb, async (c) => {
        const r = await http({ socketPath: socket, path: c.path, method: 'POST', headers: { 'content-type': 'application/json' } }, c.text);
        if (r.status === 0) {
          assert.ok(overLimit(c.text, c.path === '/v1/cni/raw' ? 1024 * 1024 : 64 * 1024), `${c.path} ${c.mutation?.what ?? 'damaged body'}: connection dropped for a body within the limit`);
          return tally.drop();
        }
        assert.ok([200, 400, 404].includes(r.status), `${c.path} ${c.mutation?.what ?? 'damaged body'}: ${r.status} ${r.text}`);
        const body = JSON.parse(r.text) as { message?: string; msg?: string };
        if (c.path === '/v1/cni/raw' && r.status === 200) {
          // the plugin's result: its exit code says accepted or refused
          tally.add(r.headers[CNI_EXIT_CODE_HEADER] === '0', c.mutation, String(body.msg ?? ''));
        } else tally.add(r.status === 200, c.mutation, String(body.message ?? ''));
      });
      await cniOk();
      recordFigures(t, 'hostile-inputs/agent-cni-socket', tally.figures());
      assert.deepEqual(tally.unnamed, [], 'every refusal of a mutated field names it');
    });

    await t.test('admin API: paths, methods, query parameters', async () => {
      const [host, port] = admin.adminAddress.split(':') as [string, string];
      const tally = new Tally();
      const paths = ['/status', '/workloads', '/services', '/policies', '/certs', '/connections', '/explain', '/memory', '/config_dump', '/metrics', '/'];
      const arb = fc.record({
        method: fc.constantFrom('GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS'),
        path: fc.oneof(fc.constantFrom(...paths), fc.string({ maxLength: 30 }).map((s) => `/${encodeURIComponent(s)}`)),
        param: fc.constantFrom('from', 'to', 'gc'),
        value: hostileEnvValue,
        other: fc.constantFrom('', '&from=demo/client-b', '&to=demo/web:8080', '&from=10.244.1.3'),
      });
      await run(arb, async (c) => {
        const path = `${c.path}?${c.param}=${encodeURIComponent(c.value.slice(0, 2000))}${c.other}`;
        const r = await http({ host, port: Number(port), path, method: c.method });
        assert.ok(r.status < 500, `${c.method} ${path.slice(0, 200)}: ${r.status} ${r.text.slice(0, 300)}`);
        // only /explain reads its parameters: a refusal there must name the one it could not use
        const explainRefusal = c.method === 'GET' && c.path === '/explain' && r.status === 400;
        tally.add(r.status < 300, explainRefusal ? { value: undefined, field: '', what: path } : undefined, r.text);
        if (explainRefusal) {
          const message = (JSON.parse(r.text) as { message: string }).message;
          assert.match(message, /\b(from|to)\b/, `the refusal names from or to: ${message}`);
        }
      });
      assert.equal((await http({ host, port: Number(port), path: '/status' })).status, 200, 'the admin API keeps serving');
      recordFigures(t, 'hostile-inputs/admin-api', tally.figures());
    });

    await t.test("CA's API: certificate requests from an authorized agent", async () => {
      const core = api.kc.makeApiClient(CoreV1Api);
      for (const name of ['warren-system', 'shop']) await core.createNamespace({ body: { metadata: { name } } });
      await core.createNode({ body: { metadata: { name: 'node-1' } } });
      for (const [ns, sa] of [['warren-system', 'warren-node'], ['shop', 'web']] as const) await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
      const agentPod = await core.createNamespacedPod({ namespace: 'warren-system', body: { metadata: { name: 'warren-node-1' }, spec: { nodeName: 'node-1', serviceAccountName: 'warren-node', containers: [{ name: 'c', image: 'sleep' }] } } });
      await core.createNamespacedPod({ namespace: 'shop', body: { metadata: { name: 'web-1' }, spec: { nodeName: 'node-1', serviceAccountName: 'web', containers: [{ name: 'c', image: 'sleep' }] } } });
      const token = (await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [CA_TOKEN_AUDIENCE], boundObjectRef: { kind: 'Pod', name: 'warren-node-1', uid: agentPod.metadata!.uid! } } } })).status!.token!;
      const root = await loadOrCreateRoot(core, 'warren-system', 'cluster.local');
      const loaded = await loadCa(root);
      const ca = await startCaServer({
        kc: api.kc,
        ca: loaded,
        trustDomain: 'cluster.local',
        certTtlMs: 3_600_000,
        allowedCallers: ['system:serviceaccount:warren-system:warren-node'],
        host: '127.0.0.1',
        port: 0,
        serving: await signServingCert(loaded, ['localhost'], ['127.0.0.1'], 3_600_000),
        log: () => {},
        // the fuzzer is one caller sending as fast as it can: no rate limit in its way
        callerLimits: { ratePerSecond: 1e6, burst: 1e6, concurrent: 64 },
      });
      closers.unshift(() => ca.close());
      const web = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };
      const valid = { csr: (await createWorkloadKey(web)).csrPem, identity: formatSpiffeId(web) };
      const post = (body: string): Promise<Answer> =>
        https({ host: '127.0.0.1', port: ca.port, path: '/v1/certificates', method: 'POST', ca: root.certPem, servername: 'localhost', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }, body);
      // the CSR's PEM is one string: damage inside it is a byte-level case, its refusal names csr
      const csrDamage = damagedText(valid.csr).map((csr): { mutation?: Mutation; text: string } => ({ mutation: { value: undefined, field: 'csr', what: 'damaged csr' }, text: JSON.stringify({ ...valid, csr }) }));
      const tally = new Tally();
      await run(fc.oneof(caseOf(valid), csrDamage), async (c) => {
        const r = await post(c.text);
        if (r.status === 0) {
          assert.ok(overLimit(c.text, 32 * 1024), `${c.mutation?.what ?? 'damaged body'}: connection dropped for a body within the limit`);
          return tally.drop();
        }
        assert.ok([200, 400, 403].includes(r.status), `${c.mutation?.what ?? 'damaged body'}: ${r.status} ${r.text.slice(0, 300)}`);
        tally.add(r.status === 200, c.mutation, (JSON.parse(r.text) as { message?: string }).message ?? '');
      });
      assert.equal((await post(JSON.stringify(valid))).status, 200, 'the CA keeps signing');
      recordFigures(t, 'hostile-inputs/ca-api', tally.figures());
      assert.deepEqual(tally.unnamed, [], 'every refusal of a mutated field names it');
    });

    await t.test('CRD objects through the API server, then through the agent’s parsers', async () => {
      const ext = api.kc.makeApiClient(ApiextensionsV1Api);
      for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
      const core = api.kc.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: 'fuzz' } } }).catch(() => undefined);
      const kinds = [
        {
          path: '/apis/security.warren.io/v1/namespaces/fuzz/authorizationpolicies',
          parse: parseAuthorizationPolicy,
          base: {
            apiVersion: 'security.warren.io/v1',
            kind: 'AuthorizationPolicy',
            metadata: { name: 'ap', namespace: 'fuzz' },
            spec: {
              selector: { matchLabels: { app: 'web' } },
              action: 'ALLOW',
              rules: [{ from: [{ source: { principals: ['cluster.local/ns/fuzz/sa/a'], namespaces: ['fuzz'], ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { ports: ['8080'] } }], when: [{ key: 'source.ip', values: ['10.1.2.3'] }] }],
            },
          },
        },
        {
          path: '/apis/security.warren.io/v1/namespaces/fuzz/peerauthentications',
          parse: parsePeerAuthentication,
          base: { apiVersion: 'security.warren.io/v1', kind: 'PeerAuthentication', metadata: { name: 'pa', namespace: 'fuzz' }, spec: { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } } },
        },
        {
          path: '/apis/gateway.networking.k8s.io/v1/namespaces/fuzz/gateways',
          base: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'fuzz' }, spec: { gatewayClassName: 'warren-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } },
        },
        {
          path: '/apis/gateway.networking.k8s.io/v1/namespaces/fuzz/httproutes',
          base: {
            apiVersion: 'gateway.networking.k8s.io/v1',
            kind: 'HTTPRoute',
            metadata: { name: 'rt', namespace: 'fuzz' },
            spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 8080 }], rules: [{ matches: [{ headers: [{ name: 'x-version', value: 'v2' }] }], backendRefs: [{ name: 'web-v2', port: 8080, weight: 1 }] }] },
          },
        },
      ];
      const tally = new Tally();
      let parsedAccepted = 0;
      const arb = fc.nat(kinds.length - 1).chain((i) => caseOf(kinds[i]!.base, ['spec']).map((c) => ({ kind: kinds[i]!, ...c })));
      await run(arb, async (c) => {
        // dry run: the API server validates and answers the object as it would store it, and stores nothing
        const r = await https(
          { host: '127.0.0.1', port: api.server.ports[0], path: `${c.kind.path}?dryRun=All&fieldValidation=Strict`, method: 'POST', ca: api.server.caCertPem, headers: { 'content-type': 'application/json', authorization: `Bearer ${api.server.adminToken}` } },
          c.text,
        );
        assert.ok(r.status < 500, `${c.kind.path} ${c.mutation?.what ?? 'damaged body'}: ${r.status} ${r.text.slice(0, 300)}`);
        tally.add(r.status < 300, c.mutation, (JSON.parse(r.text) as { message?: string }).message ?? '');
        if (r.status < 300 && c.kind.parse) {
          // what the API server accepts reaches the agent's parser: it refuses with a typed error or parses, never throws anything else
          try {
            c.kind.parse(JSON.parse(r.text));
            parsedAccepted++;
          } catch (err) {
            assert.ok(err instanceof WarrenError, `the agent's parser threw ${(err as Error).stack} on ${r.text.slice(0, 300)}`);
          }
        }
      });
      await eventually(async () => (await core.listNamespace()).items.length > 0, 'the API server keeps serving');
      recordFigures(t, 'hostile-inputs/crds', tally.figures({ parsedByAgent: parsedAccepted }));
      assert.deepEqual(tally.unnamed, [], 'every refusal of a mutated field names it');
    });
  } finally {
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  }
});
