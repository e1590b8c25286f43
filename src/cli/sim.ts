import { runApp } from '../sim/apps/run-app.js';

const HELP = `Usage: warren sim <command>

Commands:
  app NAME    run a built-in container stand-in (http-echo, tcp-echo, sleep)`;

export async function runSim(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'app') return runApp(rest);
  console.log(HELP);
  return sub === undefined || sub === '--help' || sub === '-h' ? 0 : 2;
}
