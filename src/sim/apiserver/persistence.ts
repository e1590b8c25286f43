import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { z } from 'zod';
import { WarrenError } from '../../errors/warren-error.js';
import type { StoreSnapshot } from './store.js';

const snapshotSchema = z.object({
  resourceVersion: z.number().int().nonnegative(),
  objects: z.record(z.string(), z.array(z.object({ metadata: z.object({ name: z.string() }).passthrough() }).passthrough())),
});

/** Writes `data` so that a crash leaves either the old file or the new one, never half of one. */
export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function loadSnapshot(path: string): StoreSnapshot | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new WarrenError('ERR_SIM_STATE', `${path} is not valid JSON (${(err as Error).message}); move it away to start with an empty cluster`);
  }
  const parsed = snapshotSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new WarrenError('ERR_SIM_STATE', `${path}: ${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data as StoreSnapshot;
}

/**
 * Saves the store shortly after it changes (bursts coalesce into one write)
 * and once more on `flush()`, so a restart loses nothing acknowledged before
 * a clean stop and at most the last `delayMs` after a crash.
 */
export class SnapshotWriter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => StoreSnapshot,
    private readonly delayMs = 50,
  ) {}

  changed(): void {
    this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    writeFileAtomic(this.path, JSON.stringify(this.snapshot()));
  }
}
