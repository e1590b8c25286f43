// Entry of the `warren-cni` executable, run by the container runtime for every
// pod: only the plugin core and node:http are loaded (no CLI, no k8s client).
// No top-level await: scripts/build-cni-plugin.mjs bundles this file as the
// CommonJS main script of a single executable application.
import { callAgent } from './agent-client.js';
import { runCniPlugin } from './plugin.js';

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const { exitCode, stdout } = await runCniPlugin(process.env, Buffer.concat(chunks).toString('utf8'), { callAgent });
  // Exit as soon as the answer is flushed: the runtime waits for the process, not just its output.
  process.stdout.write(stdout, () => process.exit(exitCode));
}

void main();
