import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { execaSync } from 'execa';

/** The commit measured, `+dirty` when a tracked file differs from it outside bench/results/: a number is traceable to code. */
function commitInfo(): string {
  const cwd = new URL('../..', import.meta.url).pathname;
  const head = execaSync('git', ['rev-parse', 'HEAD'], { cwd, reject: false });
  if (head.exitCode !== 0) return 'unknown (not a git checkout)';
  const dirty = execaSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)bench/results'], { cwd, reject: false }).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? '+dirty' : ''}`;
}

/** Machine facts stored with every result: numbers only compare on the same kind. */
export function machineInfo(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown cpu';
  return `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, kernel ${os.release()}, node ${process.version}`;
}

/** Read when the run starts: the code that was measured, whatever is edited meanwhile. */
const COMMIT = commitInfo();

/** A fixed-width text table; the first column left-aligned, numbers right. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Saves a result as bench/results/<name>-<date>.md (human) and .json (machine). */
/** `-<label>` from the environment variable `envName` (so a day's runs of one benchmark do not overwrite each other), or '' when it is unset. */
export function resultSuffix(envName: string): string {
  const label = process.env[envName];
  if (label === undefined) return '';
  if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(label)) throw new Error(`${envName} must be lowercase letters, digits and dashes (≤ 41), got ${JSON.stringify(label)}`);
  return `-${label}`;
}

export function saveResult(name: string, text: string, data: unknown): string {
  const dir = new URL('../../bench/results/', import.meta.url).pathname;
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  const base = `${dir}${name}-${date}`;
  const machine = machineInfo();
  writeFileSync(`${base}.md`, `# ${name} — ${date}\n\nMachine: ${machine}\nCommit: ${COMMIT}\n\n\`\`\`\n${text}\n\`\`\`\n`);
  writeFileSync(`${base}.json`, JSON.stringify({ name, date, machine, commit: COMMIT, data }, null, 2) + '\n');
  return `${base}.md`;
}
