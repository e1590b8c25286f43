import { WARREN_MAIN } from '../warren-main.js';

export interface ContainerLike {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: Array<{ containerPort: number; name?: string }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }>;
}

export interface PodFacts {
  name: string;
  namespace: string;
  ip: string;
  nodeName: string;
  serviceAccount: string;
  /** what a warren container gets for in-cluster credentials (the simulator mounts no service account token) */
  kubeconfig?: string;
}

/** warren's own image (ghcr.io/warren-mesh/warren:<version>): its ENTRYPOINT is bin/warren, so the container runs this build's CLI with the pod's args (a waypoint's `waypoint-proxy`). */
export const isWarrenImage = (image: string | undefined): boolean => ((image ?? '').split('/').pop() ?? '').split(/[:@]/)[0] === 'warren';

/**
 * Images stand in by name: echo servers and web apps (Istio's samples:
 * httpbin, helloworld, bookinfo) become http-echo; tcp-echo stays itself;
 * gRPC images (a name with grpc) become grpc-echo;
 * curl/sleep/busybox images wait. An explicit command always runs as given.
 */
export function builtinAppFor(image: string, hasPorts: boolean): 'http-echo' | 'grpc-echo' | 'tcp-echo' | 'sleep' {
  const base = (image.split('/').pop() ?? image).split(/[:@]/)[0] ?? '';
  if (/tcp-echo/.test(base)) return 'tcp-echo';
  if (/grpc/.test(base)) return 'grpc-echo';
  if (/^(curl|sleep|busybox|netshoot|alpine|debian|ubuntu)/.test(base)) return 'sleep';
  if (/echo|httpbin|helloworld|productpage|reviews|ratings|details|nginx|http|web/.test(base)) return 'http-echo';
  return hasPorts ? 'http-echo' : 'sleep';
}

export function containerCommand(c: ContainerLike): string[] {
  if (c.command !== undefined && c.command.length > 0) return [...c.command, ...(c.args ?? [])];
  if (isWarrenImage(c.image)) return [process.execPath, WARREN_MAIN, ...(c.args ?? [])];
  const app = builtinAppFor(c.image ?? '', (c.ports ?? []).length > 0);
  const port = c.ports?.[0]?.containerPort;
  // The image's own args mean nothing to a stand-in, so they are not passed.
  return [process.execPath, WARREN_MAIN, 'sim', 'app', app, ...(port !== undefined && app !== 'sleep' ? ['--port', String(port)] : [])];
}

/** Environment as the kubelet sets it: literal values and the downward API fields that matter here. */
export function containerEnv(c: ContainerLike, pod: PodFacts): Record<string, string> {
  const field: Record<string, string> = {
    'metadata.name': pod.name,
    'metadata.namespace': pod.namespace,
    'status.podIP': pod.ip,
    'spec.nodeName': pod.nodeName,
    'spec.serviceAccountName': pod.serviceAccount,
  };
  const env: Record<string, string> = { POD_NAME: pod.name, POD_NAMESPACE: pod.namespace, POD_IP: pod.ip, HOSTNAME: pod.name, ...(isWarrenImage(c.image) && pod.kubeconfig ? { KUBECONFIG: pod.kubeconfig } : {}) };
  for (const e of c.env ?? []) {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (path !== undefined && field[path] !== undefined) env[e.name] = field[path]!;
  }
  return env;
}
