import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { promises as dnsPromises } from 'node:dns';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, DiscoveryV1Api } from '@kubernetes/client-node';
import { WarrenError } from '../../../src/errors/warren-error.js';
import { buildClusterRecords, RECORD_TTL_SECONDS, type ClusterRecordData } from '../../../src/sim/dns/cluster-records.js';
import { encodeQuery, encodeResponse, parseHeader, parseMessage, parseQuery, QTYPE, RCODE, type DnsAnswer } from '../../../src/sim/dns/dns-message.js';
import { respond, startDnsServer, type RunningDnsServer } from '../../../src/sim/dns/dns-server.js';
import { recordDataFromObjects, watchClusterRecords } from '../../../src/sim/dns/records-from-api.js';
import { eventually, startTestApiServer } from '../../helpers/apiserver.js';

const malformedError = (err: unknown): boolean => err instanceof WarrenError && err.code === 'ERR_DNS_MALFORMED';

/** Header bytes for hand-made packets: id 0x1234, RD, the given counts. */
const header = (qd: number, an = 0, ns = 0, ar = 0): number[] => [0x12, 0x34, 0x01, 0x00, 0, qd, 0, an, 0, ns, 0, ar];

describe('dns-message', () => {
  test('a query round-trips through encodeQuery and parseQuery', () => {
    const q = parseQuery(encodeQuery({ id: 0xbeef, name: 'Web.Default.svc.cluster.local.', type: QTYPE.AAAA }));
    assert.equal(q.header.id, 0xbeef);
    assert.equal(q.header.rd, true);
    assert.equal(q.header.qr, false);
    assert.equal(q.question.name, 'Web.Default.svc.cluster.local');
    assert.equal(q.question.type, QTYPE.AAAA);
    assert.equal(q.question.class, 1);
    assert.equal(q.edns, undefined);
  });

  test('a response echoes id, RD and the question, sets QR and AA, and its answers parse back', () => {
    const query = parseQuery(encodeQuery({ id: 7, name: 'a.ns.svc.cluster.local', type: QTYPE.A }));
    const answers: DnsAnswer[] = [
      { name: 'a.ns.svc.cluster.local', ttl: 5, type: QTYPE.A, address: '10.96.0.10' },
      { name: 'A.NS.svc.cluster.local.', ttl: 5, type: QTYPE.AAAA, address: 'fd00::1:0:0:2' },
      { name: 'other.example', ttl: 30, type: QTYPE.AAAA, address: '::ffff:10.1.2.3' },
      { name: '_http._tcp.a.ns.svc.cluster.local', ttl: 5, type: QTYPE.SRV, priority: 0, weight: 100, port: 8080, target: 'a.ns.svc.cluster.local' },
    ];
    const msg = parseMessage(encodeResponse(query, { rcode: RCODE.NOERROR, answers }));
    assert.deepEqual(
      { id: msg.header.id, qr: msg.header.qr, aa: msg.header.aa, rd: msg.header.rd, ra: msg.header.ra, tc: msg.header.tc, rcode: msg.header.rcode },
      { id: 7, qr: true, aa: true, rd: true, ra: false, tc: false, rcode: RCODE.NOERROR },
    );
    assert.deepEqual(msg.questions.map((q) => [q.name, q.type]), [['a.ns.svc.cluster.local', QTYPE.A]]);
    assert.deepEqual(msg.answers, [
      { name: 'a.ns.svc.cluster.local', ttl: 5, type: QTYPE.A, address: '10.96.0.10' },
      // Answers for the question name point at it, so they carry the question's spelling.
      { name: 'a.ns.svc.cluster.local', ttl: 5, type: QTYPE.AAAA, address: 'fd00::1:0:0:2' },
      { name: 'other.example', ttl: 30, type: QTYPE.AAAA, address: '::ffff:a01:203' },
      answers[3],
    ]);
    const noRd = parseMessage(encodeResponse(parseQuery(encodeQuery({ id: 8, name: 'x', type: 1, rd: false })), { rcode: RCODE.NXDOMAIN }));
    assert.equal(noRd.header.rd, false);
    assert.equal(noRd.header.rcode, RCODE.NXDOMAIN);
  });

  test('EDNS: the OPT record is read and echoed; answers beyond the UDP limit are cut whole and TC is set', () => {
    const plain = encodeQuery({ id: 1, name: 'h.ns.svc.cluster.local', type: QTYPE.A });
    const withOpt = Buffer.concat([plain, Buffer.from([0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0])]);
    withOpt.writeUInt16BE(1, 10);
    const query = parseQuery(withOpt);
    assert.deepEqual(query.edns, { udpSize: 4096 });
    const many: DnsAnswer[] = Array.from({ length: 100 }, (_, i) => ({ name: 'h.ns.svc.cluster.local', ttl: 5, type: QTYPE.A, address: `10.244.1.${i + 1}` }));
    const big = encodeResponse(query, { rcode: RCODE.NOERROR, answers: many });
    assert.ok(big.length <= 1232, `${big.length} bytes`);
    const bigMsg = parseMessage(big);
    assert.equal(bigMsg.header.tc, true);
    assert.ok(bigMsg.edns !== undefined);
    const small = parseMessage(encodeResponse(parseQuery(plain), { rcode: RCODE.NOERROR, answers: many }));
    assert.equal(small.header.tc, true);
    assert.ok(small.answers.length > 0 && small.answers.length < bigMsg.answers.length);
    assert.ok(encodeResponse(parseQuery(plain), { rcode: RCODE.NOERROR, answers: many }).length <= 512);
  });

  test('names in questions may use backward compression pointers', () => {
    // Question 1: "svc.local"; question 2: "a" + pointer to offset 12.
    const packet = Buffer.from([...header(2), 3, 0x73, 0x76, 0x63, 5, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0, 0, 1, 0, 1, 1, 0x61, 0xc0, 12, 0, 1, 0, 1]);
    assert.deepEqual(parseMessage(packet).questions.map((q) => q.name), ['svc.local', 'a.svc.local']);
  });

  test('labels holding dots or control bytes are escaped, not split', () => {
    const q = parseQuery(Buffer.from([...header(1), 3, 0x61, 0x2e, 0x0a, 0, 0, 1, 0, 1]));
    assert.equal(q.question.name, 'a\\046\\010');
  });

  const malformed: Array<[string, number[]]> = [
    ['an empty packet', []],
    ['a truncated header', [0x12, 0x34, 0x01, 0x00, 0, 1, 0]],
    ['a question count with no question', header(1)],
    ['a label overrunning the packet', [...header(1), 10, 0x61, 0x62, 0x63]],
    ['a name without its terminating zero', [...header(1), 1, 0x61]],
    ['a question missing type and class', [...header(1), 1, 0x61, 0, 0, 1]],
    ['a pointer to itself', [...header(1), 0xc0, 12, 0, 1, 0, 1]],
    ['a pointer forward', [...header(1), 0xc0, 14, 1, 0x61, 0, 0, 1, 0, 1]],
    // The second name's pointer leads back to its own first label: b.b.b.… forever.
    ['a pointer loop', [...header(2), 1, 0x61, 0, 0, 1, 0, 1, 1, 0x62, 0xc0, 19, 0, 1, 0, 1]],
    ['a pointer cut off', [...header(1), 0xc0]],
    ['a reserved label type', [...header(1), 0x40, 0, 0, 1, 0, 1]],
    ['a name longer than 255 bytes', [...header(1), ...Array.from({ length: 5 }, () => [63, ...new Array<number>(63).fill(0x61)]).flat(), 0, 0, 1, 0, 1]],
    ['a record data length past the end', [...header(1, 0, 0, 1), 1, 0x61, 0, 0, 1, 0, 1, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 200]],
    ['two OPT records', [...header(1, 0, 0, 2), 0, 0, 1, 0, 1, ...[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0], ...[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]]],
    ['no question', header(0)],
    ['a response', [0x12, 0x34, 0x81, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]],
  ];
  for (const [what, bytes] of malformed) {
    test(`${what} is rejected with ERR_DNS_MALFORMED`, () => {
      assert.throws(() => parseQuery(Buffer.from(bytes)), malformedError);
    });
  }

  test('random bytes never throw anything but the typed error', () => {
    let seed = 42;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256;
    for (let i = 0; i < 5000; i++) {
      const packet = Buffer.from(Array.from({ length: rand() % 80 }, rand));
      try {
        parseMessage(packet);
      } catch (err) {
        assert.ok(malformedError(err), String(err));
      }
    }
  });
});

describe('cluster-records', () => {
  const data: ClusterRecordData = {
    domain: 'cluster.local',
    services: [
      { name: 'kubernetes', namespace: 'default', clusterIP: '10.96.0.1', headless: false },
      { name: 'web', namespace: 'shop', clusterIP: '10.96.0.20', headless: false },
      { name: 'db', namespace: 'shop', headless: true },
      { name: 'empty', namespace: 'shop', headless: true },
      { name: 'v6', namespace: 'shop', clusterIP: 'fd00:10:96::20', headless: false },
    ],
    endpoints: [
      { service: 'db', namespace: 'shop', addresses: ['10.244.1.5', '10.244.2.7'] },
      { service: 'db', namespace: 'shop', addresses: ['10.244.1.5', 'not-an-ip'] },
      { service: 'web', namespace: 'shop', addresses: ['10.244.1.9'] },
    ],
  };
  const records = buildClusterRecords(data);
  const addrs = (qname: string, qtype: number): string[] => records.lookup(qname, qtype).answers.map((a) => ('address' in a ? a.address : ''));

  test('a Service name answers with its ClusterIP, case-insensitively and with or without the trailing dot', () => {
    assert.deepEqual(records.lookup('web.shop.svc.cluster.local', QTYPE.A), {
      rcode: RCODE.NOERROR,
      answers: [{ name: 'web.shop.svc.cluster.local', ttl: RECORD_TTL_SECONDS, type: QTYPE.A, address: '10.96.0.20' }],
    });
    assert.deepEqual(addrs('WEB.Shop.SVC.cluster.LOCAL.', QTYPE.A), ['10.96.0.20']);
    assert.equal(RECORD_TTL_SECONDS, 5);
  });

  test('a headless Service answers with its ready endpoint addresses, merged across slices', () => {
    assert.deepEqual(addrs('db.shop.svc.cluster.local', QTYPE.A), ['10.244.1.5', '10.244.2.7']);
    assert.deepEqual(records.lookup('empty.shop.svc.cluster.local', QTYPE.A), { rcode: RCODE.NOERROR, answers: [] });
  });

  test('AAAA for an IPv4-only name is NOERROR with no answers; an IPv6 ClusterIP answers AAAA', () => {
    assert.deepEqual(records.lookup('web.shop.svc.cluster.local', QTYPE.AAAA), { rcode: RCODE.NOERROR, answers: [] });
    assert.deepEqual(records.lookup('web.shop.svc.cluster.local', QTYPE.SRV), { rcode: RCODE.NOERROR, answers: [] });
    assert.deepEqual(addrs('v6.shop.svc.cluster.local', QTYPE.AAAA), ['fd00:10:96::20']);
    assert.deepEqual(addrs('v6.shop.svc.cluster.local', QTYPE.A), []);
  });

  test('missing names under the domain are NXDOMAIN; their parents are empty non-terminals', () => {
    for (const name of ['nope.shop.svc.cluster.local', 'web.other.svc.cluster.local', 'x.web.shop.svc.cluster.local', 'web.shop.cluster.local', 'foo.cluster.local']) {
      assert.equal(records.lookup(name, QTYPE.A).rcode, RCODE.NXDOMAIN, name);
    }
    for (const name of ['cluster.local', 'svc.cluster.local', 'shop.svc.cluster.local.']) {
      assert.deepEqual(records.lookup(name, QTYPE.A), { rcode: RCODE.NOERROR, answers: [] }, name);
    }
  });

  test('names outside the cluster domain are REFUSED, never forwarded', () => {
    for (const name of ['example.com', 'web.shop.svc.cluster.local.evil.com', 'notcluster.local', 'local', '']) {
      assert.equal(records.lookup(name, QTYPE.A).rcode, RCODE.REFUSED, JSON.stringify(name));
    }
  });

  test('API objects are validated: malformed ones are skipped, unready endpoints left out', () => {
    const got = recordDataFromObjects(
      [
        { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.20' } },
        { metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: 'None' } },
        { metadata: { name: 'ext', namespace: 'shop' }, spec: { type: 'ExternalName', externalName: 'example.com' } },
        { metadata: { name: 'pending', namespace: 'shop' }, spec: { clusterIP: 'bogus' } },
        { metadata: { name: 42, namespace: 'shop' }, spec: {} },
        { metadata: { namespace: 'shop' } },
        null,
        'service',
      ],
      [
        {
          metadata: { namespace: 'shop', labels: { 'kubernetes.io/service-name': 'db' } },
          addressType: 'IPv4',
          endpoints: [{ addresses: ['10.244.1.5'] }, { addresses: ['10.244.1.6'], conditions: { ready: false } }, { addresses: [7, '10.244.1.8'], conditions: { ready: true } }, null, { addresses: 'x' }],
        },
        { metadata: { namespace: 'shop', labels: { 'kubernetes.io/service-name': 'db' } }, addressType: 'FQDN', endpoints: [{ addresses: ['db.example'] }] },
        { metadata: { namespace: 'shop' }, addressType: 'IPv4', endpoints: [] },
        { metadata: { namespace: 'shop', labels: { 'kubernetes.io/service-name': 'db' } }, addressType: 'IPv4', endpoints: 'none' },
        42,
      ],
      'cluster.local',
    );
    assert.deepEqual(got.services, [
      { name: 'web', namespace: 'shop', clusterIP: '10.96.0.20', headless: false },
      { name: 'db', namespace: 'shop', headless: true },
      { name: 'pending', namespace: 'shop', headless: false },
    ]);
    assert.deepEqual(got.endpoints, [
      { service: 'db', namespace: 'shop', addresses: ['10.244.1.5', '10.244.1.8'] },
      { service: 'db', namespace: 'shop', addresses: [] },
    ]);
  });
});

describe('dns-server', () => {
  const records = buildClusterRecords({
    domain: 'cluster.local',
    services: [
      { name: 'kubernetes', namespace: 'default', clusterIP: '10.96.0.1', headless: false },
      { name: 'db', namespace: 'shop', headless: true },
    ],
    endpoints: [{ service: 'db', namespace: 'shop', addresses: ['10.244.1.5', '10.244.2.7'] }],
  });
  let server: RunningDnsServer;
  let resolver: dnsPromises.Resolver;
  before(async () => {
    server = await startDnsServer({ address: '127.0.0.1', port: 0, lookup: (n, t) => records.lookup(n, t) });
    resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.port}`]);
  });
  after(async () => {
    resolver?.cancel();
    await server?.close();
  });

  const rejectsWith = async (p: Promise<unknown>, code: string): Promise<void> => {
    await assert.rejects(p, (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, code);
      return true;
    });
  };

  test("Node's resolver gets A records with the 5 s TTL", async () => {
    assert.deepEqual(await resolver.resolve4('kubernetes.default.svc.cluster.local', { ttl: true }), [{ address: '10.96.0.1', ttl: 5 }]);
    assert.deepEqual((await resolver.resolve4('DB.shop.svc.cluster.local')).sort(), ['10.244.1.5', '10.244.2.7']);
  });

  test("Node's resolver: AAAA of an IPv4-only name is ENODATA, an unknown cluster name ENOTFOUND, an external name EREFUSED", async () => {
    await rejectsWith(resolver.resolve6('kubernetes.default.svc.cluster.local'), 'ENODATA');
    await rejectsWith(resolver.resolve4('missing.default.svc.cluster.local'), 'ENOTFOUND');
    await rejectsWith(resolver.resolve4('example.com'), 'EREFUSED');
  });

  test('garbage datagrams do not stop the server: a readable header gets FORMERR, the rest is dropped', async () => {
    const client = createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
      const replies: Buffer[] = [];
      client.on('message', (m: Buffer) => replies.push(m));
      const send = (b: Buffer): Promise<void> => new Promise((resolve, reject) => client.send(b, server.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
      await send(Buffer.from([0xde, 0xad]));
      await send(Buffer.from([...header(1), 0xc0, 12, 0, 1, 0, 1]));
      await send(Buffer.from([0x77, 0x77, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]));
      await send(encodeQuery({ id: 0x4242, name: 'kubernetes.default.svc.cluster.local', type: QTYPE.A }));
      // The valid query goes last: once it is answered, so would be any garbage before it.
      await eventually(() => replies.some((r) => r.readUInt16BE(0) === 0x4242), 'the answer to the last query', 3000);
      const got = replies.map(parseMessage);
      assert.deepEqual(
        got.map((m) => [m.header.id, m.header.rcode]),
        [
          [0x1234, RCODE.FORMERR],
          [0x4242, RCODE.NOERROR],
        ],
      );
      assert.deepEqual(got[1]!.answers.map((a) => ('address' in a ? a.address : '')), ['10.96.0.1']);
    } finally {
      client.close();
    }
    assert.deepEqual(await resolver.resolve4('kubernetes.default.svc.cluster.local'), ['10.96.0.1']);
  });

  test('respond: other opcodes are NOTIMP, a throwing lookup is SERVFAIL, a bad address from the data is SERVFAIL', () => {
    const q = encodeQuery({ id: 9, name: 'x.cluster.local', type: QTYPE.A });
    const notify = Buffer.from(q);
    notify[2] = (4 << 3) | 1;
    assert.equal(parseHeader(respond(notify, records.lookup)!).rcode, RCODE.NOTIMP);
    const boom = (): never => {
      throw new Error('boom');
    };
    assert.equal(parseHeader(respond(q, boom)!).rcode, RCODE.SERVFAIL);
    const bad = respond(q, () => ({ rcode: RCODE.NOERROR, answers: [{ name: 'x.cluster.local', ttl: 5, type: QTYPE.A, address: 'fd00::1' }] }));
    assert.equal(parseHeader(bad!).rcode, RCODE.SERVFAIL);
    assert.equal(parseHeader(respond(encodeQuery({ id: 1, name: '', type: QTYPE.AXFR }), records.lookup)!).rcode, RCODE.NOTIMP);
  });
});

describe('records-from-api', () => {
  test('lookups follow Services and EndpointSlices in the API server, across an API server restart', async () => {
    const api = await startTestApiServer();
    const watched = watchClusterRecords(api.kc, { restartDelayMs: 100 });
    const core = api.kc.makeApiClient(CoreV1Api);
    const discovery = api.kc.makeApiClient(DiscoveryV1Api);
    try {
      await eventually(() => watched.lookup('kubernetes.default.svc.cluster.local', QTYPE.A).answers.length === 1, 'the kubernetes Service');
      await core.createNamespace({ body: { metadata: { name: 'shop' } } });
      await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'db' }, spec: { clusterIP: 'None', ports: [{ port: 5432 }] } } });
      await discovery.createNamespacedEndpointSlice({
        namespace: 'shop',
        body: {
          metadata: { name: 'db-1', labels: { 'kubernetes.io/service-name': 'db' } },
          addressType: 'IPv4',
          endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true } }, { addresses: ['10.244.1.6'], conditions: { ready: false } }],
          ports: [{ port: 5432 }],
        },
      });
      const db = (): string[] => watched.lookup('db.shop.svc.cluster.local', QTYPE.A).answers.map((a) => ('address' in a ? a.address : ''));
      await eventually(() => db().join() === '10.244.1.5', 'the headless Service to resolve to its ready endpoint');
      // A restart breaks both watches: the informers must be started again to see later writes.
      await api.restart();
      await core.deleteNamespacedService({ namespace: 'shop', name: 'db' });
      await eventually(() => watched.lookup('db.shop.svc.cluster.local', QTYPE.A).rcode === RCODE.NXDOMAIN, 'the deleted Service to be NXDOMAIN', 15_000);
    } finally {
      await watched.stop();
      await api.stop();
    }
  });
});
