import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { WarrenError } from '../../errors/warren-error.js';
import { QCLASS_IN, QTYPE, RCODE, encodeResponse, parseHeader, parseQuery, type DnsHeader, type LookupResult } from './dns-message.js';

export type DnsLookup = (qname: string, qtype: number) => LookupResult;

export interface DnsServerOptions {
  address: string;
  /** 0 picks a free port */
  port: number;
  lookup: DnsLookup;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export interface RunningDnsServer {
  port: number;
  close(): Promise<void>;
}

const OPCODE_QUERY = 0;

/**
 * The reply to one datagram, or undefined to send nothing. Never throws:
 * whatever arrives on the port, the server keeps serving.
 */
export function respond(packet: Buffer, lookup: DnsLookup): Buffer | undefined {
  let header: DnsHeader;
  try {
    header = parseHeader(packet);
  } catch {
    return undefined; // no id to answer to
  }
  // Answering a response could make two servers bounce packets at each other forever.
  if (header.qr) return undefined;
  if (header.opcode !== OPCODE_QUERY) return encodeResponse({ header }, { rcode: RCODE.NOTIMP });
  try {
    const query = parseQuery(packet);
    const { question } = query;
    let result: LookupResult;
    if (question.type === QTYPE.AXFR || question.type === QTYPE.IXFR || question.type === QTYPE.OPT) result = { rcode: RCODE.NOTIMP, answers: [] };
    else if (question.class !== QCLASS_IN) result = { rcode: RCODE.REFUSED, answers: [] };
    else {
      try {
        result = lookup(question.name, question.type);
      } catch {
        result = { rcode: RCODE.SERVFAIL, answers: [] };
      }
    }
    try {
      return encodeResponse(query, result);
    } catch {
      // A record the lookup produced could not be encoded (a bad address from the data): the client retries, we do not die.
      return encodeResponse(query, { rcode: RCODE.SERVFAIL });
    }
  } catch (err) {
    if (err instanceof WarrenError && err.code === 'ERR_DNS_MALFORMED') return encodeResponse({ header }, { rcode: RCODE.FORMERR });
    return encodeResponse({ header }, { rcode: RCODE.SERVFAIL });
  }
}

export async function startDnsServer(options: DnsServerOptions): Promise<RunningDnsServer> {
  const { address, lookup, log = () => undefined } = options;
  const socket: Socket = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(new WarrenError('ERR_DNS_LISTEN', `cluster DNS cannot listen on ${address}:${options.port}: ${err.message} (is another DNS server using the port?)`, { cause: err }));
    };
    socket.once('error', onError);
    socket.bind(options.port, address, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  // Without a listener an 'error' event would throw and take the process down.
  socket.on('error', (err) => log('cluster DNS socket error', { err: err.message }));
  socket.on('message', (packet: Buffer, peer: RemoteInfo) => {
    const reply = respond(packet, lookup);
    if (reply === undefined) return;
    socket.send(reply, peer.port, peer.address, (err) => {
      if (err) log('cluster DNS reply not sent', { peer: `${peer.address}:${peer.port}`, err: err.message });
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port: socket.address().port,
    close() {
      closed ??= new Promise<void>((resolve) => socket.close(() => resolve()));
      return closed;
    },
  };
}
