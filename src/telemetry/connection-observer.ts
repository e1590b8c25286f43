/** One proxied TCP connection as the agent saw it, before any cluster lookup. */
export interface ConnectionMeta {
  /** the enrolled pod whose proxy carries it (namespace/name) */
  pod: string;
  direction: 'outbound' | 'inbound';
  /** Istio's `reporter`: the source side's proxy or the destination side's */
  reporter: 'source' | 'destination';
  /** mtls: over an HBONE tunnel; plaintext: captured and passed as is */
  security: 'mtls' | 'plaintext';
  source: { ip: string; port: number; principal?: string };
  destination: { ip: string; port: number; principal?: string };
  /** the Service whose VIP the client dialed */
  service?: { namespace: string; name: string };
}

export type Outcome = 'ok' | 'denied' | 'error';

/** Bytes are counted from the client's side: sent toward the destination, received from it. */
export interface ConnectionResult {
  bytesSent: number;
  bytesReceived: number;
  error?: string;
}

export interface OpenConnection {
  closed(result: ConnectionResult): void;
}

/**
 * Where proxies report connections: `opened` once bytes may flow (Istio's
 * connections_opened), the returned handle when they stop; `refused` for
 * connections that never carried a byte (denied by policy, no endpoint).
 */
export interface ConnectionObserver {
  opened(meta: ConnectionMeta): OpenConnection;
  refused(meta: ConnectionMeta, outcome: Exclude<Outcome, 'ok'>, reason: string, policy?: string): void;
}
