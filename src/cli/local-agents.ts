import { z } from 'zod';
import { readJsonFile } from '../fs/read-json-file.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';

/**
 * Node agents that run on this machine, each inside a node's network namespace:
 * the simulator's nodes. The simulator writes `<state dir>/agents.json` when it
 * starts a cluster; the operator commands (status, workloads, certs, …) read it
 * to reach those agents, so they load nothing of the simulator
 * (docs/architecture.md §8).
 */
export interface LocalAgent {
  node: string;
  /** the netns (under /var/run/netns) the agent's admin and readiness ports live in */
  netns: string;
}

const localAgentsSchema = z.object({
  agents: z.array(z.object({ node: z.string().min(1), netns: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a netns name') })).min(1),
});

export const localAgentsPath = (stateDir: string): string => `${stateDir}/agents.json`;

export function writeLocalAgents(stateDir: string, agents: LocalAgent[]): void {
  writeFileAtomic(localAgentsPath(stateDir), JSON.stringify({ agents }), 0o644);
}

/** The agents in `stateDir`, or undefined when no simulated cluster was started there. */
export function readLocalAgents(stateDir: string): LocalAgent[] | undefined {
  return readJsonFile(localAgentsPath(stateDir), localAgentsSchema, 'ERR_SIM_STATE')?.agents;
}
