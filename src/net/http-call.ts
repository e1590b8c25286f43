import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { readBodyBytes } from './read-body.js';

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

export interface HttpCallOptions {
  url: URL;
  method?: 'GET' | 'POST' | 'DELETE';
  headers?: OutgoingHttpHeaders;
  body?: string;
  /** the longest silence: connecting, or between bytes of the answer */
  timeoutMs: number;
  /** an answer larger than this is refused: no peer makes us buffer without bound */
  maxBytes: number;
  /** https: the roots the server must chain to (nothing else is trusted) */
  ca?: readonly string[];
  /** a socket made elsewhere (in another netns) to carry the request */
  socket?: Duplex;
}

/**
 * One HTTP(S) request and its whole answer, bounded in time and size: how the
 * agent calls the CA, the CLI calls an agent's admin port, and tools reach a
 * simulator node. An answer past `maxBytes` rejects with ERR_BODY_TOO_LARGE;
 * other failures with Node's error, which the caller wraps in its own.
 */
export function httpCall(o: HttpCallOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const onAnswer = (res: IncomingMessage): void => {
      readBodyBytes(res, o.maxBytes).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
    };
    const base = {
      method: o.method ?? 'GET',
      headers: { ...(o.socket ? { connection: 'close' } : {}), ...o.headers, ...(o.body === undefined ? {} : { 'content-length': Buffer.byteLength(o.body) }) },
      ...(o.socket ? { createConnection: () => o.socket! } : {}),
    };
    const req = o.url.protocol === 'https:' ? httpsRequest(o.url, { ...base, ...(o.ca ? { ca: [...o.ca] } : {}), minVersion: 'TLSv1.3' }, onAnswer) : httpRequest(o.url, base, onAnswer);
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`no answer from ${o.url.host} within ${o.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** http://host:port/path, the host bracketed when it is an IPv6 address. */
export function httpUrl(host: string, port: number, path: string): URL {
  return new URL(path, `http://${host.includes(':') ? `[${host}]` : host}:${port}`);
}

/** The message of an error answer: its JSON `message` (warren's servers answer so), else the start of the text. */
export function errorBodyMessage(body: Buffer | string): string {
  const text = body.toString();
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  } catch {
    // not JSON: the raw text is the message
  }
  return text.slice(0, 200);
}
