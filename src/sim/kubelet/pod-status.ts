/** What the kubelet knows about one container, and the PodStatus it reports from that. */
export interface ContainerState {
  name: string;
  image: string;
  running: boolean;
  ready: boolean;
  restartCount: number;
  startedAt?: string;
  /** set while waiting to (re)start: ContainerCreating, CrashLoopBackOff, … */
  waiting?: { reason: string; message?: string };
  terminated?: { exitCode: number; reason: string; finishedAt: string };
}

export interface PodState {
  podIp?: string;
  hostIp: string;
  startTime: string;
  containers: ContainerState[];
  restartPolicy: string;
}

const condition = (type: string, ok: boolean, since: string): Record<string, unknown> => ({ type, status: ok ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: since });

function phaseOf(s: PodState): string {
  if (s.containers.length > 0 && s.containers.every((c) => c.terminated) && s.restartPolicy !== 'Always') {
    return s.containers.every((c) => c.terminated!.exitCode === 0) ? 'Succeeded' : 'Failed';
  }
  return s.containers.some((c) => c.running || c.terminated) ? 'Running' : 'Pending';
}

/**
 * PodStatus as kubelet's status manager builds it. Transition times are kept
 * from `previous` when a condition's value did not change, so watchers see
 * stable timestamps.
 */
export function buildPodStatus(s: PodState, previous: Record<string, any> | undefined, now: string): Record<string, unknown> {
  const allReady = s.containers.length > 0 && s.containers.every((c) => c.ready);
  const since = (type: string, ok: boolean): string => {
    const prev = (previous?.conditions ?? []).find((c: { type: string }) => c.type === type);
    return prev && prev.status === (ok ? 'True' : 'False') ? prev.lastTransitionTime : now;
  };
  const conditions = [
    condition('PodReadyToStartContainers', s.podIp !== undefined, since('PodReadyToStartContainers', s.podIp !== undefined)),
    condition('Initialized', true, since('Initialized', true)),
    condition('Ready', allReady, since('Ready', allReady)),
    condition('ContainersReady', allReady, since('ContainersReady', allReady)),
    condition('PodScheduled', true, since('PodScheduled', true)),
  ];
  return {
    phase: phaseOf(s),
    conditions,
    hostIP: s.hostIp,
    hostIPs: [{ ip: s.hostIp }],
    ...(s.podIp === undefined ? {} : { podIP: s.podIp, podIPs: [{ ip: s.podIp }] }),
    startTime: s.startTime,
    qosClass: 'BestEffort',
    containerStatuses: s.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      containerID: '',
      ready: c.ready,
      started: c.running,
      restartCount: c.restartCount,
      state: c.running
        ? { running: { startedAt: c.startedAt } }
        : c.terminated
          ? { terminated: c.terminated }
          : { waiting: c.waiting ?? { reason: 'ContainerCreating' } },
    })),
  };
}
