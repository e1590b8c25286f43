import { native } from './netns-socket.js';

/** How often the node agent trims: RSS then carries at most half a minute of freed memory; a trim blocks this thread a few ms (4 ms to walk 60 MiB of fragmented heap, 20 ms to release 47 MiB of holes: bench/results/reliability-native-malloc-2026-12-07.md). */
export const HEAP_TRIM_INTERVAL_MS = 30_000;

/**
 * What each glibc arena may keep free at its end before giving it back: glibc's documented
 * default (128 KiB), fixed rather than left to rise with the largest block freed. Left to rise,
 * 300 pods churned through an agent grew its RSS +10.7 MiB, its arenas' free memory +11.7 MiB
 * and what they held in use +0.4 MiB; fixed, +5.2 MiB (bench/results/reliability-native-churn-
 * c-heap-2026-12-07.md), and 1 000 pods at 100/min −0.8 % instead of +9.2 %
 * (reliability-native-full-bound-2026-12-07.md).
 */
export const HEAP_TRIM_THRESHOLD_BYTES = 128 * 1024;

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
  boundHeapRetention(trimThresholdBytes: number): boolean;
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
 * Fixes glibc's M_TRIM_THRESHOLD at HEAP_TRIM_THRESHOLD_BYTES for this process (c_heap.cc): an
 * arena whose free end outgrows it gives the excess back as it is freed. The periodic trimHeap
 * cannot do that for the threads' arenas (malloc_trim releases free pages amid live blocks,
 * never another arena's top). For the agent's life, so called once at its start; true when
 * glibc took it.
 */
export function boundCHeapRetention(): boolean {
  return binding().boundHeapRetention(HEAP_TRIM_THRESHOLD_BYTES);
}

/**
 * What the C heap holds (c_heap.cc): where an RSS growth outside V8's heap sits, in blocks
 * still allocated (native state, a library's) or in free memory not yet given back. It walks
 * every arena under its lock, as a trim does: for the admin API, not a hot path.
 */
export function cHeapStats(): CHeapStats {
  return binding().cHeapStats();
}
