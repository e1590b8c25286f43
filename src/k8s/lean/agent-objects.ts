import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';

const stringMap = z.record(z.string(), z.string());

/**
 * A pod as the node agent keeps it in its caches: only the fields its modules read
 * (enrollment-plan.ts's podView, cluster-index.ts, waypoint-index.ts, workload-name.ts),
 * so ~110 pods of a node and every pod of the cluster cost a fraction of the API objects
 * (containers, volumes, managedFields and container statuses are left out). Of the
 * annotations only warren's own are read (`warren.io/redirection`).
 */
const agentPod = z.object({
  metadata: z.object({
    name: z.string().min(1),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generateName: z.string().optional(),
    labels: stringMap.optional(),
    annotations: stringMap.transform((a) => Object.fromEntries(Object.entries(a).filter(([k]) => k.startsWith('warren.io/')))).optional(),
    ownerReferences: z.array(z.object({ kind: z.string(), name: z.string(), controller: z.boolean().optional() })).optional(),
  }),
  spec: z.object({ nodeName: z.string().optional(), hostNetwork: z.boolean().optional(), serviceAccountName: z.string().optional() }).optional(),
  status: z
    .object({
      phase: z.string().optional(),
      podIP: z.string().optional(),
      podIPs: z.array(z.object({ ip: z.string() })).optional(),
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
    })
    .optional(),
});

const agentNamespace = z.object({ metadata: z.object({ name: z.string().min(1), resourceVersion: z.string().optional(), labels: stringMap.optional() }) });

/** Validates a pod and keeps what the agent reads; throws (a ZodError naming the field) on one it cannot use. */
export const parseAgentPod = (object: unknown): V1Pod => agentPod.parse(object) as V1Pod;

/** A namespace: its name and labels (enrollment and waypoint decisions read nothing else). */
export const parseAgentNamespace = (object: unknown): V1Namespace => agentNamespace.parse(object) as V1Namespace;
