import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { WarrenError } from '../../errors/warren-error.js';
import { httpGetInNetns } from '../../net/netns-http.js';
import { podNetnsName } from '../topology/plan.js';
import { DEMO_NAMESPACE as NS } from './manifest.js';

/** What the demo's chapters share: pods by name and address, bounded waits, and requests made from inside a pod. */

export const name = (p: V1Pod): string => p.metadata!.name!;
export const ip = (p: V1Pod): string => p.status!.podIP!;
export const netnsOf = (p: V1Pod): string => podNetnsName(p.spec!.nodeName!, NS, name(p));

export const fail = (what: string): never => {
  throw new WarrenError('ERR_DEMO', what);
};

export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(100);
  }
  return false;
}

/** An answer as the demo shows it: the status, and who served it when the app did (http-echo's JSON). */
export type Reply = { ok: true; status: number; pod?: string; clientIp?: string; body: string } | { ok: false; error: string };

/** A request made from inside a pod's netns, as the app in it would make it (its traffic takes the pod's rules); never throws. */
export async function request(from: V1Pod, host: string, port: number, path: string, method: 'GET' | 'DELETE' = 'GET'): Promise<Reply> {
  try {
    const res = await httpGetInNetns({ netns: netnsOf(from), host, port, path, method });
    const body = res.body.toString();
    let echo: { pod?: string; client?: { ip?: string } } = {};
    try {
      echo = JSON.parse(body) as typeof echo;
    } catch {
      // not the app's JSON: an answer the waypoint made itself (a 403, a 503)
    }
    return { ok: true, status: res.status, body, ...(echo.pod !== undefined ? { pod: echo.pod, clientIp: echo.client?.ip ?? '' } : {}) };
  } catch (err) {
    // A reset that lands while the connect is still completing comes back as ERR_UPSTREAM_CONNECT: show the socket's own code.
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    return { ok: false, error: cause?.code ?? (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}

export const replyText = (r: Reply): string =>
  !r.ok ? `failed: ${r.error}` : r.pod !== undefined ? `HTTP ${r.status} from ${r.pod} (it saw the caller as ${r.clientIp})` : `HTTP ${r.status} "${r.body.trim().slice(0, 60)}" (not from the app)`;
