import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { execa } from 'execa';
import { USE_WAYPOINT_LABEL } from '../../gateway/constants.js';
import { httpGetInNetns } from '../../net/netns-http.js';
import { applyManifests } from '../client/apply.js';
import type { SimClient } from '../client/cluster-client.js';
import { statePaths } from '../state-dir.js';
import { WARREN_MAIN } from '../warren-main.js';
import { metricExcerpt } from './evidence.js';
import {
  DEMO_CANARY_MANIFEST,
  DEMO_L7_POLICY,
  DEMO_L7_POLICY_MANIFEST,
  DEMO_NAMESPACE as NS,
  DEMO_POLICY,
  DEMO_POLICY_WITH_WAYPOINT_MANIFEST,
  DEMO_ROUTE_MANIFEST,
  DEMO_WAYPOINT,
  WAYPOINT_PRINCIPAL,
} from './manifest.js';
import { fail, ip, name, netnsOf, replyText, request, waitUntil, type Reply } from './story-kit.js';

/**
 * The demo's waypoint chapter (docs/architecture.md §13, §14): an L7 waypoint
 * for the web Service, an 80/20 canary by HTTPRoute weights counted over real
 * requests, and a method-level deny the waypoint enforces and
 * `warren policies explain --method/--path` explains.
 */

export interface WaypointChapterContext {
  stateDir: string;
  client: SimClient;
  say(line: string): void;
  step(text: string): void;
  pods: { client: V1Pod; web: V1Pod; intruder: V1Pod };
  /** the web Service's VIP */
  vip: string;
}

/** Requests the canary split is shown with: at p = 0.8 one standard deviation is 4, so 65–95 for v1 fails about once in 10 000 runs. */
const CANARY_REQUESTS = 100;
const CANARY_V1_RANGE = [65, 95] as const;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

async function warren(ctx: WaypointChapterContext, args: string[]): Promise<string> {
  ctx.say(`  $ warren ${args.join(' ')}`);
  const res = await execa(process.execPath, [WARREN_MAIN, ...args, '--kubeconfig', statePaths(ctx.stateDir).kubeconfig], { reject: false, timeout: 90_000 });
  for (const line of `${res.stdout}${res.stderr}`.trim().split('\n')) ctx.say(`    ${line}`);
  if (res.exitCode !== 0) fail(`\`warren ${args.join(' ')}\` exited ${res.exitCode}; look at \`warren sim logs ${NS}/<waypoint pod>\` and \`warren sim kubectl get gateways -n ${NS} -o yaml\``);
  return res.stdout;
}

async function waypointPod(client: SimClient): Promise<V1Pod | undefined> {
  const pods = (await client.core.listNamespacedPod({ namespace: NS, labelSelector: `gateway.networking.k8s.io/gateway-name=${DEMO_WAYPOINT}` })).items;
  return pods.find((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

async function createWaypoint(ctx: WaypointChapterContext): Promise<V1Pod> {
  await warren(ctx, ['waypoint', 'apply', '-n', NS, '--wait']);
  const pod = (await waypointPod(ctx.client)) ?? fail(`waypoint ${NS}/${DEMO_WAYPOINT} is programmed but no pod of it is ready; look at \`warren sim kubectl get pods -n ${NS}\``);
  ctx.say(`  waypoint pod ${name(pod)} ${ip(pod)} on ${pod.spec!.nodeName}, identity ${WAYPOINT_PRINCIPAL}`);
  return pod;
}

async function attach(ctx: WaypointChapterContext, waypoint: V1Pod): Promise<void> {
  for (const line of await applyManifests(ctx.client, DEMO_POLICY_WITH_WAYPOINT_MANIFEST)) ctx.say(`  ${line} (web's L4 policy now also admits ${WAYPOINT_PRINCIPAL}: behind a waypoint, web's agent sees the waypoint's identity)`);
  ctx.say(`  $ kubectl label service web -n ${NS} ${USE_WAYPOINT_LABEL}=${DEMO_WAYPOINT}`);
  await ctx.client.core.patchNamespacedService({ namespace: NS, name: 'web', body: { metadata: { labels: { [USE_WAYPOINT_LABEL]: DEMO_WAYPOINT } } } }, mergePatch);
  let reply: Reply | undefined;
  const through = async (): Promise<boolean> => (reply = await request(ctx.pods.client, ctx.vip, 80, '/')).ok && reply.status === 200 && reply.clientIp === ip(waypoint);
  if (!(await waitUntil(through, 30_000))) fail(`web's answers did not come through the waypoint (${ip(waypoint)}) within 30 s of labeling the Service (last: ${reply ? replyText(reply) : 'none'}); look at \`warren sim logs node/node-1\` and \`warren status\``);
  ctx.say(`  client → http://web/: ${replyText(reply!)}: the app is now called by the waypoint`);
}

async function canary(ctx: WaypointChapterContext): Promise<void> {
  const applied = [...(await applyManifests(ctx.client, DEMO_CANARY_MANIFEST)), ...(await applyManifests(ctx.client, DEMO_ROUTE_MANIFEST))];
  ctx.say(`  ${applied.join(', ')}`);
  const version = (r: Reply): string | undefined => (r.ok && r.status === 200 ? /^(web-v2)-|^(web)-/.exec(r.pod ?? '')?.slice(1).find((v) => v !== undefined) : undefined);
  const bothServe = async (): Promise<boolean> => {
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) seen.add(version(await request(ctx.pods.client, ctx.vip, 80, '/')));
    return seen.has('web') && seen.has('web-v2');
  };
  if (!(await waitUntil(bothServe, 60_000))) fail(`the 80/20 route did not send requests to both web and web-v2 within 60 s; look at \`warren sim kubectl get pods -n ${NS}\` and \`warren sim kubectl get httproutes -n ${NS} -o yaml\``);
  const counts = new Map<string, number>();
  for (let i = 0; i < CANARY_REQUESTS; i++) {
    const r = await request(ctx.pods.client, ctx.vip, 80, `/canary/${i}`);
    const v = version(r) ?? fail(`canary request ${i}: ${replyText(r)}`);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const [v1, v2] = [counts.get('web') ?? 0, counts.get('web-v2') ?? 0];
  ctx.say(`  ${CANARY_REQUESTS} requests to http://web/: web-v1 (Deployment web) served ${v1}, web-v2 served ${v2} (weights 80/20)`);
  if (v1 < CANARY_V1_RANGE[0] || v1 > CANARY_V1_RANGE[1]) fail(`web-v1 served ${v1} of ${CANARY_REQUESTS}, outside ${CANARY_V1_RANGE.join('–')} for an 80/20 split; look at \`warren routes --address <waypoint pod IP>:15020\``);
}

async function l7Deny(ctx: WaypointChapterContext): Promise<void> {
  for (const line of await applyManifests(ctx.client, DEMO_L7_POLICY_MANIFEST)) ctx.say(`  ${line}`);
  let denied: Reply | undefined;
  const refused = async (): Promise<boolean> => (denied = await request(ctx.pods.client, ctx.vip, 80, '/orders/1', 'DELETE')).ok && denied.status === 403;
  if (!(await waitUntil(refused, 30_000))) fail(`DELETE from the client still gets ${denied ? replyText(denied) : 'nothing'} 30 s after ${NS}/${DEMO_L7_POLICY} was applied; look at \`warren sim logs ${NS}/<waypoint pod>\``);
  const allowed = await request(ctx.pods.client, ctx.vip, 80, '/orders/1');
  const intruder = await request(ctx.pods.intruder, ctx.vip, 80, '/orders/1');
  ctx.say(`  client   GET    http://web/orders/1: ${replyText(allowed)}`);
  ctx.say(`  client   DELETE http://web/orders/1: ${replyText(denied!)}`);
  ctx.say(`  client-b GET    http://web/orders/1: ${replyText(intruder)}`);
  if (!allowed.ok || allowed.status !== 200 || allowed.pod === undefined) fail(`the client's GET is no longer served under ${NS}/${DEMO_L7_POLICY}: ${replyText(allowed)}`);
  if (!denied!.ok || denied!.pod !== undefined) fail(`the DELETE's 403 did not come from the waypoint: ${replyText(denied!)}`);
  if (!intruder.ok || intruder.status !== 403) fail(`client-b (${NS}/sa/intruder) is not refused by the waypoint: ${replyText(intruder)}`);
}

async function explain(ctx: WaypointChapterContext): Promise<void> {
  const to = `${NS}/${name(ctx.pods.web)}:8080`;
  const out = await warren(ctx, ['policies', 'explain', '--from', `${NS}/${name(ctx.pods.client)}`, '--to', to, '--method', 'DELETE', '--path', '/orders/1', '--state-dir', ctx.stateDir]);
  if (!new RegExp(`^\\s+DENY\\s+at waypoint ${NS}/${DEMO_WAYPOINT} .*${NS}/${DEMO_L7_POLICY}`, 'm').test(out)) fail(`warren policies explain --method DELETE did not say that waypoint ${NS}/${DEMO_WAYPOINT} denies it under ${NS}/${DEMO_L7_POLICY}`);
}

async function metrics(ctx: WaypointChapterContext, waypoint: V1Pod): Promise<void> {
  const res = await httpGetInNetns({ netns: netnsOf(waypoint), host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 }).catch((err: Error) => fail(`the waypoint's metrics (:15020/metrics) did not answer: ${err.message}`));
  const keep = ['reporter', 'destination_service_name', 'response_code'];
  const lines = [...metricExcerpt(res.body.toString(), 'istio_requests_total', { reporter: 'waypoint', source_workload: 'client' }, keep)];
  for (const line of lines) ctx.say(`  ${line}`);
  if (!lines.some((l) => /response_code="403"\} [1-9]/.test(l))) fail(`the waypoint's istio_requests_total does not count the 403s; look at \`ip netns exec ${netnsOf(waypoint)} curl -s 127.0.0.1:15020/metrics\``);
}

/** The chapter, step by step; throws ERR_DEMO naming what did not happen and where to look. */
export async function runWaypointChapter(ctx: WaypointChapterContext): Promise<void> {
  ctx.step(`an L7 waypoint for web: warren waypoint apply (a Gateway API Gateway; warren ca's controller runs its Deployment)`);
  const waypoint = await createWaypoint(ctx);

  ctx.step(`web uses it: label the Service; ${NS}/${DEMO_POLICY} admits the waypoint`);
  await attach(ctx, waypoint);

  ctx.step('a canary: web-v2 beside web, and an HTTPRoute sending 80 % to v1 and 20 % to v2');
  await canary(ctx);

  ctx.step(`AuthorizationPolicy ${NS}/${DEMO_L7_POLICY} at the waypoint: the client may GET, not DELETE; client-b may not`);
  await l7Deny(ctx);

  ctx.step('why the DELETE is refused');
  await explain(ctx);

  ctx.step("the waypoint's request metrics (istio_requests_total, reporter=\"waypoint\"; labels trimmed here)");
  await metrics(ctx, waypoint);
}
