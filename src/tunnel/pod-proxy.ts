import type { Server, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { originalDestination, serverFd, socketFd } from '../native/netns-socket.js';
import { PORTS, PROXY_MARK } from '../redirect/constants.js';
import type { DataPlane, LoopPath } from './dataplane.js';
import { agentLoop } from './agent-loop.js';
import { denyingPolicy, type L4Request } from '../policy/authorization.js';
import { HboneInbound } from './hbone-inbound.js';
import { HbonePool } from './hbone-pool.js';
import { routeOutbound } from './outbound-route.js';
import { clientPort, connectToWaypoint } from './waypoint-handoff.js';
import { sendViaWaypoint } from './waypoint-outbound.js';
import { routeViaWaypoint, servedByWaypoint, type SourcePod } from './waypoint-route.js';
import { deliverInbound, forwardOutbound } from './passthrough.js';
import { listenInPod, type OwnedListener } from './pod-listener.js';
import { spliceStream } from './stream-splice.js';
import type { ConnectionMeta, ConnectionObserver, ConnectionResult, OpenConnection } from '../telemetry/connection-observer.js';
import type { PodConnections, Registration } from './connection-registry.js';

export interface PodProxyOptions {
  /** namespace/name, for logs */
  pod: string;
  namespace: string;
  /** the pod's labels as policies select them now (the enrollment manager owns them; they may change while it runs) */
  labels(): Readonly<Record<string, string>>;
  netns: string;
  ips: string[];
  identity: SpiffeId;
  dataplane: DataPlane;
  telemetry: ConnectionObserver;
  /** this pod's entry in the agent's connection registry: re-authorization and drain go through it */
  connections: PodConnections;
  /** the listening socket for this family and port handed over by the agent this one replaces, if any (agent/listener-handoff.ts) */
  adopt?(family: 4 | 6, port: number): number | undefined;
}

/**
 * The agent's sockets in one pod: outbound capture (:15001), inbound
 * plaintext capture (:15006) and HBONE (:15008), one per IP family the pod
 * has, all made inside the pod's netns and owned by this process.
 * Outbound to an enrolled pod goes over an HBONE tunnel with this pod's
 * identity; to anything else it passes through from the pod's netns.
 */
export class PodProxy {
  private servers: Array<{ server: Server; family: 4 | 6; port: number }> = [];
  private readonly cursor = new Map<string, number>();
  private readonly pool: HbonePool;
  private readonly inbound: HboneInbound;

  private constructor(private readonly o: PodProxyOptions) {
    const certificate = () => o.dataplane.certificate(o.identity);
    this.pool = new HbonePool({ netns: o.netns, certificate, bundle: o.dataplane.bundle, trustDomain: o.dataplane.trustDomain, limits: o.dataplane.hbone.limits });
    this.inbound = new HboneInbound({
      netns: o.netns,
      podIps: o.ips,
      certificate,
      bundle: o.dataplane.bundle,
      trustDomain: o.dataplane.trustDomain,
      guard: o.dataplane.hbone,
      connections: o.connections,
      loopRefused: (reason) => o.dataplane.loopRefused('hbone', reason),
      waypoint: {
        serves: (target) => servedByWaypoint(o.dataplane.index(), o.dataplane.waypoints(), this.self(), target) !== undefined,
        connect: (r) => connectToWaypoint(o.netns, { peer: r.peer, source: { ip: r.sourceIp, port: clientPort(r.forwarded, r.sourceIp, r.sourcePort) }, target: r.target }),
      },
      authorize: (r) => {
        const d = o.dataplane.authorize(this.l4Request(r.sourceIp, formatSpiffeId(r.peer), r.target));
        const policy = denyingPolicy(d);
        return d.allow ? d : { allow: false, reason: d.reason, ...(policy ? { policy } : {}) };
      },
      opened: (r) => o.telemetry.opened(this.inboundMeta('mtls', { ip: r.sourceIp, port: r.sourcePort, principal: formatSpiffeId(r.peer) }, r.target)),
      refused: (r) => {
        const meta = this.inboundMeta('mtls', { ip: r.sourceIp, port: r.sourcePort, ...(r.peer ? { principal: formatSpiffeId(r.peer) } : {}) }, r.target ?? { ip: o.ips[0] ?? '', port: 0 });
        o.telemetry.refused(meta, r.status === 401 && r.peer !== undefined ? 'denied' : 'error', `HTTP ${r.status}: ${r.reason}`, r.policy);
      },
    });
  }

  static async start(options: PodProxyOptions): Promise<PodProxy> {
    const proxy = new PodProxy(options);
    const families = [...new Set(options.ips.map((ip) => (isIPv6(ip) ? 6 : 4)))] as Array<4 | 6>;
    try {
      for (const family of families) {
        const listen = async (port: number, onConnection: (s: Socket) => void): Promise<void> => {
          const fd = options.adopt?.(family, port);
          const server = await listenInPod({ netns: options.netns, family, mark: PROXY_MARK.value, port, ...(fd === undefined ? {} : { fd }) }, onConnection);
          proxy.servers.push({ server, family, port });
        };
        await listen(PORTS.outbound, (s) => proxy.track(s, 'outbound', (src) => proxy.outbound(s, src)));
        await listen(PORTS.inbound, (s) => proxy.track(s, 'inbound', (src, registration) => proxy.plaintextInbound(s, src, registration)));
        await listen(PORTS.hbone, (s) => proxy.inbound.accept(s));
      }
    } catch (err) {
      proxy.stopAccepting();
      throw err;
    }
    return proxy;
  }

  /** The sockets it accepts on, for a successor to take over (agent/listener-handoff.ts). */
  listenerSockets(): OwnedListener[] {
    return this.servers.map(({ server, family, port }) => ({ family, port, fd: serverFd(server) }));
  }

  /** Closes this process's listening sockets (a successor holding the same ones keeps them, and their queues); connections stay. */
  stopAccepting(): void {
    for (const { server } of this.servers.splice(0)) server.close();
  }

  /** this pod as waypoint routing sees it (waypoint-route.ts) */
  private self(): SourcePod {
    return { namespace: this.o.namespace, labels: this.o.labels(), serviceAccount: this.o.identity.serviceAccount };
  }

  private l4Request(sourceIp: string, principal: string | undefined, target: { ip: string; port: number }): L4Request {
    return {
      source: { ip: sourceIp, ...(principal === undefined ? {} : { principal }) },
      destination: { namespace: this.o.namespace, labels: this.o.labels(), ip: target.ip, port: target.port },
    };
  }

  /** this pod's outbound HBONE connections and their streams */
  outboundTunnels(): ReturnType<HbonePool['stats']> {
    return this.pool.stats();
  }

  private inboundMeta(security: ConnectionMeta['security'], source: ConnectionMeta['source'], target: { ip: string; port: number }): ConnectionMeta {
    const destination = { ip: target.ip, port: target.port, ...(security === 'mtls' ? { principal: formatSpiffeId(this.o.identity) } : {}) };
    return { pod: this.o.pod, direction: 'inbound', reporter: 'destination', security, source, destination };
  }

  /** Runs one captured connection; whatever happens, it ends reported and the client is never left hanging. */
  private track(client: Socket, direction: ConnectionMeta['direction'], handle: (source: ConnectionMeta['source'], registration: Registration) => Promise<void>): void {
    const source = { ip: client.remoteAddress ?? '', port: client.remotePort ?? 0 };
    const registration = this.o.connections.register(direction, () => client.resetAndDestroy());
    void handle(source, registration)
      .catch((err: Error) => {
        client.resetAndDestroy();
        const reporter = direction === 'outbound' ? 'source' : 'destination';
        this.o.telemetry.refused({ pod: this.o.pod, direction, reporter, security: 'plaintext', source, destination: { ip: '', port: 0 } }, 'error', err.message);
      })
      .finally(() => registration.release());
  }

  /**
   * Refuses (RST, at once) a captured connection whose destination is one of
   * the agent's own listeners in this pod: forwarding it would be captured
   * again, and again (agent-loop.ts).
   */
  private refuseLoop(client: Socket, path: LoopPath, dst: { ip: string; port: number }, meta: ConnectionMeta): boolean {
    const listener = { ip: client.localAddress ?? '', port: client.localPort ?? 0 };
    const loop = agentLoop(dst, { podIps: this.o.ips, listener });
    if (loop === undefined) return false;
    client.resetAndDestroy();
    this.o.dataplane.loopRefused(path, loop);
    this.o.telemetry.refused(meta, 'error', loop);
    return true;
  }

  private async outbound(client: Socket, source: ConnectionMeta['source']): Promise<void> {
    const dst = originalDestination(socketFd(client));
    const dialed = { ip: dst.address, port: dst.port };
    if (this.refuseLoop(client, 'outbound', dialed, { pod: this.o.pod, direction: 'outbound', reporter: 'source', security: 'plaintext', source, destination: dialed })) return;
    const via = routeViaWaypoint(this.o.dataplane.index(), this.o.dataplane.waypoints(), this.self(), dialed, this.o.dataplane.trustDomain, this.cursor);
    if (via !== undefined) {
      const from = { ...source, principal: formatSpiffeId(this.o.identity) };
      return sendViaWaypoint(client, via, this.pool, this.o.telemetry, { pod: this.o.pod, direction: 'outbound', reporter: 'source', source: from, ...(via.service ? { service: via.service } : {}) });
    }
    const route = routeOutbound(this.o.dataplane.index(), dialed, this.o.dataplane.trustDomain, this.cursor);
    const meta = (security: ConnectionMeta['security'], destination: ConnectionMeta['destination']): ConnectionMeta => ({
      pod: this.o.pod,
      direction: 'outbound',
      reporter: 'source',
      security,
      source: security === 'mtls' ? { ...source, principal: formatSpiffeId(this.o.identity) } : source,
      destination,
      ...(route.service === undefined ? {} : { service: route.service }),
    });
    if (route.kind === 'no-endpoints') {
      client.resetAndDestroy();
      this.o.telemetry.refused(meta('plaintext', { ip: dst.address, port: dst.port }), 'error', `service ${route.service.namespace}/${route.service.name} has no ready endpoints`);
      return;
    }
    if (route.kind === 'passthrough') {
      let open: OpenConnection | undefined;
      const target = { ip: route.target.ip, port: route.target.port };
      // A Service may name this pod's own agent port as its endpoint.
      if (this.refuseLoop(client, 'outbound', target, meta('plaintext', target))) return;
      const r = await forwardOutbound(client, this.o.netns, PROXY_MARK.value, { family: dst.family, address: target.ip, port: target.port }, () => {
        open = this.o.telemetry.opened(meta('plaintext', target));
      });
      return report(open, meta('plaintext', target), this.o.telemetry, r);
    }
    const m = meta('mtls', { ip: route.target.ip, port: route.target.port, principal: formatSpiffeId(route.identity) });
    let stream;
    try {
      stream = await this.pool.open(route.target.ip, route.identity, route.target, { forwarded: `for=${client.remoteAddress}` });
    } catch (err) {
      client.resetAndDestroy();
      this.o.telemetry.refused(m, 'error', (err as Error).message);
      return;
    }
    const open = this.o.telemetry.opened(m);
    const r = await spliceStream(client, stream);
    open.closed(result(r));
  }

  private async plaintextInbound(client: Socket, source: ConnectionMeta['source'], registration: Registration): Promise<void> {
    const dst = originalDestination(socketFd(client));
    const meta = this.inboundMeta('plaintext', source, { ip: dst.address, port: dst.port });
    if (this.refuseLoop(client, 'inbound', { ip: dst.address, port: dst.port }, meta)) return;
    if (!this.o.dataplane.plaintextAllowed({ namespace: this.o.namespace, labels: this.o.labels() }, dst.port)) {
      client.resetAndDestroy();
      this.o.telemetry.refused(meta, 'denied', 'plaintext refused: PeerAuthentication STRICT');
      return;
    }
    const request = this.l4Request(source.ip, undefined, { ip: dst.address, port: dst.port });
    const decision = this.o.dataplane.authorize(request);
    if (!decision.allow) {
      client.resetAndDestroy();
      this.o.telemetry.refused(meta, 'denied', decision.reason, denyingPolicy(decision));
      return;
    }
    registration.authorizedBy(() => this.o.dataplane.authorize(this.l4Request(source.ip, undefined, { ip: dst.address, port: dst.port })).allow);
    let open: OpenConnection | undefined;
    const r = await deliverInbound(client, this.o.netns, PROXY_MARK.value, dst, () => {
      open = this.o.telemetry.opened(meta);
    });
    report(open, meta, this.o.telemetry, r);
  }

  /**
   * Stops accepting at once (the pod's rules are already gone or going);
   * connections in flight may finish for up to `drainMs`, then are reset.
   */
  async close(drainMs: number): Promise<void> {
    this.stopAccepting();
    this.inbound.close(false);
    await this.o.connections.settle(drainMs);
    this.inbound.close(true);
    this.o.connections.close('the pod left the mesh');
    this.pool.close();
  }
}

const result = (r: { bytesAtoB: number; bytesBtoA: number; error?: Error | undefined }): ConnectionResult => ({
  bytesSent: r.bytesAtoB,
  bytesReceived: r.bytesBtoA,
  ...(r.error ? { error: r.error.message } : {}),
});

/** A passthrough either connected (opened: report how it ended) or never did (refused with the connect error). */
function report(open: OpenConnection | undefined, meta: ConnectionMeta, telemetry: ConnectionObserver, r: { bytesAtoB: number; bytesBtoA: number; error?: Error | undefined }): void {
  if (open !== undefined) open.closed(result(r));
  else telemetry.refused(meta, 'error', r.error?.message ?? 'not connected');
}
