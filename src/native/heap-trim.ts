import { native } from './netns-socket.js';

/** How often the node agent trims: RSS then carries at most half a minute of freed memory; a trim blocks this thread a few ms (4 ms to walk 60 MiB of fragmented heap, 20 ms to release 47 MiB of holes: bench/results/reliability-native-malloc-2026-12-07.md). */
export const HEAP_TRIM_INTERVAL_MS = 30_000;

interface HeapTrimBinding {
  trimHeap(): boolean;
}

/**
 * Gives the C heap's free pages back to the kernel (glibc `malloc_trim(0)`, heap_trim.cc):
 * true when some were released. glibc's arenas otherwise keep what they once held, so a
 * long-running agent's RSS would carry every past peak of its threads (bench/results/
 * reliability-native-malloc-2026-12-07.md).
 */
export function trimHeap(): boolean {
  return (native() as unknown as HeapTrimBinding).trimHeap();
}
