import assert from 'node:assert/strict';
import net from 'node:net';
import { execa } from 'execa';
import { rootTest } from '../helpers/root.js';
import { createTopology, inNetns } from '../helpers/netns.js';
import { createListener, createSocket, threadNetnsInode, NetnsSocketError } from '../../src/native/netns-socket.js';

const listening = async (netns: string | undefined, port: number): Promise<string> => {
  const args = ['-Hltne', `sport = :${port}`];
  return netns === undefined ? (await execa('ss', args)).stdout : inNetns(netns, 'ss', args);
};

rootTest('listeners live in the pod netns with their mark, and the thread comes home', async () => {
  const topo = await createTopology(1);
  const home = threadNetnsInode();
  const server = new net.Server();
  try {
    const pod = topo.pods[0]!;
    const fd = createListener({ netns: pod.path, port: 15001, mark: 0x539, reusePort: true });
    assert.equal(threadNetnsInode(), home, 'thread returned to its own netns');
    await new Promise<void>((resolve) => server.listen({ fd }, resolve));
    const inside = await listening(pod.netns, 15001);
    assert.match(inside, /0\.0\.0\.0:15001/);
    assert.match(inside, /fwmark:0x539/);
    assert.equal(await listening(undefined, 15001), '', 'nothing listens on 15001 in the host netns');
    // The same port is free in another netns; a clash in the same one is EADDRINUSE.
    assert.throws(
      () => createListener({ netns: pod.path, port: 15001 }),
      (e: unknown) => e instanceof NetnsSocketError && e.errno === 'EADDRINUSE',
    );
    assert.equal(threadNetnsInode(), home, 'thread returned after a failed bind too');
  } finally {
    server.close();
    await topo.destroy();
  }
});

rootTest('binding a foreign source address needs IP_TRANSPARENT', async () => {
  const topo = await createTopology(2);
  try {
    const [a, b] = topo.pods as [(typeof topo.pods)[0], (typeof topo.pods)[0]];
    assert.throws(
      () => createSocket({ netns: a.path, address: b.ipv4 }),
      (e: unknown) => e instanceof NetnsSocketError && e.errno === 'EADDRNOTAVAIL' && e.message.includes(b.ipv4),
    );
    const fd = createSocket({ netns: a.path, address: b.ipv4, transparent: true, freebind: true, mark: 0x539 });
    const fd6 = createSocket({ netns: a.path, family: 6, address: b.ipv6, transparent: true, freebind: true });
    new net.Socket({ fd }).destroy();
    new net.Socket({ fd: fd6 }).destroy();
  } finally {
    await topo.destroy();
  }
});
