import { describeIssue } from '../config/zod-issue.js';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { isIP } from 'node:net';
import { z } from 'zod';
import { httpStatusForError } from '../errors/http-status.js';
import { WarrenError } from '../errors/warren-error.js';
import { peerCredentials, socketFd } from '../native/netns-socket.js';
import { readBodyText } from '../net/read-body.js';
import { sendJson, sendText } from '../net/respond.js';
import { runCniPlugin, type CniPluginDeps } from '../cni/plugin.js';

/** Its answers are read by the plugin, not people. */
const COMPACT = { compact: true };

/** The exit code the plugin binary exits with (src/cni/warren-cni.c reads it). */
export const CNI_EXIT_CODE_HEADER = 'x-cni-exit-code';

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
/** A raw request carries the runtime's whole stdin (network config with prevResult). */
const MAX_RAW_BODY = 1024 * 1024;

/**
 * The plugin binary's request (src/cni/warren-cni.c): the CNI variables the
 * runtime set and its stdin, unparsed. The agent runs the plugin's logic
 * (src/cni/plugin.ts) on it, so the binary only forwards.
 */
const cniRawSchema = z.strictObject({
  env: z.partialRecord(z.enum(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']), z.string().max(4096)),
  stdin: z.string().max(MAX_RAW_BODY),
});

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const text = await readBodyText(req, maxBytes);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new WarrenError('ERR_CNI_DECODE', `the request body is not valid JSON: ${(err as Error).message}`);
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
  /** One structured call, from HTTP or from a raw request's plugin run: validated, then handled. */
  const handle = async (op: 'add' | 'del', body: unknown): Promise<{ status: number; body: object }> => {
    const parsed = (op === 'add' ? cniRequestSchema : cniDelSchema).safeParse(body);
    if (!parsed.success) return { status: 400, body: { message: `invalid CNI request: ${describeIssue(parsed.error)}` } };
    try {
      if (op === 'add') return { status: 200, body: await handlers.add(parsed.data) };
      await handlers.del(parsed.data);
      return { status: 200, body: {} };
    } catch (err) {
      log('cni request failed', { op, pod: `${parsed.data.podNamespace}/${parsed.data.podName}`, err: (err as Error).message });
      return { status: httpStatusForError(err), body: { message: (err as Error).message } };
    }
  };
  const callInProcess: CniPluginDeps['callAgent'] = async (path, body) => {
    const answer = await handle(path === '/v1/cni/add' ? 'add' : 'del', body);
    return { status: answer.status, body: JSON.stringify(answer.body) };
  };
  const server = createServer((req, res) => {
    void (async () => {
      const op = req.url === '/v1/cni/add' ? 'add' : req.url === '/v1/cni/del' ? 'del' : req.url === '/v1/cni/raw' ? 'raw' : undefined;
      if (req.method !== 'POST' || op === undefined) {
        return sendJson(res, 404, { message: `unknown endpoint ${req.method} ${req.url}; the plugin uses POST /v1/cni/raw (or /v1/cni/add and /v1/cni/del)` }, COMPACT);
      }
      let body: unknown;
      try {
        body = await readJson(req, op === 'raw' ? MAX_RAW_BODY + MAX_BODY : MAX_BODY);
      } catch (err) {
        return sendJson(res, 400, { message: (err as Error).message }, COMPACT);
      }
      if (op !== 'raw') {
        const answer = await handle(op, body);
        return sendJson(res, answer.status, answer.body, COMPACT);
      }
      const raw = cniRawSchema.safeParse(body);
      if (!raw.success) return sendJson(res, 400, { message: `invalid raw CNI request: ${describeIssue(raw.error)}` }, COMPACT);
      // The plugin's result goes back verbatim: its stdout as the body, its exit code in a header.
      const result = await runCniPlugin(raw.data.env, raw.data.stdin, { callAgent: callInProcess });
      sendText(res, 200, result.stdout, 'application/json', { [CNI_EXIT_CODE_HEADER]: String(result.exitCode) });
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
