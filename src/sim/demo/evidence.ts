import type { AccessEntry } from '../../telemetry/access-log-file.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

const peer = (p: AccessEntry['src']): string => `${p.workload ?? p.ip} (${p.identity ?? 'no identity'})`;

/** An access log line as one sentence: who → whom, with both identities, and how it went. */
export function describeAccess(e: AccessEntry): string {
  const outcome = e.outcome === 'ok' ? 'ok' : `${e.outcome}: ${e.reason ?? 'no reason given'}`;
  return `${peer(e.src)} → ${peer(e.dst)} ${e.security}, ${formatBytes(e.bytes_sent)} sent, ${formatBytes(e.bytes_received)} received, ${outcome}`;
}

function parseLabels(text: string): Map<string, string> {
  const labels = new Map<string, string>();
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1]!, m[2]!);
  return labels;
}

/**
 * The samples of metric `name` (Prometheus text format) whose labels include
 * `where`, printed with only the `keep` labels so a line fits a terminal.
 */
export function metricExcerpt(text: string, name: string, where: Record<string, string>, keep: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const labels = parseLabels(m[2] ?? '');
    if (!Object.entries(where).every(([k, v]) => labels.get(k) === v)) continue;
    const shown = keep.filter((k) => labels.has(k)).map((k) => `${k}="${labels.get(k)}"`);
    out.push(`${name}${shown.length > 0 ? `{${shown.join(',')}}` : ''} ${m[3]}`);
  }
  return out;
}
