/**
 * The demo's workloads. Client and server sit on different nodes so their
 * traffic crosses the underlay, where the demo captures it; each has its own
 * service account so the SPIFFE identities say who is who.
 */
export const DEMO_NAMESPACE = 'demo';

export const DEMO_POLICY = 'web-allow-client';

export const IDENTITY = {
  client: `spiffe://cluster.local/ns/${DEMO_NAMESPACE}/sa/client`,
  intruder: `spiffe://cluster.local/ns/${DEMO_NAMESPACE}/sa/intruder`,
  web: `spiffe://cluster.local/ns/${DEMO_NAMESPACE}/sa/web`,
} as const;

/** The web app on node-2 as service account web (http-echo answers with its pod's name): Deployment `name`, pods labelled app=`name`. */
function webDeployment(name: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${DEMO_NAMESPACE}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      nodeName: node-2
      serviceAccountName: web
      containers:
      - name: web
        image: hashicorp/http-echo
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}`;
}

/** Service `name` on port 80 over the pods labelled app=`app`. */
function webService(name: string, app: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${DEMO_NAMESPACE}}
spec:
  selector: {app: ${app}}
  ports: [{name: http, port: 80, targetPort: http}]`;
}

export const DEMO_MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: ${DEMO_NAMESPACE}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: ${DEMO_NAMESPACE}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: intruder, namespace: ${DEMO_NAMESPACE}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: ${DEMO_NAMESPACE}}
---
${webDeployment('web')}
---
${webService('web', 'web')}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: ${DEMO_NAMESPACE}}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      nodeName: node-1
      serviceAccountName: client
      containers: [{name: curl, image: curlimages/curl, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-b, namespace: ${DEMO_NAMESPACE}, labels: {app: client-b}}
spec:
  nodeName: node-1
  serviceAccountName: intruder
  containers: [{name: curl, image: curlimages/curl, command: [sleep, infinity]}]
`;

/** Istio's ALLOW-by-principal example, adapted: web accepts only the client's identity. */
export const DEMO_POLICY_MANIFEST = `
apiVersion: security.warren.io/v1
kind: AuthorizationPolicy
metadata: {name: ${DEMO_POLICY}, namespace: ${DEMO_NAMESPACE}}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/${DEMO_NAMESPACE}/sa/client]}}]
`;

/** The waypoint chapter's waypoint (`warren waypoint apply` names it so by default) and the identity its pods carry. */
export const DEMO_WAYPOINT = 'waypoint';
export const WAYPOINT_PRINCIPAL = `cluster.local/ns/${DEMO_NAMESPACE}/sa/${DEMO_WAYPOINT}`;
export const DEMO_L7_POLICY = 'web-read-only';

/**
 * Behind the waypoint web's agent sees the waypoint's identity, not the
 * client's (as in Istio ambient), so the L4 policy lets the waypoint in too;
 * who may do what moves to the L7 policy the waypoint enforces.
 */
export const DEMO_POLICY_WITH_WAYPOINT_MANIFEST = DEMO_POLICY_MANIFEST.replace(
  `principals: [cluster.local/ns/${DEMO_NAMESPACE}/sa/client]`,
  `principals: [cluster.local/ns/${DEMO_NAMESPACE}/sa/client, ${WAYPOINT_PRINCIPAL}]`,
);

/** A second version of web (its own Deployment) and a Service per version: what an HTTPRoute's weighted backendRefs name. */
export const DEMO_CANARY_MANIFEST = `
${webDeployment('web-v2')}
---
${webService('web-v1', 'web')}
---
${webService('web-v2', 'web-v2')}
`;

/** Istio's traffic-shifting task as a Gateway API HTTPRoute on the web Service (GAMMA): 80 % to v1, 20 % to v2. */
export const DEMO_ROUTE_MANIFEST = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-canary, namespace: ${DEMO_NAMESPACE}}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: 80}
    - {name: web-v2, port: 80, weight: 20}
`;

/** An L7 policy enforced by the waypoint (targetRefs the Service): the client may read (GET, HEAD), nothing else, nobody else. */
export const DEMO_L7_POLICY_MANIFEST = `
apiVersion: security.warren.io/v1
kind: AuthorizationPolicy
metadata: {name: ${DEMO_L7_POLICY}, namespace: ${DEMO_NAMESPACE}}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/${DEMO_NAMESPACE}/sa/client]}}]
    to: [{operation: {methods: [GET, HEAD]}}]
`;
