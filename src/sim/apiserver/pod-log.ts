import { open, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { parseLogLines, type LogLine } from '../kubelet/container-log.js';
import { ApiError } from './api-error.js';
import type { KubeObject } from './store.js';

/** What the API server reaches on a node for `pods/log` and `pods/exec` (the kubelet's side). */
export interface PodAccess {
  /** the CRI-format log file of a container (kubelet/container-log.ts) */
  logPath(namespace: string, pod: string, container: string): string;
  /** argv that runs `command` in the pod's network namespace */
  execArgv(pod: KubeObject, command: string[]): string[];
}

export interface LogOptions {
  container: string;
  follow: boolean;
  timestamps: boolean;
  tailLines?: number | undefined;
  /** lines written before this time (ms) are left out */
  sinceMs?: number | undefined;
}

/** The container a request names, or the pod's only one; errors as kube-apiserver words them. */
export function containerOf(pod: KubeObject, requested: string | null): string {
  const names = ((pod.spec?.containers ?? []) as Array<{ name: string }>).map((c) => c.name);
  if (requested === null || requested === '') {
    if (names.length === 1) return names[0]!;
    throw new ApiError('BadRequest', `a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(' ')}]`);
  }
  if (!names.includes(requested)) throw new ApiError('BadRequest', `container ${requested} is not valid for pod ${pod.metadata.name}`);
  return requested;
}

function int(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ApiError('BadRequest', `${name}: Invalid value: ${JSON.stringify(v)}: must be a non-negative integer`);
  return n;
}

export function logOptionsOf(pod: KubeObject, q: URLSearchParams): LogOptions {
  if (q.get('previous') === 'true') {
    throw new ApiError('BadRequest', "previous terminated container logs are not kept apart by the warren simulator: a restarted container's output follows the earlier one's in the same log");
  }
  const sinceSeconds = int(q, 'sinceSeconds');
  const sinceTime = q.get('sinceTime');
  const sinceMs = sinceSeconds !== undefined ? Date.now() - sinceSeconds * 1000 : sinceTime !== null ? Date.parse(sinceTime) : undefined;
  if (sinceMs !== undefined && Number.isNaN(sinceMs)) throw new ApiError('BadRequest', `sinceTime: Invalid value: ${JSON.stringify(sinceTime)}: must be RFC 3339`);
  return { container: containerOf(pod, q.get('container')), follow: q.get('follow') === 'true', timestamps: q.get('timestamps') === 'true', tailLines: int(q, 'tailLines'), sinceMs };
}

/** The lines a request selects: time filter first, then the tail, as the kubelet does. */
export function selectLines(lines: LogLine[], options: Pick<LogOptions, 'tailLines' | 'sinceMs'>): LogLine[] {
  const recent = options.sinceMs === undefined ? lines : lines.filter((l) => Date.parse(l.time) >= options.sinceMs!);
  return options.tailLines === undefined ? recent : recent.slice(Math.max(0, recent.length - options.tailLines));
}

const render = (lines: LogLine[], timestamps: boolean): string => lines.map((l) => (timestamps ? `${l.time} ${l.text}\n` : `${l.text}\n`)).join('');

/** Complete lines from `offset` on, and where the next read starts. */
async function readFrom(file: string, offset: number): Promise<{ lines: LogLine[]; next: number }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size <= offset) return { lines: [], next: offset };
    const buf = Buffer.alloc(size - offset);
    await fh.read(buf, 0, buf.length, offset);
    const end = buf.lastIndexOf(0x0a) + 1;
    return { lines: parseLogLines(buf.subarray(0, end).toString('utf8')), next: offset + end };
  } finally {
    await fh.close();
  }
}

/**
 * Serves `GET pods/NAME/log`: the selected lines, then with follow=true new
 * lines as the container writes them, until the client goes away or
 * `stillThere` says the pod is gone.
 */
export async function servePodLog(res: ServerResponse, file: string, options: LogOptions, stillThere: () => boolean, pollMs = 200): Promise<void> {
  if ((await stat(file).catch(() => undefined)) === undefined) {
    throw new ApiError('BadRequest', `container "${options.container}" is waiting to start: no output yet`);
  }
  const first = await readFrom(file, 0);
  res.writeHead(200, { 'Content-Type': 'text/plain', ...(options.follow ? { 'Transfer-Encoding': 'chunked' } : {}) });
  res.write(render(selectLines(first.lines, options), options.timestamps));
  if (!options.follow) return void res.end();
  let offset = first.next;
  let closed = false;
  res.on('close', () => (closed = true));
  while (!closed && stillThere()) {
    await new Promise((r) => setTimeout(r, pollMs));
    const more = await readFrom(file, offset).catch(() => ({ lines: [], next: offset }));
    offset = more.next;
    if (more.lines.length > 0) res.write(render(more.lines, options.timestamps));
  }
  res.end();
}
