import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import { ADMIN_HELP, ADMIN_OPTIONS, formatTable, getAdmin } from './admin-client.js';

const HELP = `Usage: warren certs [options]

The workload certificates a node agent holds: one per identity (namespace +
service account) with pods on that node, their serials, validity, next
renewal, chain and trust domain. The private keys never leave the agent.

${ADMIN_HELP}`;

const short = (iso: string | undefined): string => (iso === undefined ? '-' : iso.replace(/\.\d+Z$/, 'Z'));

export async function runCerts(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: { ...ADMIN_OPTIONS, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.output !== 'table' && values.output !== 'json') throw new WarrenError('ERR_USAGE', `-o: ${values.output} is not table or json`);
  const reply = await getAdmin({ ...(values.node ? { node: values.node } : {}), stateDir: values['state-dir'], adminAddress: values['admin-address'] }, '/certs');
  if (values.output === 'json') {
    console.log(JSON.stringify(reply, null, 2));
    return 0;
  }
  console.log(`node ${reply.node}   trust domain ${reply.trustDomain}   CA ${reply.caAddress}   trust bundle: ${reply.trustBundleRoots} root(s)\n`);
  const rows = reply.certificates.map((c) => [
    c.identity,
    String(c.pods),
    c.state,
    c.serial ?? '-',
    short(c.notBefore),
    short(c.notAfter),
    short(c.renewAt),
    c.chain.slice(1).map((x) => x.subject.replace(/\n/g, ', ')).join(' <- ') || '-',
  ]);
  console.log(rows.length === 0 ? 'no workload certificates (no enrolled pod on this node)' : formatTable(['IDENTITY', 'PODS', 'STATE', 'SERIAL', 'VALID-FROM', 'EXPIRES', 'RENEW-AT', 'CHAIN'], rows));
  for (const c of reply.certificates) if (c.lastError) console.log(`\n${c.identity}: last error: ${c.lastError}`);
  return 0;
}
