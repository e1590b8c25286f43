import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { loadCa, signWorkloadCert } from '../../src/identity/ca-signer.js';
import { checkCsr, createWorkloadKey } from '../../src/identity/csr.js';
import { httpGetFromPod } from '../../src/sim/client/pod-http.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { UNDERLAY, planTopology } from '../../src/sim/topology/plan.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { eventually } from '../helpers/apiserver.js';
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

rootTest('HBONE data plane: mTLS tunnels between pods, service balancing, passthrough, PeerAuthentication, multiplexing, resets', async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-hbone-`);
  const capture = `${stateDir}/underlay.pcap`;
  try {
    const up = await warren('sim', 'up', '--nodes', '2', '--state-dir', stateDir, '--api-port', '16545');
    assert.equal(up.exitCode, 0, up.stdout + up.stderr);
    const kc = new KubeConfig();
    kc.loadFromFile(`${stateDir}/kubeconfig`);
    const core = kc.makeApiClient(CoreV1Api);
    await writeFile(`${stateDir}/m.yaml`, MANIFEST);
    assert.equal((await warren('sim', 'apply', '-f', `${stateDir}/m.yaml`, '--state-dir', stateDir)).exitCode, 0);
    const all = async (): Promise<V1Pod[]> => [...(await core.listNamespacedPod({ namespace: 'mesh' })).items, ...(await core.listNamespacedPod({ namespace: 'plain' })).items];
    await eventually(
      async () => (await all()).every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && (p.metadata?.namespace !== 'mesh' || p.metadata?.annotations?.['warren.io/redirection'] === 'enabled')),
      'pods ready and mesh pods enrolled',
      60_000,
    );
    const pod = new Map((await all()).map((p) => [p.metadata!.name!, p]));
    const ip = (name: string): string => pod.get(name)!.status!.podIP!;
    const ns = (name: string): string => netnsOf(pod.get(name)!);
    const agentLog = (node: number) => readFile(agentPaths(planTopology(stateDir, ['node-1', 'node-2']).nodes[node - 1]!).log, 'utf8');

    await t.test('64 MiB each way arrive byte-exact, A → B across nodes and A → C on the same node, over mTLS', async () => {
      for (const target of ['b', 'c']) {
        const payload = randomBytes(64 << 20);
        const back = await echoFrom(ns('a'), ip(target), 9000, payload);
        assert.equal(back.length, payload.length, `${target}: length`);
        assert.equal(sha(back), sha(payload), `${target}: content`);
      }
      const peer = 'spiffe://cluster.local/ns/mesh/sa/default';
      await eventually(async () => new RegExp(`"pod":"mesh/a","direction":"outbound","security":"mtls","destination":"${ip('b')}:9000","peer":"${peer}","bytesSent":${64 << 20}`).test(await agentLog(1)), 'the outbound record', 5000);
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
      const records = (await agentLog(1)).split('\n').filter((l) => l.includes('"pod":"mesh/a"') && l.includes('"service":"echo.mesh.svc"'));
      const targets = new Set(records.map((l) => /"destination":"([^"]+)"/.exec(l)?.[1]));
      assert.deepEqual([...targets].sort(), [`${ip('b')}:9000`, `${ip('c')}:9000`].sort());
    });

    await t.test('A → an unenrolled pod passes through in plaintext', async () => {
      const reply = await httpGetFromPod(ns('a'), ip('u'), 8080);
      assert.equal(reply.client.ip, ip('a'));
      await eventually(async () => new RegExp(`"pod":"mesh/a","direction":"outbound","security":"plaintext","destination":"${ip('u')}:8080"`).test(await agentLog(1)), 'a plaintext record', 5000);
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
      s.destroy();
      assert.equal(result, 'ECONNRESET');
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
