import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarrenError } from '../../errors/warren-error.js';
import { UNDERLAY } from '../topology/plan.js';
import { PCAP_HEADER_BYTES, parsePcap, type TcpSegment } from './pcap.js';

export interface RunningCapture {
  file: string;
  /**
   * Stops tcpdump and returns the capture (pcap). On SIGINT tcpdump leaves at once, and
   * packets still in the kernel's ring, not yet read on a loaded machine, are lost: with
   * `until`, tcpdump is stopped only once the packets it has written satisfy it (it writes
   * each packet as it reads it, `-U`), or after `timeoutMs`.
   */
  stop(until?: (segments: TcpSegment[]) => boolean, timeoutMs?: number): Promise<Buffer>;
}

/**
 * tcpdump on `iface` inside `netns`, TCP only, every byte of every packet:
 * what an observer on that wire sees. Resolves once tcpdump says it is
 * listening, so nothing sent afterwards is missed.
 */
export async function startCapture(netns: string, iface: string, file: string): Promise<RunningCapture> {
  const dump = spawn('ip', ['netns', 'exec', netns, 'tcpdump', '-i', iface, '-n', '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => dump.once('close', () => resolve()));
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: WarrenError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err === undefined) return resolve();
      dump.kill('SIGKILL');
      reject(err);
    };
    const fail = (why: string): void => settle(new WarrenError('ERR_DEMO', `tcpdump on ${netns}/${iface} ${why}: ${stderr.trim() || '(no output)'}`));
    const timer = setTimeout(() => fail('did not report listening within 5 s'), 5000);
    dump.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('listening on')) settle();
    });
    dump.once('error', (err) => fail(err.message));
    dump.once('exit', (code) => fail(`exited (${code})`));
  });
  return {
    file,
    async stop(until, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (until !== undefined && Date.now() < deadline && !until(await written(file))) await sleep(50);
      dump.kill('SIGINT');
      await exited;
      return readFile(file);
    },
  };
}

/** The segments tcpdump has written so far (a packet being written is left out). */
async function written(file: string): Promise<TcpSegment[]> {
  const pcap = await readFile(file).catch(() => Buffer.alloc(0));
  return pcap.length < PCAP_HEADER_BYTES ? [] : parsePcap(pcap);
}

/** A capture on the underlay bridge, where every node-to-node packet passes. */
export function startUnderlayCapture(file: string): Promise<RunningCapture> {
  return startCapture(UNDERLAY.netns, UNDERLAY.bridge, file);
}
