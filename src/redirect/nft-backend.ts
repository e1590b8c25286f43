import type { RedirectBackend } from './backend.js';
import { buildPodNftCaptureRemoveScript, buildPodNftRemoveScript, buildPodNftScript } from './nft-pod.js';
import { buildNodeNftRemoveScript, buildNodeNftScript } from './nft-node.js';
import { applyNftScript as nft } from './nft-apply.js';
import { applyPolicyRouting, removePolicyRouting } from './policy-routing-apply.js';
import { familiesOf, parseNodeRedirectSpec, parsePodRedirectSpec } from './spec.js';

/** Rules through libnftables in the addon, routing over rtnetlink: no process per pod. */
export function nftBackend(): RedirectBackend {
  return {
    name: 'nft',
    async applyPod(netns, input) {
      const spec = parsePodRedirectSpec(input);
      await nft(netns, buildPodNftScript(spec));
      try {
        await applyPolicyRouting(netns, familiesOf(spec.podIPs));
      } catch (err) {
        // Rules without the reply routing would break inbound delivery: undo.
        await this.removePod(netns).catch(() => undefined);
        throw err;
      }
    },
    async removePodCapture(netns) {
      await nft(netns, buildPodNftCaptureRemoveScript());
    },
    async removePod(netns) {
      await nft(netns, buildPodNftRemoveScript());
      await removePolicyRouting(netns);
    },
    async applyNode(netns, input) {
      await nft(netns, buildNodeNftScript(parseNodeRedirectSpec(input)));
    },
    async removeNode(netns) {
      await nft(netns, buildNodeNftRemoveScript());
    },
  };
}
