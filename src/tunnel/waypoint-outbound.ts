import type { Socket } from 'node:net';
import { formatSpiffeId } from '../identity/spiffe.js';
import type { ConnectionMeta, ConnectionObserver } from '../telemetry/connection-observer.js';
import type { HbonePool } from './hbone-pool.js';
import { formatAuthority } from './hbone-settings.js';
import { spliceStream } from './stream-splice.js';
import type { WaypointRoute } from './waypoint-route.js';

/**
 * Carries a captured connection through its waypoint (docs/architecture.md §13): an
 * HBONE stream to the waypoint pod's :15008 whose `:authority` is the
 * address the client dialed (its node's agent hands it to the waypoint
 * with that destination) and whose server must prove the waypoint's
 * identity; `Forwarded` carries the client's address and port. When the
 * waypoint cannot take it the client is reset: traffic is never sent
 * around its waypoint.
 */
export async function sendViaWaypoint(client: Socket, route: WaypointRoute, pool: HbonePool, telemetry: ConnectionObserver, meta: Omit<ConnectionMeta, 'security' | 'destination'>): Promise<void> {
  const shown = `${route.waypoint.namespace}/${route.waypoint.name}`;
  if (route.kind === 'waypoint-unavailable') {
    client.resetAndDestroy();
    telemetry.refused({ ...meta, security: 'plaintext', destination: { ip: '', port: 0 } }, 'error', `refused, not bypassed: ${route.reason}`);
    return;
  }
  const m: ConnectionMeta = { ...meta, security: 'mtls', destination: { ip: route.authority.ip, port: route.authority.port, principal: formatSpiffeId(route.identity) } };
  let stream;
  try {
    stream = await pool.open(route.peer, route.identity, route.authority, { forwarded: `for="${formatAuthority(client.remoteAddress ?? '', client.remotePort ?? 0)}"` });
  } catch (err) {
    client.resetAndDestroy();
    telemetry.refused(m, 'error', `waypoint ${shown} at ${route.peer}: ${(err as Error).message}`);
    return;
  }
  const open = telemetry.opened(m);
  const r = await spliceStream(client, stream);
  open.closed({ bytesSent: r.bytesAtoB, bytesReceived: r.bytesBtoA, ...(r.error ? { error: r.error.message } : {}) });
}
