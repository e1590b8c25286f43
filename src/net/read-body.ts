import type { IncomingMessage } from 'node:http';
import { WarrenError } from '../errors/warren-error.js';

/**
 * A request's (or an answer's) body, refused once it passes `maxBytes`: every
 * server and client here reads from peers it does not trust, so none buffers
 * without bound.
 */
export async function readBodyBytes(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      req.destroy();
      throw new WarrenError('ERR_BODY_TOO_LARGE', `the ${req.method === undefined ? 'answer' : 'request'} body is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function readBodyText(req: IncomingMessage, maxBytes: number): Promise<string> {
  return (await readBodyBytes(req, maxBytes)).toString('utf8');
}
