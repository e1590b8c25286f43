import { startCapture } from '../../src/sim/demo/capture.js';
import { parsePcap, type TcpSegment } from '../../src/sim/demo/pcap.js';

/**
 * The TCP packets tcpdump sees on `iface` inside `netns` while `during`
 * runs, as pcap bytes (written to `file`): what an observer on that wire
 * would read. tcpdump is stopped also when `during` throws.
 *
 * Packets may still be in the kernel's ring when `during` returns, so tcpdump is stopped
 * only once what it wrote satisfies `seen` (the packets the caller's checks need, e.g. the
 * last one of the exchange), within 5 s; if it never does, this throws, so a check that
 * something is absent cannot pass on a capture that missed the traffic.
 */
export async function captureTcp(netns: string, iface: string, file: string, during: () => Promise<void>, seen: (segments: TcpSegment[]) => boolean): Promise<Buffer> {
  const capture = await startCapture(netns, iface, file);
  let pcap: Buffer;
  try {
    await during();
  } finally {
    pcap = await capture.stop(seen);
  }
  if (!seen(parsePcap(pcap))) throw new Error(`the capture on ${netns}/${iface} (${file}) never showed the expected packets within 5 s`);
  return pcap;
}
