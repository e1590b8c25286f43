import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import { localGet } from './admin-client.js';
import { httpGetInNetns } from '../net/netns-http.js';
import { splitHostPort } from '../telemetry/http-endpoints.js';
import type { ResilienceView } from '../resilience/resilience-table.js';
import type { RouteTableView } from '../waypoint/route-table.js';
import { formatResilience } from './resilience-format.js';

const HELP = `Usage: warren routes [--address H:P] [--netns PATH] [-o table|json]

A waypoint's compiled route table (its admin API /debug/routes): for each
parent (a Service, GAMMA, or the waypoint Gateway) the HTTPRoute/GRPCRoute
matches in the order they are tried, with backends, filters, timeouts and retries,
then the DestinationRules, VirtualServices and rate limits in force.

  --address H:P        the waypoint's admin port ($WARREN_WAYPOINT_ADMIN; 127.0.0.1:15020;
                       on a real cluster: kubectl port-forward <waypoint pod> 15020)
  --netns PATH         reach it inside this network namespace (e.g. a simulator pod's)
  -o, --output FORMAT  table | json`;

function get(address: string, netns: string | undefined): Promise<{ status: number; body: string }> {
  const { host, port } = splitHostPort(address);
  if (netns !== undefined) return httpGetInNetns({ netns, host, port, path: '/debug/routes', timeoutMs: 5000 }).then((r) => ({ status: r.status, body: r.body.toString() }));
  return localGet(host, port, '/debug/routes');
}

export function formatRouteTable(waypoint: string, routes: RouteTableView[]): string {
  if (routes.length === 0) return `waypoint ${waypoint}: no routes attached (traffic goes to each Service's own endpoints)`;
  const lines = [`waypoint ${waypoint}`];
  for (const p of routes) {
    lines.push('', p.parent);
    p.entries.forEach((e, i) => {
      const extra = [e.filters.length ? `filters ${e.filters.join(',')}` : '', e.timeoutMs ? `timeout ${e.timeoutMs}ms` : '', e.backendTimeoutMs ? `backend timeout ${e.backendTimeoutMs}ms` : '', e.retry ? `retry ${e.retry}` : ''].filter((x) => x !== '');
      lines.push(`  ${String(i + 1).padStart(2)}. ${e.match}  →  ${e.backends.join(', ') || '(no backends)'}`, `      ${e.route} rule ${e.rule}${extra.length ? `; ${extra.join('; ')}` : ''}`);
    });
  }
  return lines.join('\n');
}

export async function runRoutes(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      address: { type: 'string', default: process.env.WARREN_WAYPOINT_ADMIN ?? '127.0.0.1:15020' },
      netns: { type: 'string' },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.output !== 'table' && values.output !== 'json') throw new WarrenError('ERR_USAGE', `--output: ${values.output} is not table or json`);
  let answer: { status: number; body: string };
  try {
    answer = await get(values.address, values.netns);
  } catch (err) {
    throw new WarrenError('ERR_ADMIN', `cannot reach the waypoint at ${values.address}: ${(err as Error).message}`);
  }
  if (answer.status !== 200) throw new WarrenError('ERR_ADMIN', `the waypoint at ${values.address} answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  const data = JSON.parse(answer.body) as { waypoint: string; routes: RouteTableView[]; resilience?: ResilienceView };
  console.log(values.output === 'json' ? JSON.stringify(data, null, 2) : formatRouteTable(data.waypoint, data.routes) + formatResilience(data.resilience));
  return 0;
}
