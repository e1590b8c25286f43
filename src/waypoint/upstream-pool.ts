import { Agent, type Dispatcher } from 'undici';
import type { Endpoint } from '../k8s/cluster-index.js';

/**
 * The waypoint's HTTP/1.1 upstream connections (docs/architecture.md §14):
 * undici, one keep-alive pool per endpoint (undici's Agent keeps a Pool per
 * origin and drops it when its last connection closes), at most
 * MAX_CONNECTIONS_PER_ENDPOINT connections each, no pipelining. undici over
 * node:http's client: the waypoint spent most of its CPU in node:http, and
 * undici's client costs less per proxied request (bench/results/waypoint-undici-*).
 *
 * A DestinationRule's maxRequestsPerConnection (Envoy's
 * max_requests_per_connection) is undici's maxRequestsPerClient, a pool
 * setting: requests under different limits use different Agents, so a changed
 * rule applies to the next request on fresh connections.
 */
const MAX_CONNECTIONS_PER_ENDPOINT = 256;

export interface UpstreamPools {
  /** The dispatcher for requests whose cluster allows `maxRequestsPerConnection` (0: unlimited) per connection. */
  dispatcher(maxRequestsPerConnection: number): Dispatcher;
  close(): Promise<void>;
}

export function originOf(ep: Endpoint): string {
  return ep.ip.includes(':') ? `http://[${ep.ip}]:${ep.port}` : `http://${ep.ip}:${ep.port}`;
}

export function upstreamPools(connectTimeoutMs: number): UpstreamPools {
  const agents = new Map<number, Agent>();
  return {
    dispatcher(maxRequestsPerConnection) {
      let agent = agents.get(maxRequestsPerConnection);
      if (agent === undefined) {
        agent = new Agent({
          connections: MAX_CONNECTIONS_PER_ENDPOINT,
          pipelining: 1,
          // the route's timeouts are the waypoint's own timers (http1-proxy.ts); undici's are off
          headersTimeout: 0,
          bodyTimeout: 0,
          keepAliveTimeout: 60_000,
          connect: { timeout: connectTimeoutMs },
          ...(maxRequestsPerConnection > 0 ? { maxRequestsPerClient: maxRequestsPerConnection } : {}),
        });
        agents.set(maxRequestsPerConnection, agent);
      }
      return agent;
    },
    async close() {
      await Promise.all([...agents.values()].map((a) => a.destroy()));
      agents.clear();
    },
  };
}
