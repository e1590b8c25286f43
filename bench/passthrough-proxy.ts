/**
 * The proxy under test in the passthrough benchmark, as its own process (as
 * the node agent would be): an outbound listener on :15001 inside the pod's
 * netns, forwarding each connection to its original destination.
 *
 *   node dist/bench/passthrough-proxy.js <netns path> <mark>
 */
import { listenInPod } from '../src/tunnel/pod-listener.js';
import { forwardOutbound } from '../src/tunnel/passthrough.js';

const [netns, markText] = process.argv.slice(2);
const mark = Number(markText);
if (netns === undefined || !Number.isInteger(mark)) {
  process.stderr.write('usage: passthrough-proxy <netns path> <mark>\n');
  process.exit(2);
}
const server = await listenInPod({ netns, port: 15001, family: 4, mark }, (socket) => {
  void forwardOutbound(socket, netns, mark);
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
