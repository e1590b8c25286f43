import { isIPv4, isIPv6 } from 'node:net';
import { WarrenError } from '../../errors/warren-error.js';

/**
 * RFC 1035 wire format, the subset a cluster DNS server needs: parse a query
 * (header, one question, an EDNS OPT record if any) and encode a response
 * with A, AAAA and SRV answers. Packets come from any process that can reach
 * the port, so every read is bounds-checked and the only error thrown is a
 * WarrenError with code ERR_DNS_MALFORMED.
 */

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

export const QTYPE = { A: 1, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const QCLASS_IN = 1;

export interface DnsHeader {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export interface DnsQuestion {
  /** presentation form without the trailing dot; bytes that are not plain printable ASCII are escaped as \DDD */
  name: string;
  /** the labels as sent, so a response echoes the question byte for byte (resolvers compare it) */
  labels: readonly Uint8Array[];
  type: number;
  class: number;
}

export interface DnsMessage {
  header: DnsHeader;
  questions: DnsQuestion[];
  /** A, AAAA and SRV records of class IN from the answer section; other types are skipped */
  answers: DnsAnswer[];
  /** present when the additional section holds an OPT record (RFC 6891) */
  edns?: { udpSize: number };
}

export interface DnsQuery {
  header: DnsHeader;
  question: DnsQuestion;
  edns?: { udpSize: number };
}

interface AnswerBase {
  name: string;
  ttl: number;
}
export type DnsAnswer =
  | (AnswerBase & { type: typeof QTYPE.A | typeof QTYPE.AAAA; address: string })
  | (AnswerBase & { type: typeof QTYPE.SRV; priority: number; weight: number; port: number; target: string });

export interface LookupResult {
  rcode: Rcode;
  answers: DnsAnswer[];
}

const HEADER_LEN = 12;
const MAX_NAME_WIRE = 255;
/** Without EDNS a UDP answer may not exceed 512 bytes; with it we still stay under 1232 to avoid IP fragmentation (DNS flag day 2020). */
const PLAIN_UDP_MAX = 512;
export const EDNS_UDP_MAX = 1232;

const malformed = (message: string): WarrenError => new WarrenError('ERR_DNS_MALFORMED', `malformed DNS packet: ${message}`);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw malformed(`${what} at offset ${this.pos} runs past the end of the ${this.buf.length}-byte packet`);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
}

const asBuffer = (packet: Uint8Array): Buffer => (Buffer.isBuffer(packet) ? packet : Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength));

export function parseHeader(packet: Uint8Array): DnsHeader {
  const buf = asBuffer(packet);
  if (buf.length < HEADER_LEN) throw malformed(`${buf.length} bytes is shorter than the 12-byte header`);
  const flags = buf.readUInt16BE(2);
  return {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    qdcount: buf.readUInt16BE(4),
    ancount: buf.readUInt16BE(6),
    nscount: buf.readUInt16BE(8),
    arcount: buf.readUInt16BE(10),
  };
}

/**
 * Reads a possibly compressed name at `r.pos`. Each compression pointer must
 * point before the segment it interrupts, so offsets strictly decrease and a
 * crafted pointer cycle ends in an error instead of an endless loop.
 */
function readName(r: Reader): Uint8Array[] {
  const { buf } = r;
  const labels: Uint8Array[] = [];
  let pos = r.pos;
  let segmentStart = pos;
  let resume = -1;
  let wireLen = 0;
  for (;;) {
    if (pos >= buf.length) throw malformed(`name at offset ${r.pos} runs past the end of the packet`);
    const len = buf[pos]!;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw malformed(`compression pointer at offset ${pos} is cut off`);
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= segmentStart) throw malformed(`compression pointer at offset ${pos} to ${target} does not point backwards (a loop)`);
      if (resume < 0) resume = pos + 2;
      pos = segmentStart = target;
      continue;
    }
    if (kind !== 0) throw malformed(`label type 0x${kind.toString(16)} at offset ${pos} is reserved`);
    wireLen += 1 + len;
    if (wireLen > MAX_NAME_WIRE) throw malformed(`name at offset ${r.pos} is longer than 255 bytes`);
    if (len === 0) {
      r.pos = resume < 0 ? pos + 1 : resume;
      return labels;
    }
    if (pos + 1 + len > buf.length) throw malformed(`label of ${len} bytes at offset ${pos} overruns the packet`);
    labels.push(buf.subarray(pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

/** Escapes like dig: a label holding "." or a control byte must not read as two labels or smuggle bytes into logs. */
function labelText(label: Uint8Array): string {
  let out = '';
  for (const b of label) {
    if (b > 0x20 && b < 0x7f && b !== 0x2e && b !== 0x5c) out += String.fromCharCode(b);
    else out += `\\${b.toString().padStart(3, '0')}`;
  }
  return out;
}

const nameText = (labels: readonly Uint8Array[]): string => labels.map(labelText).join('.');

function readQuestion(r: Reader): DnsQuestion {
  const labels = readName(r);
  return { name: nameText(labels), labels, type: r.u16('question type'), class: r.u16('question class') };
}

function readAddress(rdata: Buffer, type: number): string | undefined {
  if (type === QTYPE.A && rdata.length === 4) return Array.from(rdata).join('.');
  if (type === QTYPE.AAAA && rdata.length === 16) return ipv6Text(rdata);
  return undefined;
}

function ipv6Text(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // RFC 5952: compress the longest run of two or more zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Parses any message; unknown record types are skipped but still bounds-checked. */
export function parseMessage(packet: Uint8Array): DnsMessage {
  const header = parseHeader(packet);
  const r = new Reader(asBuffer(packet));
  r.pos = HEADER_LEN;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < header.qdcount; i++) questions.push(readQuestion(r));
  const answers: DnsAnswer[] = [];
  let edns: { udpSize: number } | undefined;
  const records = header.ancount + header.nscount + header.arcount;
  for (let i = 0; i < records; i++) {
    const labels = readName(r);
    const type = r.u16('record type');
    const klass = r.u16('record class');
    const ttl = r.u32('record TTL');
    const rdlength = r.u16('record data length');
    const rdataStart = r.pos;
    const rdata = r.bytes(rdlength, 'record data');
    const section = i < header.ancount ? 'answer' : i < header.ancount + header.nscount ? 'authority' : 'additional';
    if (section === 'additional' && type === QTYPE.OPT) {
      if (edns !== undefined) throw malformed('more than one OPT record');
      if (labels.length !== 0) throw malformed('OPT record with a non-root owner name');
      // The OPT "class" carries the sender's UDP payload size.
      edns = { udpSize: klass };
      continue;
    }
    if (section !== 'answer' || klass !== QCLASS_IN) continue;
    const name = nameText(labels);
    if (type === QTYPE.A || type === QTYPE.AAAA) {
      const address = readAddress(rdata, type);
      if (address === undefined) throw malformed(`type ${type} record with ${rdlength} data bytes`);
      answers.push({ name, ttl, type, address });
    } else if (type === QTYPE.SRV) {
      const rr = new Reader(r.buf);
      rr.pos = rdataStart;
      const priority = rr.u16('SRV priority');
      const weight = rr.u16('SRV weight');
      const port = rr.u16('SRV port');
      const target = nameText(readName(rr));
      if (rr.pos !== rdataStart + rdlength) throw malformed('SRV record data length does not match its contents');
      answers.push({ name, ttl, type, priority, weight, port, target });
    }
  }
  return { header, questions, answers, ...(edns === undefined ? {} : { edns }) };
}

/** A message a server should answer: a query with exactly one question. */
export function parseQuery(packet: Uint8Array): DnsQuery {
  const msg = parseMessage(packet);
  if (msg.header.qr) throw malformed('QR is set: this is a response, not a query');
  const question = msg.questions[0];
  if (question === undefined || msg.questions.length !== 1) throw malformed(`a query carries one question, this one ${msg.questions.length}`);
  return { header: msg.header, question, ...(msg.edns === undefined ? {} : { edns: msg.edns }) };
}

class Writer {
  private readonly chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u16(...values: number[]): void {
    const b = Buffer.alloc(values.length * 2);
    values.forEach((v, i) => b.writeUInt16BE(v, i * 2));
    this.push(b);
  }
  done(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

const encodeError = (message: string): WarrenError => new WarrenError('ERR_DNS_ENCODE', message);

function encodeLabels(labels: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) {
    if (l.length < 1 || l.length > 63) throw encodeError(`a DNS label is 1 to 63 bytes, got ${l.length}`);
    parts.push(Buffer.from([l.length]), Buffer.from(l));
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > MAX_NAME_WIRE) throw encodeError(`a DNS name is at most 255 bytes on the wire, got ${out.length}`);
  return out;
}

/** Names we encode come from Kubernetes object names (RFC 1123 labels), so no escape syntax is needed. */
function textLabels(name: string): Buffer[] {
  const text = name.replace(/\.$/, '');
  return text === '' ? [] : text.split('.').map((l) => Buffer.from(l, 'latin1'));
}

function encodeAddress(type: number, address: string): Buffer {
  if (type === QTYPE.A && isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (type === QTYPE.AAAA && isIPv6(address)) return ipv6Bytes(address);
  throw encodeError(`${JSON.stringify(address)} is not an ${type === QTYPE.A ? 'IPv4' : 'IPv6'} address`);
}

/** Expects an address isIPv6 accepted (optionally with a dotted IPv4 tail, as in ::ffff:10.0.0.1). */
function ipv6Bytes(address: string): Buffer {
  let text = address.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const part = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = part(head);
  const right = part(tail);
  const groups = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

function encodeAnswer(answer: DnsAnswer, ownerName: (name: string) => Buffer): Buffer {
  const w = new Writer();
  w.push(ownerName(answer.name));
  const rdata =
    answer.type === QTYPE.SRV
      ? Buffer.concat([Buffer.from([answer.priority >> 8, answer.priority & 0xff, answer.weight >> 8, answer.weight & 0xff, answer.port >> 8, answer.port & 0xff]), encodeLabels(textLabels(answer.target))])
      : encodeAddress(answer.type, answer.address);
  w.u16(answer.type, QCLASS_IN);
  const ttl = Buffer.alloc(4);
  ttl.writeUInt32BE(Math.max(0, Math.min(answer.ttl, 0x7fffffff)) >>> 0);
  w.push(ttl);
  w.u16(rdata.length);
  w.push(rdata);
  return w.done();
}

const sameName = (a: string, b: string): boolean => a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();

/**
 * A response to `request`: id and RD copied, QR and AA set, RA clear (the
 * simulator never recurses). The question is echoed when known; answers
 * that would push the packet past the client's UDP limit are dropped
 * whole and TC is set, as RFC 2181 §9 asks.
 */
export function encodeResponse(request: { header: Pick<DnsHeader, 'id' | 'opcode' | 'rd'>; question?: DnsQuestion; edns?: { udpSize: number } }, result: { rcode: Rcode; answers?: readonly DnsAnswer[] }): Buffer {
  const { header, question, edns } = request;
  const limit = edns === undefined ? PLAIN_UDP_MAX : Math.min(Math.max(edns.udpSize, PLAIN_UDP_MAX), EDNS_UDP_MAX);
  const opt = edns === undefined ? undefined : Buffer.from([0, QTYPE.OPT >> 8, QTYPE.OPT & 0xff, EDNS_UDP_MAX >> 8, EDNS_UDP_MAX & 0xff, 0, 0, 0, 0, 0, 0]);
  const body = new Writer();
  if (question !== undefined) {
    body.push(encodeLabels(question.labels));
    body.u16(question.type, question.class);
  }
  // The question name sits right after the header: answers for it point there (RFC 1035 §4.1.4).
  const ownerName = (name: string): Buffer => (question !== undefined && sameName(name, question.name) ? Buffer.from([0xc0, HEADER_LEN]) : encodeLabels(textLabels(name)));
  let ancount = 0;
  let truncated = false;
  for (const answer of result.answers ?? []) {
    const rr = encodeAnswer(answer, ownerName);
    if (HEADER_LEN + body.length + rr.length + (opt?.length ?? 0) > limit) {
      truncated = true;
      break;
    }
    body.push(rr);
    ancount++;
  }
  if (opt !== undefined) body.push(opt);
  const flags = 0x8000 | ((header.opcode & 0xf) << 11) | 0x0400 | (truncated ? 0x0200 : 0) | (header.rd ? 0x0100 : 0) | (result.rcode & 0xf);
  const head = new Writer();
  head.u16(header.id, flags, question === undefined ? 0 : 1, ancount, 0, opt === undefined ? 0 : 1);
  return Buffer.concat([head.done(), body.done()]);
}

/** A query as a stub resolver sends it; for tests and health probes. */
export function encodeQuery(query: { id: number; name: string; type: number; rd?: boolean }): Buffer {
  const w = new Writer();
  w.u16(query.id, query.rd === false ? 0 : 0x0100, 1, 0, 0, 0);
  w.push(encodeLabels(textLabels(query.name)));
  w.u16(query.type, QCLASS_IN);
  return w.done();
}
