import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../../../test/tools/delay-line.c', import.meta.url));
/** an NFQUEUE number no other part of warren or its tests uses */
const QUEUE = '4242';

export interface DelayCounts {
  delayed: number;
  passedAtOnce: number;
  lostMessages: number;
}

/**
 * Runs `during` while every packet leaving `device` in `netns` is held `delayMs` (what `tc qdisc
 * add … netem delay` does; this kernel has neither sch_netem nor the sch_fq a BPF departure-time
 * delay needs): an iptables-legacy NFQUEUE rule feeds test/tools/delay-line.c, built into `dir`
 * (libnetfilter-queue-dev). The rule and the tool are gone when this returns or throws; the rule
 * passes packets undelayed whenever the tool is not there (--queue-bypass). Returns what `during`
 * returned and the tool's counts (a delay that held no packet was not in effect).
 */
export async function withLinkDelay<T>(netns: string, device: string, delayMs: number, maxSeconds: number, dir: string, during: () => Promise<T>): Promise<{ result: T; counts: DelayCounts }> {
  const tool = `${dir}/delay-line`;
  const built = await execa('cc', ['-O2', '-Wall', '-o', tool, SOURCE, '-lnetfilter_queue'], { reject: false });
  if (built.exitCode !== 0) throw new Error(`building ${SOURCE} (needs libnetfilter-queue-dev, scripts/install-deps.sh): ${built.stderr}`);
  const rule = ['POSTROUTING', '-o', device, '-j', 'NFQUEUE', '--queue-num', QUEUE, '--queue-bypass'];
  const iptables = (op: '-A' | '-D') => execa('ip', ['netns', 'exec', netns, 'iptables-legacy', '-t', 'mangle', op, ...rule]);
  // bounded by itself too: the tool exits after maxSeconds whatever happens here
  const line = execa('ip', ['netns', 'exec', netns, tool, QUEUE, String(delayMs), String(maxSeconds)], { reject: false });
  try {
    await new Promise<void>((resolve, reject) => {
      line.stdout!.once('data', () => resolve());
      void line.then((r) => reject(new Error(`delay-line exited before it was ready (${r.exitCode}): ${r.stderr}`)));
    });
    await iptables('-A');
    try {
      const result = await during();
      line.kill('SIGTERM');
      const out = await line;
      const counts = JSON.parse(String(out.stdout).trim().split('\n').at(-1) ?? '{}') as DelayCounts;
      return { result, counts };
    } finally {
      await iptables('-D');
    }
  } finally {
    line.kill('SIGKILL');
    await line;
  }
}
