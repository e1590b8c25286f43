import { fileURLToPath } from 'node:url';

/** The CLI entry, so the simulator starts its processes (daemon, agents, apps) with this same build. */
export const WARREN_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
