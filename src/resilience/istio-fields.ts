import { z } from 'zod';
import { durationMs } from '../config/duration.js';

/**
 * Field shapes shared by warren's networking.warren.io objects, spelled as
 * Istio spells them (docs/architecture.md §15).
 */

/** Istio's durations ("1s", "3m", "0.5s", "100ms") as milliseconds, bounded to a day. */
export const istioDuration = durationMs.refine((ms) => ms >= 1 && ms <= 86_400_000, 'must be between 1ms and 24h');

/** Istio's Percent: a double 0–100. */
export const percentage = z.strictObject({ value: z.number().min(0).max(100) });

export const k8sName = z.string().min(1).max(253);

export const objectMetadata = z.object({ name: k8sName, namespace: k8sName, generation: z.number().int().optional() });

/**
 * A host as DestinationRule and VirtualService name it: "reviews",
 * "reviews.default", "reviews.default.svc" or the FQDN; short names are in
 * the object's namespace (Istio's rule). Wildcards are not served.
 */
export function resolveHost(host: string, namespace: string, clusterDomain: string): { namespace: string; name: string } | undefined {
  const suffix = `.svc.${clusterDomain}`;
  const bare = host.endsWith(suffix) ? host.slice(0, -suffix.length) : host.endsWith('.svc') ? host.slice(0, -4) : host;
  const parts = bare.split('.');
  if (parts.some((p) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p))) return undefined;
  if (parts.length === 1) return { namespace, name: parts[0]! };
  if (parts.length === 2) return { namespace: parts[1]!, name: parts[0]! };
  return undefined;
}
