import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { ApiException, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { execa } from 'execa';
import { DATAPLANE_MODE_LABEL, REDIRECTION_ANNOTATION } from '../../k8s/enrollment.js';
import { NODE_PORTS, PORTS } from '../../redirect/constants.js';
import { readAccessLog, type AccessEntry } from '../../telemetry/access-log-file.js';
import { agentPaths } from '../agent-supervisor.js';
import { applyManifests } from '../client/apply.js';
import type { SimClient } from '../client/cluster-client.js';
import { httpGetInNetns } from '../../net/netns-http.js';
import { netnsPids } from '../topology/network.js';
import type { NodePlan } from '../topology/plan.js';
import { WARREN_MAIN } from '../warren-main.js';
import { startUnderlayCapture } from './capture.js';
import { describeAccess, metricExcerpt } from './evidence.js';
import { DEMO_MANIFEST, DEMO_NAMESPACE as NS, DEMO_POLICY, DEMO_POLICY_MANIFEST, IDENTITY } from './manifest.js';
import { parsePcap, summarizeCapture, type CaptureSummary } from './pcap.js';
import { runWaypointChapter } from './waypoint-chapter.js';
import { fail, ip, name, netnsOf, replyText, request, waitUntil, type Reply } from './story-kit.js';

const HBONE_PORT = PORTS.hbone;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface StoryContext {
  stateDir: string;
  client: SimClient;
  /** the cluster's node-1 and node-2 */
  nodes: { 'node-1': NodePlan; 'node-2': NodePlan };
  /** where the packet captures are written */
  captureDir: string;
  say(line: string): void;
}

interface DemoPods {
  client: V1Pod;
  web: V1Pod;
  intruder: V1Pod;
}

const restarts = (p: V1Pod): number => p.status?.containerStatuses?.reduce((n, c) => n + c.restartCount, 0) ?? 0;

async function listPods(ctx: StoryContext): Promise<V1Pod[]> {
  return (await ctx.client.core.listNamespacedPod({ namespace: NS })).items;
}

async function demoPods(ctx: StoryContext): Promise<DemoPods> {
  const pods = await listPods(ctx);
  const byApp = (app: string): V1Pod => pods.find((p) => p.metadata?.labels?.app === app) ?? fail(`no ${app} pod in namespace ${NS}; look at \`warren sim kubectl get pods -n ${NS}\``);
  return { client: byApp('client'), web: byApp('web'), intruder: byApp('client-b') };
}

const get = (from: V1Pod, host: string, port: number, path: string): Promise<Reply> => request(from, host, port, path);

/** The app processes of the demo pods, by pod name: the same list after enrollment means nothing restarted. */
async function podProcesses(pods: DemoPods): Promise<Map<string, { pids: number[]; restarts: number; uid: string }>> {
  const out = new Map<string, { pids: number[]; restarts: number; uid: string }>();
  for (const p of [pods.client, pods.web, pods.intruder]) out.set(name(p), { pids: await netnsPids(netnsOf(p)), restarts: restarts(p), uid: p.metadata!.uid! });
  return out;
}

/** Deletes the demo namespace (its pods, service accounts and policy go with it) and waits until it is gone. */
export async function removeDemoNamespace(client: SimClient): Promise<void> {
  try {
    await client.core.deleteNamespace({ name: NS });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return;
    throw err;
  }
  const gone = async (): Promise<boolean> => client.core.readNamespace({ name: NS }).then(() => false, () => true);
  if (!(await waitUntil(gone, 30_000))) fail(`namespace ${NS} was not deleted within 30 s; look at \`warren sim kubectl get ns ${NS} -o yaml\``);
}

/** Nodes Ready and both agents past their initial sync: enrollment is only as quick as the agents are up. */
async function clusterReady(ctx: StoryContext): Promise<void> {
  const started = Date.now();
  const nodesReady = async (): Promise<boolean> => {
    const nodes = (await ctx.client.core.listNode()).items.filter((n) => n.metadata?.name === 'node-1' || n.metadata?.name === 'node-2');
    return nodes.length === 2 && nodes.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  };
  const agentsReady = async (): Promise<boolean> => {
    for (const node of Object.values(ctx.nodes)) {
      const res = await httpGetInNetns({ netns: node.netns, host: '127.0.0.1', port: NODE_PORTS.readiness, path: '/healthz/ready', timeoutMs: 1000 }).catch(() => undefined);
      if (res?.status !== 200) return false;
    }
    return true;
  };
  if (!(await waitUntil(nodesReady, 30_000))) fail('node-1 and node-2 did not become Ready within 30 s; look at `warren sim kubectl get nodes` and `warren sim status`');
  if (!(await waitUntil(agentsReady, 60_000))) fail('the warren agents of node-1 and node-2 did not become ready within 60 s; look at `warren sim logs node/node-1`');
  ctx.say(`  node-1 and node-2 Ready, their warren agents ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

async function deploy(ctx: StoryContext): Promise<DemoPods> {
  if (await ctx.client.core.readNamespace({ name: NS }).then(() => true, () => false)) {
    ctx.say(`  namespace ${NS} exists (an earlier \`warren demo --keep\`?): deleting it first`);
    await removeDemoNamespace(ctx.client);
  }
  const applied = await applyManifests(ctx.client, DEMO_MANIFEST);
  ctx.say(`  ${applied.length} objects created: ${applied.map((l) => l.replace(/ (created|configured)$/, '')).join(', ')}`);
  const ready = async (): Promise<boolean> => {
    const pods = await listPods(ctx);
    return pods.length === 3 && pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  };
  if (!(await waitUntil(ready, 60_000))) fail(`the demo pods did not become ready within 60 s; look at \`warren sim kubectl get pods -n ${NS}\` and \`warren sim logs ${NS}/POD\``);
  const pods = await demoPods(ctx);
  for (const p of [pods.client, pods.web, pods.intruder]) {
    ctx.say(`  ${name(p).padEnd(26)} ${ip(p).padEnd(12)} ${p.spec!.nodeName}   sa ${String(p.spec!.serviceAccountName).padEnd(9)} pid ${(await netnsPids(netnsOf(p))).join(',')}`);
  }
  return pods;
}

async function resolveService(ctx: StoryContext, pods: DemoPods): Promise<string> {
  const fqdn = `web.${NS}.svc.cluster.local`;
  const resolved = await execa('ip', ['netns', 'exec', netnsOf(pods.client), 'getent', 'hosts', fqdn], { reject: false });
  const vip = resolved.stdout.split(/\s+/)[0];
  if (resolved.exitCode !== 0 || !vip) fail(`${fqdn} did not resolve inside the client pod (${resolved.stderr || `exit ${resolved.exitCode}`}); look at \`warren sim exec ${NS}/${name(pods.client)} -- cat /etc/resolv.conf\``);
  ctx.say(`  DNS in the client pod: ${fqdn} → ${vip}`);
  return vip!;
}

/**
 * One request from the client to the service while the underlay is captured. tcpdump
 * is stopped once what it wrote shows what the step checks for (`seen`), or after 5 s:
 * on a loaded machine it may not have read the packets yet when the reply is in.
 */
async function capturedRequest(ctx: StoryContext, pods: DemoPods, vip: string, file: string, seen: (summary: CaptureSummary) => boolean): Promise<{ marker: string; reply: Reply; summary: CaptureSummary }> {
  const marker = `/demo-${randomBytes(4).toString('hex')}`;
  const capture = await startUnderlayCapture(`${ctx.captureDir}/${file}`);
  const reply = await get(pods.client, vip, 80, marker); // never throws, so tcpdump is always stopped
  const segments = parsePcap(await capture.stop((s) => seen(summarizeCapture(s, `GET ${marker}`, HBONE_PORT))));
  ctx.say(`  client → http://web${marker}: ${replyText(reply)}`);
  if (!reply.ok || reply.pod !== name(pods.web)) fail(`the client's request to web (${vip}:80) did not get web's answer: ${replyText(reply)}; look at \`warren sim logs ${NS}/${name(pods.web)}\` and \`warren sim logs node/node-1\``);
  return { marker, reply, summary: summarizeCapture(segments, `GET ${marker}`, HBONE_PORT) };
}

async function plaintextBefore(ctx: StoryContext, pods: DemoPods, vip: string): Promise<void> {
  const { marker, summary } = await capturedRequest(ctx, pods, vip, 'plaintext.pcap', (summary) => summary.markerHits.length > 0);
  const hit = summary.markerHits[0];
  if (hit === undefined) fail(`"GET ${marker}" was not seen on the node-to-node link before enrollment (capture: ${ctx.captureDir}/plaintext.pcap)`);
  ctx.say(`  capture: "GET ${marker}" seen in clear on the node-to-node link (${hit!.src}:${hit!.srcPort} → ${hit!.dst}:${hit!.dstPort})`);
}

async function enroll(ctx: StoryContext, pods: DemoPods): Promise<DemoPods> {
  const before = await podProcesses(pods);
  const started = Date.now();
  await ctx.client.core.patchNamespace({ name: NS, body: { metadata: { labels: { [DATAPLANE_MODE_LABEL]: 'ambient' } } } }, mergePatch);
  const enrolled = async (): Promise<boolean> => (await listPods(ctx)).every((p) => p.metadata?.annotations?.[REDIRECTION_ANNOTATION] === 'enabled');
  if (!(await waitUntil(enrolled, 15_000))) fail(`the demo pods were not enrolled (annotation ${REDIRECTION_ANNOTATION}=enabled) within 15 s of labeling the namespace; look at \`warren sim logs node/node-1\` and \`warren workloads\``);
  ctx.say(`  3/3 pods enrolled in ${((Date.now() - started) / 1000).toFixed(1)} s (${REDIRECTION_ANNOTATION}=enabled)`);
  const now = await demoPods(ctx);
  const after = await podProcesses(now);
  for (const [pod, b] of before) {
    const a = after.get(pod);
    const same = a !== undefined && a.uid === b.uid && a.restarts === b.restarts && b.pids.length > 0 && a.pids.join() === b.pids.join();
    ctx.say(`  ${pod.padEnd(26)} pid ${b.pids.join(',')} → ${a?.pids.join(',') || 'gone'}, restarts ${b.restarts} → ${a?.restarts ?? '?'}${same ? '   same process, not restarted' : ''}`);
    if (!same) fail(`pod ${pod} did not keep its process through enrollment (pids ${b.pids.join(',')} → ${a?.pids.join(',') || 'none'}); look at \`warren sim kubectl get pods -n ${NS}\``);
  }
  const workloads = await execa(process.execPath, [WARREN_MAIN, 'workloads', '--state-dir', ctx.stateDir], { reject: false, timeout: 30_000 });
  ctx.say(`  $ warren workloads`);
  for (const line of `${workloads.stdout}${workloads.stderr}`.trim().split('\n')) ctx.say(`    ${line}`);
  if (workloads.exitCode !== 0) fail(`\`warren workloads\` failed (exit ${workloads.exitCode})`);
  for (const id of [IDENTITY.client, IDENTITY.web, IDENTITY.intruder]) {
    const short = id.replace(/^spiffe:\/\/[^/]+\/ns\//, '').replace('/sa/', '/');
    if (!workloads.stdout.includes(short)) fail(`\`warren workloads\` does not list identity ${short}`);
  }
  return now;
}

async function accessEntry(node: NodePlan, match: (e: AccessEntry) => boolean): Promise<AccessEntry | undefined> {
  let found: AccessEntry | undefined;
  await waitUntil(async () => (found = (await readAccessLog(agentPaths(node).log)).filter(match).at(-1)) !== undefined, 5000);
  return found;
}

async function mtlsAfter(ctx: StoryContext, pods: DemoPods, vip: string): Promise<void> {
  // Waiting for the tunnel's records also gives a plaintext leak (no records) the full 5 s to show.
  const tlsRecords = (summary: CaptureSummary): number => summary.tls.filter((f) => f.src === ip(pods.client) && f.dst === ip(pods.web)).reduce((n, f) => n + f.records, 0);
  const { marker, reply, summary } = await capturedRequest(ctx, pods, vip, 'mtls.pcap', (s) => tlsRecords(s) > 0);
  if (reply.ok && reply.clientIp !== ip(pods.client)) fail(`web saw the caller as ${reply.clientIp}, not the client pod's ${ip(pods.client)}`);
  const count = tlsRecords(summary);
  ctx.say(`  capture: ${summary.markerHits.length} plaintext markers; ${count} TLS records on ${ip(pods.client)} → ${ip(pods.web)}:${HBONE_PORT} (HBONE)`);
  if (summary.markerHits.length > 0) fail(`"GET ${marker}" crossed the node-to-node link in the clear after enrollment (capture: ${ctx.captureDir}/mtls.pcap)`);
  if (count === 0) fail(`no TLS records to ${ip(pods.web)}:${HBONE_PORT} in the capture after enrollment (capture: ${ctx.captureDir}/mtls.pcap); look at \`warren sim logs node/node-1\``);
  const ours = (reporter: AccessEntry['reporter']) => (e: AccessEntry): boolean =>
    e.reporter === reporter && e.security === 'mtls' && e.outcome === 'ok' && e.src.ip === ip(pods.client) && e.dst.ip === ip(pods.web) && e.src.identity === IDENTITY.client && e.dst.identity === IDENTITY.web;
  for (const [node, reporter] of [['node-1', 'source'], ['node-2', 'destination']] as const) {
    const entry = await accessEntry(ctx.nodes[node], ours(reporter));
    if (entry === undefined) fail(`${node}'s agent logged no ${reporter} access log line client (${IDENTITY.client}) → web (${IDENTITY.web}) over mTLS; look at \`warren sim logs node/${node}\``);
    ctx.say(`  access log (${node}, ${reporter}): ${describeAccess(entry!)}`);
  }
}

async function denyIntruder(ctx: StoryContext, pods: DemoPods): Promise<void> {
  const target = ip(pods.web);
  const beforePolicy = await get(pods.intruder, target, 8080, '/');
  ctx.say(`  without a policy, client-b → web: ${replyText(beforePolicy)}`);
  if (!beforePolicy.ok) fail(`client-b could not reach web before any policy: ${beforePolicy.error}`);
  const appliedAt = Date.now();
  for (const line of await applyManifests(ctx.client, DEMO_POLICY_MANIFEST)) ctx.say(`  ${line}`);
  let denied: Reply | undefined;
  const refused = async (): Promise<boolean> => !(denied = await get(pods.intruder, target, 8080, '/')).ok;
  if (!(await waitUntil(refused, 10_000))) fail(`client-b still reaches web 10 s after ${NS}/${DEMO_POLICY} was applied; look at \`warren policies\` and \`warren sim logs node/node-2\``);
  ctx.say(`  client-b → web: ${replyText(denied!)} (refused ${((Date.now() - appliedAt) / 1000).toFixed(1)} s after the policy was applied)`);
  if (denied!.ok === false && !/ECONNRESET|socket hang up/.test(denied!.error)) fail(`client-b's connection was not reset but: ${denied!.error}`);
  const allowed = await get(pods.client, target, 8080, '/');
  ctx.say(`  client   → web: ${replyText(allowed)}`);
  if (!allowed.ok) fail(`the client lost access to web under ${NS}/${DEMO_POLICY}: ${allowed.error}; look at \`warren sim logs node/node-2\``);
  const entry = await accessEntry(ctx.nodes['node-2'], (e) => e.reporter === 'destination' && e.outcome === 'denied' && e.src.identity === IDENTITY.intruder && `${e.policy ?? ''} ${e.reason ?? ''}`.includes(`${NS}/${DEMO_POLICY}`));
  if (entry === undefined) fail(`node-2's agent logged no denied line for client-b (${IDENTITY.intruder}) naming ${NS}/${DEMO_POLICY}; look at \`warren sim logs node/node-2\``);
  ctx.say(`  access log (node-2, destination): ${describeAccess(entry!)}`);
}

async function explain(ctx: StoryContext, pods: DemoPods): Promise<void> {
  const args = ['policies', 'explain', '--from', `${NS}/${name(pods.intruder)}`, '--to', `${NS}/${name(pods.web)}:8080`, '--state-dir', ctx.stateDir];
  ctx.say(`  $ warren ${args.slice(0, -2).join(' ')}`);
  const res = await execa(process.execPath, [WARREN_MAIN, ...args], { reject: false, timeout: 30_000 });
  for (const line of `${res.stdout}${res.stderr}`.trim().split('\n')) ctx.say(`    ${line}`);
  if (res.exitCode !== 0) fail(`warren policies explain exited ${res.exitCode}; look at \`warren sim logs node/node-2\``);
  if (!/DENY/.test(res.stdout) || !res.stdout.includes(`${NS}/${DEMO_POLICY}`)) fail(`warren policies explain did not say that ${NS}/${DEMO_POLICY} denies client-b`);
}

async function metrics(ctx: StoryContext): Promise<void> {
  const node = ctx.nodes['node-2'];
  const res = await httpGetInNetns({ netns: node.netns, host: '127.0.0.1', port: NODE_PORTS.metrics, path: '/metrics', timeoutMs: 5000 }).catch((err: Error) => fail(`node-2's agent metrics (:15020/metrics) did not answer: ${err.message}`));
  const text = res.body.toString();
  const flow = { reporter: 'destination', source_workload: 'client', destination_workload: 'web', connection_security_policy: 'mutual_tls' };
  const keep = ['reporter', 'source_workload', 'destination_workload', 'connection_security_policy'];
  const lines = [
    ...metricExcerpt(text, 'istio_tcp_connections_opened_total', flow, keep),
    ...metricExcerpt(text, 'istio_tcp_received_bytes_total', flow, keep),
    ...metricExcerpt(text, 'istio_tcp_sent_bytes_total', flow, keep),
    ...metricExcerpt(text, 'warren_policy_denials_total', {}, []),
  ];
  for (const line of lines) ctx.say(`  ${line}`);
  const value = (metric: string): number => lines.filter((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `)).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  if (!(value('istio_tcp_connections_opened_total') >= 2)) fail(`node-2's istio_tcp_connections_opened_total does not count the client's mTLS connections to web; look at \`ip netns exec ${node.netns} curl -s 127.0.0.1:15020/metrics\``);
  if (!(value('warren_policy_denials_total') >= 1)) fail(`node-2's warren_policy_denials_total does not count client-b's denied connection`);
}

/** The mesh story, step by step; throws ERR_DEMO naming what did not happen and where to look. */
export async function runStory(ctx: StoryContext): Promise<void> {
  const step = (text: string): void => ctx.say(`\n▸ ${text}`);
  await mkdir(ctx.captureDir, { recursive: true });

  step('waiting for the nodes and their warren agents');
  await clusterReady(ctx);

  step(`deploying namespace ${NS} (not in the mesh): Deployment client on node-1, Deployment web + Service web on node-2, Pod client-b on node-1; one service account each`);
  let pods = await deploy(ctx);
  const vip = await resolveService(ctx, pods);

  step('before the mesh: the client calls web; tcpdump watches the link between the nodes');
  await plaintextBefore(ctx, pods, vip);

  step(`enrolling without restarts: kubectl label namespace ${NS} ${DATAPLANE_MODE_LABEL}=ambient`);
  pods = await enroll(ctx, pods);

  step('the same call in the mesh: HBONE (HTTP/2 CONNECT in mutual TLS 1.3) between the nodes, with both identities');
  await mtlsAfter(ctx, pods, vip);

  step(`AuthorizationPolicy ${NS}/${DEMO_POLICY}: web accepts only ${IDENTITY.client}`);
  await denyIntruder(ctx, pods);

  step('why client-b is refused');
  await explain(ctx, pods);

  step("metrics: node-2's agent on :15020/metrics (Istio's metric names and labels; labels trimmed here)");
  await metrics(ctx);

  await runWaypointChapter({ stateDir: ctx.stateDir, client: ctx.client, say: ctx.say, step, pods, vip });
}
