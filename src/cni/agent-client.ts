import { request } from 'node:http';
import type { AgentPath, AgentResponse } from './plugin.js';

const MAX_RESPONSE = 64 * 1024;

/**
 * The plugin's one side effect: POST JSON to the node agent over its unix
 * socket. The timeout covers everything (connect, agent work, reading the
 * answer) and aborts the request, so a hung agent cannot hold the runtime's
 * ADD, and the plugin process has nothing left open when it answers.
 */
export function callAgent(path: AgentPath, body: object, socketPath: string, timeoutMs: number): Promise<AgentResponse> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      if (timedOut) {
        reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT', cause: err }));
      } else {
        reject(err);
      }
    };
    const req = request(
      {
        socketPath,
        path,
        method: 'POST',
        // A fresh connection per call, closed after it: a kept-alive socket would keep this short-lived process running.
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), connection: 'close' },
        signal: controller.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE) {
            res.destroy(new Error(`agent answer larger than ${MAX_RESPONSE} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
      },
    );
    req.on('error', fail);
    req.end(payload);
  });
}
