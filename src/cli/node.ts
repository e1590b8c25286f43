import { parseArgs } from 'node:util';
import { runNodeAgent } from '../agent/node-agent.js';
import { loadNodeAgentConfig, settingDefault, settingFlag, SETTINGS, type RawConfig } from '../agent/config.js';

const INTRO = `Usage: warren node [options]

The per-node agent (a DaemonSet pod, hostNetwork, privileged): installs the
warren-cni plugin, watches the API server, and enrolls the pods of its node
whose namespace (or pod) is labeled warren.io/dataplane-mode=ambient, without
restarting them. Flags override the environment variables shown.`;

const KEYS = Object.keys(SETTINGS) as Array<keyof typeof SETTINGS>;

/** --help, from the settings (src/agent/config.ts): flag, help, environment variable, default. */
export function nodeHelp(): string {
  const rows = KEYS.map((key) => {
    const s: { env?: string; arg?: string; help: string } = SETTINGS[key];
    const shown = settingDefault(key);
    const where = s.env === undefined ? '' : ` ($${s.env}${shown === undefined ? '' : `; ${shown}`})`;
    return { left: `  ${settingFlag(key)}${s.arg === undefined ? '' : ` ${s.arg}`}`, text: `${s.help}${where}` };
  });
  return `${INTRO}\n\n${rows.map((r) => column(r.left, r.text)).join('\n')}`;
}

/** `left` padded to the help column, `text` wrapped at 100 columns under it. */
function column(left: string, text: string): string {
  const indent = 31;
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  const first = left.length < indent - 1 ? `${left.padEnd(indent)}${lines.shift()}` : left;
  return [first, ...lines.map((l) => `${' '.repeat(indent)}${l}`)].join('\n');
}

/** `warren node`'s argv as the config loader's flags (the DaemonSet manifest test parses its args with this too). */
export function parseNodeArgs(argv: string[]): { help: boolean; flags: RawConfig } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = Object.fromEntries(KEYS.map((key) => [settingFlag(key).slice(2), { type: 'arg' in SETTINGS[key] ? 'string' : 'boolean' }]));
  options.help = { type: 'boolean', short: 'h' };
  const { values } = parseArgs({ args: argv, strict: true, options });
  const flags: RawConfig = Object.fromEntries(KEYS.map((key) => [key, values[settingFlag(key).slice(2)]]));
  // --no-install-cni turns installCni off; absent, the schema's default (on) applies.
  flags.installCni = values['no-install-cni'] === true ? false : undefined;
  return { help: values.help === true, flags };
}

export async function runNode(argv: string[]): Promise<number> {
  const { help, flags } = parseNodeArgs(argv);
  if (help) {
    console.log(nodeHelp());
    return 0;
  }
  return runNodeAgent(loadNodeAgentConfig(flags, process.env));
}
