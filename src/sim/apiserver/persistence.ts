import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { WarrenError } from '../../errors/warren-error.js';
import type { StoreSnapshot } from './store.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';

const snapshotSchema = z.object({
  resourceVersion: z.number().int().nonnegative(),
  objects: z.record(z.string(), z.array(z.object({ metadata: z.object({ name: z.string() }).passthrough() }).passthrough())),
});

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
