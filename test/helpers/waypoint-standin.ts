/**
 * Test stand-in for `warren waypoint-proxy` (not production code): run as the waypoint
 * Deployment's container inside its pod netns. It answers readiness on :15021, takes
 * PROXY v2 streams on 127.0.0.1:15088, appends each decoded header as a JSON line to the
 * file given as argv[2], then relays the stream to the header's destination (the Service
 * VIP:port), which the pod's agent captures and tunnels with the waypoint's identity.
 */
import { appendFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { decodeProxyV2 } from '../../src/waypoint/proxy-protocol.js';

const record = process.argv[2];
if (record === undefined) throw new Error('usage: waypoint-standin <record-file>');

createHttpServer((_req, res) => res.writeHead(200).end('ready\n')).listen(15021, '0.0.0.0');

createServer({ allowHalfOpen: true }, (client: Socket) => {
  let buffered = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    const d = decodeProxyV2(buffered);
    if (d.kind === 'incomplete') return;
    client.off('data', onData);
    if (d.kind === 'error') {
      appendFileSync(record, `${JSON.stringify({ error: d.code })}\n`);
      client.destroy();
      return;
    }
    appendFileSync(record, `${JSON.stringify(d.header)}\n`);
    const upstream = connect({ host: d.header.destination.address, port: d.header.destination.port, allowHalfOpen: true });
    upstream.write(buffered.subarray(d.consumed));
    client.pipe(upstream);
    upstream.pipe(client);
    const fail = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());
}).listen(15088, '127.0.0.1');
