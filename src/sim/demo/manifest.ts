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
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${DEMO_NAMESPACE}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeName: node-2
      serviceAccountName: web
      containers:
      - name: web
        image: hashicorp/http-echo
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ${DEMO_NAMESPACE}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
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
