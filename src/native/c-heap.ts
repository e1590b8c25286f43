import { native } from './netns-socket.js';

/** How often the node agent trims: RSS then carries at most half a minute of freed memory; a trim blocks this thread a few ms (4 ms to walk 60 MiB of fragmented heap, 20 ms to release 47 MiB of holes: bench/results/reliability-native-malloc-2026-12-07.md). */
export const HEAP_TRIM_INTERVAL_MS = 30_000;

/** The C heap's figures over every arena (glibc mallinfo2), bytes. */
export interface CHeapStats {
  /** allocated and not freed: in the arenas, plus the blocks mmapped on their own */
  inUseBytes: number;
  /** of which blocks mmapped on their own (large allocations) */
  mmappedBytes: number;
  /** free in the arenas, kept for reuse; a trim gives back its whole pages */
  freeBytes: number;
  /** the arenas' size */
  arenaBytes: number;
}

interface CHeapBinding {
  trimHeap(): boolean;
  cHeapStats(): CHeapStats;
}

const binding = (): CHeapBinding => native() as unknown as CHeapBinding;

/**
 * Gives the C heap's free pages back to the kernel (glibc `malloc_trim(0)`, c_heap.cc):
 * true when some were released. glibc's arenas otherwise keep what they once held, so a
 * long-running agent's RSS would carry every past peak of its threads (bench/results/
 * reliability-native-malloc-2026-12-07.md).
 */
export function trimHeap(): boolean {
  return binding().trimHeap();
}

/**
 * What the C heap holds (c_heap.cc): where an RSS growth outside V8's heap sits, in blocks
 * still allocated (native state, a library's) or in free memory not yet given back. It walks
 * every arena under its lock, as a trim does: for the admin API, not a hot path.
 */
export function cHeapStats(): CHeapStats {
  return binding().cHeapStats();
}
