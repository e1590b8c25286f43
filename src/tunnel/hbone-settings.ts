import { PORTS } from '../redirect/constants.js';

/**
 * HTTP/2 settings for HBONE (docs/architecture.md §2, §12): a connection window
 * large enough that streams can fill a fast link without waiting for
 * WINDOW_UPDATEs, at most 100 streams per connection. The per-stream window
 * is a configurable bound (hbone-limits.ts `streamBufferBytes`).
 */
export const HBONE = {
  port: PORTS.hbone,
  connectionWindow: 16 * 1024 * 1024,
  maxStreams: 100,
  idleCloseMs: 5 * 60_000,
  connectTimeoutMs: 10_000,
} as const;

export const HBONE_HTTP2_SETTINGS = {
  maxConcurrentStreams: HBONE.maxStreams,
  enablePush: false,
  maxFrameSize: 256 * 1024,
};

/** "ip:port" as an HTTP/2 :authority (IPv6 bracketed), and back. */
export function formatAuthority(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function parseAuthority(authority: string | undefined): { ip: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(authority ?? '');
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { ip: (m[1] ?? m[2])!, port };
}
