import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The TCP packets tcpdump sees on `iface` inside `netns` while `during`
 * runs, as pcap bytes (written to `file`): what an observer on that wire
 * would read. tcpdump is stopped (SIGINT) also when `during` throws.
 */
export async function captureTcp(netns: string, iface: string, file: string, during: () => Promise<void>): Promise<Buffer> {
  const dump = spawn('ip', ['netns', 'exec', netns, 'tcpdump', '-i', iface, '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => dump.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump on ${netns}/${iface} did not start within 5 s`)), 5000);
      let said = '';
      dump.stderr.on('data', (c: Buffer) => {
        said += c.toString();
        if (/listening on/.test(said)) {
          clearTimeout(timer);
          resolve();
        }
      });
      dump.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump exited (${code}): ${said.trim()}`));
      });
    });
    await during();
    // Without --immediate-mode the kernel hands packets over in blocks up to 1 s late, and SIGINT drops a pending block.
    await sleep(300);
  } finally {
    dump.kill('SIGINT');
    await exited;
  }
  return readFile(file);
}
