import { access, constants } from 'node:fs/promises';
import { execa } from 'execa';
import { z } from 'zod';
import { WarrenError } from '../../errors/warren-error.js';

/**
 * The container-runtime side of the CNI spec (1.0): runs the plugins of a
 * conflist in order for ADD (each gets the previous one's result as
 * prevResult) and in reverse for DEL, exactly as containerd/CRI-O do, so the
 * chain warren's plugin joins is exercised for real.
 */

const conflistSchema = z.looseObject({
  cniVersion: z.string(),
  name: z.string().min(1),
  plugins: z.array(z.looseObject({ type: z.string().min(1) })).min(1),
});
export type Conflist = z.infer<typeof conflistSchema>;

const resultSchema = z.looseObject({
  cniVersion: z.string(),
  interfaces: z.array(z.looseObject({ name: z.string(), sandbox: z.string().optional() })).optional(),
  ips: z
    .array(z.looseObject({ address: z.string(), gateway: z.string().optional(), interface: z.number().optional() }))
    .optional(),
});
export type CniResult = z.infer<typeof resultSchema>;

const errorSchema = z.looseObject({ code: z.number(), msg: z.string(), details: z.string().optional() });

export interface CniInvocation {
  containerId: string;
  /** netns file path of the pod */
  netns: string;
  ifName: string;
  /** directories searched for plugin binaries (CNI_PATH) */
  binDirs: string[];
  /** CNI_ARGS, e.g. K8S_POD_NAMESPACE / K8S_POD_NAME as the kubelet passes them */
  args?: Record<string, string>;
  /** netns to run the plugins in (the node's); omit for the caller's */
  runInNetns?: string;
  timeoutMs?: number;
}

export function parseConflist(text: string, source: string): Conflist {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new WarrenError('ERR_CNI_CONFIG', `${source}: not valid JSON: ${(err as Error).message}`);
  }
  const res = conflistSchema.safeParse(json);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw new WarrenError('ERR_CNI_CONFIG', `${source}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  return res.data;
}

async function invoke(command: 'ADD' | 'DEL' | 'CHECK', plugin: Record<string, unknown>, inv: CniInvocation): Promise<string> {
  const type = String(plugin.type);
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netns,
    CNI_IFNAME: inv.ifName,
    CNI_PATH: inv.binDirs.join(':'),
    // IgnoreUnknown=1 as containerd sends it: plugins that do not know the K8S_* args accept them.
    CNI_ARGS: Object.entries({ IgnoreUnknown: '1', ...inv.args })
      .map(([k, v]) => `${k}=${v}`)
      .join(';'),
  };
  const binary = await findPlugin(type, inv.binDirs);
  const [file, argv] = inv.runInNetns === undefined ? [binary, []] : ['nsenter', [`--net=${inv.runInNetns}`, '--', binary]];
  const res = await execa(file, argv, {
    env,
    extendEnv: false,
    input: JSON.stringify(plugin),
    reject: false,
    timeout: inv.timeoutMs ?? 30_000,
  });
  if (res.exitCode !== 0) {
    const parsed = errorSchema.safeParse(safeJson(res.stdout));
    const why = parsed.success ? `${parsed.data.msg}${parsed.data.details ? ` (${parsed.data.details})` : ''} [CNI code ${parsed.data.code}]` : (res.stderr || res.stdout || `exit ${res.exitCode}`).trim();
    throw new WarrenError('ERR_CNI_PLUGIN', `CNI ${command} with plugin ${type} failed: ${why}`, { retryable: true });
  }
  return res.stdout;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function findPlugin(type: string, dirs: string[]): Promise<string> {
  for (const dir of dirs) {
    const path = `${dir}/${type}`;
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // next dir
    }
  }
  throw new WarrenError('ERR_CNI_PLUGIN', `CNI plugin ${JSON.stringify(type)} not found in ${dirs.join(':')}`);
}

/** The per-plugin config the spec defines: name and cniVersion from the list, plus prevResult when chained. */
function pluginConfig(list: Conflist, plugin: Record<string, unknown>, prevResult: CniResult | undefined): Record<string, unknown> {
  return { ...plugin, name: list.name, cniVersion: list.cniVersion, ...(prevResult === undefined ? {} : { prevResult }) };
}

export async function cniAdd(list: Conflist, inv: CniInvocation): Promise<CniResult> {
  let prev: CniResult | undefined;
  for (const plugin of list.plugins) {
    const out = await invoke('ADD', pluginConfig(list, plugin, prev), inv);
    const res = resultSchema.safeParse(safeJson(out));
    if (!res.success) {
      throw new WarrenError('ERR_CNI_PLUGIN', `CNI ADD with plugin ${plugin.type} returned no valid result: ${out.slice(0, 200)}`);
    }
    prev = res.data;
  }
  return prev!;
}

/** DEL runs every plugin in reverse and reports the first failure after trying all (cleanup must not stop halfway). */
export async function cniDel(list: Conflist, inv: CniInvocation): Promise<void> {
  let first: unknown;
  for (const plugin of [...list.plugins].reverse()) {
    await invoke('DEL', pluginConfig(list, plugin, undefined), inv).catch((err: unknown) => {
      first ??= err;
    });
  }
  if (first !== undefined) throw first;
}
