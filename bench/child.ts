import { execa } from 'execa';

/**
 * A long-running helper process (server or proxy), ready once it prints
 * "ready" or, for programs that print nothing, once `isReady` says so.
 * stop() ends it; it is also killed if this process exits.
 */
export interface Child {
  /** pid of the program itself (`ip netns exec` and prlimit exec into it): for /proc CPU and RSS readings */
  pid: number;
  stop(): Promise<void>;
}

export async function startChild(
  file: string,
  args: string[],
  isReady?: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<Child> {
  const proc = execa(file, args, { reject: false, cleanup: true, buffer: false, stdin: 'ignore', stderr: 'inherit' });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} ${args.join(' ')}: not ready after ${timeoutMs} ms`)), timeoutMs);
    let seen = '';
    proc.stdout?.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    if (isReady !== undefined) {
      const poll = async (): Promise<void> => {
        if (await isReady()) {
          clearTimeout(timer);
          resolve();
        } else setTimeout(() => void poll(), 50);
      };
      void poll();
    }
    void proc.then((r) => {
      clearTimeout(timer);
      reject(new Error(`${file} ${args.join(' ')} exited (${r.exitCode}) before it was ready`));
    });
  }).catch(async (err: unknown) => {
    proc.kill('SIGKILL');
    await proc;
    throw err;
  });
  return {
    pid: proc.pid!,
    async stop() {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await proc;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to completion and returns its stdout as JSON. */
export async function runJson<T>(file: string, args: string[]): Promise<T> {
  const res = await execa(file, args, { timeout: 120_000 });
  return JSON.parse(res.stdout) as T;
}
