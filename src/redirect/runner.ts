import { execa } from 'execa';
import { WarrenError } from '../errors/warren-error.js';

export interface RunOptions {
  /** stdin for the program */
  input?: string;
  /** netns file to run in (nsenter --net=…); omit for the caller's netns */
  netns?: string;
}

/**
 * Runs external programs (nft, iptables-restore, ip). The one real
 * implementation is below; unit tests use a recording one.
 */
export interface CommandRunner {
  run(file: string, args: string[], options?: RunOptions): Promise<string>;
}

const PACKAGE_OF: Record<string, string> = {
  nft: 'nftables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  'ip6tables-save': 'iptables',
  'ip6tables-restore': 'iptables',
  'iptables-legacy-save': 'iptables',
  ip: 'iproute2',
  nsenter: 'util-linux',
};

/** A failure that goes away by trying again (a busy lock), told from the tool's error text. */
export function retryableFailure(errorText: string): boolean {
  return /resource temporarily unavailable|xtables lock/i.test(errorText);
}

export const systemRunner: CommandRunner = {
  async run(file, args, options = {}) {
    const [cmd, argv] =
      options.netns === undefined ? [file, args] : ['nsenter', [`--net=${options.netns}`, '--', file, ...args]];
    const res = await execa(cmd, argv, { reject: false, ...(options.input === undefined ? {} : { input: options.input }) });
    const shown = `${file} ${args.join(' ')}${options.netns === undefined ? '' : ` (in ${options.netns})`}`;
    const missing =
      (res as { code?: string }).code === 'ENOENT' || (res.exitCode === 127 && /failed to execute/.test(res.stderr));
    if (missing) {
      const binary = (res as { code?: string }).code === 'ENOENT' ? cmd : file;
      throw new WarrenError(
        'ERR_COMMAND_MISSING',
        `${binary} is not installed: install the ${PACKAGE_OF[binary] ?? binary} package`,
      );
    }
    if (res.failed) {
      throw new WarrenError('ERR_COMMAND_FAILED', `${shown} failed (exit ${res.exitCode ?? res.signal}): ${res.stderr.trim()}`, {
        retryable: retryableFailure(res.stderr),
      });
    }
    return res.stdout;
  },
};
