import { createBackend } from '../src/redirect/detect.js';
import { systemRunner } from '../src/redirect/runner.js';
import type { TestPod } from '../test/helpers/netns.js';

const nft = createBackend('nft', systemRunner);

export async function applyBenchPodRules(pod: TestPod): Promise<void> {
  await nft.applyPod(pod.path, { podIPs: [pod.ipv4, pod.ipv6] });
}

export async function removeBenchPodRules(pod: TestPod): Promise<void> {
  await nft.removePod(pod.path);
}
