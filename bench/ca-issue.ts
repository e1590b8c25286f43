/**
 * Workload certificate issue, end to end, with the code that ships: the
 * node agent's CertManager (ECDSA P-256 key + CSR, HTTPS POST to `warren ca`,
 * verification of the answer) against a real `startCaServer` (TokenReview,
 * pod lookup, CSR check, signing) backed by the simulator's API server, all
 * in this one process. Baselines of the same run: the same crypto
 * in-process without network or authorization, and the CA's two API server
 * calls alone. Then CA throughput (pre-generated CSRs, 1 vs 16 in flight)
 * and mutual TLS handshakes/s with certificates from that CA against the
 * RSA-2048 chain of bench/identity-libs.ts (its rig, not a copy).
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { CA_TOKEN_AUDIENCE, createCaClient, type CaClient } from '../src/identity/ca-client.js';
import { startCaServer, type RunningCaServer } from '../src/ca/server.js';
import { loadCa, signServingCert, signWorkloadCert, type LoadedCa } from '../src/ca/signer.js';
import { loadOrCreateRoot } from '../src/ca/root-store.js';
import { CertManager, type WorkloadCertificate } from '../src/identity/cert-manager.js';
import { checkCsr, createWorkloadKey } from '../src/identity/csr.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from '../src/identity/spiffe.js';
import { TrustBundle } from '../src/identity/trust-bundle.js';
import { verifyPeer } from '../src/identity/verify-peer.js';
import { startTestApiServer, type TestApiServer } from '../test/helpers/apiserver.js';
import { CLIENT_ID, N as LIBS, SERVER_ID, forgeCa, forgeTlsMaterial, handshakes, stats, type HandshakeStats, type Stats, type TlsMaterial } from './identity-libs.js';

const TD = 'cluster.local';
/** the namespace of identity-libs' SERVER_ID / CLIENT_ID, so its handshake rig accepts our certificates */
const NS = 'bench';
const AGENT_NS = 'warren-system';
const AGENT_SA = `system:serviceaccount:${AGENT_NS}:warren-node`;
const TTL_MS = 24 * 3600 * 1000;

/** Fixed counts; every loop below runs exactly these many times (and checks the time budget). */
const C = { identities: 200, nodes: 4, warmup: 5, throughputRequests: 400, throughputRounds: 4, inFlight: 16, budgetSeconds: 150 };

export interface ThroughputStats {
  requests: number;
  inFlight: number;
  seconds: number;
  perSecond: number;
  /** process CPU (user + system) per certificate: client, CA and API server together (one process) */
  cpuMsPerCert: number;
  p50Ms: number;
  p99Ms: number;
}

/** latency, plus the process CPU (user + system) per operation: every party is in this process */
export interface TimedStats extends Stats {
  cpuMsPerOp: number;
}

export interface CaIssueResult {
  identities: number;
  nodes: number;
  /** the most pods on one node (agent included): what the CA's pod lookup returns */
  podsPerNode: number;
  /** CertManager.acquire with a fresh identity each time: the node agent's whole path */
  e2e: TimedStats;
  /** createWorkloadKey + checkCsr + signWorkloadCert + the agent's checks of the answer, in-process */
  local: TimedStats;
  /** TokenReview + pods-on-node list through client-node, as the CA makes them */
  apiCalls: TimedStats;
  throughput: { serial: ThroughputStats; parallel: ThroughputStats };
  tls: { rsa: HandshakeStats; ec: HandshakeStats };
}

let started = 0;
const log = (msg: string): void => console.log(`  [${((performance.now() - started) / 1000).toFixed(1)} s] ${msg}`);
const checkBudget = (): void => {
  if (performance.now() - started > C.budgetSeconds * 1000) throw new Error(`the ca benchmark ran past its ${C.budgetSeconds} s budget`);
};

async function pool(count: number, width: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        checkBudget();
        await task(next++);
      }
    }),
  );
}

/** What CertManager.issue checks in the CA's answer: the chain verifies to the bundle for `id`, and the leaf is for our key. */
function checkAnswer(chainPem: string[], privateKeyPem: string, bundle: TrustBundle, id: SpiffeId): void {
  verifyPeer(chainPem, bundle.pems(), { trustDomain: TD, expected: [id], now: new Date() });
  const leaf = new X509Certificate(chainPem[0]!);
  const ours = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' });
  if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ours)) throw new Error('the certificate is not for our key');
}

const nodeOf = (i: number): string => `node-${i % C.nodes}`;
const idName = (i: number): string => `id-${String(i).padStart(3, '0')}`;
const warmName = (i: number): string => `warm-${i}`;

export async function benchCaIssue(): Promise<CaIssueResult> {
  started = performance.now();
  let api: TestApiServer | undefined;
  let caServer: RunningCaServer | undefined;
  const managers: CertManager[] = [];
  const dir = await mkdtemp(`${tmpdir()}/warren-bench-ca-`);
  try {
    log(`API server; ${C.nodes} nodes, ${C.identities} + ${C.warmup} warm-up identities with one pod each, a bound token per node agent`);
    api = await startTestApiServer();
    const core = api.kc.makeApiClient(CoreV1Api);
    const auth = api.kc.makeApiClient(AuthenticationV1Api);
    for (const name of [AGENT_NS, NS]) await core.createNamespace({ body: { metadata: { name } } });
    for (let n = 0; n < C.nodes; n++) await core.createNode({ body: { metadata: { name: `node-${n}` } } });
    await core.createNamespacedServiceAccount({ namespace: AGENT_NS, body: { metadata: { name: 'warren-node' } } });
    // workloads: one service account (= identity) and one pod each; server and client for the handshakes
    const server = parseSpiffeId(SERVER_ID);
    const client = parseSpiffeId(CLIENT_ID);
    const workloads = [
      ...Array.from({ length: C.identities }, (_, i) => ({ sa: idName(i), node: nodeOf(i) })),
      ...Array.from({ length: C.warmup }, (_, i) => ({ sa: warmName(i), node: nodeOf(i) })),
      { sa: server.serviceAccount, node: nodeOf(0) },
      { sa: client.serviceAccount, node: nodeOf(0) },
    ];
    await pool(workloads.length, 8, async (i) => {
      const w = workloads[i]!;
      await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: w.sa } } });
      await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: `${w.sa}-pod` }, spec: { nodeName: w.node, serviceAccountName: w.sa, containers: [{ name: 'c', image: 'sleep' }] } } });
    });
    const tokens: string[] = [];
    for (let n = 0; n < C.nodes; n++) {
      const pod = await core.createNamespacedPod({
        namespace: AGENT_NS,
        body: { metadata: { name: `warren-node-${n}` }, spec: { nodeName: `node-${n}`, serviceAccountName: 'warren-node', containers: [{ name: 'agent', image: 'warren' }] } },
      });
      const tr = await core.createNamespacedServiceAccountToken({
        namespace: AGENT_NS,
        name: 'warren-node',
        body: { spec: { audiences: [CA_TOKEN_AUDIENCE], boundObjectRef: { kind: 'Pod', name: `warren-node-${n}`, uid: pod.metadata!.uid! } } },
      });
      tokens.push(tr.status!.token!);
      await writeFile(`${dir}/token-node-${n}`, tr.status!.token!, { mode: 0o600 });
    }
    const podsOn = new Map<string, number>();
    for (let n = 0; n < C.nodes; n++) podsOn.set(`node-${n}`, (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=node-${n}` })).items.length);
    const podsPerNode = Math.max(...podsOn.values());

    log('CA: root in its Secret, serving certificate, HTTPS server; one CertManager + CA client per node');
    const root = await loadOrCreateRoot(core, AGENT_NS, TD);
    const ca: LoadedCa = await loadCa(root);
    const bundle = new TrustBundle(root.certPem);
    caServer = await startCaServer({
      kc: api.kc,
      ca,
      trustDomain: TD,
      certTtlMs: TTL_MS,
      allowedCallers: [AGENT_SA],
      host: '127.0.0.1',
      port: 0,
      serving: await signServingCert(ca, ['localhost'], ['127.0.0.1'], 3_600_000),
      log: () => {},
      // Every simulated node calls from 127.0.0.1, so per-caller limits would measure the limiter (its own unit tests cover it).
      callerLimits: { ratePerSecond: 1e9, burst: 1e9, concurrent: 1e9 },
    });
    const address = `https://127.0.0.1:${caServer.port}`;
    const clients: CaClient[] = Array.from({ length: C.nodes }, (_, n) => createCaClient({ address, tokenFile: `${dir}/token-node-${n}`, bundle, timeoutMs: 30_000 }));
    for (const caClient of clients) managers.push(new CertManager({ ca: caClient, bundle, trustDomain: TD, log: () => {} }));
    const id = (sa: string): SpiffeId => ({ trustDomain: TD, namespace: NS, serviceAccount: sa });

    /** The agent's path: a fresh identity, so CertManager has nothing to share and fetches. */
    const e2eOne = async (i: number, sa: string): Promise<void> => {
      const want = id(sa);
      const m = managers[i % C.nodes]!;
      const cert = await m.acquire(`uid-${sa}`, want);
      m.release(`uid-${sa}`);
      if (formatSpiffeId(cert.identity) !== formatSpiffeId(want) || cert.chainPem.length !== 2) throw new Error(`unexpected certificate for ${sa}`);
    };
    /** The same crypto, in-process: agent keygen + CSR, CA check + sign, agent checks of the answer. */
    const localOne = async (sa: string): Promise<void> => {
      const want = id(sa);
      const { privateKeyPem, csrPem } = await createWorkloadKey(want);
      const certPem = await signWorkloadCert(ca, await checkCsr(csrPem, want), TTL_MS);
      checkAnswer([certPem, ...ca.chainPem], privateKeyPem, bundle, want);
    };
    /** The CA's one API server call per request (pods on the node come from its watch cache): a TokenReview, same client-node code. */
    const apiOne = async (i: number): Promise<void> => {
      const r = await auth.createTokenReview({ body: { spec: { token: tokens[i % C.nodes]! } } });
      const node = r.status?.user?.extra?.['authentication.kubernetes.io/node-name']?.[0];
      if (r.status?.authenticated !== true || node !== nodeOf(i)) throw new Error('TokenReview did not authenticate the agent token');
    };

    log(`issue latency: ${C.warmup} warm-up, then ${C.identities} × (end to end, local, API calls), interleaved`);
    for (let i = 0; i < C.warmup; i++) {
      await e2eOne(i, warmName(i));
      await localOne(warmName(i));
      await apiOne(i);
    }
    const acc = () => ({ times: [] as number[], cpuUs: 0 });
    const times = { e2e: acc(), local: acc(), api: acc() };
    const timed = async (into: ReturnType<typeof acc>, fn: () => Promise<void>): Promise<void> => {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await fn();
      into.times.push(performance.now() - t0);
      const cpu = process.cpuUsage(cpu0);
      into.cpuUs += cpu.user + cpu.system;
    };
    const timedStats = (a: ReturnType<typeof acc>): TimedStats => ({ ...stats(a.times), cpuMsPerOp: a.cpuUs / 1000 / a.times.length });
    for (let i = 0; i < C.identities; i++) {
      checkBudget();
      // alternate the order so that neither always runs right after the other
      const steps = [() => timed(times.e2e, () => e2eOne(i, idName(i))), () => timed(times.local, () => localOne(idName(i))), () => timed(times.api, () => apiOne(i))];
      if (i % 2 === 1) steps.reverse();
      for (const step of steps) await step();
    }
    const e2e = timedStats(times.e2e);
    const local = timedStats(times.local);
    const apiCalls = timedStats(times.api);

    log(`CA throughput: ${C.identities} CSRs pre-generated, ${C.throughputRequests} requests each at 1 and ${C.inFlight} in flight, ${C.throughputRounds} alternating rounds`);
    const csrs: string[] = [];
    for (let i = 0; i < C.identities; i++) csrs.push((await createWorkloadKey(id(idName(i)))).csrPem);
    const post = async (i: number, latencies?: number[]): Promise<void> => {
      const k = i % C.identities;
      const t0 = performance.now();
      const chain = await clients[k % C.nodes]!.requestCertificate(id(idName(k)), csrs[k]!);
      latencies?.push(performance.now() - t0);
      if (chain.length !== 2) throw new Error(`expected a chain of 2, got ${chain.length}`);
    };
    // warm-up at both widths (the agent keeps its HTTPS connections to the CA alive)
    await pool(C.inFlight, 1, (i) => post(i));
    await pool(C.inFlight, C.inFlight, (i) => post(i));
    const widths = { serial: { inFlight: 1, latencies: [] as number[], ms: 0, cpuUs: 0 }, parallel: { inFlight: C.inFlight, latencies: [] as number[], ms: 0, cpuUs: 0 } };
    // alternating rounds (1, 16, 1, 16, …) so that a noisy stretch of the machine hits both widths alike
    const perRound = C.throughputRequests / C.throughputRounds;
    for (let round = 0; round < C.throughputRounds; round++) {
      for (const w of [widths.serial, widths.parallel]) {
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await pool(perRound, w.inFlight, (i) => post(round * perRound + i, w.latencies));
        w.ms += performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        w.cpuUs += cpu.user + cpu.system;
      }
    }
    const result = (w: typeof widths.serial): ThroughputStats => {
      const s = stats(w.latencies);
      return {
        requests: w.latencies.length,
        inFlight: w.inFlight,
        seconds: w.ms / 1000,
        perSecond: w.latencies.length / (w.ms / 1000),
        cpuMsPerCert: w.cpuUs / 1000 / w.latencies.length,
        p50Ms: s.p50Ms,
        p99Ms: s.p99Ms,
      };
    };
    const serial = result(widths.serial);
    const parallel = result(widths.parallel);

    log(`mTLS 1.3 handshakes: ECDSA P-256 leaves from the CA above (via CertManager) vs RSA-2048 (node-forge), identity-libs' rig, ~${LIBS.handshakeSeconds} s per chain`);
    const leafOf = async (sa: string): Promise<WorkloadCertificate> => managers[0]!.acquire(`uid-${sa}`, id(sa));
    const [s, c] = [await leafOf(server.serviceAccount), await leafOf(client.serviceAccount)];
    // the leaf alone on both sides, as identity-libs' chains (the root is in each side's `ca`)
    const ecChain: TlsMaterial = { caPem: root.certPem, serverCertPem: s.chainPem[0]!, serverKeyPem: s.privateKeyPem, clientCertPem: c.chainPem[0]!, clientKeyPem: c.privateKeyPem };
    const rsaChain = forgeTlsMaterial(forgeCa());
    const tls = await handshakes({ rsa: rsaChain, ec: ecChain }, LIBS.handshakeSeconds, LIBS.handshakeRounds, LIBS.handshakeWarmup);

    return { identities: C.identities, nodes: C.nodes, podsPerNode, e2e, local, apiCalls, throughput: { serial, parallel }, tls };
  } finally {
    for (const m of managers) m.stop();
    await caServer?.close();
    await api?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
