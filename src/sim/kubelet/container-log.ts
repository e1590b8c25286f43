import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * Container logs in the CRI format the real kubelet writes
 * (`<RFC3339Nano time> <stdout|stderr> <F|P> <text>`), so `kubectl logs`
 * can filter by time (--since) and show timestamps, and streams keep apart.
 */
export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

const LINE = /^(\S+) (stdout|stderr) [FP] (.*)$/;

export function parseLogLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split('\n')) {
    const m = LINE.exec(raw);
    if (m) out.push({ time: m[1]!, stream: m[2] as LogLine['stream'], text: m[3]! });
  }
  return out;
}

/** Appends a container's stdout and stderr to `file`, one CRI line per line of output. */
export function writeContainerLog(file: string, streams: { stdout: Readable; stderr: Readable }): Promise<void> {
  const out = createWriteStream(file, { flags: 'a' });
  const pump = (input: Readable, stream: LogLine['stream']): Promise<void> =>
    new Promise((resolve) => {
      let partial = '';
      const emit = (text: string): void => void out.write(`${new Date().toISOString()} ${stream} F ${text}\n`);
      input.setEncoding('utf8');
      input.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        for (const l of lines) emit(l);
      });
      input.once('close', () => {
        if (partial !== '') emit(partial);
        resolve();
      });
    });
  return Promise.all([pump(streams.stdout, 'stdout'), pump(streams.stderr, 'stderr')]).then(
    () => new Promise<void>((resolve) => out.end(resolve)),
  );
}
