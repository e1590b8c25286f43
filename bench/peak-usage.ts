/**
 * Peak memory and CPU of the processes a command starts, for sizing the
 * DaemonSet's requests and limits (deploy/README.md "Resources"):
 *
 *   node dist/bench/peak-usage.js <cmdline regex> -- <command> [args…]
 *
 * Runs the command and, every 250 ms until it exits, reads /proc for every
 * process whose command line matches: VmHWM (the kernel's own peak RSS),
 * and utime+stime. Prints, per process, its peak RSS, its CPU-seconds, and
 * its busiest second (CPU-seconds spent in the worst 1 s window), as JSON.
 * The command's own output passes through to stderr.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { execa } from 'execa';

const TICK_MS = 250;
const CLK_TCK = 100;

interface Seen {
  cmd: string;
  peakRssKiB: number;
  /** CPU ticks at each sample, for the busiest window */
  cpu: number[];
}

function read(pid: string): { cmd: string; hwmKiB: number; ticks: number } | undefined {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    // Fields after the parenthesised name: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { cmd, hwmKiB: Number(hwm?.[1] ?? 0), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // exited between listing and reading
  }
}

async function main(): Promise<void> {
  const sep = process.argv.indexOf('--');
  const pattern = process.argv[2];
  if (pattern === undefined || sep < 0 || sep + 1 >= process.argv.length) {
    process.stderr.write('usage: peak-usage <cmdline regex> -- <command> [args…]\n');
    process.exit(2);
  }
  const match = new RegExp(pattern);
  const seen = new Map<string, Seen>();
  const child = execa(process.argv[sep + 1]!, process.argv.slice(sep + 2), { stdout: 'inherit', stderr: 'inherit', reject: false });
  const started = Date.now();
  const timer = setInterval(() => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && p !== String(process.pid))) {
      const r = read(pid);
      if (r === undefined || !match.test(r.cmd)) continue;
      const s = seen.get(pid) ?? { cmd: r.cmd.slice(0, 160), peakRssKiB: 0, cpu: [] };
      s.peakRssKiB = Math.max(s.peakRssKiB, r.hwmKiB);
      s.cpu.push(r.ticks);
      seen.set(pid, s);
    }
  }, TICK_MS);
  const result = await child;
  clearInterval(timer);
  const window = 1000 / TICK_MS;
  const processes = [...seen.entries()].map(([pid, s]) => {
    let busiest = 0;
    for (let i = window; i < s.cpu.length; i++) busiest = Math.max(busiest, s.cpu[i]! - s.cpu[i - window]!);
    return { pid: Number(pid), cmd: s.cmd, peakRssMiB: +(s.peakRssKiB / 1024).toFixed(1), cpuSeconds: +((s.cpu.at(-1)! - s.cpu[0]!) / CLK_TCK).toFixed(2), busiestSecondCores: +(busiest / CLK_TCK).toFixed(2) };
  });
  process.stdout.write(`${JSON.stringify({ exitCode: result.exitCode, seconds: (Date.now() - started) / 1000, processes }, null, 2)}\n`);
}

void main();
