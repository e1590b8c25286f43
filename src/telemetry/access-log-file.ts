import { readFile } from 'node:fs/promises';

interface Peer {
  ip: string;
  port: number;
  workload?: string;
  namespace?: string;
  pod?: string;
  identity?: string;
}

/** One access log line as accessLogEntry (connection-telemetry.ts) writes it. */
export interface AccessEntry {
  reporter: 'source' | 'destination';
  direction: 'outbound' | 'inbound';
  pod: string;
  src: Peer;
  dst: Peer & { service?: string };
  security: 'mtls' | 'plaintext';
  bytes_sent: number;
  bytes_received: number;
  duration_ms: number;
  outcome: 'ok' | 'denied' | 'error';
  policy?: string;
  reason?: string;
}

/** The access log lines (msg "connection") of an agent's JSON log file. */
export async function readAccessLog(path: string): Promise<AccessEntry[]> {
  const out: AccessEntry[] = [];
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (!line.includes('"msg":"connection"')) continue;
    try {
      out.push(JSON.parse(line) as AccessEntry);
    } catch {
      // a line being written while we read
    }
  }
  return out;
}
