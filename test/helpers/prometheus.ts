/**
 * The sum of a metric's samples in Prometheus text format whose labels
 * include `labels`; undefined when no sample matches.
 */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
