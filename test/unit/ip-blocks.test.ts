import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import { test } from 'node:test';
import { inBlock, isBlock, parseAddress, parseBlocks } from '../../src/policy/ip-blocks.js';

const matches = (blocks: string[], ip: string): boolean => {
  const a = parseAddress(ip);
  return a !== undefined && parseBlocks(blocks).some((b) => inBlock(b, a));
};

/** node:net's BlockList is the reference (it is what policies used before). */
function reference(blocks: string[], ip: string): boolean {
  const list = new BlockList();
  for (const b of blocks) {
    const [addr, len] = b.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (len === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(len), type);
  }
  return list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
}

test('ipBlocks: addresses and CIDR blocks of both families match as node:net BlockList does', () => {
  const blocks = [['10.244.1.5'], ['10.244.3.0/24'], ['10.0.0.0/8', '192.168.0.0/16'], ['0.0.0.0/0'], ['10.244.1.4/31'], ['fd00:10:244::/48'], ['fd00::5'], ['2001:db8::/32'], ['fe80::1:0:0:0/65']];
  const ips = ['10.244.1.5', '10.244.1.4', '10.244.1.6', '10.244.3.77', '10.244.4.1', '192.168.200.1', '11.0.0.1', 'fd00:10:244::7', 'fd00:10:245::7', 'fd00::5', 'fd00::6', '2001:db8:ffff::1', '2001:db9::1', 'fe80::1:0:0:1', 'fe80::1:8000:0:1', '::1'];
  for (const b of blocks) for (const ip of ips) assert.equal(matches(b, ip), reference(b, ip), `${ip} in ${b.join(',')}`);
});

test('IPv6 spellings: ::, embedded IPv4, zones; IPv4-mapped addresses count as IPv4', () => {
  assert.deepEqual(parseAddress('fd00::1'), parseAddress('fd00:0:0:0:0:0:0:1'));
  assert.deepEqual(parseAddress('::1'), { v6: true, words: [0, 0, 0, 1] });
  assert.deepEqual(parseAddress('64:ff9b::10.0.0.1'), parseAddress('64:ff9b::a00:1'));
  assert.deepEqual(parseAddress('fe80::1%eth0'), parseAddress('fe80::1'));
  assert.deepEqual(parseAddress('::ffff:10.244.1.5'), parseAddress('10.244.1.5'));
  assert.equal(matches(['10.244.0.0/16'], '::ffff:10.244.1.5'), true);
  assert.equal(matches(['::ffff:10.244.0.0/112'], '10.244.1.5'), true);
  // As Envoy (Istio's enforcement): an IPv6 block never holds an IPv4 address (BlockList maps them into ::/0).
  assert.equal(matches(['::/0'], '10.244.1.5'), false);
  assert.equal(matches(['::/0'], 'fd00::1'), true);
  assert.equal(parseAddress('not-an-ip'), undefined);
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', '.1.2.3', '1.2.3.4.', '1.2.3.-4', ' 1.2.3.4']) assert.equal(parseAddress(bad), undefined, bad);
  assert.deepEqual(parseAddress('255.255.255.255'), { v6: false, words: [0xffffffff] });
  assert.deepEqual(parseAddress('0.0.0.0'), { v6: false, words: [0] });
  assert.equal(parseAddress(''), undefined);
});

test('what counts as a block: an address with an optional prefix length of its family', () => {
  for (const ok of ['10.0.0.0/8', '10.1.2.3', '0.0.0.0/0', 'fd00::/8', '::1', '::/128']) assert.equal(isBlock(ok), true, ok);
  for (const bad of ['10.0.0.0/', '10.0.0.0/33', '10.0.0.0/8/8', 'fd00::/129', '10.0.0/8', 'example.com', '10.0.0.0/-1', '10.0.0.0/ 8']) assert.equal(isBlock(bad), false, bad);
});
