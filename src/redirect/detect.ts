import type { BackendName, RedirectBackend } from './backend.js';
import type { CommandRunner } from './runner.js';
import { nftBackend } from './nft-backend.js';
import { iptablesBackend } from './iptables-backend.js';
import { parseIptablesSave } from './iptables-save.js';
import { WarrenError } from '../errors/warren-error.js';

export type BackendChoice = BackendName | 'auto';

/** What the host shows about its packet filtering, gathered once at start. */
export interface BackendFacts {
  nftAvailable: boolean;
  iptablesAvailable: boolean;
  /** rules managed through iptables on the host (either variant, e.g. kube-proxy's KUBE-*) */
  iptablesRuleCount: number;
}

/**
 * `auto` follows the host: a node whose other networking (kube-proxy, the
 * primary CNI) already programs through iptables keeps one tool in charge,
 * so operators debug with the tool they know; otherwise nftables, the
 * kernel's native interface with atomic multi-table transactions.
 */
export function chooseBackend(requested: BackendChoice, facts: BackendFacts): BackendName {
  const need = (name: BackendName, ok: boolean): BackendName => {
    if (ok) return name;
    throw new WarrenError(
      'ERR_BACKEND_UNAVAILABLE',
      name === 'nft' ? 'the nft backend needs the nft command: install nftables' : 'the iptables backend needs iptables-restore: install iptables',
    );
  };
  if (requested !== 'auto') return need(requested, requested === 'nft' ? facts.nftAvailable : facts.iptablesAvailable);
  if (facts.iptablesRuleCount > 0 && facts.iptablesAvailable) return 'iptables';
  if (facts.nftAvailable) return 'nft';
  if (facts.iptablesAvailable) return 'iptables';
  throw new WarrenError('ERR_BACKEND_UNAVAILABLE', 'neither nft nor iptables-restore is installed: install nftables');
}

/**
 * The backends uninstall cleans with: every one the host can run, not only
 * the one `auto` picks now. The agent may have programmed the other (a
 * changed --redirect-backend, or iptables rules that appeared since and flip
 * `auto`); removing rules that are not there changes nothing.
 */
export function cleanupBackends(facts: BackendFacts): BackendName[] {
  return [...(facts.nftAvailable ? (['nft'] as const) : []), ...(facts.iptablesAvailable ? (['iptables'] as const) : [])];
}

async function output(runner: CommandRunner, file: string, args: string[]): Promise<string | undefined> {
  try {
    return await runner.run(file, args);
  } catch {
    return undefined;
  }
}

/** Reads the facts from the host netns (the caller's). */
export async function gatherBackendFacts(runner: CommandRunner): Promise<BackendFacts> {
  const count = (text: string | undefined): number =>
    text === undefined ? 0 : [...parseIptablesSave(text).tables.values()].reduce((n, t) => n + t.rules.length, 0);
  const iptablesSave = await output(runner, 'iptables-save', []);
  const legacySave = await output(runner, 'iptables-legacy-save', []);
  return {
    nftAvailable: (await output(runner, 'nft', ['--version'])) !== undefined,
    iptablesAvailable: iptablesSave !== undefined,
    iptablesRuleCount: count(iptablesSave) + count(legacySave),
  };
}

export function createBackend(name: BackendName, runner: CommandRunner): RedirectBackend {
  return name === 'nft' ? nftBackend() : iptablesBackend(runner);
}
