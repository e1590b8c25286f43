import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { loadCa, signWorkloadCert } from '../../src/identity/ca-signer.js';
import { checkCsr, createWorkloadKey } from '../../src/identity/csr.js';
import { httpGetFromPod, httpGetInNetns } from '../../src/sim/client/pod-http.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { UNDERLAY, planTopology } from '../../src/sim/topology/plan.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { eventually } from '../helpers/apiserver.js';
import { readAccessLog, type AccessEntry } from '../../src/telemetry/access-log-file.js';
import { sample } from '../helpers/prometheus.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { rootTest } from '../helpers/root.js';
import { warren } from '../helpers/warren-cli.js';
import { echoFrom, netnsOf } from '../helpers/sim-pods.js';
import { captureTcp } from '../helpers/wire-capture.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: mesh}
spec:
  selector: {app: echo}
  ports: [{port: 9000, targetPort: 9000}]
${[
  ['mesh', 'a', 'node-1', 'sleep', ''],
  ['mesh', 'b', 'node-2', 'tcp-echo', 'echo'],
  ['mesh', 'c', 'node-1', 'tcp-echo', 'echo'],
  ['mesh', 'h', 'node-2', 'http-echo', ''],
  ['plain', 'u', 'node-2', 'http-echo', ''],
  ['plain', 'v', 'node-1', 'sleep', ''],
]
  .map(([ns, name, node, image, app]) => {
    const port = image === 'tcp-echo' ? 9000 : 8080;
    const probe = image === 'sleep' ? '' : `\n    ports: [{containerPort: ${port}}]\n    readinessProbe: {tcpSocket: {port: ${port}}, periodSeconds: 1}`;
    return `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}${app ? `, labels: {app: ${app}}` : ''}}
spec:
  nodeName: ${node}
  containers:
  - name: main
    image: ${image}${probe}`;
  })
  .join('\n')}
`;

/** Output of `openssl s_client` against an HBONE port from a node's netns, as an outsider on the network would connect. */
async function sClient(netns: string, host: string, extra: string[]): Promise<string> {
  const r = await execa('ip', ['netns', 'exec', netns, 'openssl', 's_client', '-connect', `${host}:15008`, '-tls1_3', '-alpn', 'h2', ...extra], {
    input: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    reject: false,
    timeout: 10_000,
  });
  return `${r.stdout}\n${r.stderr}`;
}

for (const dataplane of testDataplanes())
rootTest(`HBONE data plane (--dataplane ${dataplane}): mTLS tunnels between pods, service balancing, passthrough, PeerAuthentication, multiplexing, resets`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-hbone-`);
  const capture = `${stateDir}/underlay.pcap`;
  try {
    const kc = await simClusterWith(stateDir, 16545, MANIFEST, dataplane);
    const core = kc.makeApiClient(CoreV1Api);
    const all = async (): Promise<V1Pod[]> => [...(await core.listNamespacedPod({ namespace: 'mesh' })).items, ...(await core.listNamespacedPod({ namespace: 'plain' })).items];
    await eventually(
      async () => (await all()).every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && (p.metadata?.namespace !== 'mesh' || p.metadata?.annotations?.['warren.io/redirection'] === 'enabled')),
      'pods ready and mesh pods enrolled',
      60_000,
    );
    const pod = new Map((await all()).map((p) => [p.metadata!.name!, p]));
    const ip = (name: string): string => pod.get(name)!.status!.podIP!;
    const ns = (name: string): string => netnsOf(pod.get(name)!);
    const agentLog = (node: number) => readAccessLog(agentPaths(planTopology(stateDir, ['node-1', 'node-2']).nodes[node - 1]!).log);
    for (const node of [1, 2]) {
      const text = await readFile(agentPaths(planTopology(stateDir, ['node-1', 'node-2']).nodes[node - 1]!).log, 'utf8');
      assert.match(text, new RegExp(`"dataplane":"${dataplane}".*"msg":"node agent ready"`), `agent ${node} runs --dataplane ${dataplane}`);
    }

    await t.test('64 MiB each way arrive byte-exact, A → B across nodes and A → C on the same node, over mTLS', async () => {
      for (const target of ['b', 'c']) {
        const payload = randomBytes(64 << 20);
        const back = await echoFrom(ns('a'), ip(target), 9000, payload);
        assert.equal(back.length, payload.length, `${target}: length`);
        assert.equal(sha(back), sha(payload), `${target}: content`);
      }
      const peer = 'spiffe://cluster.local/ns/mesh/sa/default';
      const sent = (e: AccessEntry): boolean => e.pod === 'mesh/a' && e.security === 'mtls' && e.dst.ip === ip('b') && e.dst.port === 9000 && e.dst.identity === peer && e.bytes_sent === 64 << 20 && e.bytes_received === 64 << 20;
      await eventually(async () => (await agentLog(1)).some(sent), 'the outbound record', 5000);
    });

    await t.test('Istio metrics on both agents and one access log line per connection with both identities', async () => {
      const plan = planTopology(stateDir, ['node-1', 'node-2']);
      const scrape = async (node: number) => (await httpGetInNetns({ netns: plan.nodes[node - 1]!.netns, host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 })).body.toString();
      const principal = 'spiffe://cluster.local/ns/mesh/sa/default';
      const series = (reporter: string) => ({ reporter, source_workload: 'a', source_principal: principal, destination_workload: 'b', destination_principal: principal, destination_workload_namespace: 'mesh', connection_security_policy: 'mutual_tls' });
      const counts = async () => {
        const [n1, n2] = [await scrape(1), await scrape(2)];
        const of = (text: string, reporter: string) =>
          ['istio_tcp_connections_opened_total', 'istio_tcp_connections_closed_total', 'istio_tcp_received_bytes_total', 'istio_tcp_sent_bytes_total'].map((m) => sample(text, m, series(reporter)) ?? 0);
        return { source: of(n1, 'source'), destination: of(n2, 'destination') };
      };
      const isOurs = (e: AccessEntry) => e.src.ip === ip('a') && e.dst.ip === ip('b') && e.bytes_sent === 1234 && e.src.identity === principal && e.dst.identity === principal;
      const linesBefore = [(await agentLog(1)).filter(isOurs).length, (await agentLog(2)).filter(isOurs).length];
      const before = await counts();
      for (let i = 0; i < 5; i++) assert.equal((await echoFrom(ns('a'), ip('b'), 9000, randomBytes(1234))).length, 1234);
      // 5 connections, 1234 bytes each way: source → destination is "received" in Istio's terms.
      const expected = [5, 5, 5 * 1234, 5 * 1234];
      await eventually(async () => {
        const after = await counts();
        return ['source', 'destination'].every((r) => after[r as 'source'].every((v, i) => v - before[r as 'source'][i]! === expected[i]));
      }, 'metric deltas on both agents', 5000);
      await eventually(async () => (await agentLog(1)).filter(isOurs).length - linesBefore[0]! === 5 && (await agentLog(2)).filter(isOurs).length - linesBefore[1]! === 5, 'five access log lines on each side', 5000);
      const line = (await agentLog(2)).filter(isOurs).at(-1)!;
      assert.equal(line.reporter, 'destination');
      assert.equal(line.src.workload, 'a');
      assert.equal(line.dst.workload, 'b');
      assert.equal(line.outcome, 'ok');
      assert.equal(line.bytes_received, 1234);
    });

    await t.test('the server sees A’s pod IP as the source', async () => {
      const reply = await httpGetFromPod(ns('a'), ip('h'), 8080);
      assert.equal(reply.pod, 'h');
      assert.equal(reply.client.ip, ip('a'));
    });

    await t.test('on the wire between nodes: TLS records only, never the app’s plaintext (control: plaintext to an unenrolled pod is visible)', async () => {
      const secret = `WARREN-SECRET-${randomBytes(8).toString('hex')}`;
      const control = `WARREN-CONTROL-${randomBytes(8).toString('hex')}`;
      const wire = await captureTcp(UNDERLAY.netns, UNDERLAY.bridge, capture, async () => {
        await echoFrom(ns('a'), ip('b'), 9000, Buffer.from(secret.repeat(100)));
        await httpGetFromPod(ns('v'), ip('u'), 8080).catch(() => undefined);
        await execa('ip', ['netns', 'exec', ns('v'), 'sh', '-c', `printf 'GET /${control} HTTP/1.0\\r\\n\\r\\n' | timeout 3 socat - TCP:${ip('u')}:8080`], { reject: false });
      });
      assert.ok(wire.includes(control), 'the capture sees plaintext where there is plaintext');
      assert.ok(!wire.includes(secret), 'the tunneled bytes never appear in the clear');
      assert.ok(wire.includes(Buffer.from([0x17, 0x03, 0x03])), 'TLS application data records are on the wire');
    });

    await t.test('B:15008 refuses a client without a certificate, with a self-signed one, and one from another trust domain', async () => {
      const none = await sClient('wrn-node-1', ip('b'), []);
      assert.match(none, /alert|error/i, none);
      assert.doesNotMatch(none, /HTTP\/2 200/);
      const key = `${stateDir}/self.key`;
      const cert = `${stateDir}/self.crt`;
      await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=intruder', '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/mesh/sa/default']);
      const self = await sClient('wrn-node-1', ip('b'), ['-cert', cert, '-key', key]);
      assert.match(self, /alert|error/i, self);
      // Signed by the mesh's own root, but for another trust domain: the chain is fine, the identity is not.
      const secret = await core.readNamespacedSecret({ namespace: 'warren-system', name: 'warren-ca' });
      const root = { certPem: Buffer.from(secret.data!['ca.crt']!, 'base64').toString(), keyPem: Buffer.from(secret.data!['ca.key']!, 'base64').toString() };
      const other = { trustDomain: 'evil.example', namespace: 'mesh', serviceAccount: 'default' };
      const wk = await createWorkloadKey(other);
      const otherCert = await signWorkloadCert(await loadCa(root), await checkCsr(wk.csrPem, other), 3_600_000);
      const tcp = await connectFromNetns({ netns: '/var/run/netns/wrn-node-1', host: ip('b'), port: 15008, mark: 0, timeoutMs: 3000 });
      const tls = tlsConnect({ socket: tcp, key: wk.privateKeyPem, cert: otherCert, ca: root.certPem, ALPNProtocols: ['h2'], rejectUnauthorized: false, minVersion: 'TLSv1.3' });
      let session: ClientHttp2Session | undefined;
      try {
        await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
        session = http2Connect(`https://${ip('b')}:15008`, { createConnection: () => tls });
        session.on('error', () => {});
        const status = await new Promise<number>((resolve) => {
          const s = session!.request({ ':method': 'CONNECT', ':authority': `${ip('b')}:9000` });
          s.on('response', (h) => resolve(Number(h[':status'])));
          s.on('error', () => resolve(-1));
        });
        assert.equal(status, 401);
      } finally {
        session?.destroy();
        tls.destroy();
      }
    });

    await t.test('A → the service VIP spreads connections over endpoints on both nodes', async () => {
      const vip = (await core.readNamespacedService({ namespace: 'mesh', name: 'echo' })).spec!.clusterIP!;
      for (let i = 0; i < 6; i++) assert.equal((await echoFrom(ns('a'), vip, 9000, Buffer.from(`hello ${i}`))).toString(), `hello ${i}`);
      const records = (await agentLog(1)).filter((e) => e.pod === 'mesh/a' && e.dst.service === 'mesh/echo');
      const targets = new Set(records.map((e) => `${e.dst.ip}:${e.dst.port}`));
      assert.deepEqual([...targets].sort(), [`${ip('b')}:9000`, `${ip('c')}:9000`].sort());
    });

    await t.test('A → an unenrolled pod passes through in plaintext', async () => {
      const reply = await httpGetFromPod(ns('a'), ip('u'), 8080);
      assert.equal(reply.client.ip, ip('a'));
      await eventually(async () => (await agentLog(1)).some((e) => e.pod === 'mesh/a' && e.direction === 'outbound' && e.security === 'plaintext' && e.dst.ip === ip('u') && e.dst.port === 8080), 'a plaintext record', 5000);
    });

    await t.test('an unenrolled pod reaches B under PERMISSIVE and is refused under STRICT; mesh traffic still flows', async () => {
      assert.equal((await echoFrom(ns('v'), ip('b'), 9000, Buffer.from('permissive'))).toString(), 'permissive');
      const custom = kc.makeApiClient(CustomObjectsApi);
      const body = { apiVersion: 'security.warren.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'mesh' }, spec: { mtls: { mode: 'STRICT' } } };
      await custom.createNamespacedCustomObject({ group: 'security.warren.io', version: 'v1', namespace: 'mesh', plural: 'peerauthentications', body });
      try {
        await eventually(async () => (await echoFrom(ns('v'), ip('b'), 9000, Buffer.from('strict')).catch(() => Buffer.alloc(0))).length === 0, 'plaintext refused', 10_000);
        assert.equal((await echoFrom(ns('a'), ip('b'), 9000, Buffer.from('mtls'))).toString(), 'mtls', 'HBONE is unaffected');
      } finally {
        await custom.deleteNamespacedCustomObject({ group: 'security.warren.io', version: 'v1', namespace: 'mesh', plural: 'peerauthentications', name: 'default' });
      }
      await eventually(async () => (await echoFrom(ns('v'), ip('b'), 9000, Buffer.from('again')).catch(() => Buffer.alloc(0))).toString() === 'again', 'plaintext allowed again', 10_000);
    });

    await t.test('200 concurrent connections A → B share at most two HBONE connections', async () => {
      const sockets = await Promise.all(Array.from({ length: 200 }, () => connectFromNetns({ netns: `/var/run/netns/${ns('a')}`, host: ip('b'), port: 9000, mark: 0, timeoutMs: 5000 })));
      try {
        const echoed = await Promise.all(
          sockets.map(
            (s, i) =>
              new Promise<string>((resolve, reject) => {
                s.once('data', (d: Buffer) => resolve(d.toString()));
                s.once('error', reject);
                s.write(`c${i}`);
              }),
          ),
        );
        assert.deepEqual(echoed, sockets.map((_, i) => `c${i}`));
        const ss = await execa('ip', ['netns', 'exec', ns('a'), 'ss', '-Htn', 'state', 'established', `( dst ${ip('b')} and dport = :15008 )`]);
        const tunnels = ss.stdout.split('\n').filter((l) => l.trim() !== '').length;
        assert.ok(tunnels >= 1 && tunnels <= 2, `${tunnels} HBONE connections carry 200 streams`);
      } finally {
        for (const s of sockets) s.destroy();
      }
    });

    await t.test('killing the server mid-stream resets the client', async () => {
      const s = await connectFromNetns({ netns: `/var/run/netns/${ns('a')}`, host: ip('b'), port: 9000, mark: 0, timeoutMs: 3000 });
      const outcome = new Promise<string>((resolve) => {
        s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        s.on('close', () => resolve('closed'));
      });
      s.on('data', () => {});
      const chunk = Buffer.alloc(64 * 1024, 1);
      let writing = true;
      void (async () => {
        for (let i = 0; i < 2000 && writing; i++) {
          if (!s.write(chunk)) await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await sleep(300);
      const pids = (await execa('ip', ['netns', 'pids', ns('b')])).stdout.split('\n').filter(Boolean);
      assert.ok(pids.length > 0, 'the echo server runs in B');
      await execa('kill', ['-9', ...pids]);
      const result = await Promise.race([outcome, sleep(10_000).then(() => 'hang')]);
      writing = false;
      if (result === 'hang') {
        // What each side still holds, to tell a stuck tunnel from a server that did not die.
        for (const n of ['a', 'b']) console.error(`ss in ${n}:\n${(await execa('ip', ['netns', 'exec', ns(n), 'ss', '-tnoe'], { reject: false })).stdout}`);
        for (const node of [1, 2]) console.error(`agent ${node} tail:\n${(await readFile(agentPaths(planTopology(stateDir, ['node-1', 'node-2']).nodes[node - 1]!).log, 'utf8')).split('\n').slice(-15).join('\n')}`);
      }
      s.destroy();
      // A write racing the RST sees EPIPE, a read ECONNRESET: both are the reset arriving.
      assert.ok(result === 'ECONNRESET' || result === 'EPIPE', `the client saw ${result}, not a reset`);
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
