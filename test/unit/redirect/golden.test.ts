/** One case table for both backends and both IP families (docs/architecture.md §10). */
import { test } from 'node:test';
import { assertGolden } from '../../helpers/golden.js';
import { parseIptablesSave } from '../../../src/redirect/iptables-save.js';
import { buildPodIptables, renderIptablesApply } from '../../../src/redirect/iptables-pod.js';
import { buildNodeIptables } from '../../../src/redirect/iptables-node.js';
import { buildPodNftScript } from '../../../src/redirect/nft-pod.js';
import { buildNodeNftScript } from '../../../src/redirect/nft-node.js';
import { parseNodeRedirectSpec, parsePodRedirectSpec } from '../../../src/redirect/spec.js';

const POD_CASES: Record<string, unknown> = {
  'pod-ipv4': { podIPs: ['10.244.1.5'] },
  'pod-ipv6': { podIPs: ['fd00:10:244::5'] },
  'pod-dual': { podIPs: ['10.244.1.5', 'fd00:10:244::5'] },
};

const NODE_CASES: Record<string, unknown> = {
  'node-empty': { podIPs: [] },
  'node-two-pods': { podIPs: ['10.244.1.5', 'fd00:10:244::5', '10.244.1.6'] },
};

const EMPTY = parseIptablesSave('');

for (const [name, input] of Object.entries(POD_CASES)) {
  test(`pod rules golden: ${name}`, () => {
    const spec = parsePodRedirectSpec(input);
    assertGolden(`${name}.nft`, buildPodNftScript(spec));
    for (const rules of buildPodIptables(spec)) {
      assertGolden(`${name}${rules.family === 6 ? '.ipv6' : ''}.iptables`, renderIptablesApply(rules, EMPTY));
    }
  });
}

for (const [name, input] of Object.entries(NODE_CASES)) {
  test(`node rules golden: ${name}`, () => {
    const spec = parseNodeRedirectSpec(input);
    assertGolden(`${name}.nft`, buildNodeNftScript(spec));
    for (const rules of buildNodeIptables(spec)) {
      assertGolden(`${name}${rules.family === 6 ? '.ipv6' : ''}.iptables`, renderIptablesApply(rules, EMPTY));
    }
  });
}
