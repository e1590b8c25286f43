import { WarrenError } from '../errors/warren-error.js';
import { parseSpiffeId } from '../identity/spiffe.js';
import { parseAddress } from '../policy/ip-blocks.js';

/**
 * PROXY protocol v2 (haproxy's proxy-protocol.txt, §2.2), the header the
 * waypoint's node agent puts in front of every stream it hands to the
 * waypoint on :15088 (docs/architecture.md §14). Only what that
 * binding needs: command PROXY, TCP over IPv4 or IPv6, and TLV 0xD0 carrying
 * the client's SPIFFE ID as Istio's PROXY/15088 binding does. Everything
 * else a peer sends is refused with a stable code rather than guessed at.
 */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyV2Header {
  source: ProxyEndpoint;
  destination: ProxyEndpoint;
  clientSpiffeId?: string;
}

export type ProxyV2ErrorCode =
  | 'ERR_PROXY_SIGNATURE'
  | 'ERR_PROXY_VERSION'
  | 'ERR_PROXY_COMMAND'
  | 'ERR_PROXY_FAMILY'
  | 'ERR_PROXY_LENGTH'
  | 'ERR_PROXY_ADDRESS'
  | 'ERR_PROXY_TLV'
  | 'ERR_PROXY_SPIFFE_ID';

export type ProxyV2Decoded =
  | { kind: 'incomplete' }
  | { kind: 'header'; header: ProxyV2Header; consumed: number }
  | { kind: 'error'; code: ProxyV2ErrorCode };

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_LENGTH = 16;
const VERSION_2_PROXY = 0x21;
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;
const IPV4_BLOCK = 12;
const IPV6_BLOCK = 36;
/** Istio's TLV type for the peer principal on the PROXY/15088 inbound binding. */
export const TLV_CLIENT_SPIFFE_ID = 0xd0;
/** The SPIFFE ID spec caps an ID at 2048 bytes. */
const MAX_SPIFFE_ID_BYTES = 2048;
/**
 * Largest variable part accepted: the IPv6 block, our TLV at its largest and
 * room for a few small TLVs (ALPN, NOOP padding) other senders add. A peer
 * announcing more is refused before anything is buffered for it.
 */
export const MAX_PROXY_V2_VARIABLE_LENGTH = IPV6_BLOCK + 3 + MAX_SPIFFE_ID_BYTES + 256;

function addressBytes(address: string, v6: boolean): Buffer {
  const parsed = parseAddress(address);
  if (parsed === undefined || parsed.v6 !== v6) {
    throw new WarrenError('ERR_PROXY_ADDRESS', `${JSON.stringify(address)} is not an IPv${v6 ? 6 : 4} address`);
  }
  const out = Buffer.alloc(v6 ? 16 : 4);
  parsed.words.forEach((w, i) => out.writeUInt32BE(w >>> 0, i * 4));
  return out;
}

function checkPort(port: number, field: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new WarrenError('ERR_PROXY_ADDRESS', `${field} ${port} is not a TCP port`);
  }
}

/** Encodes a PROXY v2 header; throws ERR_PROXY_* on an input it could not represent faithfully. */
export function encodeProxyV2(h: ProxyV2Header): Buffer {
  const v6 = parseAddress(h.source.address)?.v6 ?? false;
  const src = addressBytes(h.source.address, v6);
  const dst = addressBytes(h.destination.address, v6);
  checkPort(h.source.port, 'source.port');
  checkPort(h.destination.port, 'destination.port');
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(h.source.port, 0);
  ports.writeUInt16BE(h.destination.port, 2);
  const tlvs: Buffer[] = [];
  if (h.clientSpiffeId !== undefined) {
    const value = Buffer.from(h.clientSpiffeId, 'utf8');
    if (value.length > MAX_SPIFFE_ID_BYTES) throw new WarrenError('ERR_PROXY_SPIFFE_ID', 'clientSpiffeId is longer than 2048 bytes');
    const tl = Buffer.alloc(3);
    tl.writeUInt8(TLV_CLIENT_SPIFFE_ID, 0);
    tl.writeUInt16BE(value.length, 1);
    tlvs.push(tl, value);
  }
  const variable = Buffer.concat([src, dst, ports, ...tlvs]);
  const fixed = Buffer.alloc(FIXED_LENGTH);
  SIGNATURE.copy(fixed, 0);
  fixed.writeUInt8(VERSION_2_PROXY, 12);
  fixed.writeUInt8(v6 ? TCP_OVER_IPV6 : TCP_OVER_IPV4, 13);
  fixed.writeUInt16BE(variable.length, 14);
  return Buffer.concat([fixed, variable]);
}

function ipv4Text(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6Text(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + i * 2).toString(16));
  // The URL parser gives the canonical (RFC 5952) spelling, so addresses compare as strings.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/**
 * Incremental decoder: call it with everything received so far. It answers
 * `incomplete` only while the bytes are still a valid prefix of a header, so
 * a peer sending garbage is refused at its first wrong byte.
 */
export function decodeProxyV2(buf: Buffer): ProxyV2Decoded {
  const sigBytes = Math.min(buf.length, SIGNATURE.length);
  if (buf.compare(SIGNATURE, 0, sigBytes, 0, sigBytes) !== 0) return { kind: 'error', code: 'ERR_PROXY_SIGNATURE' };
  if (buf.length > 12 && buf[12] !== VERSION_2_PROXY) {
    return { kind: 'error', code: (buf[12]! & 0xf0) === 0x20 ? 'ERR_PROXY_COMMAND' : 'ERR_PROXY_VERSION' };
  }
  if (buf.length > 13 && buf[13] !== TCP_OVER_IPV4 && buf[13] !== TCP_OVER_IPV6) return { kind: 'error', code: 'ERR_PROXY_FAMILY' };
  if (buf.length < FIXED_LENGTH) return { kind: 'incomplete' };
  const v6 = buf[13] === TCP_OVER_IPV6;
  const length = buf.readUInt16BE(14);
  const block = v6 ? IPV6_BLOCK : IPV4_BLOCK;
  if (length < block || length > MAX_PROXY_V2_VARIABLE_LENGTH) return { kind: 'error', code: 'ERR_PROXY_LENGTH' };
  const end = FIXED_LENGTH + length;
  if (buf.length < end) return { kind: 'incomplete' };

  const at = FIXED_LENGTH;
  const addrLen = v6 ? 16 : 4;
  const text = v6 ? ipv6Text : ipv4Text;
  const source = { address: text(buf, at), port: buf.readUInt16BE(at + 2 * addrLen) };
  const destination = { address: text(buf, at + addrLen), port: buf.readUInt16BE(at + 2 * addrLen + 2) };
  if (destination.port === 0 || source.port === 0) return { kind: 'error', code: 'ERR_PROXY_ADDRESS' };

  let clientSpiffeId: string | undefined;
  let p = at + block;
  while (p < end) {
    if (end - p < 3) return { kind: 'error', code: 'ERR_PROXY_TLV' };
    const type = buf[p]!;
    const len = buf.readUInt16BE(p + 1);
    const valueAt = p + 3;
    if (valueAt + len > end) return { kind: 'error', code: 'ERR_PROXY_TLV' };
    if (type === TLV_CLIENT_SPIFFE_ID) {
      if (clientSpiffeId !== undefined) return { kind: 'error', code: 'ERR_PROXY_TLV' };
      const value = buf.subarray(valueAt, valueAt + len);
      const id = new TextDecoder('utf-8', { fatal: false }).decode(value);
      // Identities are compared as strings downstream: only the one canonical shape passes.
      if (!Buffer.from(id, 'utf8').equals(value) || !isWorkloadId(id)) return { kind: 'error', code: 'ERR_PROXY_SPIFFE_ID' };
      clientSpiffeId = id;
    }
    // Other TLV types are skipped, as the spec asks of receivers that do not know them.
    p = valueAt + len;
  }
  const header: ProxyV2Header = clientSpiffeId === undefined ? { source, destination } : { source, destination, clientSpiffeId };
  return { kind: 'header', header, consumed: end };
}

function isWorkloadId(id: string): boolean {
  try {
    parseSpiffeId(id);
    return true;
  } catch {
    return false;
  }
}
