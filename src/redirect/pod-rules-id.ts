import { createHash } from 'node:crypto';
import type { BackendName } from './backend.js';
import { buildPodIptables } from './iptables-pod.js';
import { buildPodNftScript } from './nft-pod.js';
import { familyList, policyRoutingRequest } from './policy-routing.js';
import { familiesOf, parsePodRedirectSpec, type PodRedirectInput } from './spec.js';

/**
 * What a backend writes in a pod's netns for `input` (rules and policy routing), as one
 * digest: two agents that compute the same id would write the same thing. A new agent
 * taking over a node leaves a pod's rules as the old one wrote them when the old one's id
 * is its own (docs/architecture.md §4, "Agent upgrade"); an upgrade that changes the rules
 * changes the id, and they are written again.
 */
export function podRulesId(backend: BackendName, input: PodRedirectInput): string {
  const spec = parsePodRedirectSpec(input);
  const rules = backend === 'nft' ? buildPodNftScript(spec) : JSON.stringify(buildPodIptables(spec));
  const routing = familyList(familiesOf(spec.podIPs)).map((f) => policyRoutingRequest('apply', f));
  return createHash('sha256').update(JSON.stringify({ backend, rules, routing })).digest('hex');
}
