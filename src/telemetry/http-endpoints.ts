import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { sendJson } from '../net/respond.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Splits "host:port" (IPv6 hosts may be bracketed). */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/**
 * A small GET-only HTTP server for one of the agent's ports (admin,
 * metrics, readiness): exact paths, 404 for the rest, 405 for other
 * methods, 500 (not a crash) when a handler throws.
 */
export function serveEndpoints(address: string, routes: Record<string, Handler>, options: { reusePort?: boolean } = {}): Promise<Server> {
  const { host, port } = splitHostPort(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = routes[path];
    if (route === undefined) return sendJson(res, 404, { message: `no endpoint ${path}; try ${Object.keys(routes).join(', ')}` });
    if (req.method !== 'GET') return sendJson(res, 405, { message: 'only GET' });
    Promise.resolve()
      .then(() => route(req, res))
      .catch((err: Error) => {
        if (!res.headersSent) sendJson(res, 500, { message: err.message });
      });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, reusePort: options.reusePort === true }, () => resolve(server));
  });
}
