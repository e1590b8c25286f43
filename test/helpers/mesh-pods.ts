/**
 * Three pods of namespace `ns` as YAML documents: `client` (sleep) on node-1, and on
 * node-2 `echo` (tcp-echo :9000) and `web` (http-echo :8080), each Ready once it serves.
 */
export const clientEchoWebPods = (ns: string): string => `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${ns}}
spec:
  nodeName: node-1
  containers: [{name: c, image: sleep}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo, namespace: ${ns}}
spec:
  nodeName: node-2
  containers:
  - name: echo
    image: tcp-echo
    ports: [{containerPort: 9000}]
    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: ${ns}}
spec:
  nodeName: node-2
  containers:
  - name: web
    image: http-echo
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}`;

/**
 * Namespace `ns` in ambient mode and its `client` pod (sleep, service account `client`,
 * on node-1), as YAML documents: the start of the waypoint tests' manifests.
 */
export const ambientNamespaceWithClient = (ns: string): string => `apiVersion: v1
kind: Namespace
metadata: {name: ${ns}, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${ns}}
spec:
  nodeName: node-1
  serviceAccountName: client
  containers: [{name: c, image: sleep}]`;
