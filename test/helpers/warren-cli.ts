import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** the built CLI entry */
const WARREN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Runs the built `warren` CLI as a user would, with `env` added to the environment; never throws on a non-zero exit. */
export const warrenEnv = (env: Record<string, string>, ...args: string[]) => execa(process.execPath, [WARREN, ...args], { reject: false, timeout: 120_000, env });

/** Runs the built `warren` CLI as a user would; never throws on a non-zero exit (tests assert on it). */
export const warren = (...args: string[]) => warrenEnv({}, ...args);
