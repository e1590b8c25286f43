import { describeIssue } from '../config/zod-issue.js';
import { z } from 'zod';
import type { ErrorCode } from '../errors/error-codes.js';
import { WarrenError } from '../errors/warren-error.js';
import { cniCodeForAgentStatus } from '../errors/http-status.js';
import { CNI_ERROR } from './cni-codes.js';

/**
 * The chained CNI plugin `warren-cni` (CNI spec 1.0/1.1, docs/architecture.md §4) as a
 * function of env + stdin + one side effect (the agent call), so every path
 * is unit-tested without root. ADD fails closed: the pod only gets its
 * network if the local agent confirmed redirection is in place. DEL never
 * fails: a stuck DEL would keep the kubelet from ever removing the sandbox.
 */

export const SUPPORTED_CNI_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export const DEFAULT_AGENT_SOCKET = '/var/run/warren/cni.sock';
export const DEFAULT_EXCLUDE_NAMESPACES: readonly string[] = ['kube-system'];
export const DEFAULT_TIMEOUT_SECONDS = 5;
/** DEL only informs the agent (it also learns of deleted pods from the API server): never hold up teardown long. */
export const DEL_TIMEOUT_MS = 1000;

export type AgentPath = '/v1/cni/add' | '/v1/cni/del';
export interface AgentResponse {
  status: number;
  body: string;
}
export interface CniPluginDeps {
  /** Rejects when the agent cannot be reached or does not answer within timeoutMs. */
  callAgent(path: AgentPath, body: object, socketPath: string, timeoutMs: number): Promise<AgentResponse>;
}
export interface CniPluginOutput {
  exitCode: number;
  stdout: string;
}

const WARREN_CODE: Record<number, ErrorCode> = {
  [CNI_ERROR.incompatibleVersion]: 'ERR_CNI_VERSION',
  [CNI_ERROR.invalidEnvironment]: 'ERR_CNI_ENV',
  [CNI_ERROR.decodeFailure]: 'ERR_CNI_DECODE',
  [CNI_ERROR.invalidConfig]: 'ERR_CNI_NETCONF',
  [CNI_ERROR.tryAgainLater]: 'ERR_CNI_AGENT_UNAVAILABLE',
  [CNI_ERROR.agentRefused]: 'ERR_CNI_AGENT_REFUSED',
};

/** A failure reported to the runtime as a CNI error result; `cniCode` is the spec's code. */
export class CniPluginError extends WarrenError {
  readonly cniCode: number;
  readonly details: string;

  constructor(cniCode: number, message: string, details = '', options: { cause?: unknown } = {}) {
    super(WARREN_CODE[cniCode] ?? 'ERR_CNI_PLUGIN', message, { ...options, retryable: cniCode === CNI_ERROR.tryAgainLater });
    this.cniCode = cniCode;
    this.details = details;
  }
}

const prevResultSchema = z.looseObject({
  cniVersion: z.string().optional(),
  ips: z
    .array(z.looseObject({ address: z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, 'must be an IP address with prefix length, e.g. 10.0.0.5/24') }))
    .optional(),
});

const netConfSchema = z.looseObject({
  cniVersion: z.string(),
  name: z.string().min(1),
  type: z.literal('warren-cni'),
  agentSocket: z.string().regex(/^\//, 'must be an absolute path').default(DEFAULT_AGENT_SOCKET),
  excludeNamespaces: z.array(z.string().min(1)).default([...DEFAULT_EXCLUDE_NAMESPACES]),
  timeoutSeconds: z.number().positive().max(300).default(DEFAULT_TIMEOUT_SECONDS),
  prevResult: prevResultSchema.optional(),
});
export type WarrenNetConf = z.infer<typeof netConfSchema>;

/** CNI_ARGS as runtimes send it: `K=V;K=V` (a value may itself contain `=`). */
export function parseCniArgs(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined || text === '') return out;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniPluginError(CNI_ERROR.invalidEnvironment, `CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

interface PodContext {
  containerId: string;
  netns: string;
  podName: string;
  podNamespace: string;
  podUid: string;
}

function requireEnv(env: Record<string, string | undefined>, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new CniPluginError(CNI_ERROR.invalidEnvironment, `${name} is not set; the container runtime must pass it for ${env.CNI_COMMAND}`);
  return value;
}

/** The env ADD and CHECK need (the spec's required variables plus the pod identity kubelet runtimes put in CNI_ARGS). */
function podContext(env: Record<string, string | undefined>): PodContext {
  const containerId = requireEnv(env, 'CNI_CONTAINERID');
  const netns = requireEnv(env, 'CNI_NETNS');
  requireEnv(env, 'CNI_IFNAME');
  requireEnv(env, 'CNI_PATH');
  const args = parseCniArgs(env.CNI_ARGS);
  const arg = (key: string): string => {
    const value = args[key];
    if (value === undefined || value === '') throw new CniPluginError(CNI_ERROR.invalidEnvironment, `CNI_ARGS: ${key} is missing; warren-cni only runs for Kubernetes pods`);
    return value;
  };
  return { containerId, netns, podName: arg('K8S_POD_NAME'), podNamespace: arg('K8S_POD_NAMESPACE'), podUid: arg('K8S_POD_UID') };
}

function decode(stdin: string): unknown {
  try {
    return JSON.parse(stdin);
  } catch (err) {
    throw new CniPluginError(CNI_ERROR.decodeFailure, `network config on stdin is not valid JSON: ${(err as Error).message}`);
  }
}

function isSupported(version: unknown): version is string {
  return typeof version === 'string' && (SUPPORTED_CNI_VERSIONS as readonly string[]).includes(version);
}

function parseNetConf(raw: unknown, needPrevResult: boolean): WarrenNetConf {
  if (raw !== null && typeof raw === 'object' && 'cniVersion' in raw && typeof raw.cniVersion === 'string' && !isSupported(raw.cniVersion)) {
    throw new CniPluginError(CNI_ERROR.incompatibleVersion, `cniVersion ${raw.cniVersion} is not supported by warren-cni (supported: ${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  }
  const res = netConfSchema.safeParse(raw);
  if (!res.success) throw new CniPluginError(CNI_ERROR.invalidConfig, `invalid network config: ${describeIssue(res.error)}`);
  if (needPrevResult && res.data.prevResult === undefined) {
    throw new CniPluginError(CNI_ERROR.invalidConfig, 'invalid network config: prevResult: is required; warren-cni must be chained after an interface plugin such as bridge or ptp');
  }
  return res.data;
}

function output(value: object): string {
  return `${JSON.stringify(value)}\n`;
}

/** prevResult exactly as received (not the schema's copy), labelled with the config's version as the spec asks. */
function passThrough(raw: unknown, conf: WarrenNetConf): CniPluginOutput {
  const prev = (raw as { prevResult: Record<string, unknown> }).prevResult;
  return { exitCode: 0, stdout: output({ ...prev, cniVersion: conf.cniVersion }) };
}

function podIps(conf: WarrenNetConf): string[] {
  return (conf.prevResult?.ips ?? []).map((ip) => ip.address.slice(0, ip.address.lastIndexOf('/')));
}

class AgentDeadline extends Error {}

/** The deps' own timeout is the real one (it aborts the request); this one guarantees the answer even if it does not. */
async function askAgent(deps: CniPluginDeps, path: AgentPath, body: object, socket: string, timeoutMs: number): Promise<AgentResponse> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AgentDeadline()), timeoutMs);
  });
  try {
    return await Promise.race([deps.callAgent(path, body, socket, timeoutMs), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function agentMessage(body: string): string | undefined {
  try {
    const json: unknown = JSON.parse(body);
    if (json !== null && typeof json === 'object' && 'message' in json && typeof json.message === 'string') return json.message;
  } catch {
    // not JSON: the caller shows the raw body in details
  }
  return undefined;
}

async function add(env: Record<string, string | undefined>, stdin: string, deps: CniPluginDeps): Promise<CniPluginOutput> {
  const pod = podContext(env);
  const raw = decode(stdin);
  const conf = parseNetConf(raw, true);
  if (conf.excludeNamespaces.includes(pod.podNamespace)) return passThrough(raw, conf);
  const who = `pod ${pod.podNamespace}/${pod.podName}`;
  const timeoutMs = Math.round(conf.timeoutSeconds * 1000);
  const body = { ...pod, ips: podIps(conf) };
  let res: AgentResponse;
  try {
    res = await askAgent(deps, '/v1/cni/add', body, conf.agentSocket, timeoutMs);
  } catch (err) {
    const why = err instanceof AgentDeadline ? `no answer within ${conf.timeoutSeconds}s` : (err as Error).message;
    throw new CniPluginError(
      CNI_ERROR.tryAgainLater,
      `warren node agent at ${conf.agentSocket} did not confirm traffic redirection for ${who} (${why}); is the warren node agent running on this node?`,
      (err as NodeJS.ErrnoException).code ?? '',
      { cause: err },
    );
  }
  if (res.status !== 200) {
    const message = agentMessage(res.body);
    throw new CniPluginError(
      cniCodeForAgentStatus(res.status),
      `warren node agent could not enroll ${who} (HTTP ${res.status})${message === undefined ? '' : `: ${message}`}`,
      message === undefined ? res.body.slice(0, 500) : '',
    );
  }
  return passThrough(raw, conf);
}

/** Best effort: whatever goes wrong, the runtime sees success and no output. */
async function del(env: Record<string, string | undefined>, stdin: string, deps: CniPluginDeps): Promise<CniPluginOutput> {
  const done = { exitCode: 0, stdout: '' };
  try {
    const conf = netConfSchema.parse(JSON.parse(stdin));
    const args = parseCniArgs(env.CNI_ARGS);
    const containerId = env.CNI_CONTAINERID;
    const podNamespace = args.K8S_POD_NAMESPACE ?? '';
    if (containerId === undefined || containerId === '' || conf.excludeNamespaces.includes(podNamespace)) return done;
    const body = {
      podName: args.K8S_POD_NAME ?? '',
      podNamespace,
      podUid: args.K8S_POD_UID ?? '',
      containerId,
      netns: env.CNI_NETNS ?? '',
      ips: podIps(conf),
    };
    await askAgent(deps, '/v1/cni/del', body, conf.agentSocket, Math.min(DEL_TIMEOUT_MS, conf.timeoutSeconds * 1000));
  } catch {
    // The agent reconciles deleted pods from the API server anyway.
  }
  return done;
}

function errorOutput(err: unknown, cniVersion: string): CniPluginOutput {
  const e =
    err instanceof CniPluginError
      ? err
      : new CniPluginError(CNI_ERROR.agentRefused, `warren-cni internal error: ${(err as Error)?.message ?? String(err)}`);
  return { exitCode: 1, stdout: output({ cniVersion, code: e.cniCode, msg: e.message, details: e.details }) };
}

/** Runs one CNI invocation. Never throws: failures become the spec's error JSON on stdout and exit code 1. */
export async function runCniPlugin(env: Record<string, string | undefined>, stdin: string, deps: CniPluginDeps): Promise<CniPluginOutput> {
  const command = env.CNI_COMMAND;
  if (command === 'DEL') return del(env, stdin, deps);

  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch {
    raw = undefined;
  }
  const version = (raw as { cniVersion?: unknown } | null | undefined)?.cniVersion;
  const replyVersion = isSupported(version) ? version : '1.0.0';

  try {
    switch (command) {
      case 'VERSION':
        // The runtime may send nothing useful here: answer anyway, in the version it asked for when we know it.
        return { exitCode: 0, stdout: output({ cniVersion: isSupported(version) ? version : '1.1.0', supportedVersions: [...SUPPORTED_CNI_VERSIONS] }) };
      case 'ADD':
        return await add(env, stdin, deps);
      case 'CHECK': {
        podContext(env);
        parseNetConf(decode(stdin), true);
        return { exitCode: 0, stdout: '' };
      }
      case 'GC':
      case 'STATUS':
        // GC: nothing to collect here, the agent reconciles its pods against the API server.
        // STATUS: readiness is enforced per pod by ADD failing closed.
        parseNetConf(decode(stdin), false);
        return { exitCode: 0, stdout: '' };
      case undefined:
      case '':
        throw new CniPluginError(CNI_ERROR.invalidEnvironment, 'CNI_COMMAND is not set; warren-cni is a CNI plugin run by the container runtime');
      default:
        throw new CniPluginError(CNI_ERROR.invalidEnvironment, `CNI_COMMAND: unknown command ${JSON.stringify(command)} (supported: ADD, DEL, CHECK, VERSION, GC, STATUS)`);
    }
  } catch (err) {
    return errorOutput(err, replyVersion);
  }
}
