import { describeIssue } from '../config/zod-issue.js';
import { selectorMatches } from './selector.js';
import { z } from 'zod';

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthentication {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  mode: MtlsMode;
  portLevel: ReadonlyMap<number, MtlsMode>;
}

const mode = z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
const schema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string() }),
  spec: z
    .object({
      selector: z.object({ matchLabels: z.record(z.string(), z.string()).optional() }).optional(),
      mtls: z.object({ mode: mode.optional() }).optional(),
      portLevelMtls: z.record(z.string().regex(/^\d{1,5}$/, 'port keys must be numbers'), z.object({ mode: mode.optional() })).optional(),
    })
    .default({}),
});

/** A PeerAuthentication object from the API, or an error naming the bad field (the object is then ignored). */
export function parsePeerAuthentication(obj: unknown): PeerAuthentication {
  const parsed = schema.safeParse(obj);
  if (!parsed.success) throw new Error(describeIssue(parsed.error));
  const { metadata, spec } = parsed.data;
  const labels = spec.selector?.matchLabels;
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    ...(labels !== undefined && Object.keys(labels).length > 0 ? { selector: labels } : {}),
    mode: spec.mtls?.mode ?? 'UNSET',
    portLevel: new Map(Object.entries(spec.portLevelMtls ?? {}).map(([port, v]) => [Number(port), v.mode ?? 'UNSET'])),
  };
}

const oldestFirst = (a: PeerAuthentication, b: PeerAuthentication): number => a.name.localeCompare(b.name);

/** The mode in force for a port and where it comes from: `policy` (ns/name) is absent for the PERMISSIVE default. */
export interface MtlsResolution {
  mode: MtlsMode;
  level: 'port' | 'workload' | 'namespace' | 'mesh' | 'default';
  policy?: string;
}

/**
 * Istio's PeerAuthentication resolution for one workload port: the
 * workload-level policy (selector matching the pod; its port-level mode
 * first), then the namespace's (no selector), then the mesh's (no selector,
 * root namespace); UNSET inherits; nothing set means PERMISSIVE. Among
 * several at one level the first by name wins (Istio: the oldest).
 */
export function resolveMtlsMode(policies: readonly PeerAuthentication[], rootNamespace: string, pod: { namespace: string; labels: Record<string, string> }, port: number): MtlsResolution {
  const workload = policies.filter((p) => p.namespace === pod.namespace && p.selector !== undefined && selectorMatches(p.selector, pod.labels)).sort(oldestFirst)[0];
  const namespace = policies.filter((p) => p.namespace === pod.namespace && p.selector === undefined).sort(oldestFirst)[0];
  const mesh = policies.filter((p) => p.namespace === rootNamespace && p.selector === undefined).sort(oldestFirst)[0];
  const levels: Array<[MtlsResolution['level'], PeerAuthentication | undefined, MtlsMode | undefined]> = [
    ['port', workload, workload?.portLevel.get(port)],
    ['workload', workload, workload?.mode],
    ['namespace', namespace, namespace?.mode],
    ['mesh', mesh, mesh?.mode],
  ];
  for (const [level, p, mode] of levels) if (p !== undefined && mode !== undefined && mode !== 'UNSET') return { mode, level, policy: `${p.namespace}/${p.name}` };
  return { mode: 'PERMISSIVE', level: 'default' };
}

/** The mode alone: what the connection path asks. */
export function effectiveMtlsMode(policies: readonly PeerAuthentication[], rootNamespace: string, pod: { namespace: string; labels: Record<string, string> }, port: number): MtlsMode {
  return resolveMtlsMode(policies, rootNamespace, pod, port).mode;
}
