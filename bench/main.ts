/**
 * npm run bench -- <name…>   (no name: all). See bench/README.md.
 * Every benchmark measures its baselines in the same run and reports ratios.
 */
import { benchPassthrough } from './passthrough.js';
import { benchSim } from './sim.js';
import { benchEnrollment } from './enrollment.js';
import { benchIdentityLibs, type Stats } from './identity-libs.js';
import { benchCaIssue } from './ca-issue.js';
import { resultSuffix, saveResult, table } from './report.js';
import { benchClusterIndex } from './cluster-index.js';
import { medianInterval } from './median-interval.js';
import { benchDataplane, dataplaneExperiment, dataplaneSettings, median, roundLine, type PathName, type PathSummary, type RoundMeasure } from './dataplane.js';
import { benchMetricsScrape } from './metrics-scrape.js';
import { benchPolicyEval, type Timing } from './policy-eval.js';
import { benchWaypoint, type WaypointBenchRow } from './waypoint.js';
import { benchReliability } from './reliability.js';
import { benchLoadAndSoak } from './reliability-load.js';

const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

async function passthrough(): Promise<void> {
  const rows = await benchPassthrough();
  const direct = rows.find((r) => r.variant === 'direct');
  const text = table(
    ['variant', '1 stream Gbit/s', '8 streams Gbit/s', 'p50 µs', 'p99 µs', '1-stream vs direct', 'p50 vs direct'],
    rows.map((r) => [
      r.variant,
      fmt(r.gbit1),
      fmt(r.gbit8),
      fmt(r.p50us, 1),
      fmt(r.p99us, 1),
      direct ? `${fmt(r.gbit1 / direct.gbit1)}×` : 'n/a',
      direct ? `${fmt(r.p50us / direct.p50us)}×` : 'n/a',
    ]),
  );
  console.log(text);
  console.log(`saved ${saveResult('passthrough', text, rows)}`);
}

async function sim(): Promise<void> {
  const r = await benchSim();
  const text = table(
    ['measure', 'value', 'relative'],
    [
      ['sim up, 2 nodes (netns, control plane, nodes Ready)', `${fmt(r.upSeconds)} s`, ''],
      [`${r.pods} pods (20 per node) from apply to all Ready`, `${fmt(r.podsReadySeconds)} s`, `${fmt((r.podsReadySeconds * 1000) / r.pods, 0)} ms/pod`],
      ['sim down (pods, CNI DEL, netns, files)', `${fmt(r.downSeconds)} s`, ''],
      ['API creates via client-node 1.4 (new TLS connection per request)', `${fmt(r.clientNodeWritesPerSecond, 0)} /s`, `${fmt(r.clientNodeWritesPerSecond / r.writesPerSecond, 2)}× keep-alive`],
      [`API creates, keep-alive HTTPS (${r.objects}, 16 in flight)`, `${fmt(r.writesPerSecond, 0)} /s`, 'baseline'],
      [`watch events delivered to ${r.informers} informers`, `${fmt(r.eventsPerSecond, 0)} /s`, `${fmt(r.eventsPerSecond / r.writesPerSecond, 1)}× writes`],
      ['API server RSS, empty', `${fmt(r.rssEmptyMiB, 1)} MiB`, 'baseline'],
      ['API server RSS, 1000 pods', `${fmt(r.rss1000PodsMiB, 1)} MiB`, `+${fmt(r.rss1000PodsMiB - r.rssEmptyMiB, 1)} MiB (${fmt(((r.rss1000PodsMiB - r.rssEmptyMiB) * 1024) / 1000, 1)} KiB/pod)`],
    ],
  );
  console.log(text);
  console.log(`saved ${saveResult('sim', text, r)}`);
}

async function enrollment(): Promise<void> {
  const r = await benchEnrollment();
  const c = r.cniAddMs;
  const text = table(
    ['measure', 'value', 'relative'],
    [
      [`label a namespace of ${r.pods} running pods → all annotated enabled`, `${fmt(r.enrollSeconds)} s`, `${fmt((r.enrollSeconds * 1000) / r.pods, 1)} ms/pod`],
      [
        'per pod enrolled by the label, p50 / p99 ms (agent log): ' + Object.keys(r.phasesMs).join(' / '),
        Object.values(r.phasesMs).map((p) => `${fmt(p.p50, 0)}/${fmt(p.p99, 0)}`).join('  '),
        '',
      ],
      [
        `one pod's nft rules applied + removed, p50 / p99 (n=${r.podNftMs.n}, one netns)`,
        `${fmt(r.podNftMs.library.p50)} / ${fmt(r.podNftMs.library.p99)} ms`,
        `nsenter + nft processes: ${fmt(r.podNftMs.process.p50)} / ${fmt(r.podNftMs.process.p99)} ms`,
      ],
      [`CNI ADD chain, excluded namespace (plugin does not ask the agent), p50 / p99`, `${fmt(c.excluded.p50, 0)} / ${fmt(c.excluded.p99, 0)} ms`, `baseline (n=${c.excluded.n})`],
      [`CNI ADD chain, unlabeled namespace (agent asked, declines), p50 / p99`, `${fmt(c.unlabeled.p50, 0)} / ${fmt(c.unlabeled.p99, 0)} ms`, `${fmt(c.unlabeled.p50 / c.excluded.p50)}× p50 (n=${c.unlabeled.n})`],
      [`CNI ADD chain, enrolled namespace (rules + listeners first), p50 / p99`, `${fmt(c.enrolled.p50, 0)} / ${fmt(c.enrolled.p99, 0)} ms`, `${fmt(c.enrolled.p50 / c.excluded.p50)}× p50 (n=${c.enrolled.n})`],
      ['CNI ADD added by enrollment (enrolled − excluded), p50 / p99', `${fmt(c.enrolled.p50 - c.excluded.p50, 0)} / ${fmt(c.enrolled.p99 - c.excluded.p99, 0)} ms`, ''],
      [`agent restart: ${r.resync.pods} pods re-enrolled, from the new agent's start`, `${fmt(r.resync.fromStartSeconds)} s`, `${fmt(r.resync.fromKillSeconds)} s from the kill`],
      [`plugin binary run alone (VERSION), p50 / p99`, `${fmt(r.pluginStartMs.p50)} / ${fmt(r.pluginStartMs.p99)} ms`, `/bin/true spawned alike: ${fmt(r.pluginStartMs.trueP50)} / ${fmt(r.pluginStartMs.trueP99)} ms (n=${r.pluginStartMs.n})`],
      ['agent RSS (node-1), nothing enrolled', `${fmt(r.agentRssIdleMiB, 1)} MiB`, 'baseline'],
      [`agent RSS (node-1), ${r.enrolledOnNode} pods enrolled`, `${fmt(r.agentRssEnrolledMiB, 1)} MiB`, `+${fmt(r.agentRssEnrolledMiB - r.agentRssIdleMiB, 1)} MiB`],
      ['agent RSS / heap after a full GC, nothing enrolled', `${fmt(r.afterGc.idle.rssMiB, 1)} / ${fmt(r.afterGc.idle.heapMiB, 1)} MiB`, 'baseline'],
      [
        `agent RSS / heap after a full GC, ${r.enrolledOnNode} pods enrolled`,
        `${fmt(r.afterGc.enrolled.rssMiB, 1)} / ${fmt(r.afterGc.enrolled.heapMiB, 1)} MiB`,
        `+${fmt(((r.afterGc.enrolled.rssMiB - r.afterGc.idle.rssMiB) * 1024) / r.enrolledOnNode, 0)} / +${fmt(((r.afterGc.enrolled.heapMiB - r.afterGc.idle.heapMiB) * 1024) / r.enrolledOnNode, 0)} KiB per pod`,
      ],
    ],
  );
  console.log(text);
  console.log(`saved ${saveResult('enrollment', text, r)}`);
}

async function identityLibs(): Promise<void> {
  const r = await benchIdentityLibs();
  const ms = (s: Stats): string => `${fmt(s.meanMs)} / ${fmt(s.p50Ms)} / ${fmt(s.p99Ms)} ms`;
  // two significant digits: keygen ratios are far below 0.01
  const ratio = (x: number): string => (Number.isFinite(x) ? `${Number(x.toPrecision(2))}×` : 'n/a');
  const rel = (ec: Stats, rsa: Stats): string => `${ratio(ec.meanMs / rsa.meanMs)} time`;
  const k = r.keygen;
  const hs = (h: typeof r.tls.rsa): string => `${fmt(h.perSecond, 0)} /s (p50 ${fmt(h.p50Ms)}, p99 ${fmt(h.p99Ms)} ms)`;
  const text = table(
    ['measure (mean / p50 / p99, n per variant)', 'RSA-2048 (node-forge)', 'ECDSA P-256 (@peculiar/x509)', 'relative (ECDSA ÷ RSA)'],
    [
      [`keygen, node:crypto generateKeyPairSync rsa / ec (n=${k.nodeRsa.n})`, ms(k.nodeRsa), ms(k.nodeEc), rel(k.nodeEc, k.nodeRsa)],
      [`keygen, forge generateKeyPair (native inside) / webcrypto (n=${k.forgeRsa.n})`, ms(k.forgeRsa), ms(k.webcryptoEc), rel(k.webcryptoEc, k.forgeRsa)],
      [`keygen, forge pure JavaScript (n=${k.forgeJsRsa.n})`, ms(k.forgeJsRsa), '', `${ratio(k.webcryptoEc.meanMs / k.forgeJsRsa.meanMs)} time (webcrypto)`],
      [`CSR with SPIFFE URI SAN: build, sign, PEM (n=${r.csr.forgeRsa.n})`, ms(r.csr.forgeRsa), ms(r.csr.x509Ec), rel(r.csr.x509Ec, r.csr.forgeRsa)],
      [`CA: parse + verify CSR, issue + sign cert, PEM (n=${r.issue.forgeRsa.n})`, ms(r.issue.forgeRsa), ms(r.issue.x509Ec), rel(r.issue.x509Ec, r.issue.forgeRsa)],
      [`verify leaf against CA, with the library (n=${r.verify.forgeRsa.n})`, ms(r.verify.forgeRsa), ms(r.verify.x509Ec), rel(r.verify.x509Ec, r.verify.forgeRsa)],
      [`verify leaf against CA, node:crypto X509Certificate (n=${r.nodeVerify.rsa.n})`, ms(r.nodeVerify.rsa), ms(r.nodeVerify.ec), rel(r.nodeVerify.ec, r.nodeVerify.rsa)],
      ['leaf certificate size (DER)', `${r.leafDerBytes.rsa} B`, `${r.leafDerBytes.ec} B`, `${ratio(r.leafDerBytes.ec / r.leafDerBytes.rsa)} size`],
      [`mTLS 1.3 handshakes, loopback, new connection each (${r.tls.rsa.handshakes} / ${r.tls.ec.handshakes})`, hs(r.tls.rsa), hs(r.tls.ec), `${ratio(r.tls.ec.perSecond / r.tls.rsa.perSecond)} rate`],
      ['mTLS 1.3 handshake CPU, client + server sides', `${fmt(r.tls.rsa.cpuMsPerHandshake)} ms`, `${fmt(r.tls.ec.cpuMsPerHandshake)} ms`, `${ratio(r.tls.ec.cpuMsPerHandshake / r.tls.rsa.cpuMsPerHandshake)} time`],
    ],
  );
  console.log(text);
  console.log(`saved ${saveResult('identity-libs', text, r)}`);
}

async function ca(): Promise<void> {
  const r = await benchCaIssue();
  const ms = (s: Stats): string => `${fmt(s.p50Ms)} / ${fmt(s.p99Ms)} ms`;
  const cpu = (s: { cpuMsPerOp: number }): string => `CPU ${fmt(s.cpuMsPerOp, 1)} ms`;
  const t = r.throughput;
  const tput = (x: typeof t.serial): string => `${fmt(x.perSecond, 0)} /s (p50 ${fmt(x.p50Ms, 1)}, p99 ${fmt(x.p99Ms, 1)} ms)`;
  const hs = (h: typeof r.tls.rsa): string => `${fmt(h.perSecond, 0)} /s (p50 ${fmt(h.p50Ms)}, p99 ${fmt(h.p99Ms)} ms)`;
  const text = table(
    ['measure (p50 / p99 where two; CPU: process CPU per operation, all parties in one process)', 'value', 'relative'],
    [
      [
        `issue end to end, CertManager.acquire, a new identity each (n=${r.e2e.n}): keygen, CSR, HTTPS POST, TokenReview, pod lookup, CSR check, sign, agent verify`,
        `${ms(r.e2e)} (${cpu(r.e2e)})`,
        `${fmt(r.e2e.p50Ms / r.local.p50Ms, 1)}× / ${fmt(r.e2e.p99Ms / r.local.p99Ms, 1)}× local`,
      ],
      [`local: keygen, CSR, checkCsr, signWorkloadCert, agent verify, in-process (n=${r.local.n})`, `${ms(r.local)} (${cpu(r.local)})`, 'baseline'],
      [
        `the CA's API call alone: TokenReview, client-node (pods on the node: watch cache, ≤${r.podsPerNode} per node) (n=${r.apiCalls.n})`,
        `${ms(r.apiCalls)} (${cpu(r.apiCalls)})`,
        `${fmt((100 * r.apiCalls.p50Ms) / r.e2e.p50Ms, 0)}% of e2e p50`,
      ],
      [`CA throughput, ${t.serial.requests} requests, 1 in flight (CSRs pre-generated: no client keygen)`, tput(t.serial), 'baseline'],
      [`CA throughput, ${t.parallel.requests} requests, ${t.parallel.inFlight} in flight (CSRs pre-generated)`, tput(t.parallel), `${fmt(t.parallel.perSecond / t.serial.perSecond)}× 1 in flight`],
      [
        `CA throughput: process CPU per certificate, 1 / ${t.parallel.inFlight} in flight (agent client + CA + API server, one process)`,
        `${fmt(t.serial.cpuMsPerCert)} / ${fmt(t.parallel.cpuMsPerCert)} ms`,
        `${fmt((t.serial.cpuMsPerCert * t.serial.perSecond) / 1000)} / ${fmt((t.parallel.cpuMsPerCert * t.parallel.perSecond) / 1000)} cores busy`,
      ],
      [`mTLS 1.3 handshakes, RSA-2048 chain (node-forge), loopback, new connection each (${r.tls.rsa.handshakes})`, hs(r.tls.rsa), 'baseline'],
      [`mTLS 1.3 handshakes, ECDSA P-256 leaves from warren's CA (${r.tls.ec.handshakes})`, hs(r.tls.ec), `${fmt(r.tls.ec.perSecond / r.tls.rsa.perSecond)}× RSA rate`],
      ['mTLS 1.3 handshake CPU, client + server sides, RSA / ECDSA', `${fmt(r.tls.rsa.cpuMsPerHandshake)} / ${fmt(r.tls.ec.cpuMsPerHandshake)} ms`, `${fmt(r.tls.ec.cpuMsPerHandshake / r.tls.rsa.cpuMsPerHandshake)}× RSA time`],
      ['ECDSA handshakes per certificate issued (16 in flight), by rate', '', `${fmt(r.tls.ec.perSecond / t.parallel.perSecond, 1)}×`],
    ],
  );
  console.log(text);
  console.log(`saved ${saveResult('ca', text, r)}`);
}

async function clusterIndex(): Promise<void> {
  const r = await benchClusterIndex();
  const kib = (b: number): string => `${fmt(b / 1024, 1)} KiB`;
  const text = table(
    ['measure', 'value', 'relative'],
    [
      [`cluster index heap per 1000 pods (${r.pods} pods, a Service + EndpointSlice per 10)`, kib(r.indexBytesPer1000Pods), `${fmt(r.indexBytesPer1000Pods / r.objectsBytesPer1000Pods)}× the API objects`],
      ['the API objects it is built from (informer caches), per 1000 pods', kib(r.objectsBytesPer1000Pods), 'baseline'],
      [`rebuild from ${r.pods} pods`, `${fmt(r.rebuildMs, 1)} ms`, ''],
      ['lookup: workload by IP + service by VIP:port', `${fmt(r.lookupNs, 0)} ns`, r.gcExposed ? '' : '(run with --expose-gc for exact heap numbers)'],
    ],
  );
  console.log(text);
  console.log(`saved ${saveResult('cluster-index', text, r)}`);
}

async function dataplane(): Promise<void> {
  const r = await benchDataplane();
  const c = r.config;
  const [direct, stunnel, captured, nodeTls, warren, native, noPool, real] = (['direct', 'stunnel', 'stunnel-captured', 'node-tls', 'warren', 'native', 'warren-nopool', 'warren-real'] as const).map((p) => r.summary.find((s) => s.path === p)!) as [
    PathSummary,
    PathSummary,
    PathSummary,
    PathSummary,
    PathSummary,
    PathSummary,
    PathSummary,
    PathSummary,
  ];
  // the build DATAPLANE_COMPARE named, measured in the same rounds (absent otherwise)
  const before = r.summary.find((s) => s.path === 'before');
  const x = (a: number, b: number): string => (Number.isFinite(a / b) ? `${fmt(a / b)}×` : 'n/a');
  // `ok` compares figures; a figure a narrowed run did not measure (NaN) meets and misses nothing
  const goal = (ok: boolean, what: string, ...figures: number[]): string =>
    `${what}: ${figures.some((f) => Number.isNaN(f)) ? 'not measured' : ok ? 'met' : 'MISSED'}`;
  type Key = Exclude<keyof PathSummary, 'path'>;
  // how firmly the rounds tell a goal of native ÷ stunnel: their ratios' median and its interval
  const firmly = (text: string, measure: keyof typeof RATIO_MEASURES): string => `${text}; same-round ${ratioSummary(sameRoundRatioList(r.rounds, 'native', 'stunnel', RATIO_MEASURES[measure]))}`;
  // The goals are issue 19's, for the native data path (--dataplane native).
  const row = (label: string, key: Key, digits: number, goalText = '', noDirect = false): string[] => [
    label,
    noDirect ? '—' : fmt(direct[key], digits),
    fmt(stunnel[key], digits),
    fmt(captured[key], digits),
    fmt(nodeTls[key], digits),
    fmt(warren[key], digits),
    fmt(native[key], digits),
    fmt(noPool[key], digits),
    fmt(real[key], digits),
    ...(before === undefined ? [] : [fmt(before[key], digits), x(native[key], before[key])]),
    x(native[key], stunnel[key]),
    x(native[key], captured[key]),
    x(captured[key], stunnel[key]),
    x(warren[key], stunnel[key]),
    x(noPool[key], stunnel[key]),
    x(real[key], stunnel[key]),
    x(nodeTls[key], stunnel[key]),
    noDirect ? 'n/a' : x(native[key], direct[key]),
    goalText,
  ];
  const text = table(
    ['measure (median of rounds)', 'direct', 'stunnel', 'stunnel captured', 'node-tls', 'warren', 'native', 'pool off', 'real config', ...(before === undefined ? [] : ['before', 'native ÷ before']), 'native ÷ stunnel', 'native ÷ stunnel captured', 'stunnel captured ÷ stunnel', 'warren ÷ stunnel', 'pool off ÷ stunnel', 'real config ÷ stunnel', 'node-tls ÷ stunnel', 'native ÷ direct', 'goal (native)'],
    [
      row(`throughput, iperf3 -P1 -t ${c.iperfSeconds} -O ${c.iperfOmitSeconds}, Gbit/s`, 'gbit1', 2, firmly(goal(native.gbit1 >= stunnel.gbit1, '≥ 1.0× stunnel', native.gbit1, stunnel.gbit1), 'gbit1')),
      row(`throughput, iperf3 -P8 -t ${c.iperfSeconds} -O ${c.iperfOmitSeconds}, Gbit/s`, 'gbit8', 2, firmly(goal(native.gbit8 >= stunnel.gbit8, '≥ 1.0× stunnel', native.gbit8, stunnel.gbit8), 'gbit8')),
      row('  proxy CPU-seconds per GB sent, iperf3 -P1 (utime+stime of the proxy processes, warm-up included)', 'cpuSecondsPerGB1', 2, goal(native.cpuSecondsPerGB1 <= stunnel.cpuSecondsPerGB1, '≤ stunnel', native.cpuSecondsPerGB1, stunnel.cpuSecondsPerGB1), true),
      row('  the same, iperf3 -P8', 'cpuSecondsPerGB8', 2, goal(native.cpuSecondsPerGB8 <= stunnel.cpuSecondsPerGB8, '≤ stunnel', native.cpuSecondsPerGB8, stunnel.cpuSecondsPerGB8), true),
      row(`${c.rrBytes} B request/response at ${c.rrRate}/s, one connection (${c.rrRequests}, first tenth dropped), timed from the scheduled send, p50 µs`, 'p50us', 0),
      row('  the same, p99 µs', 'p99us', 0),
      row('  added latency (path − direct, same round), p50 µs', 'addedP50us', 0, firmly(goal(native.addedP50us <= stunnel.addedP50us, '≤ 1.0× stunnel', native.addedP50us, stunnel.addedP50us), 'addedP50us'), true),
      row('  added latency (path − direct, same round), p99 µs', 'addedP99us', 0, firmly(goal(native.addedP99us <= stunnel.addedP99us, '≤ 1.0× stunnel', native.addedP99us, stunnel.addedP99us), 'addedP99us'), true),
      row('  the same requests timed from their actual send (the round trip through the path, without the load generator\'s timer jitter), p50 µs', 'rttP50us', 0),
      row('  the same, p99 µs', 'rttP99us', 0),
      row('  added round trip (path − direct, same round), p50 µs', 'addedRttP50us', 0, firmly(goal(native.addedRttP50us <= stunnel.addedRttP50us, '≤ 1.0× stunnel', native.addedRttP50us, stunnel.addedRttP50us), 'addedRttP50us'), true),
      row('  added round trip (path − direct, same round), p99 µs', 'addedRttP99us', 0, firmly(goal(native.addedRttP99us <= stunnel.addedRttP99us, '≤ 1.0× stunnel', native.addedRttP99us, stunnel.addedRttP99us), 'addedRttP99us'), true),
      row(`  achieved rate, requests/s (lowest round; target ${c.rrRate})`, 'rrAchievedRateMin', 0),
      row('  requests sent over one interval late (most in a round)', 'rrLateMax', 0),
      row(`  rounds that fell behind the schedule (of ${c.rounds}: achieved < 95% or > 1% late; their latency includes that queueing)`, 'rrRoundsBehind', 0),
      row(
        `new connections/s (${c.connConcurrency} workers × ${c.connSeconds} s: connect, ${c.rrBytes} B req/resp, close; warren, native, real config: a stream on a pooled HBONE connection; pool off, stunnel, node-tls: a TLS handshake each)`,
        'connPerSecond',
        0,
        goal(native.connPerSecond >= 1.5 * stunnel.connPerSecond, '≥ 1.5× stunnel', native.connPerSecond, stunnel.connPerSecond),
      ),
      row('proxy CPU-seconds per 1000 requests (utime+stime of the proxy processes over the rr run)', 'cpuSecondsPer1000Requests', 3, '', true),
      row('proxy CPU-seconds per 1000 new connections (over the connection-rate run)', 'cpuSecondsPer1000Connections', 3, '', true),
      row(
        `proxy RSS per 10 000 idle connections, MiB (rounds ${c.idleRounds.join(', ')}; ${c.idleConnections} asked, fewest held: stunnel ${stunnel.idleOpenedMin}, node-tls ${nodeTls.idleOpenedMin}, warren ${warren.idleOpenedMin}, native ${native.idleOpenedMin}, real config ${real.idleOpenedMin}; pool off: not measured, the HBONE server's 256 connections per peer; direct: the tcp-load server in B)`,
        'rssMiBPer10kIdle',
        1,
        '',
        true,
      ),
      row('  the same per idle connection, KiB', 'rssKiBPerIdleConnection', 2, goal(native.rssKiBPerIdleConnection <= 4, '≤ 4 KiB', native.rssKiBPerIdleConnection)),
    ],
  );
  console.log(text);
  const measured = [...new Set(r.rounds.map((m) => m.path))].join(', ');
  const runLine = `${c.rounds} interleaved rounds (${measured}), ${fmt(r.seconds, 0)} s in all; ${c.stunnel}, ${c.iperf3}, Node ${process.versions.node} (OpenSSL ${process.versions.openssl})`;
  const notes =
    'node-tls: stunnel\'s design in Node (bench/node-tls-proxy.ts), the ceiling of a data path on Node\'s TLS. ' +
    'direct, idle: RSS per accepted socket of a Node server, what a Node proxy holds per connection and side before any state of its own. ' +
    'stunnel and node-tls are addressed at 127.0.0.1 in A: they skip the NAT capture (REDIRECT) that every warren path pays; ' +
    "stunnel captured: the same stunnel pair, the app in A dialing B:port and A's nat output chain redirecting it to stunnel's client (warren's capture rule, bench/pod-rules.ts), idle not measured. " +
    "warren, native and pool off: no policies, access log counted, not written; real config: 56 AuthorizationPolicies loaded (the traffic allowed by an ALLOW rule) and every access log line written (bench/dataplane-proxy.ts). " +
    'native: warren with --dataplane native (the addon\'s worker threads, Node\'s OpenSSL and nghttp2).';
  console.log(runLine);
  console.log(notes);
  const perRound = [
    sameRoundRatios(r.rounds, 'native', 'stunnel'),
    sameRoundRatios(r.rounds, 'native', 'stunnel-captured'),
    sameRoundRatios(r.rounds, 'stunnel-captured', 'stunnel'),
    ...(before === undefined ? [] : [sameRoundRatios(r.rounds, 'native', 'before'), sameRoundRatios(r.rounds, 'warren', 'before')]),
  ].join('\n');
  console.log(perRound);
  const settings = dataplaneSettings();
  const settingsLine = `settings: ${settings.length === 0 ? 'none (the defaults)' : settings.join(' ')}`;
  // A run narrowed or altered by the knobs is saved apart from the benchmark, its settings listed.
  const suffix = resultSuffix('DATAPLANE_RESULT_NAME');
  const name = `${dataplaneExperiment() ? 'dataplane-experiment' : 'dataplane'}${suffix}`;
  const rounds = r.rounds.map((m) => roundLine(m)).join('\n');
  console.log(`saved ${saveResult(name, `${text}\n\n${runLine}\n${settingsLine}\n${notes}\n\n${perRound}\n\nper round:\n${rounds}`, r)}`);
}

/** over direct's of the same round */
const addedOver =
  (raw: 'p50us' | 'p99us' | 'rttP50us' | 'rttP99us') =>
  (m: RoundMeasure, rounds: RoundMeasure[]): number => {
    const direct = rounds.find((d) => d.round === m.round && d.path === 'direct');
    return direct === undefined ? NaN : m[raw] - direct[raw];
  };
/** each per-round ratio's name and how it is read from a round measure */
const RATIO_MEASURES = {
  gbit1: (m: RoundMeasure) => m.gbit1,
  gbit8: (m: RoundMeasure) => m.gbit8,
  cpuSecondsPerGB1: (m: RoundMeasure) => m.cpuSecondsPerGB1,
  cpuSecondsPerGB8: (m: RoundMeasure) => m.cpuSecondsPerGB8,
  addedP50us: addedOver('p50us'),
  addedP99us: addedOver('p99us'),
  addedRttP50us: addedOver('rttP50us'),
  addedRttP99us: addedOver('rttP99us'),
  cpuSecondsPer1000Requests: (m: RoundMeasure) => m.cpuSecondsPer1000Requests,
  connPerSecond: (m: RoundMeasure) => m.connPerSecond,
  cpuSecondsPer1000Connections: (m: RoundMeasure) => m.cpuSecondsPer1000Connections,
} satisfies Record<string, (m: RoundMeasure, rounds: RoundMeasure[]) => number>;

/** Path `a`'s measure over path `b`'s, round by round (the same round, so the same state of the shared machine). */
function sameRoundRatioList(rounds: RoundMeasure[], a: PathName, b: PathName, value: (m: RoundMeasure, rounds: RoundMeasure[]) => number): number[] {
  return rounds
    .filter((m) => m.path === a)
    .map((m) => {
      const other = rounds.find((o) => o.round === m.round && o.path === b);
      return other === undefined ? NaN : value(m, rounds) / value(other, rounds);
    });
}

/** the same-round ratios' median and its 95 % interval (bench/median-interval.ts), as text */
function ratioSummary(ratios: number[]): string {
  if (!ratios.some((v) => Number.isFinite(v))) return 'not measured';
  const interval = medianInterval(ratios);
  const range = interval === undefined ? 'too few rounds for a 95 % interval' : `${fmt(interval.coverage * 100, 1)} % interval ${fmt(interval.low)}–${fmt(interval.high)}`;
  return `median ${fmt(median(ratios.filter((v) => Number.isFinite(v))))} (${range})`;
}

/** Per-round ratios of path `a` to path `b`, their medians and the medians' intervals. */
function sameRoundRatios(rounds: RoundMeasure[], a: PathName, b: PathName): string {
  const lines = Object.entries(RATIO_MEASURES).map(([name, value]) => {
    const ratios = sameRoundRatioList(rounds, a, b, value);
    return `  ${name}: ${ratios.map((v) => fmt(v)).join(' ')}  ${ratioSummary(ratios)}`;
  });
  return `same-round ${a} ÷ ${b} (per round, then the median and its interval):\n${lines.join('\n')}`;
}

async function metricsScrape(): Promise<void> {
  const r = await benchMetricsScrape();
  const kib = (b: number): string => `${fmt(b / 1024, 0)} KiB`;
  const text = table(
    ['measure', 'value', 'relative'],
    [
      ['/metrics, agent metrics only: p50 / p99', `${fmt(r.baseline.p50ms)} / ${fmt(r.baseline.p99ms)} ms`, `baseline (${r.baseline.series} samples, ${kib(r.baseline.bytes)})`],
      [`/metrics, ${r.pods} pods × ${r.labelSets / r.pods} peers: p50 / p99`, `${fmt(r.loaded.p50ms)} / ${fmt(r.loaded.p99ms)} ms`, `${fmt(r.loaded.p50ms / r.baseline.p50ms, 1)}× (${r.loaded.series} samples, ${kib(r.loaded.bytes)})`],
      ['telemetry per connection (open + close, series exist)', `${fmt(r.perConnectionNs / 1000)} µs`, ''],
      ['telemetry per connection, first of a workload pair', `${fmt(r.newSeriesNs / 1000)} µs`, `${fmt(r.newSeriesNs / r.perConnectionNs, 1)}× steady`],
    ],
  );
  console.log(text);
  console.log(`saved ${saveResult('metrics-scrape', text, r)}`);
}


async function policyEval(): Promise<void> {
  const result = await benchPolicyEval();
  const t = (x: Timing): string => `${fmt(x.p50Ns, 0)} ns  ${fmt(x.opsPerSecond / 1e6, 2)} M/s`;
  const base = result.baselineBuild;
  const text = [
    table(
      ['policies (applicable)', 'request', 'authorize() p50, ops/s', 'applicable only (baseline)', 'vs baseline', 'explain p50, ops/s', ...(base ? ['baseline build p50', 'vs baseline build'] : [])],
      result.rows.map((r) => [
        `${r.policies} (${r.applicable})`,
        r.request,
        t(r.authorize),
        t(r.applicableOnly),
        `${fmt(r.authorize.p50Ns / r.applicableOnly.p50Ns)}×`,
        t(r.explain),
        ...(r.baselineBuild ? [t(r.baselineBuild), `${fmt(r.authorize.p50Ns / r.baselineBuild.p50Ns)}×`] : []),
      ]),
    ),
    `parseAuthorizationPolicy per policy (per policy change, not per connection): ${fmt(result.parse.p50Ns / 1000)} µs` +
      (base ? `; baseline build ${fmt(base.parse.p50Ns / 1000)} µs (${fmt(result.parse.p50Ns / base.parse.p50Ns)}×)` : ''),
    `commit ${result.commit}${base ? `; baseline build ${base.commit} (${base.dist})` : ''}`,
  ].join('\n');
  console.log(text);
  console.log(`saved ${saveResult('policy-eval', text, result)}`);
}


async function waypoint(): Promise<void> {
  const rows = await benchWaypoint();
  const nginx = rows.find((r) => r.path.startsWith('nginx'));
  const direct = rows.find((r) => r.path.startsWith('direct'));
  const text = table(
    ['path', 'req/s (16 conns)', `p50 ms @${rows[0]?.fixedRate}/s`, 'p99 ms', 'added p99 vs nginx', 'CPU s / 1000 req', 'CPU vs nginx', 'RSS MiB'],
    rows.map((r) => [
      r.path,
      fmt(r.saturationRps, 0),
      fmt(r.p50Ms, 3),
      fmt(r.p99Ms, 3),
      nginx && direct && r !== direct ? `${fmt((r.p99Ms - direct.p99Ms) / (nginx.p99Ms - direct.p99Ms))}×` : '',
      r.cpuSecondsPer1000 === undefined ? '' : fmt(r.cpuSecondsPer1000, 3),
      nginx?.cpuSecondsPer1000 && r.cpuSecondsPer1000 !== undefined ? `${fmt(r.cpuSecondsPer1000 / nginx.cpuSecondsPer1000)}×` : '',
      r.rssMiB === undefined ? '' : fmt(r.rssMiB, 1),
    ]),
  );
  // each resilience policy against the same waypoint path without it (its last round), same run
  const plain = rows.findLast((r) => r.path === 'warren waypoint' || r.path.startsWith('warren waypoint (round'));
  const policyCost = rows
    .filter((r) => r.path.startsWith('warren waypoint +') && plain)
    .map((r) => `${r.path.slice('warren waypoint + '.length)}: ${fmt(r.saturationRps / plain!.saturationRps)}× req/s, p50 ${fmt(r.p50Ms - plain!.p50Ms, 3)} ms added, CPU ${r.cpuSecondsPer1000 && plain!.cpuSecondsPer1000 ? `${fmt(r.cpuSecondsPer1000 / plain!.cpuSecondsPer1000)}×` : '-'}`)
    .join('\n');
  // WARREN_BENCH_BASELINE_DIST: this build's waypoint against that build's, medians over the interleaved rounds
  const ours = rows.filter((r) => r.path.startsWith('warren waypoint (round'));
  const theirs = rows.filter((r) => r.path.startsWith('baseline build waypoint'));
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const vs = (f: (r: WaypointBenchRow) => number | undefined, digits = 3): string => {
    const a = median(ours.map((r) => f(r) ?? NaN));
    const b = median(theirs.map((r) => f(r) ?? NaN));
    return `${fmt(a, digits)} vs ${fmt(b, digits)} (${fmt(a / b)}×)`;
  };
  const buildCost = theirs.length === 0 ? '' : [
    `this build vs the baseline build (${process.env.WARREN_BENCH_BASELINE_DIST}), medians of ${ours.length} interleaved rounds:`,
    `CPU s / 1000 req ${vs((r) => r.cpuSecondsPer1000)}; req/s ${vs((r) => r.saturationRps, 0)}; p50 ms ${vs((r) => r.p50Ms)}; p99 ms ${vs((r) => r.p99Ms)}; RSS MiB ${vs((r) => r.rssMiB, 1)}`,
  ].join('\n');
  const full = [text, policyCost ? `resilience policies vs the same waypoint path without them:\n${policyCost}` : '', buildCost].filter((x) => x !== '').join('\n\n');
  console.log(full);
  console.log(`saved ${saveResult('waypoint', full, rows)}`);
}

async function reliability(): Promise<void> {
  // RELIABILITY_PARTS: `tier` (test/reliability/ at full length), `load` (scenario 6), `soak` (scenario 7)
  const parts = new Set((process.env.RELIABILITY_PARTS ?? 'tier,load,soak').split(',').map((p) => p.trim()));
  const unknownParts = [...parts].filter((p) => !['tier', 'load', 'soak'].includes(p));
  if (unknownParts.length > 0) throw new Error(`RELIABILITY_PARTS: unknown part(s) ${unknownParts.join(', ')}; known: tier, load, soak`);
  const r = parts.has('tier') ? await benchReliability() : undefined;
  const ls = parts.has('load') || parts.has('soak') ? await benchLoadAndSoak(parts) : undefined;
  const rows = (r?.figures ?? []).map(({ scenario, ...rest }) => [scenario, JSON.stringify(rest)]);
  if (ls?.load) rows.push(['load', JSON.stringify(ls.load)]);
  if (ls?.soak) rows.push(['soak', JSON.stringify(ls.soak)]);
  const verdicts = [
    ...(r ? [`test tier: ${r.exitCode === 0 ? 'every scenario held' : `not every scenario held (node --test exit ${r.exitCode}; see the run's output)`}`] : []),
    ...(ls?.load ? [`load: ${ls.held.load ? 'held (0 errors)' : 'did not hold'}`] : []),
    ...(ls?.soak ? [`soak: ${ls.held.soak ? 'held (0 errors)' : 'did not hold'}`] : []),
  ];
  const dataplane = r?.dataplane ?? ls?.dataplane ?? 'native';
  const text = `${table(['scenario', 'figures'], rows)}\n\ndata path: ${dataplane}; parts: ${[...parts].join(', ')}; ${verdicts.join('; ')}`;
  console.log(text);
  console.log(`saved ${saveResult(`reliability-${dataplane}${parts.size < 3 ? `-${[...parts].sort().join('-')}` : ''}${resultSuffix('RELIABILITY_RESULT_NAME')}`, text, { tier: r, loadSoak: ls })}`);
}

const BENCHES: Record<string, () => Promise<void>> = { passthrough, sim, enrollment, 'identity-libs': identityLibs, ca, 'cluster-index': clusterIndex, dataplane, 'metrics-scrape': metricsScrape, 'policy-eval': policyEval, waypoint, reliability };

const names = process.argv.slice(2);
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('benchmarks need root (they create network namespaces)');
  process.exit(1);
}
for (const name of names.length > 0 ? names : Object.keys(BENCHES)) {
  console.log(`== ${name}`);
  await BENCHES[name]!();
}
