/**
 * Just enough of `iptables-save` output to decide what to add or remove:
 * which tables exist, their chains, and their rule lines.
 */
export interface SavedTable {
  chains: Map<string, string>; // name → policy ("-" for user chains)
  rules: string[]; // "-A CHAIN …" lines as printed
}

export interface SavedRuleset {
  /** "nf_tables" or "legacy", from the header comment when present */
  variant: 'nf_tables' | 'legacy' | 'unknown';
  tables: Map<string, SavedTable>;
}

export function parseIptablesSave(text: string): SavedRuleset {
  const tables = new Map<string, SavedTable>();
  let variant: SavedRuleset['variant'] = 'unknown';
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) {
      if (line.includes('(nf_tables)')) variant = 'nf_tables';
      else if (line.includes('(legacy)')) variant = 'legacy';
      continue;
    }
    if (line.startsWith('*')) {
      current = { chains: new Map(), rules: [] };
      tables.set(line.slice(1), current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current !== undefined && line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (name !== undefined) current.chains.set(name, policy ?? '-');
    } else if (current !== undefined && line.startsWith('-A ')) {
      current.rules.push(line);
    }
  }
  return { variant, tables };
}

/** A table with no rules and only built-in chains that accept is the same as no table. */
export function isEmptyTable(table: SavedTable): boolean {
  return table.rules.length === 0 && [...table.chains.values()].every((policy) => policy === 'ACCEPT');
}
