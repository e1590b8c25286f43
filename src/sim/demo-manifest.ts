/**
 * The demo's workloads (the e2e test applies the same): an echo service with
 * two replicas, which the scheduler spreads over two nodes, and a client pod
 * on node-1, so one of its calls stays on the node and the other crosses.
 */
export const DEMO_NAMESPACE = 'demo';

export const DEMO_MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: hashicorp/http-echo
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: curl, image: curlimages/curl, command: [sleep, infinity]}]
`;
