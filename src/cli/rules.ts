import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import { buildPodNftScript } from '../redirect/nft-pod.js';
import { buildNodeNftScript } from '../redirect/nft-node.js';
import { buildPodIptables, renderIptablesApply } from '../redirect/iptables-pod.js';
import { buildNodeIptables } from '../redirect/iptables-node.js';
import { parseIptablesSave } from '../redirect/iptables-save.js';
import { parseNodeRedirectSpec, parsePodRedirectSpec } from '../redirect/spec.js';

const HELP = `Usage: warren rules [--node] --pod-ip IP [--pod-ip IP…] [--backend nft|iptables]

Prints the redirection rules warren programs, without applying anything:
  (default)  the rules inside a pod's network namespace for the given pod IPs
  --node     the node-side probe SNAT rules for the given enrolled pod IPs

Options:
  --pod-ip IP        a pod IP (IPv4 or IPv6); repeat for dual-stack / several pods
  --backend NAME     nft (an \`nft -f -\` script, default) or iptables
                     (\`iptables-restore --noflush\` input, one block per family)
  -h, --help         this text`;

export async function runRules(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'pod-ip': { type: 'string', multiple: true, default: [] },
      backend: { type: 'string', default: 'nft' },
      node: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const backend = values.backend;
  if (backend !== 'nft' && backend !== 'iptables') {
    throw new WarrenError('ERR_USAGE', `--backend must be nft or iptables, got ${JSON.stringify(backend)}`);
  }
  const podIPs = values['pod-ip'];
  if (values.node) {
    const spec = parseNodeRedirectSpec({ podIPs });
    process.stdout.write(backend === 'nft' ? buildNodeNftScript(spec) : iptablesText(buildNodeIptables(spec)));
    return 0;
  }
  const spec = parsePodRedirectSpec({ podIPs });
  process.stdout.write(backend === 'nft' ? buildPodNftScript(spec) : iptablesText(buildPodIptables(spec)));
  return 0;
}

function iptablesText(ruleSets: ReturnType<typeof buildPodIptables>): string {
  return ruleSets
    .map((r) => `# ${r.family === 4 ? 'iptables' : 'ip6tables'}-restore --noflush\n${renderIptablesApply(r, parseIptablesSave(''))}`)
    .join('\n');
}
