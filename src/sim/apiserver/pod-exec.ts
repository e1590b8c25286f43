import { spawn } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError, statusObject } from './api-error.js';

/**
 * `pods/NAME/exec` over WebSocket, the remotecommand protocol kubectl 1.32
 * speaks first (`v5.channel.k8s.io`; v4 too): every binary message starts
 * with its channel — 0 stdin, 1 stdout, 2 stderr, 3 the final Status (exit
 * code), 4 terminal resize, and in v5 255 to close a channel (stdin's EOF).
 * There is no terminal here (no pty): with -t the command still gets pipes.
 */
const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const CLOSE = 255;

// kubectl sends stdin in chunks of at most 32 KiB; the bound keeps one client from buffering without limit.
const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, handleProtocols: (offered) => PROTOCOLS.find((p) => offered.has(p)) ?? false });

export interface ExecRequest {
  argv: string[];
  stdin: boolean;
}

export function execRequestOf(q: URLSearchParams, argvFor: (command: string[]) => string[]): ExecRequest {
  const command = q.getAll('command');
  if (command.length === 0) throw new ApiError('BadRequest', 'you must specify at least 1 command');
  return { argv: argvFor(command), stdin: q.get('stdin') === 'true' || q.get('stdin') === '1' };
}

/** The exit as the Status kubectl reads on channel 3 (it exits with the code in details.causes). */
function exitStatus(code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): Record<string, unknown> {
  if (spawnError !== undefined) return statusObject(500, 'InternalError', `failed to start the command: ${spawnError.message}`);
  if (code === 0) return { metadata: {}, status: 'Success' };
  const exit = code ?? 128 + (signal === null ? 0 : 9);
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: ${signal === null ? `exit status ${exit}` : `signal: ${signal}`}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exit) }] },
  };
}

function run(ws: WebSocket, request: ExecRequest): void {
  const child = spawn(request.argv[0]!, request.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const send = (channel: number, data: Buffer): void => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), data]));
  };
  child.stdout.on('data', (d: Buffer) => send(STDOUT, d));
  child.stderr.on('data', (d: Buffer) => send(STDERR, d));
  child.stdin.on('error', () => {}); // the command may exit without reading its input
  if (!request.stdin) child.stdin.end();
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length === 0) return;
    if (data[0] === STDIN && request.stdin) child.stdin.write(data.subarray(1));
    else if (data[0] === CLOSE && data[1] === STDIN) child.stdin.end();
  });
  let finished = false;
  const finish = (status: Record<string, unknown>): void => {
    if (finished) return;
    finished = true;
    send(ERROR, Buffer.from(JSON.stringify(status)));
    ws.close(1000);
  };
  child.once('error', (err) => finish(exitStatus(null, null, err)));
  // 'close' waits for the output pipes; a background grandchild holding them gets a second.
  child.once('exit', (code, signal) => {
    const timer = setTimeout(() => finish(exitStatus(code, signal)), 1000);
    child.once('close', () => {
      clearTimeout(timer);
      finish(exitStatus(code, signal));
    });
  });
  ws.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

/** Completes the WebSocket upgrade and runs the command; a client without a channel protocol is refused. */
export function serveExec(req: IncomingMessage, socket: Duplex, head: Buffer, request: ExecRequest): void {
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim());
  if (!PROTOCOLS.some((p) => offered.includes(p))) {
    throw new ApiError('BadRequest', `pods/exec needs a WebSocket with one of the subprotocols ${PROTOCOLS.join(', ')} (SPDY is not served by the warren simulator)`);
  }
  wss.handleUpgrade(req, socket, head, (ws) => run(ws, request));
}
