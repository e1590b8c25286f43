/**
 * gRPC's length-prefixed messages (grpc/doc/PROTOCOL-HTTP2.md): a 1-byte
 * compressed flag (always 0 here), a 4-byte big-endian length, the message.
 * The stand-in app and the tests that call it speak raw bytes as messages
 * (no protobuf): enough for a proxy, which never looks inside them.
 */

/** A message larger than this is refused: a stand-in never buffers without bound. */
export const MAX_GRPC_MESSAGE = 1 << 20;

export function grpcFrame(message: string | Buffer): Buffer {
  const body = typeof message === 'string' ? Buffer.from(message) : message;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The messages in a stream's bytes; throws on a truncated, compressed or oversized frame. */
export function grpcMessages(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    if (at + 5 > bytes.length) throw new Error('truncated gRPC frame header');
    if (bytes[at] !== 0) throw new Error('compressed gRPC messages are not supported');
    const n = bytes.readUInt32BE(at + 1);
    if (n > MAX_GRPC_MESSAGE) throw new Error(`gRPC message of ${n} bytes exceeds ${MAX_GRPC_MESSAGE}`);
    if (at + 5 + n > bytes.length) throw new Error('truncated gRPC message');
    out.push(bytes.subarray(at + 5, at + 5 + n));
    at += 5 + n;
  }
  return out;
}
