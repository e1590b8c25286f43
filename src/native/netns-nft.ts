import { native, nativeError } from './netns-socket.js';

/** What libnftables answered: `status` 0 is success, `errors` nft's own error text. */
export type NetnsNftAnswer = { status: number; errors: string } | { missing: string };

interface NftBinding {
  netnsNft(path: string, script: string): Promise<NetnsNftAnswer>;
}

/**
 * Runs an nft script (the text `nft -f -` reads) through libnftables inside the netns at
 * `path` ("" for the caller's own) on a libuv worker thread (src/native/netns_nft.cc): one
 * transaction, no process. `{ missing }` when the library cannot be loaded; rejects with
 * NetnsSocketError when the netns cannot be entered.
 */
export async function netnsNft(path: string, script: string): Promise<NetnsNftAnswer> {
  try {
    return await (native() as unknown as NftBinding).netnsNft(path, script);
  } catch (err) {
    throw nativeError(err);
  }
}
