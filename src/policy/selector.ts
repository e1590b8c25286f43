/** A policy's `selector.matchLabels` against a pod's labels: every pair must be there. */
export function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
