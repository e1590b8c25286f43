import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

export interface ContainerSpec {
  /** pod netns name (under /var/run/netns) */
  netns: string;
  command: string[];
  env: Record<string, string>;
  /** stdout and stderr are appended here */
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
  const log = openSync(spec.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn('ip', ['netns', 'exec', spec.netns, ...spec.command], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...spec.env },
      stdio: ['ignore', log, log],
    });
  } finally {
    closeSync(log);
  }
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
