import { createHash } from 'node:crypto';
import { loadYaml, type KubernetesObject, type V1ClusterRoleBinding, type V1ConfigMap, type V1Deployment, type V1PodDisruptionBudget, type V1Service, type V1ServiceAccount } from '@kubernetes/client-node';
import { z } from 'zod';
import { PROXY_NODE_OPTIONS } from '../config/proxy-node-options.js';
import { DATAPLANE_MODE_LABEL } from '../k8s/enrollment.js';
import { waypointFor } from './attachment.js';
import { GATEWAY_GROUP, GATEWAY_NAME_LABEL, GATEWAY_VERSION, MANAGED_LABEL, MANAGED_VALUE, USE_WAYPOINT_LABEL, WAYPOINT_CLASS, WAYPOINT_FOR_LABEL, WAYPOINT_PORTS, WAYPOINT_PROXY_ADDRESS } from './constants.js';

/** The fields of a Gateway the controller reads (the CRD's schema guarantees their types). */
export interface GatewayObject extends KubernetesObject {
  spec: {
    gatewayClassName: string;
    listeners: Array<{ name: string; port: number; protocol: string }>;
    infrastructure?: { labels?: Record<string, string>; annotations?: Record<string, string>; parametersRef?: { group: string; kind: string; name: string } };
  };
  status?: { conditions?: Condition[]; addresses?: Array<{ type: string; value: string }> };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/** Annotation on each made object: the hash of what the controller generated, so it re-applies only when that changes. */
export const TEMPLATE_HASH_ANNOTATION = 'gateway.warren.io/template-hash';

export interface WaypointSettings {
  /** the image of `warren waypoint-proxy` (the controller's own image by default) */
  image: string;
}

export type Acceptance = { accepted: true } | { accepted: false; reason: 'ListenersNotValid' | 'InvalidParameters'; message: string };

/**
 * Whether a Gateway of class warren-waypoint is one warren can run, as
 * istiod checks its waypoints: a listener `{name: mesh, port: 15008,
 * protocol: HBONE}` and a valid `warren.io/waypoint-for` label.
 */
export function acceptGateway(gw: GatewayObject): Acceptance {
  const mesh = gw.spec.listeners.find((l) => l.protocol === 'HBONE' && l.port === WAYPOINT_PORTS.mesh);
  if (mesh === undefined) {
    return { accepted: false, reason: 'ListenersNotValid', message: `a waypoint needs a listener {name: mesh, port: ${WAYPOINT_PORTS.mesh}, protocol: HBONE}; spec.listeners has ${gw.spec.listeners.map((l) => `${l.name} ${l.port}/${l.protocol}`).join(', ') || 'none'}` };
  }
  const other = gw.spec.listeners.find((l) => l !== mesh);
  if (other !== undefined) return { accepted: false, reason: 'ListenersNotValid', message: `spec.listeners[${gw.spec.listeners.indexOf(other)}] (${other.name} ${other.port}/${other.protocol}): a waypoint has only its HBONE listener` };
  if (waypointFor(gw.metadata?.labels) === undefined) {
    return { accepted: false, reason: 'InvalidParameters', message: `metadata.labels["${WAYPOINT_FOR_LABEL}"] must be service, workload, all or none` };
  }
  return { accepted: true };
}

/** What a Gateway's parameters may set (Istio's `deployment` key of its parametersRef ConfigMap; only the replica count here). */
export interface WaypointParameters {
  replicas: number;
}

/** A waypoint's replicas are bounded: a typo must not start a thousand pods. */
export const MAX_WAYPOINT_REPLICAS = 32;

const deploymentOverlay = z.strictObject({ spec: z.strictObject({ replicas: z.number().int().min(1).max(MAX_WAYPOINT_REPLICAS).optional() }).optional() });

export type ParametersResult = { ok: true; parameters: WaypointParameters } | { ok: false; message: string };

/**
 * A Gateway's parameters as Istio reads a waypoint's
 * (`spec.infrastructure.parametersRef` to a ConfigMap in the Gateway's
 * namespace whose `deployment` key is YAML overlaid on the Deployment; only
 * `spec.replicas` is taken here, anything else is refused, naming it).
 * `configMap` is the referenced one as read (undefined: not found). No
 * reference: one replica. Refusals become Accepted False InvalidParameters,
 * as Gateway API asks for a reference that cannot be used.
 */
export function waypointParameters(gw: GatewayObject, configMap: V1ConfigMap | undefined): ParametersResult {
  const ref = gw.spec.infrastructure?.parametersRef;
  if (ref === undefined) return { ok: true, parameters: { replicas: 1 } };
  const at = 'spec.infrastructure.parametersRef';
  if (ref.group !== '' || ref.kind !== 'ConfigMap') return { ok: false, message: `${at}: ${ref.group || 'core'}/${ref.kind} is not supported (a ConfigMap, group "")` };
  if (configMap === undefined) return { ok: false, message: `${at}: ConfigMap ${gw.metadata?.namespace}/${ref.name} not found` };
  const text = configMap.data?.deployment;
  if (text === undefined) return { ok: true, parameters: { replicas: 1 } };
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    return { ok: false, message: `ConfigMap ${ref.name} data.deployment is not YAML: ${(err as Error).message.split('\n')[0]}` };
  }
  const parsed = deploymentOverlay.safeParse(doc ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = [...issue.path, ...(issue.code === 'unrecognized_keys' ? [issue.keys[0]] : [])].join('.');
    return { ok: false, message: `ConfigMap ${ref.name} data.deployment: ${field}: ${issue.code === 'unrecognized_keys' ? 'not supported (only spec.replicas)' : issue.message}` };
  }
  return { ok: true, parameters: { replicas: parsed.data.spec?.replicas ?? 1 } };
}

const hashOf = (value: unknown): string => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);

export interface WaypointObjects {
  serviceAccount: V1ServiceAccount;
  deployment: V1Deployment;
  service: V1Service;
  /** cluster-scoped, so it cannot be owned by the Gateway: the controller removes it when the Gateway is gone */
  binding: V1ClusterRoleBinding;
  /** with more than one replica: minAvailable 1, so a voluntary disruption (a node drain) never takes the last ready pod */
  disruptionBudget?: V1PodDisruptionBudget;
}

/** ClusterRole (deploy/10-ca.yaml) of what a waypoint reads: the cluster view, its routes, the policies aimed at it. */
export const WAYPOINT_CLUSTER_ROLE = 'warren-waypoint';
/** On a waypoint's ClusterRoleBinding: the Gateway it is for, as namespace/name. */
export const WAYPOINT_GATEWAY_ANNOTATION = 'gateway.warren.io/gateway';

/** The ClusterRoleBinding's name for a waypoint (a Kubernetes name holds 253 characters; these two hold 63 each). */
export const waypointBindingName = (namespace: string, name: string): string => `warren-waypoint-${namespace}-${name}`;

/**
 * The objects that run one waypoint (docs/architecture.md §13), all named after the
 * Gateway and owned by it (deleting the Gateway deletes them): a
 * ServiceAccount (the waypoint's identity, spiffe://<td>/ns/<ns>/sa/<name>),
 * a Deployment of `warren waypoint-proxy` whose pods are enrolled in the
 * mesh (their node's agent terminates HBONE for them and captures their
 * upstream connections) and never use a waypoint themselves (its replica
 * count from the Gateway's parameters), a Service with the mesh port 15008
 * and the status port 15021, and with more than one replica a
 * PodDisruptionBudget (minAvailable 1), as Istio makes for its waypoints.
 */
export function waypointObjects(gw: GatewayObject, settings: WaypointSettings, parameters: WaypointParameters = { replicas: 1 }): WaypointObjects {
  const name = gw.metadata!.name!;
  const namespace = gw.metadata!.namespace!;
  const selector = { [GATEWAY_NAME_LABEL]: name };
  const labels = { ...(gw.spec.infrastructure?.labels ?? {}), ...selector, [MANAGED_LABEL]: MANAGED_VALUE };
  const owner = { apiVersion: `${GATEWAY_GROUP}/${GATEWAY_VERSION}`, kind: 'Gateway', name, uid: gw.metadata!.uid!, controller: true, blockOwnerDeletion: true };
  const meta = (hashed: unknown) => ({
    name,
    namespace,
    labels,
    annotations: { ...(gw.spec.infrastructure?.annotations ?? {}), [TEMPLATE_HASH_ANNOTATION]: hashOf(hashed) },
    ownerReferences: [owner],
  });
  const podLabels = { ...labels, [DATAPLANE_MODE_LABEL]: 'ambient', [USE_WAYPOINT_LABEL]: 'none' };
  const deploymentSpec = {
    replicas: parameters.replicas,
    selector: { matchLabels: selector },
    template: {
      metadata: { labels: podLabels, annotations: gw.spec.infrastructure?.annotations ?? {} },
      spec: {
        serviceAccountName: name,
        containers: [
          {
            name: 'waypoint',
            image: settings.image,
            // PROXY v2 on loopback only: nothing but its own node's agent, inside the pod, reaches it (docs/architecture.md §13).
            args: ['waypoint-proxy', '--listen-address', WAYPOINT_PROXY_ADDRESS, '--listen-port', String(WAYPOINT_PORTS.proxy)],
            env: [
              { name: 'WARREN_WAYPOINT_NAME', value: name },
              { name: 'WARREN_WAYPOINT_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              { name: 'NODE_OPTIONS', value: PROXY_NODE_OPTIONS },
            ],
            ports: [{ name: 'status-port', containerPort: WAYPOINT_PORTS.status }],
            readinessProbe: { httpGet: { path: '/healthz/ready', port: WAYPOINT_PORTS.status }, periodSeconds: 2, failureThreshold: 2 },
          },
        ],
      },
    },
  };
  const serviceSpec = {
    selector,
    ports: [
      { name: 'mesh', port: WAYPOINT_PORTS.mesh, targetPort: WAYPOINT_PORTS.mesh, protocol: 'TCP', appProtocol: 'all' },
      { name: 'status-port', port: WAYPOINT_PORTS.status, targetPort: WAYPOINT_PORTS.status, protocol: 'TCP' },
    ],
  };
  const budgetSpec = { minAvailable: 1, selector: { matchLabels: selector } };
  const bindingBody = { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: WAYPOINT_CLUSTER_ROLE }, subjects: [{ kind: 'ServiceAccount', name, namespace }] };
  return {
    binding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: waypointBindingName(namespace, name), labels, annotations: { [WAYPOINT_GATEWAY_ANNOTATION]: `${namespace}/${name}`, [TEMPLATE_HASH_ANNOTATION]: hashOf(bindingBody) } },
      ...bindingBody,
    },
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta({}) },
    deployment: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(deploymentSpec), spec: deploymentSpec },
    service: { apiVersion: 'v1', kind: 'Service', metadata: { ...meta(serviceSpec), labels: { ...labels, [USE_WAYPOINT_LABEL]: 'none' } }, spec: serviceSpec },
    ...(parameters.replicas > 1 ? { disruptionBudget: { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(budgetSpec), spec: budgetSpec } } : {}),
  };
}

/** What the controller observed of a waypoint's objects. */
export interface WaypointFacts {
  readyReplicas: number;
  replicas: number;
  /** the Service's ClusterIP, once assigned */
  address?: string;
}

/**
 * The Gateway's status (Gateway API conditions Accepted and Programmed, and
 * its address): Programmed once a waypoint pod is ready behind an assigned
 * Service address. A condition keeps its lastTransitionTime while its status
 * stays the same.
 */
export function gatewayStatus(gw: GatewayObject, acceptance: Acceptance, facts: WaypointFacts | undefined, now: string): NonNullable<GatewayObject['status']> {
  const generation = gw.metadata?.generation ?? 0;
  const previous = new Map((gw.status?.conditions ?? []).map((c) => [c.type, c]));
  const condition = (c: Omit<Condition, 'observedGeneration' | 'lastTransitionTime'>): Condition => {
    const prev = previous.get(c.type);
    return { ...c, observedGeneration: generation, lastTransitionTime: prev?.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now };
  };
  if (!acceptance.accepted) {
    return {
      conditions: [
        condition({ type: 'Accepted', status: 'False', reason: acceptance.reason, message: acceptance.message }),
        condition({ type: 'Programmed', status: 'False', reason: 'Invalid', message: 'not accepted: nothing runs for this waypoint' }),
      ],
      addresses: [],
    };
  }
  const ready = facts !== undefined && facts.readyReplicas > 0 && facts.address !== undefined;
  const why = facts === undefined ? 'its Deployment is not created yet' : facts.address === undefined ? 'its Service has no address yet' : `no waypoint pod is ready (${facts.readyReplicas}/${facts.replicas} ready)`;
  return {
    conditions: [
      condition({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `waypoint of class ${WAYPOINT_CLASS}` }),
      ready
        ? condition({ type: 'Programmed', status: 'True', reason: 'Programmed', message: `${facts.readyReplicas}/${facts.replicas} waypoint pods ready` })
        : condition({ type: 'Programmed', status: 'False', reason: 'Pending', message: `${why}: traffic to what uses this waypoint is refused until one is` }),
    ],
    addresses: facts?.address === undefined ? [] : [{ type: 'IPAddress', value: facts.address }],
  };
}

/** How long a new waypoint may be not ready before that is worth a Warning Event. */
const NOT_READY_GRACE_MS = 60_000;

/**
 * Whether a controller pass that computed `status` for `gw` owes a not-ready Warning Event,
 * and the key that names it (one Event per key). Both CA replicas run the pass, so a key is
 * made only of what both read from the Gateway, never of a pass's own clock (two passes a
 * second apart named two Events for one transition): a transition from True is keyed by
 * when that True began; a waypoint never ready since its creation is warned about once,
 * after NOT_READY_GRACE_MS. A False that began later followed a True whose pass made the
 * Event. Undefined: no Event; else the key and the False condition's message.
 */
export function notReadyEventKey(gw: GatewayObject, status: NonNullable<GatewayObject['status']>, nowMs: number): { key: string; message: string } | undefined {
  const programmed = status.conditions?.find((c) => c.type === 'Programmed');
  if (programmed?.status !== 'False') return undefined;
  const owed = (key: string) => ({ key, message: programmed.message ?? '' });
  const was = gw.status?.conditions?.find((c) => c.type === 'Programmed');
  if (was?.status === 'True') return owed(`after True of ${was.lastTransitionTime}`);
  const created = Date.parse(String(gw.metadata?.creationTimestamp ?? ''));
  if (nowMs - created < NOT_READY_GRACE_MS) return undefined;
  const falseSince = Date.parse(String(was?.lastTransitionTime ?? ''));
  const neverReady = was === undefined || !(falseSince - created >= NOT_READY_GRACE_MS);
  return neverReady ? owed('never ready') : undefined;
}
