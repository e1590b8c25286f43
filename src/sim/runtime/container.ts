import { spawn } from 'node:child_process';
import { writeContainerLog } from '../kubelet/container-log.js';

export interface ContainerSpec {
  /** pod netns name (under /var/run/netns) */
  netns: string;
  command: string[];
  env: Record<string, string>;
  /** stdout and stderr are appended here, in the CRI log format (kubelet/container-log.ts) */
  logFile: string;
}

export interface RunningContainer {
  pid: number;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone */
  stop(graceMs?: number): Promise<void>;
}

/**
 * A container is a process started in the pod's netns with `ip netns exec`,
 * which also bind-mounts /etc/netns/<pod>/resolv.conf over /etc/resolv.conf:
 * the pod's DNS config, as a real runtime gives a container its own /etc.
 */
export function startContainer(spec: ContainerSpec): RunningContainer {
  const child = spawn('ip', ['netns', 'exec', spec.netns, ...spec.command], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Not awaited: a grandchild may hold the pipes open after the container's process is gone.
  void writeContainerLog(spec.logFile, { stdout: child.stdout, stderr: child.stderr });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  return {
    pid: child.pid ?? -1,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
