import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { availableParallelism, tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { loadCa, signWorkloadCert } from '../../src/ca/signer.js';
import { checkCsr, createWorkloadKey } from '../../src/identity/csr.js';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { httpGetFromPod } from '../../src/sim/client/pod-http.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { UNDERLAY, planTopology } from '../../src/sim/topology/plan.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { eventually } from '../helpers/apiserver.js';
import { readAccessLog, type AccessEntry } from '../../src/telemetry/access-log-file.js';
import { sample } from '../helpers/prometheus.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { rootTest } from '../helpers/root.js';
import { warren } from '../helpers/warren-cli.js';
import { connectionOutcome, echoFrom, netnsOf } from '../helpers/sim-pods.js';
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

/**
 * What B's HBONE port does with a TLS client from a node's netns (an outsider on the
 * network): the error code of the alert the server sent, `accepted` when the server spoke
 * HTTP/2 after the handshake, or `closed without an alert` when it dropped the connection
 * before any byte of HTTP/2. In TLS 1.3 the client finishes first and the server judges
 * the client's certificate afterwards, so the outcome is what follows the handshake.
 * (The client's socket half-closes on the server's FIN: 'end' must count, or nothing
 * would keep the event loop alive.)
 */
async function hboneHandshake(netns: string, host: string, creds: { key?: string; cert?: string; ca: string }): Promise<string> {
  const tcp = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host, port: 15008, mark: 0, timeoutMs: 3000 });
  // The server's SPIFFE certificate has no DNS name; the chain to the mesh root is still verified.
  const tls = tlsConnect({ socket: tcp, ...creds, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
  try {
    return await new Promise<string>((resolve) => {
      tls.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      tls.once('data', () => resolve('accepted')); // the server's HTTP/2 SETTINGS
      tls.once('end', () => setTimeout(() => resolve('closed without an alert'), 100)); // an alert read with the FIN is reported first
      tls.once('close', () => setTimeout(() => resolve('closed without an alert'), 100));
      tls.setTimeout(5000, () => resolve('timeout'));
      tls.once('secureConnect', () => tls.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00'));
    });
  } finally {
    tls.destroy();
  }
}

/**
 * A raw HTTP/1.0 POST of `bodyBytes` from a pod to an http-echo pod: the request and the
 * JSON reply differ in size, so each byte direction of the metrics and the access log is
 * told apart. Returns the exact bytes sent and received by the client.
 */
async function postFrom(netns: string, host: string, bodyBytes: number): Promise<{ sent: number; received: number }> {
  const request = Buffer.concat([Buffer.from(`POST /upload HTTP/1.0\r\nContent-Length: ${bodyBytes}\r\n\r\n`), randomBytes(bodyBytes)]);
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host, port: 8080, mark: 0, timeoutMs: 3000 });
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('post timed out')));
    socket.write(request); // no half-close: the HTTP/1.0 server closes after its reply
  });
  socket.end();
  assert.match(reply.toString(), new RegExp(`^HTTP/1.1 200[^]*"bodyBytes":${bodyBytes}`), 'the server read the whole body');
  return { sent: request.length, received: reply.length };
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
      // Every Istio label the README lists, as Istio sets them for pods without app/version labels
      // (the pod name stands in for app, "latest" for version); a pod IP was dialed, so no service.
      const series = (reporter: string) => ({
        reporter,
        source_workload: 'a',
        source_workload_namespace: 'mesh',
        source_principal: principal,
        source_app: 'a',
        source_version: 'latest',
        source_canonical_service: 'a',
        source_canonical_revision: 'latest',
        source_cluster: 'Kubernetes',
        destination_workload: 'h',
        destination_workload_namespace: 'mesh',
        destination_principal: principal,
        destination_app: 'h',
        destination_version: 'latest',
        destination_canonical_service: 'h',
        destination_canonical_revision: 'latest',
        destination_cluster: 'Kubernetes',
        destination_service: 'unknown',
        destination_service_name: 'unknown',
        destination_service_namespace: 'unknown',
        request_protocol: 'tcp',
        response_flags: '-',
        connection_security_policy: 'mutual_tls',
      });
      const counts = async () => {
        const [n1, n2] = [await scrape(1), await scrape(2)];
        const of = (text: string, reporter: string) =>
          ['istio_tcp_connections_opened_total', 'istio_tcp_connections_closed_total', 'istio_tcp_received_bytes_total', 'istio_tcp_sent_bytes_total'].map((m) => sample(text, m, series(reporter)) ?? 0);
        return { source: of(n1, 'source'), destination: of(n2, 'destination') };
      };
      // 20000-byte uploads, a JSON reply of a few hundred bytes: a swap of the directions shows.
      const isOurs = (e: AccessEntry) => e.src.ip === ip('a') && e.dst.ip === ip('h') && e.dst.port === 8080 && e.src.identity === principal && e.dst.identity === principal;
      const linesBefore = [(await agentLog(1)).filter(isOurs).length, (await agentLog(2)).filter(isOurs).length];
      const before = await counts();
      const exchanges: Array<{ sent: number; received: number }> = [];
      for (let i = 0; i < 5; i++) exchanges.push(await postFrom(ns('a'), ip('h'), 20_000));
      const up = exchanges.reduce((n, x) => n + x.sent, 0);
      const down = exchanges.reduce((n, x) => n + x.received, 0);
      assert.ok(up > 10 * down, `request bytes ${up} dwarf reply bytes ${down}`);
      // Istio's names: received = source → destination (the upload), sent = destination → source.
      const expected = [5, 5, up, down];
      let last: Awaited<ReturnType<typeof counts>> | undefined;
      await eventually(async () => {
        last = await counts();
        return ['source', 'destination'].every((r) => last![r as 'source'].every((v, i) => v - before[r as 'source'][i]! === expected[i]));
      }, 'metric deltas on both agents', 5000).catch((err: Error) => {
        throw new Error(`${err.message}: expected [opened, closed, received, sent] deltas ${JSON.stringify(expected)}, before ${JSON.stringify(before)}, after ${JSON.stringify(last)}`);
      });
      await eventually(async () => (await agentLog(1)).filter(isOurs).length - linesBefore[0]! === 5 && (await agentLog(2)).filter(isOurs).length - linesBefore[1]! === 5, 'five access log lines on each side', 5000);
      // Access log bytes are the client's view on both sides: sent = toward the destination.
      const lines = [...(await agentLog(1)).filter(isOurs).slice(-5), ...(await agentLog(2)).filter(isOurs).slice(-5)];
      const byDirection = (reporter: string) => lines.filter((l) => l.reporter === reporter).map((l) => [l.bytes_sent, l.bytes_received]).sort();
      const wanted = exchanges.map((x) => [x.sent, x.received]).sort();
      assert.deepEqual(byDirection('source'), wanted, "the client's agent: bytes_sent = upload, bytes_received = reply");
      assert.deepEqual(byDirection('destination'), wanted, "the server's agent: the same, from the client's point of view");
      const line = (await agentLog(2)).filter(isOurs).at(-1)!;
      assert.equal(line.reporter, 'destination');
      assert.equal(line.src.workload, 'a');
      assert.equal(line.dst.workload, 'h');
      assert.equal(line.outcome, 'ok');
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
        // The control is sent last: once tcpdump has written it, the tunneled exchange before it is in the capture too.
      }, (segments) => segments.some((s) => s.payload.includes(control)));
      assert.ok(wire.includes(control), 'the capture sees plaintext where there is plaintext');
      assert.ok(!wire.includes(secret), 'the tunneled bytes never appear in the clear');
      assert.ok(wire.includes(Buffer.from([0x17, 0x03, 0x03])), 'TLS application data records are on the wire');
    });

    await t.test('B:15008 refuses a client without a certificate, with a self-signed one, one from another trust domain, and a CONNECT to another pod', async () => {
      const secret = await core.readNamespacedSecret({ namespace: 'warren-system', name: 'warren-ca' });
      const root = { certPem: Buffer.from(secret.data!['ca.crt']!, 'base64').toString(), keyPem: Buffer.from(secret.data!['ca.key']!, 'base64').toString() };
      // Control: a certificate of the mesh's own trust domain is accepted, so the refusals below are the server's judgement.
      const mine = { trustDomain: 'cluster.local', namespace: 'mesh', serviceAccount: 'default' };
      const mk = await createWorkloadKey(mine);
      const mineCert = await signWorkloadCert(await loadCa(root), await checkCsr(mk.csrPem, mine), 3_600_000);
      assert.equal(await hboneHandshake('wrn-node-1', ip('b'), { key: mk.privateKeyPem, cert: mineCert, ca: root.certPem }), 'accepted');
      // No certificate: TLS 1.3 alert certificate_required (116).
      assert.equal(await hboneHandshake('wrn-node-1', ip('b'), { ca: root.certPem }), 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
      const key = `${stateDir}/self.key`;
      const cert = `${stateDir}/self.crt`;
      await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=intruder', '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/mesh/sa/default']);
      // Self-signed with the right SPIFFE ID: never a byte of HTTP/2. Node's TLS server checks
      // the chain once the TLS 1.3 handshake is done and drops the connection without an alert;
      // the native path has OpenSSL verify it inside the handshake, which sends unknown_ca (48).
      const self = await hboneHandshake('wrn-node-1', ip('b'), { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8'), ca: root.certPem });
      assert.equal(self, dataplane === 'native' ? 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' : 'closed without an alert');
      // Signed by the mesh's own root, but for another trust domain: the chain is fine, the identity is not.
      const other = { trustDomain: 'evil.example', namespace: 'mesh', serviceAccount: 'default' };
      const wk = await createWorkloadKey(other);
      const otherCert = await signWorkloadCert(await loadCa(root), await checkCsr(wk.csrPem, other), 3_600_000);
      /** The status B's HBONE server answers a CONNECT to `authority`, made with this certificate from node-1. */
      const connectStatus = async (key: string, certPem: string, authority: string): Promise<number> => {
        const tcp = await connectFromNetns({ netns: '/var/run/netns/wrn-node-1', host: ip('b'), port: 15008, mark: 0, timeoutMs: 3000 });
        const tls = tlsConnect({ socket: tcp, key, cert: certPem, ca: root.certPem, ALPNProtocols: ['h2'], rejectUnauthorized: false, minVersion: 'TLSv1.3' });
        let session: ClientHttp2Session | undefined;
        try {
          await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
          session = http2Connect(`https://${ip('b')}:15008`, { createConnection: () => tls });
          session.on('error', () => {});
          return await new Promise<number>((resolve) => {
            const s = session!.request({ ':method': 'CONNECT', ':authority': authority });
            s.on('response', (h) => resolve(Number(h[':status'])));
            s.on('error', () => resolve(-1));
          });
        } finally {
          session?.destroy();
          tls.destroy();
        }
      };
      assert.equal(await connectStatus(wk.privateKeyPem, otherCert, `${ip('b')}:9000`), 401, 'another trust domain');
      // A mesh identity may CONNECT only to the pod it reached: B answers for B, never relays to C.
      assert.equal(await connectStatus(mk.privateKeyPem, mineCert, `${ip('b')}:9000`), 200, 'control: B itself');
      assert.equal(await connectStatus(mk.privateKeyPem, mineCert, `${ip('c')}:9000`), 400, 'a CONNECT target that is not the pod');
    });

    await t.test('A → the service VIP spreads connections over endpoints on both nodes', async () => {
      const vip = (await core.readNamespacedService({ namespace: 'mesh', name: 'echo' })).spec!.clusterIP!;
      for (let i = 0; i < 6; i++) assert.equal((await echoFrom(ns('a'), vip, 9000, Buffer.from(`hello ${i}`))).toString(), `hello ${i}`);
      const records = (await agentLog(1)).filter((e) => e.pod === 'mesh/a' && e.dst.service === 'mesh/echo');
      const targets = new Set(records.map((e) => `${e.dst.ip}:${e.dst.port}`));
      assert.deepEqual([...targets].sort(), [`${ip('b')}:9000`, `${ip('c')}:9000`].sort());
      // The dialed Service names the series (source side: the client's agent knows the VIP).
      const metrics = (await httpGetInNetns({ netns: 'wrn-node-1', host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 })).body.toString();
      const opened = sample(metrics, 'istio_tcp_connections_opened_total', {
        reporter: 'source',
        source_workload: 'a',
        destination_service: 'echo.mesh.svc.cluster.local',
        destination_service_name: 'echo',
        destination_service_namespace: 'mesh',
      });
      assert.ok((opened ?? 0) >= 6, `connections to the echo Service counted under its name: ${opened}`);
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
        // Settled: B's agent holds the STRICT policy (its explain says so); then the refusal is a reset, logged as denied.
        const explained = async (): Promise<{ decision: string; basis: string }> =>
          JSON.parse((await httpGetInNetns({ netns: 'wrn-node-2', host: '127.0.0.1', port: 15000, path: `/explain?from=plain%2Fv&to=${encodeURIComponent('mesh/b:9000')}` })).body.toString());
        await eventually(async () => (await explained()).basis === 'peer-authentication', "B's agent enforcing STRICT", 10_000);
        const logged = (await agentLog(2)).length;
        assert.equal(await connectionOutcome(ns('v'), ip('b'), 9000), 'reset', 'plaintext to B is reset');
        await eventually(
          async () => (await agentLog(2)).slice(logged).some((e) => e.outcome === 'denied' && e.src.ip === ip('v') && e.security === 'plaintext' && /STRICT/.test(e.reason ?? '')),
          "B's agent logging the plaintext connection as denied by STRICT",
          5000,
        );
        assert.equal((await echoFrom(ns('a'), ip('b'), 9000, Buffer.from('mtls'))).toString(), 'mtls', 'HBONE is unaffected');
      } finally {
        await custom.deleteNamespacedCustomObject({ group: 'security.warren.io', version: 'v1', namespace: 'mesh', plural: 'peerauthentications', name: 'default' });
      }
      await eventually(async () => (await echoFrom(ns('v'), ip('b'), 9000, Buffer.from('again')).catch(() => Buffer.alloc(0))).toString() === 'again', 'plaintext allowed again', 10_000);
    });

    await t.test("the agent's admin API and own metrics: workloads, services, a live connection, no key or token anywhere", async () => {
      const admin = async (node: string, path: string): Promise<string> => {
        const res = await httpGetInNetns({ netns: node, host: '127.0.0.1', port: 15000, path, timeoutMs: 5000 });
        assert.equal(res.status, 200, `${path}: ${res.body.toString()}`);
        return res.body.toString();
      };
      // /workloads: node-1 enrolls a and c (v is outside the mesh).
      const workloads = JSON.parse(await admin('wrn-node-1', '/workloads')) as { node: string; enrolled: Array<Record<string, unknown>> };
      assert.equal(workloads.node, 'node-1');
      const enrolledText = JSON.stringify(workloads.enrolled);
      for (const name of ['a', 'c']) assert.match(enrolledText, new RegExp(`"mesh/${name}"|"name":"${name}"`), `${name} listed: ${enrolledText}`);
      assert.doesNotMatch(enrolledText, /"plain\/v"|"name":"v"/);
      // /services: the echo Service with its VIP.
      const vip = (await core.readNamespacedService({ namespace: 'mesh', name: 'echo' })).spec!.clusterIP!;
      const services = await admin('wrn-node-1', '/services');
      assert.ok(services.includes('echo') && services.includes(vip), services.slice(0, 500));
      // /connections: a connection A → B held open is listed while it lasts.
      const held = await connectFromNetns({ netns: `/var/run/netns/${ns('a')}`, host: ip('b'), port: 9000, mark: 0, timeoutMs: 3000 });
      try {
        await new Promise<void>((resolve, reject) => {
          held.once('data', () => resolve());
          held.once('error', reject);
          held.write('held');
        });
        const connections = await admin('wrn-node-1', '/connections');
        assert.ok(connections.includes(ip('b')), `the held connection to ${ip('b')} is listed: ${connections.slice(0, 500)}`);
      } finally {
        held.destroy();
      }
      // /config_dump: everything above in one answer, but never a private key or the CA token.
      const token = (await readFile(`${stateDir}/nodes/node-1/warren/ca-token`, 'utf8')).trim();
      const dump = await admin('wrn-node-1', '/config_dump');
      assert.ok(dump.includes(ip('a')) && dump.includes('spiffe://cluster.local/ns/mesh/sa/default'), 'the dump has the node state');
      assert.ok(token.length > 20 && !dump.includes(token), 'the CA token is not in /config_dump');
      assert.doesNotMatch(dump, /PRIVATE KEY|BEGIN EC|"privateKey/i);
      // The agent's own metrics.
      const m1 = (await httpGetInNetns({ netns: 'wrn-node-1', host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 })).body.toString();
      const m2 = (await httpGetInNetns({ netns: 'wrn-node-2', host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 })).body.toString();
      assert.equal(sample(m1, 'warren_enrolled_pods', {}) ?? Number(/^warren_enrolled_pods (\S+)$/m.exec(m1)?.[1]), 2, 'a and c on node-1');
      assert.equal(Number(/^warren_trust_bundle_roots (\S+)$/m.exec(m1)?.[1]), 1);
      const expiry = sample(m1, 'warren_workload_certificate_expiry_timestamp_seconds', { identity: 'spiffe://cluster.local/ns/mesh/sa/default' });
      assert.ok(expiry !== undefined && expiry > Date.now() / 1000, `the certificate expires in the future: ${expiry}`);
      // The STRICT test above refused plaintext to B: counted by B's agent.
      assert.ok(Number(/^warren_policy_denials_total (\S+)$/m.exec(m2)?.[1]) >= 1, 'denials counted on node-2');
      // No renewal or rule failure happens in this run: the series are declared, with no failures.
      assert.match(m1, /^# TYPE warren_certificate_renewals_total counter$/m);
      assert.equal(sample(m1, 'warren_certificate_renewals_total', { result: 'failure' }) ?? 0, 0);
      assert.match(m1, /^# TYPE warren_rule_apply_errors_total counter$/m);
      assert.equal(sample(m1, 'warren_rule_apply_errors_total', {}) ?? 0, 0);
    });

    await t.test('the pool carries 100 streams per HBONE connection and opens another one for the 101st (per worker pool on native)', async () => {
      const tunnels = async (): Promise<number> => {
        const ss = await execa('ip', ['netns', 'exec', ns('a'), 'ss', '-Htn', 'state', 'established', `( dst ${ip('b')} and dport = :15008 )`]);
        return ss.stdout.split('\n').filter((l) => l.trim() !== '').length;
      };
      const open = async (n: number, from: number) => {
        const sockets = await Promise.all(Array.from({ length: n }, () => connectFromNetns({ netns: `/var/run/netns/${ns('a')}`, host: ip('b'), port: 9000, mark: 0, timeoutMs: 5000 })));
        // Each stream answers before the next batch: all of them are open at once in the pool.
        const echoed = await Promise.all(
          sockets.map(
            (s, i) =>
              new Promise<string>((resolve, reject) => {
                s.once('data', (d: Buffer) => resolve(d.toString()));
                s.once('error', reject);
                s.write(`c${from + i}`);
              }),
          ),
        );
        assert.deepEqual(echoed, sockets.map((_, i) => `c${from + i}`));
        return sockets;
      };
      // Each pool holds 100 streams per connection. The Node path has one pool per peer; the native one deals a
      // peer's streams round its worker threads' pools (one thread per core by default, as the agent here runs).
      const pools = dataplane === 'native' ? availableParallelism() : 1;
      // Earlier A → B connections left at most one idle pooled connection per pool (one pool key: B's identity and IP).
      assert.ok((await tunnels()) <= pools, `at most ${pools} idle pooled connection(s) to B before`);
      const sockets = await open(100 * pools, 0);
      try {
        assert.equal(await tunnels(), pools, `${100 * pools} concurrent streams share ${pools} HBONE connection(s)`);
        sockets.push(...(await open(1, 100 * pools)));
        assert.equal(await tunnels(), pools + 1, 'the next stream opens one more HBONE connection');
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
      // The kill comes once echoed bytes are back: the stream is up end to end, so what ends it is the reset.
      const flowing = new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.on('data', () => {});
      const chunk = Buffer.alloc(64 * 1024, 1);
      let writing = true;
      void (async () => {
        for (let i = 0; i < 2000 && writing; i++) {
          if (!s.write(chunk)) await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const before = await Promise.race([flowing.then(() => 'echoed'), outcome, sleep(10_000).then(() => 'nothing echoed within 10 s')]);
      assert.equal(before, 'echoed', 'the stream carries bytes both ways before the server is killed');
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
