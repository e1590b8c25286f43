import { setTimeout as sleep } from 'node:timers/promises';
import { mkdir, rm } from 'node:fs/promises';
import { ApiError } from '../apiserver/api-error.js';
import type { ApiObjects } from '../apiserver/objects.js';
import type { KubeObject } from '../apiserver/store.js';
import type { CommandRunner } from '../../redirect/runner.js';
import { startContainer, type RunningContainer } from '../runtime/container.js';
import { createPodSandbox, destroyPodSandbox, type PodSandbox } from '../runtime/pod-sandbox.js';
import type { NodePlan } from '../topology/plan.js';
import { statePaths } from '../state-dir.js';
import { SUPERVISED_ANNOTATION } from '../warren-system.js';
import { containerCommand, containerEnv, type ContainerLike } from './container-command.js';
import { buildPodStatus, type ContainerState } from './pod-status.js';
import { runProbe, type Probe } from './probes.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

interface ContainerRuntime {
  spec: ContainerLike & { readinessProbe?: Probe; livenessProbe?: Probe };
  state: ContainerState;
  process?: RunningContainer;
  timers: NodeJS.Timeout[];
}

interface PodRuntime {
  uid: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  sandbox?: PodSandbox;
  containers: ContainerRuntime[];
  stopping: boolean;
  startTime: string;
  restartPolicy: string;
  logDir: string;
  /** settles when sandbox creation is done (either way), so removal never races it */
  created: Promise<void>;
}

/** Where a container's stdout/stderr go; `warren sim logs` reads them. */
export const containerLogPath = (stateDir: string, namespace: string, pod: string, container: string): string =>
  `${stateDir}/pods/${namespace}/${pod}/${container}.log`;

/**
 * A small kubelet for one simulated node: registers the Node, runs the pods
 * bound to it (sandbox through the node's CNI chain, containers as
 * processes in the pod netns), probes them from the node netns, restarts
 * failed containers with back-off, and reports PodStatus. A pod that
 * disappears from the API has its processes stopped, CNI DEL run and its
 * netns removed.
 */
export class Kubelet {
  private readonly pods = new Map<string, PodRuntime>();
  private unsubscribe = (): void => {};
  private resync: NodeJS.Timeout | undefined;
  private pending: NodeJS.Immediate | undefined;
  private stopped = false;

  constructor(
    private readonly objects: ApiObjects,
    private readonly node: NodePlan,
    private readonly runner: CommandRunner,
    private readonly stateDir: string,
    private readonly log: Log,
  ) {}

  private type(resource: string) {
    return this.objects.registry.lookup('', 'v1', resource);
  }

  start(): void {
    this.register();
    this.unsubscribe = this.objects.store.subscribe((ev) => {
      if (ev.typeKey === '/v1/pods' && (ev.object.spec?.nodeName === this.node.name || ev.prev?.spec?.nodeName === this.node.name)) this.trigger();
    });
    this.resync = setInterval(() => this.trigger(), 5000);
    this.trigger();
  }

  private register(): void {
    const nodes = this.type('nodes');
    const body = {
      metadata: {
        name: this.node.name,
        labels: { 'kubernetes.io/hostname': this.node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch },
      },
      spec: { podCIDR: this.node.podCidr, podCIDRs: [this.node.podCidr] },
    };
    const existing = this.objects.store.find(nodes, undefined, this.node.name) ?? this.objects.create(nodes, undefined, body);
    const now = nowIso();
    this.objects.update(
      nodes,
      undefined,
      this.node.name,
      {
        ...existing,
        status: {
          addresses: [
            { type: 'InternalIP', address: this.node.address },
            { type: 'Hostname', address: this.node.name },
          ],
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'warren sim kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
          nodeInfo: { kubeletVersion: 'v1.32.0-warren-sim', containerRuntimeVersion: 'warren-sim://1', operatingSystem: 'linux', architecture: process.arch },
        },
      },
      'status',
    );
  }

  private trigger(): void {
    if (this.stopped || this.pending !== undefined) return;
    this.pending = setImmediate(() => {
      this.pending = undefined;
      this.sync();
    });
  }

  private sync(): void {
    const desired = new Map<string, KubeObject>();
    for (const pod of this.objects.store.list(this.type('pods'))) {
      // The simulator runs node agents itself (their pods exist for tokens and listings).
      if (pod.spec?.nodeName === this.node.name && pod.metadata.annotations?.[SUPERVISED_ANNOTATION] === undefined) desired.set(pod.metadata.uid, pod);
    }
    for (const [uid, pod] of desired) {
      if (!this.pods.has(uid)) this.startPod(pod);
    }
    for (const [uid, runtime] of this.pods) {
      if (!desired.has(uid) && !runtime.stopping) void this.removePod(runtime);
    }
  }

  private startPod(pod: KubeObject): void {
    const containers = ((pod.spec?.containers ?? []) as ContainerRuntime['spec'][]).map(
      (spec): ContainerRuntime => ({ spec, state: { name: spec.name, image: spec.image ?? '', running: false, ready: false, restartCount: 0 }, timers: [] }),
    );
    const runtime: PodRuntime = {
      uid: pod.metadata.uid,
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      serviceAccount: pod.spec?.serviceAccountName ?? 'default',
      containers,
      stopping: false,
      startTime: nowIso(),
      restartPolicy: pod.spec?.restartPolicy ?? 'Always',
      logDir: `${this.stateDir}/pods/${pod.metadata.namespace}/${pod.metadata.name}`,
      created: Promise.resolve(),
    };
    this.pods.set(runtime.uid, runtime);
    this.report(runtime);
    runtime.created = this.createSandbox(runtime);
  }

  private async createSandbox(runtime: PodRuntime): Promise<void> {
    const containers = runtime.containers;
    try {
      runtime.sandbox = await createPodSandbox(this.runner, this.node, { namespace: runtime.namespace, name: runtime.name, uid: runtime.uid });
      this.log('pod sandbox ready', { pod: `${runtime.namespace}/${runtime.name}`, node: this.node.name, cniAddMs: Math.round(runtime.sandbox.cniAddMs) });
    } catch (err) {
      this.log('pod sandbox failed', { pod: `${runtime.namespace}/${runtime.name}`, err: (err as Error).message });
      for (const c of containers) c.state.waiting = { reason: 'CreateContainerError', message: (err as Error).message };
      this.report(runtime);
      // Forget it so the next sync retries, as the kubelet retries sandbox creation.
      await sleep(3000);
      if (this.pods.get(runtime.uid) === runtime) this.pods.delete(runtime.uid);
      return;
    }
    if (runtime.stopping) return;
    await mkdir(runtime.logDir, { recursive: true });
    for (const c of containers) this.runContainer(runtime, c);
    this.report(runtime);
  }

  private runContainer(pod: PodRuntime, c: ContainerRuntime): void {
    if (pod.stopping || this.stopped) return;
    const podIp = pod.sandbox?.ips[0] ?? '';
    c.process = startContainer({
      netns: pod.sandbox!.netns,
      command: containerCommand(c.spec),
      env: containerEnv(c.spec, { name: pod.name, namespace: pod.namespace, ip: podIp, nodeName: this.node.name, serviceAccount: pod.serviceAccount, kubeconfig: statePaths(this.stateDir).clusterKubeconfig }),
      logFile: containerLogPath(this.stateDir, pod.namespace, pod.name, c.spec.name),
    });
    c.state = { ...c.state, running: true, ready: c.spec.readinessProbe === undefined, startedAt: nowIso() };
    delete c.state.waiting;
    delete c.state.terminated;
    const proc = c.process;
    void proc.exited.then((code) => this.onExit(pod, c, proc, code));
    this.startProbes(pod, c, proc);
  }

  private onExit(pod: PodRuntime, c: ContainerRuntime, proc: RunningContainer, code: number | null): void {
    if (c.process !== proc) return;
    for (const t of c.timers) clearTimeout(t);
    c.timers = [];
    c.state = { ...c.state, running: false, ready: false, terminated: { exitCode: code ?? 137, reason: code === 0 ? 'Completed' : 'Error', finishedAt: nowIso() } };
    if (pod.stopping || this.stopped) return;
    const restart = pod.restartPolicy === 'Always' || (pod.restartPolicy === 'OnFailure' && code !== 0);
    if (restart) {
      // Exponential back-off as the kubelet's, compressed for a simulator: 1 s doubling to 20 s.
      const delay = Math.min(1000 * 2 ** c.state.restartCount, 20_000);
      delete c.state.terminated;
      c.state.waiting = { reason: 'CrashLoopBackOff', message: `back-off ${delay / 1000}s restarting failed container=${c.spec.name}` };
      c.timers.push(
        setTimeout(() => {
          c.state.restartCount++;
          this.runContainer(pod, c);
          this.report(pod);
        }, delay),
      );
    }
    this.report(pod);
  }

  private startProbes(pod: PodRuntime, c: ContainerRuntime, proc: RunningContainer): void {
    const target = { podIp: pod.sandbox!.ips[0] ?? '', nodeNetns: this.node.netns, podNetns: pod.sandbox!.netns, container: c.spec };
    const loop = (probe: Probe, onResult: (ok: boolean, streak: number) => void): void => {
      let streak = 0;
      let last: boolean | undefined;
      const tick = async (): Promise<void> => {
        if (c.process !== proc || pod.stopping) return;
        const ok = await runProbe(probe, target);
        streak = ok === last ? streak + 1 : 1;
        last = ok;
        if (c.process !== proc || pod.stopping) return;
        onResult(ok, streak);
        c.timers.push(setTimeout(() => void tick(), (probe.periodSeconds ?? 10) * 1000));
      };
      c.timers.push(setTimeout(() => void tick(), (probe.initialDelaySeconds ?? 0) * 1000));
    };
    const readiness = c.spec.readinessProbe;
    if (readiness) {
      loop(readiness, (ok, streak) => {
        const threshold = ok ? (readiness.successThreshold ?? 1) : (readiness.failureThreshold ?? 3);
        if (streak >= threshold && c.state.ready !== ok) {
          c.state.ready = ok;
          this.report(pod);
        }
      });
    }
    const liveness = c.spec.livenessProbe;
    if (liveness) {
      loop(liveness, (ok, streak) => {
        if (!ok && streak >= (liveness.failureThreshold ?? 3)) {
          this.log('liveness probe failed, restarting container', { pod: `${pod.namespace}/${pod.name}`, container: c.spec.name });
          void proc.stop(2000);
        }
      });
    }
  }

  private report(pod: PodRuntime): void {
    const pods = this.type('pods');
    const current = this.objects.store.find(pods, pod.namespace, pod.name);
    if (current === undefined || current.metadata.uid !== pod.uid || this.stopped) return;
    const status = buildPodStatus(
      {
        ...(pod.sandbox?.ips[0] === undefined ? {} : { podIp: pod.sandbox.ips[0] }),
        hostIp: this.node.address,
        startTime: pod.startTime,
        containers: pod.containers.map((c) => c.state),
        restartPolicy: pod.restartPolicy,
      },
      current.status,
      nowIso(),
    );
    try {
      this.objects.update(pods, pod.namespace, pod.name, { ...current, status }, 'status');
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }

  private async removePod(pod: PodRuntime, keepLogs = false): Promise<void> {
    pod.stopping = true;
    await pod.created;
    await Promise.all(
      pod.containers.map(async (c) => {
        for (const t of c.timers) clearTimeout(t);
        await c.process?.stop(3000);
      }),
    );
    if (pod.sandbox) await destroyPodSandbox(this.runner, this.node, pod.sandbox).catch((err: Error) => this.log('sandbox teardown failed', { pod: pod.name, err: err.message }));
    if (!keepLogs) await rm(pod.logDir, { recursive: true, force: true });
    this.pods.delete(pod.uid);
  }

  /** Stops every pod (processes, CNI DEL, netns) and stops watching. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    if (this.resync) clearInterval(this.resync);
    if (this.pending) clearImmediate(this.pending);
    await Promise.all([...this.pods.values()].map((p) => this.removePod(p, true)));
  }
}
