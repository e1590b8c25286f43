/**
 * What one HBONE peer may cost this node's agent (README "Configuration",
 * issue 17). Every bound is enforced by the agent's HBONE server; a peer
 * that meets one is refused or reset, counted in
 * `warren_hbone_refused_total{reason}` and logged.
 */
export interface HboneLimits {
  /** open HBONE connections (TLS sessions) from one peer IP, to all pods of this node together */
  maxConnectionsPerPeer: number;
  /** open HBONE connections to all pods of this node together */
  maxConnections: number;
  /** a connection whose TLS handshake has not finished by then is closed (Node's default is 120 s) */
  handshakeTimeoutMs: number;
  /** a CONNECT stream that carries no byte either way for this long is reset */
  streamIdleTimeoutMs: number;
  /**
   * Bytes a peer may send on one stream before the agent has passed them
   * on: the stream's HTTP/2 receive window. A slow app pauses the stream,
   * the window stays closed and the peer must wait; a peer that sends past
   * it anyway is reset by HTTP/2 (FLOW_CONTROL_ERROR).
   */
  streamBufferBytes: number;
  /**
   * Outbound side: false opens a TLS connection per CONNECT stream and closes it with the
   * stream (no pool), which only the dataplane benchmark's "pool off" row uses, to compare
   * with a handshake per connection (bench/README.md). Absent: pooled.
   */
  outboundPooling?: boolean;
}

export const DEFAULT_HBONE_LIMITS: HboneLimits = {
  maxConnectionsPerPeer: 256,
  maxConnections: 4096,
  handshakeTimeoutMs: 5_000,
  // Envoy's tcp_proxy idle timeout: an hour without a byte is an abandoned connection.
  streamIdleTimeoutMs: 3_600_000,
  // One fast stream still fills a 10 Gbit/s link at 1 ms RTT (issue 7's window).
  streamBufferBytes: 4 * 1024 * 1024,
};

export type HboneRefusal =
  | 'peer-connections'
  | 'total-connections'
  | 'handshake-timeout'
  | 'stream-idle'
  | 'stream-buffer'
  | 'protocol-error'
  | 'trust-revoked';

/** How many HBONE connections are open now: on the node, and from the peer asking. */
export interface OpenConnections {
  total: number;
  fromPeer: number;
}

/** May one more connection from this peer be accepted? A pure decision; undefined: yes. */
export function admitConnection(open: OpenConnections, limits: HboneLimits): HboneRefusal | undefined {
  if (open.fromPeer >= limits.maxConnectionsPerPeer) return 'peer-connections';
  if (open.total >= limits.maxConnections) return 'total-connections';
  return undefined;
}

export type HboneRefused = (reason: HboneRefusal, detail: { peer: string; message: string }) => void;

/**
 * The node's HBONE accounting, one per agent and shared by every pod's
 * server: open connections per peer IP and in total, and where refusals are
 * reported (a metric and a log line in the agent).
 */
export class HboneGuard {
  private total = 0;
  private readonly byPeer = new Map<string, number>();

  constructor(
    readonly limits: HboneLimits,
    readonly refused: HboneRefused = () => {},
  ) {}

  /** Counts a new connection from `peer` and returns its release (call once, when it closes), or refuses it. */
  admit(peer: string): (() => void) | HboneRefusal {
    const refusal = admitConnection({ total: this.total, fromPeer: this.byPeer.get(peer) ?? 0 }, this.limits);
    if (refusal !== undefined) return refusal;
    this.total++;
    this.byPeer.set(peer, (this.byPeer.get(peer) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.byPeer.get(peer) ?? 1) - 1;
      if (n === 0) this.byPeer.delete(peer);
      else this.byPeer.set(peer, n);
    };
  }

  /** The log line of a connection `admit` refused. */
  refusedMessage(peer: string, refusal: HboneRefusal): string {
    return `HBONE connection from ${peer} refused: ${refusal === 'peer-connections' ? `it has ${this.limits.maxConnectionsPerPeer} open` : `this node has ${this.limits.maxConnections} open`}`;
  }

  /** open HBONE connections on this node */
  connections(): number {
    return this.total;
  }
}
