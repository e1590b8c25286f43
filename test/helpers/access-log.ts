import { readFile } from 'node:fs/promises';

export interface AccessEntry {
  reporter: 'source' | 'destination';
  direction: 'outbound' | 'inbound';
  pod: string;
  src: { ip: string; port: number; workload?: string; namespace?: string; identity?: string };
  dst: { ip: string; port: number; workload?: string; namespace?: string; identity?: string; service?: string };
  security: 'mtls' | 'plaintext';
  bytes_sent: number;
  bytes_received: number;
  duration_ms: number;
  outcome: 'ok' | 'denied' | 'error';
  policy?: string;
  reason?: string;
}

/** The access log lines (msg "connection") of an agent's JSON log file. */
export async function accessLog(path: string): Promise<AccessEntry[]> {
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
