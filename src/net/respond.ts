import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** A whole answer in one write, with its length: every HTTP server of warren answers through here. */
export function sendText(res: ServerResponse, status: number, text: string, contentType: string, headers: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(text) }).end(text);
}

/**
 * A JSON answer: indented by default, for what people read too (the admin
 * API, with curl); `compact` for what only programs read (the CNI plugin's
 * socket, the CA's API).
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, options: { compact?: boolean } = {}): void {
  const text = options.compact === true ? JSON.stringify(body) : `${JSON.stringify(body, null, 2)}\n`;
  sendText(res, status, text, 'application/json');
}
