/**
 * The new agent's side of a listener hand-off, alone in a process
 * (test/netns/listener-handoff.test.ts): `node handoff-child.js MODE PATH NETNS UID`.
 * MODE `handoff`: takes the pod's :15001 socket from the agent at PATH;
 * `reuseport`: makes its own beside the old one (the design without a hand-off).
 * Answers every connection "new\n", prints `accepting` once it does, runs until stdin closes.
 */
import net from 'node:net';
import { receiveHandoff } from '../../src/agent/listener-handoff.js';
import { createListener } from '../../src/native/netns-socket.js';
import { PORTS } from '../../src/redirect/constants.js';

const [mode, path, netns, uid] = process.argv.slice(2) as [string, string, string, string];
const adoption = mode === 'handoff' ? await receiveHandoff({ path, timeoutMs: 5000, log: (msg, fields) => console.error(JSON.stringify({ msg, ...fields })) }) : undefined;
const fd = adoption?.take(uid, 4, PORTS.outbound) ?? createListener({ netns, family: 4, port: PORTS.outbound, reusePort: true });
const server = net.createServer((s) => s.end('new\n'));
await new Promise<void>((resolve) => server.listen({ fd }, resolve));
adoption?.accepting(uid);
console.log(adoption === undefined ? 'accepting own' : 'accepting handed');
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
