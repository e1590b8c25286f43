import { isIP } from 'node:net';

/**
 * IP addresses and CIDR blocks as 32-bit words (one for IPv4, four for
 * IPv6), for policy ipBlocks. node:net's BlockList answers the same but
 * builds a native SocketAddress per check (~3 µs), which is most of a
 * connection's authorization cost; this parses the address once.
 */
export interface Address {
  v6: boolean;
  words: readonly number[];
}

interface Block extends Address {
  prefix: number;
}

/** A dotted quad as one unsigned 32-bit word, or -1 when it is none (parsed by hand: it runs per connection). */
function v4Word(ip: string): number {
  let word = 0;
  let part = -1;
  let parts = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i === ip.length ? 46 : ip.charCodeAt(i);
    if (c === 46) {
      if (part < 0 || ++parts > 4) return -1;
      word = word * 256 + part;
      part = -1;
    } else if (c >= 48 && c <= 57) {
      part = part < 0 ? c - 48 : part === 0 ? 256 : part * 10 + c - 48; // a leading zero is not an address
      if (part > 255) return -1;
    } else return -1;
  }
  return parts === 4 ? word : -1;
}

/** 8 groups of 16 bits: `::` expanded, an embedded IPv4 tail and a zone (%eth0) handled. */
function v6Groups(ip: string): number[] {
  let s = ip.split('%')[0]!;
  const last = s.lastIndexOf(':');
  if (s.includes('.', last)) {
    const w = v4Word(s.slice(last + 1));
    s = `${s.slice(0, last + 1)}${(w >>> 16).toString(16)}:${(w & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16));
}

/** An address, or undefined when `ip` is none. IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as the IPv4 address. */
export function parseAddress(ip: string): Address | undefined {
  const v4 = v4Word(ip);
  if (v4 >= 0) return { v6: false, words: [v4] };
  if (isIP(ip) !== 6) return undefined;
  const g = v6Groups(ip);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return { v6: false, words: [((g[6]! << 16) | g[7]!) >>> 0] };
  return { v6: true, words: [0, 2, 4, 6].map((i) => ((g[i]! << 16) | g[i + 1]!) >>> 0) };
}

/** Whether `text` is an address or CIDR block, e.g. "10.0.0.0/8", "fd00::/8", "10.1.2.3". */
export function isBlock(text: string): boolean {
  const [ip, len, extra] = text.split('/');
  return isIP(ip ?? '') !== 0 && extra === undefined && (len === undefined || (/^\d{1,3}$/.test(len) && Number(len) <= (isIP(ip!) === 6 ? 128 : 32)));
}

/** Blocks as written in a policy (validated by isBlock when it was parsed; anything else matches nothing). */
export function parseBlocks(blocks: readonly string[]): Block[] {
  return blocks.flatMap((b) => {
    if (!isBlock(b)) return [];
    const [ip, len] = b.split('/') as [string, string | undefined];
    const a = parseAddress(ip)!;
    // ::ffff:10.0.0.0/104 is 10.0.0.0/8
    const offset = isIP(ip) === 6 && !a.v6 ? 96 : 0;
    const prefix = len === undefined ? (a.v6 ? 128 : 32) : Number(len) - offset;
    return prefix < 0 ? [] : [{ ...a, prefix }];
  });
}

export function inBlock(block: Block, a: Address): boolean {
  if (block.v6 !== a.v6) return false;
  let bits = block.prefix;
  for (let i = 0; bits > 0; i++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : ~(0xffffffff >>> bits);
    if (((block.words[i]! ^ a.words[i]!) & mask) !== 0) return false;
  }
  return true;
}
