import { native, nativeError } from './netns-socket.js';

/**
 * What libnftables answered: `status` 0 is success, `errors` nft's own error text,
 * `retired` how many contexts are left open for netnsNftRelease.
 */
export type NetnsNftAnswer = { status: number; errors: string; retired: number } | { missing: string };

interface NftBinding {
  netnsNft(path: string, script: string): Promise<NetnsNftAnswer>;
  netnsNftRelease(): Promise<number>;
}

/**
 * Runs an nft script (the text `nft -f -` reads) through libnftables inside the netns at
 * `path` ("" for the caller's own) on a libuv worker thread (src/native/netns_nft.cc): one
 * transaction, no process. `{ missing }` when the library cannot be loaded; rejects with
 * NetnsSocketError when the netns cannot be entered. The script's context stays open
 * until netnsNftRelease (closing it waits for the kernel; in a batch, once).
 */
export async function netnsNft(path: string, script: string): Promise<NetnsNftAnswer> {
  try {
    return await (native() as unknown as NftBinding).netnsNft(path, script);
  } catch (err) {
    throw nativeError(err);
  }
}

/** Closes the contexts of the scripts run so far (each holds a socket, and so its netns); resolves with how many. */
export function netnsNftRelease(): Promise<number> {
  return (native() as unknown as NftBinding).netnsNftRelease();
}
