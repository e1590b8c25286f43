import { WarrenError } from '../../errors/warren-error.js';

/** One TCP segment of a capture, as the demo needs it: who talked to whom, and the bytes. */
export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  syn: boolean;
  payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;
/** a pcap file's global header; tcpdump has written it once the file is this long */
export const PCAP_HEADER_BYTES = 24;

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return groups.join(':');
}

/** The TCP segment inside one Ethernet frame, or undefined for anything else (ARP, UDP, fragments, IPv6 extension headers). */
function tcpOfFrame(frame: Buffer): TcpSegment | undefined {
  if (frame.length < 14) return undefined;
  const etherType = frame.readUInt16BE(12);
  let l4: number;
  let end: number;
  let src: string;
  let dst: string;
  if (etherType === 0x0800) {
    if (frame.length < 34 || frame[23] !== 6) return undefined;
    l4 = 14 + (frame[14]! & 0x0f) * 4;
    end = Math.min(frame.length, 14 + frame.readUInt16BE(16));
    [src, dst] = [ipv4(frame, 26), ipv4(frame, 30)];
  } else if (etherType === 0x86dd) {
    if (frame.length < 54 || frame[20] !== 6) return undefined;
    l4 = 54;
    end = Math.min(frame.length, 54 + frame.readUInt16BE(18));
    [src, dst] = [ipv6(frame, 22), ipv6(frame, 38)];
  } else {
    return undefined;
  }
  if (end < l4 + 20) return undefined;
  const dataOffset = (frame[l4 + 12]! >> 4) * 4;
  return {
    src,
    dst,
    srcPort: frame.readUInt16BE(l4),
    dstPort: frame.readUInt16BE(l4 + 2),
    seq: frame.readUInt32BE(l4 + 4),
    syn: (frame[l4 + 13]! & 0x02) !== 0,
    payload: frame.subarray(l4 + dataOffset, end),
  };
}

/**
 * The TCP segments of a classic pcap file (what `tcpdump -w` writes) on an
 * Ethernet link, in capture order. Either byte order, micro- or nanosecond
 * timestamps.
 */
export function parsePcap(file: Buffer): TcpSegment[] {
  if (file.length < PCAP_HEADER_BYTES) throw new WarrenError('ERR_PCAP', `not a pcap file: ${file.length} bytes, shorter than its header`);
  const magic = file.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const big = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!little && !big) throw new WarrenError('ERR_PCAP', `not a pcap file: magic 0x${magic.toString(16)}`);
  const u32 = (at: number): number => (little ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const linkType = u32(20) & 0x0fffffff;
  if (linkType !== LINKTYPE_ETHERNET) throw new WarrenError('ERR_PCAP', `pcap link type ${linkType} is not Ethernet (capture on a bridge or veth)`);
  const segments: TcpSegment[] = [];
  // A packet cut off by tcpdump's SIGINT ends the file early: keep what is whole.
  for (let at = PCAP_HEADER_BYTES; at + 16 <= file.length; ) {
    const captured = u32(at + 8);
    const start = at + 16;
    if (start + captured > file.length) break;
    const segment = tcpOfFrame(file.subarray(start, start + captured));
    if (segment !== undefined) segments.push(segment);
    at = start + captured;
  }
  return segments;
}

export interface Flow {
  src: string;
  dst: string;
  dstPort: number;
}

/**
 * One direction of a TCP connection's bytes, in sequence order from its
 * start (the SYN's sequence number + 1, or the first segment seen when the
 * SYN is not in the capture); retransmissions overlap and are dropped, a gap
 * ends the stream.
 */
function reassemble(segments: TcpSegment[]): Buffer {
  const synSeq = segments.find((s) => s.syn)?.seq;
  const withData = segments.filter((s) => s.payload.length > 0);
  if (withData.length === 0) return Buffer.alloc(0);
  const base = synSeq === undefined ? withData[0]!.seq : (synSeq + 1) >>> 0;
  const ordered = withData.map((s) => ({ offset: (s.seq - base) >>> 0, payload: s.payload })).sort((a, b) => a.offset - b.offset);
  const parts: Buffer[] = [];
  let length = 0;
  for (const { offset, payload } of ordered) {
    if (offset > length) break;
    if (offset + payload.length <= length) continue;
    parts.push(payload.subarray(length - offset));
    length = offset + payload.length;
  }
  return Buffer.concat(parts);
}

/** TLS records walked from the start of a byte stream: content type 20-23, version 3.x, then the length. */
function countTlsRecords(stream: Buffer): number {
  let count = 0;
  for (let at = 0; at + 5 <= stream.length; at += 5 + stream.readUInt16BE(at + 3)) {
    const type = stream[at]!;
    if (type < 20 || type > 23 || stream[at + 1] !== 3) break;
    count++;
  }
  return count;
}

export interface CaptureSummary {
  /** segments whose payload carries the marker in the clear */
  markerHits: Array<Flow & { srcPort: number }>;
  /** TLS records in connections to `tlsPort`, both directions, by client → server flow */
  tls: Array<Flow & { records: number }>;
}

/** What a capture shows: where `marker` appears in the clear, and how many TLS records went over connections to `tlsPort`. */
export function summarizeCapture(segments: TcpSegment[], marker: string, tlsPort: number): CaptureSummary {
  const markerHits = segments.filter((s) => s.payload.includes(marker)).map(({ src, dst, srcPort, dstPort }) => ({ src, dst, srcPort, dstPort }));
  const directions = new Map<string, TcpSegment[]>();
  for (const s of segments) {
    if (s.dstPort !== tlsPort && s.srcPort !== tlsPort) continue;
    const key = `${s.src}|${s.srcPort}|${s.dst}|${s.dstPort}`;
    const list = directions.get(key);
    if (list === undefined) directions.set(key, [s]);
    else list.push(s);
  }
  const byFlow = new Map<string, Flow & { records: number }>();
  for (const list of directions.values()) {
    const s = list[0]!;
    const toServer = s.dstPort === tlsPort;
    const flow = toServer ? { src: s.src, dst: s.dst, dstPort: s.dstPort } : { src: s.dst, dst: s.src, dstPort: s.srcPort };
    const key = `${flow.src}|${flow.dst}|${flow.dstPort}`;
    const entry = byFlow.get(key) ?? { ...flow, records: 0 };
    entry.records += countTlsRecords(reassemble(list));
    byFlow.set(key, entry);
  }
  return { markerHits, tls: [...byFlow.values()] };
}
