import { execa } from 'execa';
import { connectFromNetns } from '../../tunnel/netns-connect.js';
import { httpGetInNetns } from '../../net/netns-http.js';
import type { ContainerLike } from './container-command.js';

export interface Probe {
  httpGet?: { path?: string; port: number | string; httpHeaders?: Array<{ name: string; value: string }> };
  tcpSocket?: { port: number | string };
  exec?: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
}

export interface ProbeTarget {
  podIp: string;
  /** netns name of the node: probes come from the kubelet's side, as on a real node */
  nodeNetns: string;
  /** pod netns name, for exec probes */
  podNetns: string;
  container: ContainerLike;
}

function resolvePort(port: number | string, c: ContainerLike): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/** One probe attempt: true on success (HTTP 200-399, TCP connect, exit status 0). */
export async function runProbe(probe: Probe, target: ProbeTarget): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.exec) {
      const res = await execa('ip', ['netns', 'exec', target.podNetns, ...probe.exec.command], { timeout: timeoutMs, reject: false });
      return res.exitCode === 0;
    }
    const spec = probe.httpGet ?? probe.tcpSocket;
    if (spec === undefined) return true;
    const port = resolvePort(spec.port, target.container);
    if (port === undefined) return false;
    if (!probe.httpGet) {
      (await connectFromNetns({ netns: `/var/run/netns/${target.nodeNetns}`, host: target.podIp, port, mark: 0, timeoutMs })).destroy();
      return true;
    }
    const headers = Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value]));
    const res = await httpGetInNetns({ netns: target.nodeNetns, host: target.podIp, port, path: probe.httpGet.path ?? '/', headers: { 'User-Agent': 'kube-probe/1.32', ...headers }, timeoutMs });
    return res.status >= 200 && res.status < 400;
  } catch {
    return false;
  }
}
