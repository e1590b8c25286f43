import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface SupervisedProcess {
  stop(): Promise<void>;
}

/**
 * Keeps one process running as a kubelet keeps a pod's container: started
 * again `restartDelayMs` after it exits, stopped with SIGTERM (SIGKILL after
 * 10 s). Output goes to `logFile` (appended) or the supervisor's own.
 */
export function superviseProcess(spec: {
  name: string;
  command: string;
  args: string[];
  /** set over this process's environment */
  env?: Record<string, string>;
  logFile?: string;
  restartDelayMs?: number;
  log: (msg: string, fields: Record<string, unknown>) => void;
}): SupervisedProcess {
  let child: ChildProcess | undefined;
  let stopping = false;
  let restart: NodeJS.Timeout | undefined;
  const delay = spec.restartDelayMs ?? 2000;
  const start = (): void => {
    const out = spec.logFile === undefined ? 'inherit' : openSync(spec.logFile, 'a');
    child = spawn(spec.command, spec.args, { stdio: ['ignore', out, out], ...(spec.env === undefined ? {} : { env: { ...process.env, ...spec.env } }) });
    if (typeof out === 'number') closeSync(out);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      spec.log(`${spec.name} exited; restarting in ${delay / 1000} s`, { code, signal });
      restart = setTimeout(start, delay);
    });
  };
  start();
  return {
    async stop() {
      stopping = true;
      clearTimeout(restart);
      const c = child;
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      const kill = setTimeout(() => c.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
