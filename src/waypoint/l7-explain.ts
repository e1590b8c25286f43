import { WarrenError } from '../errors/warren-error.js';
import type { ConnectionExplanation } from '../policy/explain.js';
import { authorizeL7, type L7Decision, type TargetedPolicy } from './l7-authorization.js';

/**
 * `warren policies explain --path/--method/--header` (docs/architecture.md
 * §14): the L7 decision each waypoint on a connection's path would make for
 * one request, with the waypoint's own function (authorizeL7) over the
 * targetRefs policies, so it agrees with the waypoint's `/debug/explain`.
 * No JWT is verified here: the request has no request principal.
 */

export interface HttpProbe {
  method: string;
  /** without the query, normalised as the waypoint's URL parsing does */
  path: string;
  /** lowercase name → value */
  headers: ReadonlyMap<string, string>;
}

export interface L7Explanation {
  waypoint: string;
  via: string;
  request: string;
  decision: L7Decision;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const usage = (message: string): WarrenError => new WarrenError('ERR_USAGE', message);

/** The request from the command line; throws ERR_USAGE naming the option. */
export function parseHttpProbe(input: { method?: string; path?: string; headers?: readonly string[] }): HttpProbe {
  const method = input.method ?? 'GET';
  if (!TOKEN.test(method)) throw usage(`--method: ${JSON.stringify(method)} is not an HTTP method (a token such as GET)`);
  const raw = input.path ?? '/';
  if (!raw.startsWith('/') || /[\s\0]/.test(raw)) throw usage(`--path: ${JSON.stringify(raw)} must start with '/' and contain no whitespace`);
  const headers = new Map<string, string>();
  for (const h of input.headers ?? []) {
    const at = h.indexOf('=');
    const name = at < 0 ? h : h.slice(0, at);
    if (at < 0 || !TOKEN.test(name)) throw usage(`--header: ${JSON.stringify(h)} must be NAME=VALUE with NAME an HTTP header name`);
    const value = h.slice(at + 1);
    if (/[\r\n\0]/.test(value)) throw usage(`--header ${name}: the value must not contain CR, LF or NUL`);
    headers.set(name.toLowerCase(), value);
  }
  return { method, path: new URL(raw, 'http://x').pathname, headers };
}

/** The L7 decision at each waypoint the explained connection passes through (none: no waypoint, HTTP rules are not enforced). */
export function explainL7(e: Pick<ConnectionExplanation, 'from' | 'waypoints'>, policies: readonly TargetedPolicy[], probe: HttpProbe): L7Explanation[] {
  return (e.waypoints ?? []).map((w) => {
    const [namespace, name] = w.waypoint.split('/') as [string, string];
    const d = w.destination;
    const host = probe.headers.get('host') ?? (d.service ? `${d.service.name}.${d.service.namespace}` : `${d.ip}:${d.port}`);
    const decision = authorizeL7(policies, { namespace, name }, {
      source: { ip: e.from.ip, ...(e.from.principal ? { principal: e.from.principal } : {}) },
      destination: { ip: d.ip, port: d.port, namespace: d.service?.namespace ?? '', ...(d.service ? { service: d.service } : {}) },
      http: { method: probe.method, path: probe.path, host, header: (h) => probe.headers.get(h) },
    });
    return { waypoint: w.waypoint, via: w.via, request: `${probe.method} ${probe.path}`, decision };
  });
}
