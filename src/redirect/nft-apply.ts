import { netnsNft } from '../native/netns-nft.js';
import { NetnsSocketError } from '../native/netns-socket.js';
import { WarrenError } from '../errors/warren-error.js';
import { retryableFailure } from './runner.js';

async function applyOnce(netns: string | undefined, script: string): Promise<void> {
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
}

let tail: Promise<unknown> = Promise.resolve();

/**
 * Applies an nft script (one transaction: all of it or nothing) in `netns`, undefined for
 * the caller's own, through libnftables in the addon instead of an `nsenter … nft -f -`
 * process (docs/architecture.md §2). One script at a time: libnftables promises nothing
 * about contexts used from several threads at once, and a script takes about a
 * millisecond, so the queue costs little next to the parallel rest of an enrollment.
 */
export function applyNftScript(netns: string | undefined, script: string): Promise<void> {
  const run = tail.then(() => applyOnce(netns, script));
  tail = run.catch(() => undefined);
  return run;
}
