import type { Socket } from 'node:net';
import { decodeProxyV2, type ProxyV2Header } from '../../src/waypoint/proxy-protocol.js';

/**
 * A stand-in waypoint's connection handler: decodes the PROXY v2 header the agent sends
 * first, records it in `headers`, then echoes the rest; a bad header drops the connection.
 */
export function proxyV2Echo(headers: ProxyV2Header[]): (s: Socket) => void {
  return (s) => {
    let buffered = Buffer.alloc(0);
    s.on('error', () => s.destroy());
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const d = decodeProxyV2(buffered);
      if (d.kind === 'incomplete') return;
      s.off('data', onData);
      if (d.kind === 'error') return void s.destroy();
      headers.push(d.header);
      s.write(buffered.subarray(d.consumed));
      s.pipe(s);
    };
    s.on('data', onData);
  };
}
