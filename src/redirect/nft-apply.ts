import { netnsNft, netnsNftRelease } from '../native/netns-nft.js';
import { NetnsSocketError } from '../native/netns-socket.js';
import { WarrenError } from '../errors/warren-error.js';
import { retryableFailure } from './runner.js';

/** Returns how many contexts are now kept open. */
async function applyOnce(netns: string | undefined, script: string): Promise<number> {
  const where = netns === undefined ? '' : ` in ${netns}`;
  let answer;
  try {
    answer = await netnsNft(netns ?? '', script);
  } catch (err) {
    if (!(err instanceof NetnsSocketError)) throw err;
    // The same code a failed `nsenter` had: the pod's netns is gone or unreadable.
    throw new WarrenError('ERR_COMMAND_FAILED', `nft script${where} failed: ${err.message}`, { cause: err });
  }
  if ('missing' in answer) {
    throw new WarrenError('ERR_COMMAND_MISSING', `libnftables cannot be loaded (${answer.missing}): install the libnftables1 package (nftables depends on it)`);
  }
  if (answer.status !== 0) {
    throw new WarrenError('ERR_COMMAND_FAILED', `nft script${where} failed: ${answer.errors.trim()}`, { retryable: retryableFailure(answer.errors) });
  }
  return answer.retired;
}

let tail: Promise<unknown> = Promise.resolve();
function enqueue<T>(task: () => Promise<T>): Promise<T> {
  const run = tail.then(task);
  tail = run.catch(() => undefined);
  return run;
}

/**
 * Closing a script's context waits for the kernel to finish the transaction's deletions
 * (~25 ms, an RCU grace period), once for everything pending: so contexts are closed in
 * batches, when no script has come for RELEASE_IDLE_MS or RELEASE_BATCH are open. An open
 * context keeps its netns alive, hence the short idle time (src/native/netns_nft.cc).
 */
const RELEASE_IDLE_MS = 20;
const RELEASE_BATCH = 32;
let releaseTimer: NodeJS.Timeout | undefined;
const release = (): Promise<unknown> => enqueue(netnsNftRelease);

function scheduleRelease(open: number): void {
  clearTimeout(releaseTimer);
  releaseTimer = undefined;
  if (open === 0) return;
  if (open >= RELEASE_BATCH) {
    void release();
    return;
  }
  releaseTimer = setTimeout(() => void release(), RELEASE_IDLE_MS);
  releaseTimer.unref();
}

/**
 * Applies an nft script (one transaction: all of it or nothing) in `netns`, undefined for
 * the caller's own, through libnftables in the addon instead of an `nsenter … nft -f -`
 * process (docs/architecture.md §2). One script at a time: libnftables promises nothing
 * about contexts used from several threads at once, and a script takes about a
 * millisecond, so the queue costs little next to the parallel rest of an enrollment.
 */
export async function applyNftScript(netns: string | undefined, script: string): Promise<void> {
  let open = 1; // a refused script's context is kept open too
  try {
    open = await enqueue(() => applyOnce(netns, script));
  } finally {
    scheduleRelease(open);
  }
}
