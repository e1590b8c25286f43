import { execa } from 'execa';
import { randomBytes } from 'node:crypto';

/** Runs `ip` with an argument array; its stderr is part of the error. */
export async function ip(...args: string[]): Promise<string> {
  const res = await execa('ip', args);
  return res.stdout;
}

/** Runs a program inside a named netns. */
export async function inNetns(netns: string, file: string, args: string[], input?: string): Promise<string> {
  const res = await execa('ip', ['netns', 'exec', netns, file, ...args], input === undefined ? {} : { input });
  return res.stdout;
}

export interface TestPod {
  /** netns name, also reachable as /var/run/netns/<name> */
  netns: string;
  path: string;
  ipv4: string;
  ipv6: string;
}

export interface TestTopology {
  bridgeNetns: string;
  pods: TestPod[];
  destroy(): Promise<void>;
}

/**
 * A bridge netns and N "pods" (netns + veth into the bridge), IPv4 and IPv6,
 * all uniquely named. Only addresses inside these namespaces are used.
 * destroy() removes everything and is safe to call on a partial topology.
 */
export async function createTopology(podCount: number): Promise<TestTopology> {
  const id = randomBytes(3).toString('hex');
  const bridgeNetns = `wrt-${id}-br`;
  const made: string[] = [];
  const destroy = async (): Promise<void> => {
    for (const ns of made.reverse()) {
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
  };
  try {
    await ip('netns', 'add', bridgeNetns);
    made.push(bridgeNetns);
    await inNetns(bridgeNetns, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await inNetns(bridgeNetns, 'ip', ['link', 'set', 'br0', 'up']);
    await inNetns(bridgeNetns, 'ip', ['link', 'set', 'lo', 'up']);
    const pods: TestPod[] = [];
    for (let i = 0; i < podCount; i++) {
      const netns = `wrt-${id}-p${i}`;
      await ip('netns', 'add', netns);
      made.push(netns);
      const host = `wrt${id}h${i}`;
      await inNetns(bridgeNetns, 'ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await inNetns(bridgeNetns, 'ip', ['link', 'set', host, 'master', 'br0', 'up']);
      const ipv4 = `10.77.0.${10 + i}`;
      const ipv6 = `fd77::${10 + i}`;
      // Without DAD the IPv6 address is usable at once instead of after ~1 s.
      await inNetns(netns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
      await inNetns(netns, 'ip', ['addr', 'add', `${ipv4}/24`, 'dev', 'eth0']);
      await inNetns(netns, 'ip', ['addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad']);
      await inNetns(netns, 'ip', ['link', 'set', 'eth0', 'up']);
      await inNetns(netns, 'ip', ['link', 'set', 'lo', 'up']);
      pods.push({ netns, path: `/var/run/netns/${netns}`, ipv4, ipv6 });
    }
    return { bridgeNetns, pods, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}
