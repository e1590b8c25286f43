import { setTimeout as sleep } from 'node:timers/promises';
import { startCapture } from '../../src/sim/demo/capture.js';

/**
 * The TCP packets tcpdump sees on `iface` inside `netns` while `during`
 * runs, as pcap bytes (written to `file`): what an observer on that wire
 * would read. tcpdump is stopped also when `during` throws.
 */
export async function captureTcp(netns: string, iface: string, file: string, during: () => Promise<void>): Promise<Buffer> {
  const capture = await startCapture(netns, iface, file);
  let pcap: Buffer;
  try {
    await during();
    // Packets still on their way through the bridge when `during` returns are in the capture too.
    await sleep(300);
  } finally {
    pcap = await capture.stop();
  }
  return pcap;
}
