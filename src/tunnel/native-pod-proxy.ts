import { closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isIPv6 } from 'node:net';
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import type { CloseEvent, DataplanePool, DecideCaptured, DecideConnect, Decision, ListenerKind } from '../native/dataplane.js';
import { createListener } from '../native/netns-socket.js';
import { WarrenError } from '../errors/warren-error.js';
import { WAYPOINT_PORTS, WAYPOINT_PROXY_ADDRESS } from '../gateway/constants.js';
import { denyingPolicy, type L4Request } from '../policy/authorization.js';
import { PORTS, PROXY_MARK } from '../redirect/constants.js';
import type { ConnectionMeta, ConnectionResult, OpenConnection } from '../telemetry/connection-observer.js';
import { agentLoop, type Address } from './agent-loop.js';
import type { LoopPath } from './dataplane.js';
import { HBONE, formatAuthority, parseAuthority } from './hbone-settings.js';
import type { CarriedFlow, NativeHub } from './native-hub.js';
import { routeOutbound } from './outbound-route.js';
import { clientPort, waypointHeader } from './waypoint-handoff.js';
import { routeViaWaypoint, servedByWaypoint, type SourcePod, type WaypointRoute } from './waypoint-route.js';
import type { PodProxyOptions } from './pod-proxy.js';
import type { OwnedListener } from './pod-listener.js';
import type { ConnectionKind, LiveConnection } from './connection-registry.js';

/** A pod's pooled HBONE sessions to one peer, as the admin API's /connections lists them. */
export interface OutboundTunnel {
  /** `<peer's SPIFFE ID>|<peer IP>`, HbonePool's key on the Node data path */
  key: string;
  connections: number;
  /** their open streams */
  streams: number;
}

/**
 * The pooled sessions of the pod whose netns is `netns`, from every worker's pools, as the
 * Node data path lists its own (HbonePool.stats): one entry per peer identity and address.
 */
export function podTunnels(pools: readonly DataplanePool[], netns: string): OutboundTunnel[] {
  const tunnels = new Map<string, OutboundTunnel>();
  for (const p of pools) {
    if (p.netns !== netns) continue;
    const key = `${p.expected}|${p.ip}`;
    const t = tunnels.get(key) ?? { key, connections: 0, streams: 0 };
    t.connections += p.sessions;
    t.streams += p.streams;
    tunnels.set(key, t);
  }
  return [...tunnels.values()];
}

/**
 * A connection this proxy decided to carry: the hub's handle on it (open and close events), its
 * entry in the pod's connection registry, and its report. One object with no closures: a node
 * holds one per idle connection (bench/results/native-dataplane-idle-rss-per-stream-2026-12-07.md).
 */
class PodFlow implements CarriedFlow, LiveConnection {
  private open: OpenConnection | undefined = undefined;

  constructor(
    private readonly proxy: NativePodProxy,
    readonly id: number,
    readonly kind: ConnectionKind,
    readonly meta: ConnectionMeta,
  ) {}

  get peerIp(): string {
    return this.meta.source.ip;
  }

  opened(): void {
    this.open = this.proxy.flowOpened(this.meta);
  }

  /** An inbound flow, once open, is re-checked against the check that admitted it (AuthorizationPolicy with the pod's current labels). */
  allowed(): boolean {
    return this.open === undefined || this.kind === 'outbound' || this.proxy.stillAllowed(this.meta);
  }

  close(reason: string): void {
    this.proxy.closeFlow(this.id, reason);
  }

  closed(e: CloseEvent): void {
    this.proxy.flowEnded(this);
    const result: ConnectionResult = { bytesSent: e.fromClient, bytesReceived: e.fromServer, ...(e.error ? { error: e.error } : {}) };
    if (this.open !== undefined) return this.open.closed(result);
    const reason = e.error ?? 'not connected';
    this.proxy.flowRefused(this.meta, e.status === undefined ? reason : `HTTP ${e.status}: ${reason}`);
  }
}

/**
 * PodProxy's behaviour on the native data path (`--dataplane native`): the
 * same listeners in the pod's netns, handed to the addon's workers; the same
 * decisions (routing, PeerAuthentication, AuthorizationPolicy, telemetry)
 * taken here, once per connection or CONNECT.
 */
export class NativePodProxy {
  /** the hub's ids of this pod's listeners, and the sockets behind them (owned by the workers) */
  private readonly listeners: Array<{ id: number } & OwnedListener> = [];
  /** listeners the workers no longer accept on, whose last accepted connections are still this proxy's to decide */
  private readonly stopped: number[] = [];
  /** how many flows this proxy decided to carry are not reported closed yet (telemetry) */
  private carried = 0;
  private readonly cursor = new Map<string, number>();
  /** one copy of each peer's SPIFFE ID for every connection that names it (a formatted ID is a fresh string each time) */
  private readonly principals = new Map<string, string>();
  private readonly name: string;

  private constructor(
    private readonly o: PodProxyOptions,
    private readonly hub: NativeHub,
  ) {
    this.name = formatSpiffeId(o.identity);
  }

  static async start(options: PodProxyOptions, hub: NativeHub): Promise<NativePodProxy> {
    const proxy = new NativePodProxy(options, hub);
    hub.useIdentity(options.identity);
    const families = [...new Set(options.ips.map((ip) => (isIPv6(ip) ? 6 : 4)))] as Array<4 | 6>;
    const kinds = [
      ['outbound', PORTS.outbound],
      ['inbound', PORTS.inbound],
      ['hbone', PORTS.hbone],
    ] as const;
    const made: Array<OwnedListener & { kind: ListenerKind }> = [];
    try {
      for (const family of families) {
        for (const [kind, port] of kinds) {
          const fd = options.adopt?.(family, port) ?? createListener({ netns: options.netns, family, port, mark: PROXY_MARK.value, reusePort: true });
          made.push({ family, port, fd, kind });
        }
      }
    } catch (err) {
      for (const l of made) closeSync(l.fd);
      hub.releaseIdentity(options.identity);
      throw err;
    }
    for (const { kind, ...l } of made) proxy.listeners.push({ ...l, id: hub.listen(l.fd, kind, proxy, kind === 'hbone' ? proxy.name : undefined) });
    return proxy;
  }

  /** The sockets it accepts on, for a successor to take over (agent/listener-handoff.ts); open while listed: the workers close them only after unlisten. */
  listenerSockets(): OwnedListener[] {
    return this.listeners.map(({ family, port, fd }) => ({ family, port, fd }));
  }

  /**
   * The workers stop accepting and close this process's sockets (a successor holding the
   * same ones keeps them, and their queues); flows stay, and a connection a worker accepted
   * just before is still decided here (the hand-off must not reset it).
   */
  stopAccepting(): void {
    for (const { id } of this.listeners.splice(0)) {
      this.hub.stopAccepting(id);
      this.stopped.push(id);
    }
  }

  decide(e: DecideCaptured | DecideConnect): Decision {
    if (e.kind === 'connect') return this.connect(e);
    return e.kind === 'outbound' ? this.outbound(e) : this.plaintextInbound(e);
  }

  /** @internal a PodFlow's: its open report */
  flowOpened(meta: ConnectionMeta): OpenConnection {
    return this.o.telemetry.opened(meta);
  }

  /** @internal a PodFlow's: does the check that admitted an inbound flow still allow it? */
  stillAllowed(meta: ConnectionMeta): boolean {
    return this.o.dataplane.authorize(this.l4Request(meta.source.ip, meta.source.principal, meta.destination)).allow;
  }

  /** @internal a PodFlow's reset */
  closeFlow(id: number, reason: string): void {
    this.hub.close(id, reason);
  }

  /** @internal a PodFlow's end: out of the registry */
  flowEnded(flow: PodFlow): void {
    this.carried--;
    this.o.connections.remove(flow);
  }

  /** @internal a PodFlow that closed before it opened */
  flowRefused(meta: ConnectionMeta, reason: string): void {
    this.o.telemetry.refused(meta, 'error', reason);
  }

  /** this pod's outbound HBONE streams by peer (pooled connections are the workers', shared per peer) */
  outboundTunnels(): OutboundTunnel[] {
    return podTunnels(this.hub.pools(), this.o.netns);
  }

  async close(drainMs: number): Promise<void> {
    this.stopAccepting();
    for (const id of this.stopped.splice(0)) this.hub.forget(id);
    await this.o.connections.settle(drainMs);
    this.o.connections.close('the pod left the mesh');
    // the workers report each closed flow (telemetry) shortly after
    const until = Date.now() + 2_000;
    while (this.carried > 0 && Date.now() < until) await sleep(20);
    this.hub.releaseIdentity(this.o.identity);
  }

  /** Tracks a flow the workers will carry; once open, an inbound one is re-authorized when policies or labels change. */
  private carry(id: number, meta: ConnectionMeta): void {
    const kind = meta.direction === 'outbound' ? 'outbound' : meta.security === 'mtls' ? 'hbone' : 'inbound';
    const flow = new PodFlow(this, id, kind, meta);
    this.carried++;
    this.hub.carry(id, flow);
    this.o.connections.add(flow);
  }

  private principal(id: SpiffeId): string {
    const formatted = formatSpiffeId(id);
    const known = this.principals.get(formatted);
    if (known !== undefined) return known;
    if (this.principals.size >= 1024) this.principals.clear();
    this.principals.set(formatted, formatted);
    return formatted;
  }

  private l4Request(sourceIp: string, principal: string | undefined, target: { ip: string; port: number }): L4Request {
    return {
      source: { ip: sourceIp, ...(principal === undefined ? {} : { principal }) },
      destination: { namespace: this.o.namespace, labels: this.o.labels(), ip: target.ip, port: target.port },
    };
  }

  private inboundMeta(security: ConnectionMeta['security'], source: ConnectionMeta['source'], target: { ip: string; port: number }): ConnectionMeta {
    const destination = { ip: target.ip, port: target.port, ...(security === 'mtls' ? { principal: this.name } : {}) };
    return { pod: this.o.pod, direction: 'inbound', reporter: 'destination', security, source, destination };
  }

  private refuse(meta: ConnectionMeta, outcome: 'denied' | 'error', reason: string, policy?: string): Decision {
    this.o.telemetry.refused(meta, outcome, reason, policy);
    return { action: 'reset', reason };
  }

  /** A captured connection whose destination would reach the agent's own listeners in this pod again (agent-loop.ts): refused, as PodProxy does. */
  private loop(path: LoopPath, dst: Address, meta: ConnectionMeta, e?: DecideCaptured): Decision | undefined {
    const loop = agentLoop(dst, { podIps: this.o.ips, ...(e === undefined ? {} : { listener: { ip: e.localIp, port: e.localPort } }) });
    if (loop === undefined) return undefined;
    this.o.dataplane.loopRefused(path, loop);
    return this.refuse(meta, 'error', loop);
  }

  private outbound(e: DecideCaptured): Decision {
    const source = { ip: e.srcIp, port: e.srcPort };
    if (e.dstIp === '') return this.refuse({ pod: this.o.pod, direction: 'outbound', reporter: 'source', security: 'plaintext', source, destination: { ip: '', port: 0 } }, 'error', 'not a redirected connection');
    const dialed = { ip: e.dstIp, port: e.dstPort };
    const looped = this.loop('outbound', dialed, { pod: this.o.pod, direction: 'outbound', reporter: 'source', security: 'plaintext', source, destination: dialed }, e);
    if (looped !== undefined) return looped;
    const via = routeViaWaypoint(this.o.dataplane.index(), this.o.dataplane.waypoints(), this.self(), dialed, this.o.dataplane.trustDomain, this.cursor);
    if (via !== undefined) return this.viaWaypoint(e, via);
    const route = routeOutbound(this.o.dataplane.index(), { ip: e.dstIp, port: e.dstPort }, this.o.dataplane.trustDomain, this.cursor);
    const meta = (security: ConnectionMeta['security'], destination: ConnectionMeta['destination']): ConnectionMeta => ({
      pod: this.o.pod,
      direction: 'outbound',
      reporter: 'source',
      security,
      source: security === 'mtls' ? { ...source, principal: this.name } : source,
      destination,
      ...(route.service === undefined ? {} : { service: route.service }),
    });
    if (route.kind === 'no-endpoints') return this.refuse(meta('plaintext', { ip: e.dstIp, port: e.dstPort }), 'error', `service ${route.service.namespace}/${route.service.name} has no ready endpoints`);
    const from = { netns: this.o.netns, mark: PROXY_MARK.value };
    if (route.kind === 'passthrough') {
      const target = { ip: route.target.ip, port: route.target.port };
      // A Service may name this pod's own agent port as its endpoint.
      const loopedTarget = this.loop('outbound', target, meta('plaintext', target), e);
      if (loopedTarget !== undefined) return loopedTarget;
      this.carry(e.id, meta('plaintext', target));
      return { action: 'connect', ...from, ip: route.target.ip, port: route.target.port };
    }
    const m = meta('mtls', { ip: route.target.ip, port: route.target.port, principal: this.principal(route.identity) });
    if (!this.hub.ready(this.o.identity)) return this.refuse(m, 'error', 'this pod has no valid certificate; refusing to open a tunnel');
    this.carry(e.id, m);
    return {
      action: 'hbone',
      ...from,
      ip: route.target.ip,
      port: HBONE.port,
      identity: this.name,
      expected: m.destination.principal!,
      authority: formatAuthority(route.target.ip, route.target.port),
      forwarded: `for=${e.srcIp}`,
    };
  }

  /** As PodProxy's sendViaWaypoint (waypoint-outbound.ts): to a ready waypoint pod with the dialed address as :authority, or refused, never sent around it. */
  private viaWaypoint(e: DecideCaptured, via: WaypointRoute): Decision {
    const base = { pod: this.o.pod, direction: 'outbound' as const, reporter: 'source' as const, source: { ip: e.srcIp, port: e.srcPort, principal: this.name }, ...(via.service === undefined ? {} : { service: via.service }) };
    if (via.kind === 'waypoint-unavailable') return this.refuse({ ...base, security: 'plaintext', destination: { ip: '', port: 0 } }, 'error', `refused, not bypassed: ${via.reason}`);
    const m: ConnectionMeta = { ...base, security: 'mtls', destination: { ip: via.authority.ip, port: via.authority.port, principal: this.principal(via.identity) } };
    if (!this.hub.ready(this.o.identity)) return this.refuse(m, 'error', 'this pod has no valid certificate; refusing to open a tunnel');
    this.carry(e.id, m);
    return {
      action: 'hbone',
      netns: this.o.netns,
      mark: PROXY_MARK.value,
      ip: via.peer,
      port: HBONE.port,
      identity: this.name,
      expected: m.destination.principal!,
      authority: formatAuthority(via.authority.ip, via.authority.port),
      forwarded: `for="${formatAuthority(e.srcIp, e.srcPort)}"`,
    };
  }

  private plaintextInbound(e: DecideCaptured): Decision {
    const meta = this.inboundMeta('plaintext', { ip: e.srcIp, port: e.srcPort }, { ip: e.dstIp, port: e.dstPort });
    if (e.dstIp === '') return this.refuse(meta, 'error', 'not a redirected connection');
    const looped = this.loop('inbound', { ip: e.dstIp, port: e.dstPort }, meta, e);
    if (looped !== undefined) return looped;
    if (!this.o.dataplane.plaintextAllowed({ namespace: this.o.namespace, labels: this.o.labels() }, e.dstPort)) return this.refuse(meta, 'denied', 'plaintext refused: PeerAuthentication STRICT');
    const request = this.l4Request(e.srcIp, undefined, { ip: e.dstIp, port: e.dstPort });
    const decision = this.o.dataplane.authorize(request);
    if (!decision.allow) return this.refuse(meta, 'denied', decision.reason, denyingPolicy(decision));
    this.carry(e.id, meta);
    return { action: 'connect', netns: this.o.netns, mark: PROXY_MARK.value, ip: e.dstIp, port: e.dstPort, sourceIp: e.srcIp };
  }

  private connect(e: DecideConnect): Decision {
    const target = parseAuthority(e.authority);
    const meta = this.inboundMeta('mtls', { ip: e.srcIp, port: e.srcPort }, target ?? { ip: this.o.ips[0] ?? '', port: 0 });
    const reject = (status: number, reason: string, peer?: string, policy?: string): Decision => {
      const m = peer === undefined ? meta : { ...meta, source: { ...meta.source, principal: peer } };
      this.o.telemetry.refused(m, status === 401 && peer !== undefined ? 'denied' : 'error', `HTTP ${status}: ${reason}`, policy);
      return { action: 'reject', status, reason };
    };
    let peer: SpiffeId;
    try {
      peer = parseSpiffeId(e.peer);
      if (peer.trustDomain !== this.o.dataplane.trustDomain) throw new WarrenError('ERR_PEER_IDENTITY', `peer ${e.peer} is not in trust domain ${this.o.dataplane.trustDomain}`);
    } catch (err) {
      return reject(401, (err as Error).message);
    }
    const principal = this.principal(peer);
    if (e.method !== 'CONNECT') return reject(400, `method ${e.method} is not CONNECT`, principal);
    // In a waypoint's pod (docs/architecture.md §13) a CONNECT to an address its waypoint serves goes to the waypoint process.
    const toWaypoint = target !== undefined && !this.o.ips.includes(target.ip) && servedByWaypoint(this.o.dataplane.index(), this.o.dataplane.waypoints(), this.self(), target) !== undefined;
    if (target === undefined || (!toWaypoint && !this.o.ips.includes(target.ip))) return reject(400, `CONNECT target ${e.authority} is not this pod`, principal);
    const loop = agentLoop(target, { podIps: this.o.ips });
    if (loop !== undefined) {
      this.o.dataplane.loopRefused('hbone', loop);
      return reject(400, loop, principal);
    }
    const request = this.l4Request(e.srcIp, principal, target);
    const d = this.o.dataplane.authorize(request);
    if (!d.allow) return reject(401, d.reason, principal, denyingPolicy(d));
    this.carry(e.id, { ...meta, source: { ...meta.source, principal } });
    if (toWaypoint) {
      // As connectToWaypoint (waypoint-handoff.ts): from loopback in the pod's netns, the PROXY v2 header first.
      const prefix = waypointHeader({ peer, source: { ip: e.srcIp, port: clientPort(e.forwarded, e.srcIp, e.srcPort) }, target });
      return { action: 'connect', netns: this.o.netns, mark: PROXY_MARK.value, ip: WAYPOINT_PROXY_ADDRESS, port: WAYPOINT_PORTS.proxy, prefix };
    }
    return { action: 'connect', netns: this.o.netns, mark: PROXY_MARK.value, ip: target.ip, port: target.port, sourceIp: e.srcIp };
  }

  /** this pod as waypoint routing sees it (waypoint-route.ts) */
  private self(): SourcePod {
    return { namespace: this.o.namespace, labels: this.o.labels(), serviceAccount: this.o.identity.serviceAccount };
  }
}
