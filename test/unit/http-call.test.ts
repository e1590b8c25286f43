import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { WarrenError } from '../../src/errors/warren-error.js';
import { errorBodyMessage, httpCall, httpUrl } from '../../src/net/http-call.js';

let server: Server;
let port = 0;
before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/big') {
      // An answer that never ends: the client must stop reading, not buffer it all.
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const write = (): void => void (res.write(chunk) ? setImmediate(write) : res.once('drain', write));
      res.on('close', () => res.removeAllListeners('drain'));
      write();
      return;
    }
    if (req.url === '/silent') return; // never answers
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => res.writeHead(418, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `got ${req.method} ${body}` })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test('the answer is read whole, with its status, and a JSON error body gives its message', async () => {
  const res = await httpCall({ url: httpUrl('127.0.0.1', port, '/echo'), method: 'POST', body: 'hello', timeoutMs: 2000, maxBytes: 1024 });
  assert.equal(res.status, 418);
  assert.equal(errorBodyMessage(res.body), 'got POST hello');
  assert.equal(errorBodyMessage('plain text'), 'plain text');
  assert.equal(errorBodyMessage('{"message": 7}'), '{"message": 7}');
});

test('an answer past maxBytes is refused (ERR_BODY_TOO_LARGE), not buffered without bound', async () => {
  const err = await httpCall({ url: httpUrl('127.0.0.1', port, '/big'), timeoutMs: 5000, maxBytes: 256 * 1024 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof WarrenError, String(err));
  assert.equal(err.code, 'ERR_BODY_TOO_LARGE');
});

test('a server that does not answer fails the call after timeoutMs', async () => {
  const started = Date.now();
  await assert.rejects(httpCall({ url: httpUrl('127.0.0.1', port, '/silent'), timeoutMs: 200, maxBytes: 1024 }), /no answer from 127\.0\.0\.1:\d+ within 200 ms/);
  assert.ok(Date.now() - started < 2000);
});

test('IPv6 hosts are bracketed in the URL', () => {
  assert.equal(httpUrl('::1', 15000, '/status').href, 'http://[::1]:15000/status');
});
