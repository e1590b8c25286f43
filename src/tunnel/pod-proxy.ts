import { setTimeout as sleep } from 'node:timers/promises';
import type { Server, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import { PORTS, PROXY_MARK } from '../redirect/constants.js';
import { deliverInbound, forwardOutbound, type ForwardResult } from './passthrough.js';
import { listenInPod } from './pod-listener.js';

export type Direction = 'outbound' | 'inbound' | 'hbone';

export interface ConnectionRecord {
  pod: string;
  direction: Direction;
  source: string;
  destination?: string;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  error?: string;
}

export interface PodProxyOptions {
  /** namespace/name, for logs */
  pod: string;
  netns: string;
  ips: string[];
  onConnection: (record: ConnectionRecord) => void;
}

/**
 * The agent's sockets in one pod: outbound capture (:15001), inbound
 * plaintext capture (:15006) and HBONE (:15008), one per IP family the pod
 * has, all made inside the pod's netns and owned by this process. Captured
 * connections are forwarded as plain TCP here; HBONE is not served yet, so
 * connections to :15008 are reset rather than left hanging.
 */
export class PodProxy {
  private servers: Server[] = [];
  private readonly live = new Set<Socket>();
  active = 0;

  private constructor(private readonly options: PodProxyOptions) {}

  static async start(options: PodProxyOptions): Promise<PodProxy> {
    const proxy = new PodProxy(options);
    const families = [...new Set(options.ips.map((ip) => (isIPv6(ip) ? 6 : 4)))] as Array<4 | 6>;
    try {
      for (const family of families) {
        const base = { netns: options.netns, family, mark: PROXY_MARK.value };
        proxy.servers.push(await listenInPod({ ...base, port: PORTS.outbound }, (s) => proxy.handle('outbound', s)));
        proxy.servers.push(await listenInPod({ ...base, port: PORTS.inbound }, (s) => proxy.handle('inbound', s)));
        proxy.servers.push(await listenInPod({ ...base, port: PORTS.hbone }, (s) => proxy.handle('hbone', s)));
      }
    } catch (err) {
      for (const s of proxy.servers) s.close();
      throw err;
    }
    return proxy;
  }

  private handle(direction: Direction, client: Socket): void {
    const started = Date.now();
    const source = `${client.remoteAddress}:${client.remotePort}`;
    if (direction === 'hbone') {
      client.resetAndDestroy();
      this.options.onConnection({ pod: this.options.pod, direction, source, bytesSent: 0, bytesReceived: 0, durationMs: 0, error: 'HBONE is not served yet' });
      return;
    }
    this.live.add(client);
    this.active++;
    const forward = direction === 'outbound' ? forwardOutbound : deliverInbound;
    void forward(client, this.options.netns, PROXY_MARK.value).then((result: ForwardResult) => {
      this.live.delete(client);
      this.active--;
      this.options.onConnection({
        pod: this.options.pod,
        direction,
        source,
        ...(result.destination ? { destination: `${result.destination.address}:${result.destination.port}` } : {}),
        bytesSent: result.bytesAtoB,
        bytesReceived: result.bytesBtoA,
        durationMs: Date.now() - started,
        ...(result.error ? { error: result.error.message } : {}),
      });
    });
  }

  /**
   * Stops accepting at once (the pod's rules are already gone or going);
   * connections in flight may finish for up to `drainMs`, then are reset.
   */
  async close(drainMs: number): Promise<void> {
    for (const s of this.servers) s.close();
    this.servers = [];
    const deadline = Date.now() + drainMs;
    while (this.live.size > 0 && Date.now() < deadline) await sleep(100);
    for (const s of this.live) s.resetAndDestroy();
  }
}
