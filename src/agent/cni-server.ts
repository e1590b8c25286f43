import { describeIssue } from '../config/zod-issue.js';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { z } from 'zod';
import { httpStatusForError } from '../errors/http-status.js';
import { peerCredentials, socketFd } from '../native/netns-socket.js';
import { readBodyText } from '../net/read-body.js';

/**
 * Where a container runtime keeps pod network namespaces: /proc/<pid>/ns/net
 * (or a thread's), or a pinned file in /var/run/netns (/run/netns is the same
 * directory). Any other path could make the agent apply rules to, and listen
 * in, a namespace that is no pod's, such as the node's own.
 */
const NETNS_PATH = /^(\/proc\/[1-9][0-9]*(\/task\/[1-9][0-9]*)?\/ns\/net|\/(var\/)?run\/netns\/[A-Za-z0-9_][A-Za-z0-9._-]*)$/;

/** The CNI plugin's request (docs/architecture.md §4), validated: it comes from another process. */
export const cniRequestSchema = z.strictObject({
  podName: z.string().min(1).max(253),
  podNamespace: z.string().min(1).max(63),
  podUid: z.string().min(1).max(64),
  containerId: z.string().min(1).max(256),
  netns: z.string().max(256).regex(NETNS_PATH, 'must be /proc/<pid>/ns/net or /var/run/netns/<name>'),
  ips: z.array(z.string().refine((s) => isIP(s) !== 0, 'not an IP address')).max(8),
});
export type CniRequest = z.infer<typeof cniRequestSchema>;

/** DEL may come without a netns (the spec allows it once the netns is gone) and is best effort. */
const cniDelSchema = cniRequestSchema.extend({ netns: z.string(), ips: z.array(z.string()).max(8) });

export interface CniHandlers {
  add(req: CniRequest): Promise<{ enrolled: boolean; reason?: string }>;
  del(req: CniRequest): Promise<void>;
}

const MAX_BODY = 64 * 1024;

function reply(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBodyText(req, MAX_BODY);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`the request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * The agent's endpoint for its CNI plugin, on a unix socket only root can
 * reach: mode 0600 whatever the umask, and every connection's peer checked
 * with SO_PEERCRED (a root-owned socket file is not enough when the mode or
 * the directory is changed by someone else). A bad request gets a 400
 * naming the field and touches nothing; a failed enrollment is a 503 when
 * retrying can help (the plugin answers "try again later"), else a 500,
 * with a message the plugin passes to the kubelet.
 */
export async function startCniServer(socketPath: string, handlers: CniHandlers, log: (msg: string, fields: Record<string, unknown>) => void): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  rmSync(socketPath, { force: true }); // a stale socket from a previous agent
  const server = createServer((req, res) => {
    void (async () => {
      const op = req.url === '/v1/cni/add' ? 'add' : req.url === '/v1/cni/del' ? 'del' : undefined;
      if (req.method !== 'POST' || op === undefined) return reply(res, 404, { message: `unknown endpoint ${req.method} ${req.url}; the plugin uses POST /v1/cni/add and /v1/cni/del` });
      let body: unknown;
      try {
        body = await readJson(req);
      } catch (err) {
        return reply(res, 400, { message: (err as Error).message });
      }
      const parsed = (op === 'add' ? cniRequestSchema : cniDelSchema).safeParse(body);
      if (!parsed.success) return reply(res, 400, { message: `invalid CNI request: ${describeIssue(parsed.error)}` });
      try {
        if (op === 'add') return reply(res, 200, await handlers.add(parsed.data));
        await handlers.del(parsed.data);
        return reply(res, 200, {});
      } catch (err) {
        log('cni request failed', { op, pod: `${parsed.data.podNamespace}/${parsed.data.podName}`, err: (err as Error).message });
        return reply(res, httpStatusForError(err), { message: (err as Error).message });
      }
    })();
  });
  server.on('connection', (socket) => {
    let uid: number | undefined;
    try {
      ({ uid } = peerCredentials(socketFd(socket)));
    } catch (err) {
      log('cni caller unknown; connection closed', { err: (err as Error).message });
    }
    if (uid === 0) return;
    if (uid !== undefined) log('cni caller is not root; connection closed', { uid });
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // The umask decided the mode bind(2) gave the file; callers connecting before this are checked by uid anyway.
  chmodSync(socketPath, 0o600);
  return server;
}
