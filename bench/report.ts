import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

/** Machine facts stored with every result: numbers only compare on the same kind. */
export function machineInfo(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown cpu';
  return `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, kernel ${os.release()}, node ${process.version}`;
}

/** A fixed-width text table; the first column left-aligned, numbers right. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Saves a result as bench/results/<name>-<date>.md (human) and .json (machine). */
export function saveResult(name: string, text: string, data: unknown): string {
  const dir = new URL('../../bench/results/', import.meta.url).pathname;
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  const base = `${dir}${name}-${date}`;
  const machine = machineInfo();
  writeFileSync(`${base}.md`, `# ${name} — ${date}\n\nMachine: ${machine}\n\n\`\`\`\n${text}\n\`\`\`\n`);
  writeFileSync(`${base}.json`, JSON.stringify({ name, date, machine, data }, null, 2) + '\n');
  return `${base}.md`;
}
