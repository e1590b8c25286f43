import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WarrenError } from '../../../src/errors/warren-error.js';
import { describeAccess, formatBytes, metricExcerpt } from '../../../src/sim/demo/evidence.js';
import { parsePcap, summarizeCapture } from '../../../src/sim/demo/pcap.js';
import type { AccessEntry } from '../../../src/telemetry/access-log-file.js';

interface Seg {
  src: string;
  dst: string;
  sp: number;
  dp: number;
  seq: number;
  syn?: boolean;
  data?: Buffer | string;
}

/** An Ethernet + IPv4 (or IPv6) + TCP frame, as tcpdump records it on a bridge. */
function frame(s: Seg): Buffer {
  const data = Buffer.from(s.data ?? '');
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(s.sp, 0);
  tcp.writeUInt16BE(s.dp, 2);
  tcp.writeUInt32BE(s.seq >>> 0, 4);
  tcp[12] = 5 << 4;
  tcp[13] = s.syn ? 0x02 : 0x18;
  const v6 = s.src.includes(':');
  const ip = Buffer.alloc(v6 ? 40 : 20);
  if (v6) {
    ip[0] = 0x60;
    ip.writeUInt16BE(20 + data.length, 4);
    ip[6] = 6;
    const put = (addr: string, at: number) => addr.split(':').forEach((g, i) => ip.writeUInt16BE(parseInt(g, 16), at + i * 2));
    put(s.src, 8);
    put(s.dst, 24);
  } else {
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 20 + data.length, 2);
    ip[9] = 6;
    s.src.split('.').forEach((o, i) => (ip[12 + i] = Number(o)));
    s.dst.split('.').forEach((o, i) => (ip[16 + i] = Number(o)));
  }
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([eth, ip, tcp, data]);
}

function pcap(frames: Buffer[], opts: { bigEndian?: boolean; linkType?: number } = {}): Buffer {
  const le = !opts.bigEndian;
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    if (le) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    return b;
  };
  const u16 = (v: number) => {
    const b = Buffer.alloc(2);
    if (le) b.writeUInt16LE(v);
    else b.writeUInt16BE(v);
    return b;
  };
  const header = Buffer.concat([u32(0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(262144), u32(opts.linkType ?? 1)]);
  return Buffer.concat([header, ...frames.flatMap((f) => [u32(1), u32(0), u32(f.length), u32(f.length), f])]);
}

/** A TLS record: content type, version 3.3, length, body. */
const record = (type: number, size: number): Buffer => Buffer.concat([Buffer.from([type, 3, 3, size >> 8, size & 0xff]), Buffer.alloc(size, 0xab)]);

test('pcap: TCP segments of both byte orders, IPv4 and IPv6; other frames and a cut-off last packet are skipped', () => {
  const segs: Seg[] = [
    { src: '10.244.1.2', dst: '10.244.2.2', sp: 40000, dp: 8080, seq: 7, data: 'GET /x HTTP/1.1\r\n' },
    { src: 'fd00:0:0:0:0:0:0:1', dst: 'fd00:0:0:0:0:0:0:2', sp: 1, dp: 2, seq: 1, syn: true },
  ];
  const arp = Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
  for (const bigEndian of [false, true]) {
    const file = pcap([frame(segs[0]!), arp, frame(segs[1]!)], { bigEndian });
    const parsed = parsePcap(Buffer.concat([file, file.subarray(24, 40)]));
    assert.equal(parsed.length, 2);
    assert.deepEqual({ ...parsed[0]!, payload: parsed[0]!.payload.toString() }, { src: '10.244.1.2', dst: '10.244.2.2', srcPort: 40000, dstPort: 8080, seq: 7, syn: false, payload: 'GET /x HTTP/1.1\r\n' });
    assert.equal(parsed[1]!.src, 'fd00:0:0:0:0:0:0:1');
    assert.equal(parsed[1]!.syn, true);
  }
});

test('pcap: a file that is not a pcap, or not from an Ethernet link, is refused with ERR_PCAP', () => {
  const isPcapError = (err: unknown) => err instanceof WarrenError && err.code === 'ERR_PCAP';
  assert.throws(() => parsePcap(Buffer.from('hello')), isPcapError);
  assert.throws(() => parsePcap(Buffer.alloc(24, 1)), isPcapError);
  assert.throws(() => parsePcap(pcap([], { linkType: 113 })), (err) => isPcapError(err) && /link type 113/.test((err as Error).message));
});

test('capture summary: where a marker crosses in clear, and TLS records per connection to :15008 across split, duplicated and reordered segments', () => {
  const c = { src: '10.244.1.2', dst: '10.244.2.2' };
  const hello = record(22, 300);
  const data = Buffer.concat([record(23, 40), record(23, 1000)]);
  const reply = Buffer.concat([record(22, 120), record(23, 60)]);
  const isn = 0xfffffff0; // sequence numbers wrap inside this stream
  const toServer: Seg[] = [
    { ...c, sp: 50000, dp: 15008, seq: isn, syn: true },
    { ...c, sp: 50000, dp: 15008, seq: isn + 1, data: hello.subarray(0, 100) },
    { ...c, sp: 50000, dp: 15008, seq: isn + 1 + 305, data: data.subarray(0, 500) }, // arrives before the segment it follows
    { ...c, sp: 50000, dp: 15008, seq: isn + 1 + 100, data: hello.subarray(100) },
    { ...c, sp: 50000, dp: 15008, seq: isn + 1 + 100, data: hello.subarray(100) }, // a retransmission
    { ...c, sp: 50000, dp: 15008, seq: isn + 1 + 305 + 500, data: data.subarray(500) },
  ];
  const fromServer: Seg = { src: c.dst, dst: c.src, sp: 15008, dp: 50000, seq: 99, syn: false, data: reply };
  const plain: Seg = { ...c, sp: 40000, dp: 8080, seq: 1, data: 'GET /demo-1234 HTTP/1.1\r\nHost: web\r\n\r\n' };
  const segments = parsePcap(pcap([...toServer, fromServer, plain].map(frame)));
  const summary = summarizeCapture(segments, 'GET /demo-1234', 15008);
  assert.deepEqual(summary.markerHits, [{ src: c.src, dst: c.dst, srcPort: 40000, dstPort: 8080 }]);
  assert.deepEqual(summary.tls, [{ src: c.src, dst: c.dst, dstPort: 15008, records: 5 }]);
  assert.deepEqual(summarizeCapture(segments, 'GET /demo-9999', 15008).markerHits, []);
});

test('capture summary: a stream that does not start at a record boundary, or has a gap, counts only what can be walked', () => {
  const c = { src: '10.0.0.1', dst: '10.0.0.2', sp: 1, dp: 15008 };
  const midRecord = parsePcap(pcap([frame({ ...c, seq: 10, data: Buffer.from('not a record header') })]));
  assert.equal(summarizeCapture(midRecord, 'x', 15008).tls[0]!.records, 0);
  const gap = parsePcap(pcap([frame({ ...c, seq: 0, syn: true }), frame({ ...c, seq: 1, data: record(23, 10) }), frame({ ...c, seq: 1 + 15 + 50, data: record(23, 10) })]));
  assert.equal(summarizeCapture(gap, 'x', 15008).tls[0]!.records, 1);
});

test('evidence: bytes, access log lines with both identities, metric excerpts with chosen labels', () => {
  assert.deepEqual([formatBytes(312), formatBytes(1229), formatBytes(5 << 20)], ['312 B', '1.2 KB', '5.0 MB']);
  const entry: AccessEntry = {
    reporter: 'destination',
    direction: 'inbound',
    pod: 'demo/web-1',
    src: { ip: '10.244.1.2', port: 4000, workload: 'client', identity: 'spiffe://cluster.local/ns/demo/sa/client' },
    dst: { ip: '10.244.2.2', port: 8080, workload: 'web', identity: 'spiffe://cluster.local/ns/demo/sa/web' },
    security: 'mtls',
    bytes_sent: 120,
    bytes_received: 1229,
    duration_ms: 3,
    outcome: 'ok',
  };
  assert.equal(describeAccess(entry), 'client (spiffe://cluster.local/ns/demo/sa/client) → web (spiffe://cluster.local/ns/demo/sa/web) mtls, 120 B sent, 1.2 KB received, ok');
  const denied = describeAccess({ ...entry, src: { ip: '10.244.1.3', port: 1 }, outcome: 'denied', reason: 'no ALLOW policy matches (demo/p)' });
  assert.match(denied, /^10\.244\.1\.3 \(no identity\) → web .* denied: no ALLOW policy matches \(demo\/p\)$/);

  const text = [
    '# HELP istio_tcp_connections_opened_total TCP connections opened',
    '# TYPE istio_tcp_connections_opened_total counter',
    'istio_tcp_connections_opened_total{reporter="destination",source_workload="client",source_principal="spiffe://x/\\"q\\"",destination_workload="web"} 3',
    'istio_tcp_connections_opened_total{reporter="destination",source_workload="other",destination_workload="web"} 9',
    'istio_tcp_connections_opened_total_extra{reporter="destination",source_workload="client"} 1',
    'warren_policy_denials_total 1',
  ].join('\n');
  assert.deepEqual(metricExcerpt(text, 'istio_tcp_connections_opened_total', { source_workload: 'client' }, ['reporter', 'destination_workload', 'missing']), [
    'istio_tcp_connections_opened_total{reporter="destination",destination_workload="web"} 3',
  ]);
  assert.deepEqual(metricExcerpt(text, 'warren_policy_denials_total', {}, []), ['warren_policy_denials_total 1']);
  assert.deepEqual(metricExcerpt(text, 'istio_tcp_connections_opened_total', { source_workload: 'nobody' }, []), []);
});
