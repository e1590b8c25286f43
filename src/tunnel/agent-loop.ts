import { isIPv4 } from 'node:net';
import { canonicalIp } from '../k8s/netns-candidates.js';
import { PORTS } from '../redirect/constants.js';

/**
 * Every port the agent listens on inside an enrolled pod (README "Traffic
 * path"). A connection whose destination is one of them at an address of
 * the pod itself would reach the agent's own listener again, which would
 * forward it again, until descriptors, ports or CPU run out for every pod
 * on the node. ztunnel refuses the same set (its `illegal_ports`).
 */
export const AGENT_POD_PORTS: ReadonlySet<number> = new Set(Object.values(PORTS));

export interface Address {
  ip: string;
  port: number;
}

export interface LoopContext {
  /** the pod's own IPs */
  podIps: readonly string[];
  /**
   * The local address of the accepted connection, when it came through a
   * listener: an original destination equal to it means the client dialed
   * the listener itself (no redirect happened), whatever the address.
   */
  listener?: Address;
}

/**
 * Why dialing `dst` from inside the pod would loop into the agent, or
 * undefined when it would not. A pure decision, shared by every data path
 * (outbound capture, plaintext inbound, HBONE CONNECT targets).
 */
export function agentLoop(dst: Address, context: LoopContext): string | undefined {
  const ip = comparable(dst.ip);
  if (context.listener !== undefined && context.listener.port === dst.port && comparable(context.listener.ip) === ip) {
    return `${show(dst)} is the agent's own listener`;
  }
  if (!AGENT_POD_PORTS.has(dst.port)) return undefined;
  if (isLoopback(ip) || ip === '0.0.0.0' || ip === '::' || context.podIps.some((p) => comparable(p) === ip)) {
    return `${show(dst)} is the agent's port ${dst.port} in this pod`;
  }
  return undefined;
}

const show = (a: Address): string => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`);

const isLoopback = (ip: string): boolean => ip === '::1' || (isIPv4(ip) && ip.startsWith('127.'));

/** One spelling per address, and an IPv4-mapped IPv6 address (a dual-stack socket's view) as its IPv4. */
function comparable(ip: string): string {
  const c = canonicalIp(ip);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(c);
  if (mapped === null) return c;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}
