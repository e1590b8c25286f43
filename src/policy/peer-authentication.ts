import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import { selectorMatches } from './selector.js';
import { z } from 'zod';

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthentication {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  mode: MtlsMode;
  portLevel: ReadonlyMap<number, MtlsMode>;
  /** metadata.creationTimestamp in ms (Infinity when unknown: the newest); among several at one level the oldest wins */
  created: number;
}

const mode = z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
const selectorSchema = z.strictObject({ matchLabels: z.record(z.string(), z.string()).optional() });
/** The API's timestamp: RFC 3339 text on the wire, a Date once client-node has deserialized it. */
const timestamp = z.union([z.string(), z.date()]).optional();
const schema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), creationTimestamp: timestamp }),
  spec: z
    .strictObject({
      selector: selectorSchema.optional(),
      mtls: z.strictObject({ mode: mode.optional() }).optional(),
      portLevelMtls: z.record(z.string().regex(/^\d{1,5}$/, 'port keys must be numbers'), z.strictObject({ mode: mode.optional() })).optional(),
    })
    .default({}),
});

function createdAt(t: string | Date | undefined): number {
  const ms = t === undefined ? NaN : new Date(t).getTime();
  return Number.isNaN(ms) ? Infinity : ms;
}

/** A PeerAuthentication object from the API, or ERR_POLICY_INVALID naming the bad field (unknown fields included). */
export function parsePeerAuthentication(obj: unknown): PeerAuthentication {
  const parsed = schema.safeParse(obj);
  if (!parsed.success) throw new WarrenError('ERR_POLICY_INVALID', describeIssue(parsed.error));
  const { metadata, spec } = parsed.data;
  const labels = spec.selector?.matchLabels;
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    ...(labels !== undefined && Object.keys(labels).length > 0 ? { selector: labels } : {}),
    mode: spec.mtls?.mode ?? 'UNSET',
    portLevel: new Map(Object.entries(spec.portLevelMtls ?? {}).map(([port, v]) => [Number(port), v.mode ?? 'UNSET'])),
    created: createdAt(metadata.creationTimestamp),
  };
}

/**
 * What stands in for a PeerAuthentication that failed to parse: STRICT at
 * its level (its selector if readable, else its namespace), so a typo never
 * lets plaintext in where the author may have meant to keep it out.
 */
export function failClosedPeerAuthentication(obj: unknown): PeerAuthentication | undefined {
  const o = obj as { metadata?: { name?: unknown; namespace?: unknown; creationTimestamp?: unknown }; spec?: { selector?: unknown } } | null;
  const { name, namespace, creationTimestamp } = o?.metadata ?? {};
  if (typeof name !== 'string' || typeof namespace !== 'string') return undefined;
  const selector = selectorSchema.safeParse(o?.spec?.selector);
  const labels = selector.success ? selector.data.matchLabels : undefined;
  const created = timestamp.safeParse(creationTimestamp);
  return {
    namespace,
    name,
    ...(labels !== undefined && Object.keys(labels).length > 0 ? { selector: labels } : {}),
    mode: 'STRICT',
    portLevel: new Map(),
    created: createdAt(created.success ? created.data : undefined),
  };
}

/** istiod's precedence among policies of one level: the oldest by creationTimestamp, then by name. */
const oldestFirst = (a: PeerAuthentication, b: PeerAuthentication): number => a.created - b.created || a.name.localeCompare(b.name);

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
 * several at one level the oldest wins (creationTimestamp, then name), as istiod.
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
