import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PROXY_V2_VARIABLE_LENGTH, decodeProxyV2, encodeProxyV2, type ProxyV2Header } from '../../src/waypoint/proxy-protocol.js';

const ID = 'spiffe://cluster.local/ns/default/sa/client';
const v4: ProxyV2Header = { source: { address: '10.244.1.5', port: 40001 }, destination: { address: '10.96.0.10', port: 8080 }, clientSpiffeId: ID };
const v6: ProxyV2Header = { source: { address: 'fd00:10:244::5', port: 40001 }, destination: { address: 'fd00:10:96::a', port: 80 } };

test('PROXY v2: the spec layout for TCP over IPv4 with the client SPIFFE ID in TLV 0xD0', () => {
  const b = encodeProxyV2(v4);
  assert.deepEqual([...b.subarray(0, 12)], [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  assert.equal(b[12], 0x21); // version 2, PROXY
  assert.equal(b[13], 0x11); // AF_INET, STREAM
  assert.equal(b.readUInt16BE(14), 12 + 3 + ID.length);
  assert.deepEqual([...b.subarray(16, 24)], [10, 244, 1, 5, 10, 96, 0, 10]);
  assert.equal(b.readUInt16BE(24), 40001);
  assert.equal(b.readUInt16BE(26), 8080);
  assert.equal(b[28], 0xd0);
  assert.equal(b.readUInt16BE(29), ID.length);
  assert.equal(b.subarray(31).toString(), ID);
});

test('PROXY v2: encode → decode round-trips IPv4 and IPv6 and reports the bytes consumed, leaving the payload', () => {
  for (const h of [v4, v6]) {
    const payload = Buffer.from('GET / HTTP/1.1\r\n');
    const header = encodeProxyV2(h);
    const r = decodeProxyV2(Buffer.concat([header, payload]));
    assert.deepEqual(r, { kind: 'header', header: h, consumed: header.length });
  }
  assert.equal(encodeProxyV2(v6)[13], 0x21);
});

test('PROXY v2: every strict prefix of a header is incomplete (incremental decoding byte by byte)', () => {
  const b = encodeProxyV2(v4);
  for (let n = 0; n < b.length; n++) assert.deepEqual(decodeProxyV2(b.subarray(0, n)), { kind: 'incomplete' }, `prefix ${n}`);
});

test('PROXY v2: a wrong first byte is refused at once, not buffered (an HTTP request without a header)', () => {
  assert.deepEqual(decodeProxyV2(Buffer.from('G')), { kind: 'error', code: 'ERR_PROXY_SIGNATURE' });
  assert.deepEqual(decodeProxyV2(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), { kind: 'error', code: 'ERR_PROXY_SIGNATURE' });
});

function mutate(b: Buffer, at: number, value: number): Buffer {
  const c = Buffer.from(b);
  c[at] = value;
  return c;
}

test('PROXY v2: version, command, family and transport are checked with stable codes', () => {
  const b = encodeProxyV2(v4);
  assert.deepEqual(decodeProxyV2(mutate(b, 12, 0x11)), { kind: 'error', code: 'ERR_PROXY_VERSION' });
  assert.deepEqual(decodeProxyV2(mutate(b, 12, 0x20)), { kind: 'error', code: 'ERR_PROXY_COMMAND' }); // LOCAL
  assert.deepEqual(decodeProxyV2(mutate(b, 13, 0x31)), { kind: 'error', code: 'ERR_PROXY_FAMILY' }); // AF_UNIX
  assert.deepEqual(decodeProxyV2(mutate(b, 13, 0x12)), { kind: 'error', code: 'ERR_PROXY_FAMILY' }); // DGRAM
  assert.deepEqual(decodeProxyV2(mutate(b, 13, 0x00)), { kind: 'error', code: 'ERR_PROXY_FAMILY' }); // UNSPEC
  // Checked as soon as the byte arrives, before the rest of the header.
  assert.deepEqual(decodeProxyV2(mutate(b, 12, 0x11).subarray(0, 13)), { kind: 'error', code: 'ERR_PROXY_VERSION' });
});

test('PROXY v2: a length shorter than the address block or beyond the bound is refused before buffering the rest', () => {
  const b = encodeProxyV2(v4);
  const short = Buffer.from(b);
  short.writeUInt16BE(11, 14);
  assert.deepEqual(decodeProxyV2(short), { kind: 'error', code: 'ERR_PROXY_LENGTH' });
  const long = Buffer.from(b.subarray(0, 16));
  long.writeUInt16BE(MAX_PROXY_V2_VARIABLE_LENGTH + 1, 14);
  assert.deepEqual(decodeProxyV2(long), { kind: 'error', code: 'ERR_PROXY_LENGTH' });
  const v6short = Buffer.from(encodeProxyV2(v6));
  v6short.writeUInt16BE(12, 14);
  assert.deepEqual(decodeProxyV2(v6short), { kind: 'error', code: 'ERR_PROXY_LENGTH' });
});

test('PROXY v2: TLVs overrunning the header, a duplicate or malformed SPIFFE ID are refused; unknown TLVs are skipped', () => {
  const plain = encodeProxyV2({ source: v4.source, destination: v4.destination });
  const withTlvs = (...tlvs: Buffer[]): Buffer => {
    const body = Buffer.concat([plain.subarray(16), ...tlvs]);
    const fixed = Buffer.from(plain.subarray(0, 16));
    fixed.writeUInt16BE(body.length, 14);
    return Buffer.concat([fixed, body]);
  };
  const tlv = (type: number, value: Buffer | string, declared?: number): Buffer => {
    const v = Buffer.from(value);
    const h = Buffer.from([type, 0, 0]);
    h.writeUInt16BE(declared ?? v.length, 1);
    return Buffer.concat([h, v]);
  };
  assert.deepEqual(decodeProxyV2(withTlvs(tlv(0xd0, ID, ID.length + 1))), { kind: 'error', code: 'ERR_PROXY_TLV' });
  assert.deepEqual(decodeProxyV2(withTlvs(Buffer.from([0x04, 0x00]))), { kind: 'error', code: 'ERR_PROXY_TLV' });
  assert.deepEqual(decodeProxyV2(withTlvs(tlv(0xd0, ID), tlv(0xd0, ID))), { kind: 'error', code: 'ERR_PROXY_TLV' });
  for (const bad of ['spiffe://cluster.local/ns/default', 'https://x/ns/a/sa/b', 'spiffe://Cluster.local/ns/a/sa/b', '']) {
    assert.deepEqual(decodeProxyV2(withTlvs(tlv(0xd0, bad))), { kind: 'error', code: 'ERR_PROXY_SPIFFE_ID' }, bad);
  }
  assert.deepEqual(decodeProxyV2(withTlvs(tlv(0xd0, Buffer.from([0x73, 0xff, 0xfe])))), { kind: 'error', code: 'ERR_PROXY_SPIFFE_ID' });
  const skipped = decodeProxyV2(withTlvs(tlv(0x04, Buffer.alloc(5)), tlv(0xd0, ID), tlv(0x01, 'h2')));
  assert.equal(skipped.kind, 'header');
  assert.equal(skipped.kind === 'header' && skipped.header.clientSpiffeId, ID);
});

test('PROXY v2: port 0 from a peer is refused; the encoder refuses mixed families and bad ports', () => {
  const b = Buffer.from(encodeProxyV2(v4));
  b.writeUInt16BE(0, 26);
  assert.deepEqual(decodeProxyV2(b), { kind: 'error', code: 'ERR_PROXY_ADDRESS' });
  assert.throws(() => encodeProxyV2({ source: v4.source, destination: v6.destination }), { code: 'ERR_PROXY_ADDRESS' });
  assert.throws(() => encodeProxyV2({ source: v4.source, destination: { address: '10.0.0.1', port: 70000 } }), { code: 'ERR_PROXY_ADDRESS' });
  assert.throws(() => encodeProxyV2({ source: { address: 'nope', port: 1 }, destination: v4.destination }), { code: 'ERR_PROXY_ADDRESS' });
});
