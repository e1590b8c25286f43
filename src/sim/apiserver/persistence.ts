import { z } from 'zod';
import { readJsonFile } from '../../fs/read-json-file.js';
import type { StoreSnapshot } from './store.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';

const snapshotSchema = z.object({
  resourceVersion: z.number().int().nonnegative(),
  objects: z.record(z.string(), z.array(z.object({ metadata: z.object({ name: z.string() }).passthrough() }).passthrough())),
});

export function loadSnapshot(path: string): StoreSnapshot | undefined {
  return readJsonFile(path, snapshotSchema, 'ERR_SIM_STATE', '; move it away to start with an empty cluster') as StoreSnapshot | undefined;
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
