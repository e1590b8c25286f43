import { setTimeout as sleep } from 'node:timers/promises';
import type { Server, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { originalDestination, socketFd, type OriginalDestination } from '../native/netns-socket.js';
import { PORTS, PROXY_MARK } from '../redirect/constants.js';
import type { DataPlane } from './dataplane.js';
import type { L4Request } from '../policy/authorization.js';
import { HboneInbound } from './hbone-inbound.js';
import { HbonePool } from './hbone-pool.js';
import { routeOutbound } from './outbound-route.js';
import { deliverInbound, forwardOutbound } from './passthrough.js';
import { listenInPod } from './pod-listener.js';
import { spliceStream } from './stream-splice.js';

export type Direction = 'outbound' | 'inbound' | 'hbone';

export interface ConnectionRecord {
  pod: string;
  direction: Direction;
  /** hbone (mutual TLS tunnel) or plaintext */
  security: 'mtls' | 'plaintext';
  source: string;
  destination?: string;
  peer?: string;
  service?: string;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  error?: string;
}

export interface PodProxyOptions {
  /** namespace/name, for logs */
  pod: string;
  namespace: string;
  labels: Record<string, string>;
  netns: string;
  ips: string[];
  identity: SpiffeId;
  dataplane: DataPlane;
  onConnection: (record: ConnectionRecord) => void;
}

/**
 * The agent's sockets in one pod: outbound capture (:15001), inbound
 * plaintext capture (:15006) and HBONE (:15008), one per IP family the pod
 * has, all made inside the pod's netns and owned by this process.
 * Outbound to an enrolled pod goes over an HBONE tunnel with this pod's
 * identity; to anything else it passes through from the pod's netns.
 */
export class PodProxy {
  private servers: Server[] = [];
  private readonly live = new Set<Socket>();
  /** plaintext inbound connections being served, with what authorized them */
  private readonly plaintext = new Map<Socket, L4Request>();
  private readonly cursor = new Map<string, number>();
  private readonly pool: HbonePool;
  private readonly inbound: HboneInbound;

  private constructor(private readonly o: PodProxyOptions) {
    const certificate = () => o.dataplane.certificate(o.identity);
    this.pool = new HbonePool({ netns: o.netns, certificate, bundle: o.dataplane.bundle, trustDomain: o.dataplane.trustDomain });
    this.inbound = new HboneInbound({
      netns: o.netns,
      podIps: o.ips,
      certificate,
      bundle: o.dataplane.bundle,
      trustDomain: o.dataplane.trustDomain,
      authorize: (r) => o.dataplane.authorize(this.l4Request(r.sourceIp, formatSpiffeId(r.peer), r.target)),
      onStream: (r) => o.onConnection({ pod: o.pod, direction: 'hbone', security: 'mtls', ...r }),
    });
  }

  static async start(options: PodProxyOptions): Promise<PodProxy> {
    const proxy = new PodProxy(options);
    const families = [...new Set(options.ips.map((ip) => (isIPv6(ip) ? 6 : 4)))] as Array<4 | 6>;
    try {
      for (const family of families) {
        const base = { netns: options.netns, family, mark: PROXY_MARK.value };
        proxy.servers.push(await listenInPod({ ...base, port: PORTS.outbound }, (s) => proxy.track(s, () => proxy.outbound(s))));
        proxy.servers.push(await listenInPod({ ...base, port: PORTS.inbound }, (s) => proxy.track(s, () => proxy.plaintextInbound(s))));
        proxy.servers.push(await listenInPod({ ...base, port: PORTS.hbone }, (s) => proxy.inbound.accept(s)));
      }
    } catch (err) {
      for (const s of proxy.servers) s.close();
      throw err;
    }
    return proxy;
  }

  private l4Request(sourceIp: string, principal: string | undefined, target: { ip: string; port: number }): L4Request {
    return {
      source: { ip: sourceIp, ...(principal === undefined ? {} : { principal }) },
      destination: { namespace: this.o.namespace, labels: this.o.labels, ip: target.ip, port: target.port },
    };
  }

  /** Applies changed policies to live inbound connections: those now denied are reset. */
  reauthorize(): number {
    const allowed = (r: L4Request): boolean => this.o.dataplane.authorize(r).allow;
    let n = this.inbound.revoke((r) => allowed(this.l4Request(r.sourceIp, formatSpiffeId(r.peer), r.target)));
    for (const [socket, request] of this.plaintext) {
      if (allowed(request)) continue;
      this.plaintext.delete(socket);
      socket.resetAndDestroy();
      n++;
    }
    return n;
  }

  /** What this pod's proxy carries now: captured connections, its outbound tunnels, inbound streams. */
  connectionStats(): { captured: number; plaintextInbound: number; inboundStreams: number; outboundTunnels: ReturnType<HbonePool['stats']> } {
    return { captured: this.live.size, plaintextInbound: this.plaintext.size, inboundStreams: this.inbound.active(), outboundTunnels: this.pool.stats() };
  }

  private track(client: Socket, handle: () => Promise<Omit<ConnectionRecord, 'pod' | 'source' | 'durationMs'>>): void {
    const started = Date.now();
    const source = `${client.remoteAddress}:${client.remotePort}`;
    this.live.add(client);
    void handle()
      .catch((err: Error) => {
        client.resetAndDestroy();
        return { direction: 'outbound' as const, security: 'plaintext' as const, bytesSent: 0, bytesReceived: 0, error: err.message };
      })
      .then((r) => {
        this.live.delete(client);
        this.o.onConnection({ pod: this.o.pod, ...r, source, durationMs: Date.now() - started });
      });
  }

  private async outbound(client: Socket) {
    let dst: OriginalDestination;
    try {
      dst = originalDestination(socketFd(client));
    } catch (err) {
      client.resetAndDestroy();
      return { direction: 'outbound' as const, security: 'plaintext' as const, bytesSent: 0, bytesReceived: 0, error: (err as Error).message };
    }
    const route = routeOutbound(this.o.dataplane.index(), { ip: dst.address, port: dst.port }, this.o.dataplane.trustDomain, this.cursor);
    const service = route.service === undefined ? {} : { service: route.service };
    if (route.kind === 'no-endpoints') {
      client.resetAndDestroy();
      return { direction: 'outbound' as const, security: 'plaintext' as const, destination: `${dst.address}:${dst.port}`, ...service, bytesSent: 0, bytesReceived: 0, error: `service ${route.service} has no ready endpoints` };
    }
    const destination = `${route.target.ip}:${route.target.port}`;
    if (route.kind === 'passthrough') {
      const r = await forwardOutbound(client, this.o.netns, PROXY_MARK.value, { family: dst.family, address: route.target.ip, port: route.target.port });
      return { direction: 'outbound' as const, security: 'plaintext' as const, destination, ...service, bytesSent: r.bytesAtoB, bytesReceived: r.bytesBtoA, ...(r.error ? { error: r.error.message } : {}) };
    }
    const peer = { peer: formatSpiffeId(route.identity) };
    const stream = await this.pool.open(route.target.ip, route.identity, route.target, { forwarded: `for=${client.remoteAddress}` });
    const r = await spliceStream(client, stream);
    return { direction: 'outbound' as const, security: 'mtls' as const, destination, ...peer, ...service, bytesSent: r.bytesAtoB, bytesReceived: r.bytesBtoA, ...(r.error ? { error: r.error.message } : {}) };
  }

  private async plaintextInbound(client: Socket) {
    const dst = originalDestination(socketFd(client));
    const destination = { destination: `${dst.address}:${dst.port}` };
    const refused = (error: string) => {
      client.resetAndDestroy();
      return { direction: 'inbound' as const, security: 'plaintext' as const, ...destination, bytesSent: 0, bytesReceived: 0, error };
    };
    if (!this.o.dataplane.plaintextAllowed({ namespace: this.o.namespace, labels: this.o.labels }, dst.port)) return refused('plaintext refused: PeerAuthentication STRICT');
    const request = this.l4Request(client.remoteAddress ?? '', undefined, { ip: dst.address, port: dst.port });
    const decision = this.o.dataplane.authorize(request);
    if (!decision.allow) return refused(decision.reason);
    this.plaintext.set(client, request);
    const r = await deliverInbound(client, this.o.netns, PROXY_MARK.value, dst);
    this.plaintext.delete(client);
    return { direction: 'inbound' as const, security: 'plaintext' as const, ...destination, bytesSent: r.bytesAtoB, bytesReceived: r.bytesBtoA, ...(r.error ? { error: r.error.message } : {}) };
  }

  /**
   * Stops accepting at once (the pod's rules are already gone or going);
   * connections in flight may finish for up to `drainMs`, then are reset.
   */
  async close(drainMs: number): Promise<void> {
    for (const s of this.servers) s.close();
    this.servers = [];
    this.inbound.close(false);
    const deadline = Date.now() + drainMs;
    while (this.live.size + this.inbound.active() > 0 && Date.now() < deadline) await sleep(100);
    for (const s of this.live) s.resetAndDestroy();
    this.inbound.close(true);
    this.pool.close();
  }
}
