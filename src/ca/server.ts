import { describeIssue } from '../config/zod-issue.js';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthenticationV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { startResilientInformer } from '../k8s/resilient-informer.js';
import { Counter, Registry } from 'prom-client';
import { z } from 'zod';
import { WarrenError } from '../errors/warren-error.js';
import { readBodyText } from '../net/read-body.js';
import { sendJson, sendText } from '../net/respond.js';
import { CA_TOKEN_AUDIENCE } from '../identity/ca-client.js';
import { decideSigning, precheckToken, type LocalWorkload, type ReviewedToken } from './authorize.js';
import { CallerLimiter, DEFAULT_CALLER_LIMITS, type CallerLimits } from './caller-limits.js';
import { signWorkloadCert, type CaMaterial, type LoadedCa } from './signer.js';
import { CsrError, checkCsr } from '../identity/csr.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from '../identity/spiffe.js';

export interface CaServerOptions {
  kc: KubeConfig;
  ca: LoadedCa;
  trustDomain: string;
  certTtlMs: number;
  allowedCallers: string[];
  host: string;
  port: number;
  serving: CaMaterial;
  log: (msg: string, fields: Record<string, unknown>) => void;
  /** per-caller (client IP) bounds; DEFAULT_CALLER_LIMITS unless given */
  callerLimits?: CallerLimits;
}

export interface RunningCaServer {
  port: number;
  /** swaps the HTTPS certificate for new connections (renewal) */
  setServing(serving: CaMaterial): void;
  close(): Promise<void>;
}

const requestSchema = z.strictObject({ csr: z.string().min(1).max(16_384), identity: z.string().min(1).max(512) });
const MAX_BODY = 32 * 1024;
/** Its answers are read by agents, not people. */
const COMPACT = { compact: true };
/** A request is read and answered within this, or its connection is closed (Node's default is 300 s). */
const REQUEST_TIMEOUT_MS = 10_000;


/**
 * `warren ca`'s HTTPS API: POST /v1/certificates signs a workload CSR for a
 * node agent after TokenReview and a check that the identity has a pod on
 * the agent's node; GET /healthz; GET /metrics. Every decision is logged,
 * the token never. Cheap refusals come first (README "Security model"): the
 * caller's rate and concurrency, then a token that cannot be for this CA,
 * then a malformed body or CSR; only a request that passes all of them
 * costs API calls. Unexpected failures answer a fixed text (details go to
 * the log, not to the caller).
 */
export async function startCaServer(o: CaServerOptions): Promise<RunningCaServer> {
  const auth = o.kc.makeApiClient(AuthenticationV1Api);
  const core = o.kc.makeApiClient(CoreV1Api);
  const registry = new Registry();
  const issued = new Counter({ name: 'warren_ca_certificates_issued_total', help: 'Workload certificates signed', registers: [registry] });
  const refused = new Counter({ name: 'warren_ca_requests_refused_total', help: 'Certificate requests refused, by reason', labelNames: ['reason'], registers: [registry] });

  const limiter = new CallerLimiter(o.callerLimits ?? DEFAULT_CALLER_LIMITS);

  const review = async (token: string): Promise<ReviewedToken> => {
    const r = await auth.createTokenReview({ body: { spec: { token, audiences: [CA_TOKEN_AUDIENCE] } } });
    return {
      authenticated: r.status?.authenticated === true,
      ...(r.status?.user?.username ? { username: r.status.user.username } : {}),
      extra: r.status?.user?.extra ?? {},
      audiences: r.status?.audiences ?? [],
    };
  };
  const workloads = (pods: readonly V1Pod[]): LocalWorkload[] =>
    pods
      .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
      .map((p) => ({ namespace: p.metadata?.namespace ?? '', serviceAccount: p.spec?.serviceAccountName ?? 'default' }));
  // Scheduled pods come from a watch, so a request costs no list; a pod the watch has not
  // delivered yet (just scheduled) is looked up live before the CA says no.
  const pods = startResilientInformer<V1Pod>(o.kc, { path: '/api/v1/pods', list: () => core.listPodForAllNamespaces(), onChange: () => {}, log: o.log });
  const podsOnNode = async (node: string, wanted: SpiffeId): Promise<LocalWorkload[]> => {
    const cached = workloads(pods.list().filter((p) => p.spec?.nodeName === node));
    if (cached.some((w) => w.namespace === wanted.namespace && w.serviceAccount === wanted.serviceAccount)) return cached;
    return workloads((await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` })).items);
  };

  const sign = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const refuse = (status: number, reason: string, kind: string, fields: Record<string, unknown> = {}): void => {
      refused.inc({ reason: kind });
      o.log('certificate refused', { status, reason, ...fields });
      sendJson(res, status, { message: reason }, COMPACT);
    };
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) return refuse(401, 'a Bearer service account token is required', 'unauthenticated');
    const unusable = precheckToken(token, CA_TOKEN_AUDIENCE, Date.now());
    if (unusable !== undefined) return refuse(401, unusable, 'unauthenticated');
    let body: z.infer<typeof requestSchema>;
    try {
      const parsed = requestSchema.safeParse(JSON.parse(await readBodyText(req, MAX_BODY)));
      if (!parsed.success) return refuse(400, `invalid request: ${describeIssue(parsed.error)}`, 'bad_request');
      body = parsed.data;
    } catch (err) {
      return refuse(400, err instanceof WarrenError ? err.message : `the request body is not valid JSON: ${(err as Error).message}`, 'bad_request');
    }
    let requested;
    try {
      requested = parseSpiffeId(body.identity);
    } catch (err) {
      return refuse(400, `identity: ${(err as Error).message}`, 'bad_request');
    }
    // The CSR is checked before TokenReview: a malformed request costs no API call.
    let checked;
    try {
      checked = await checkCsr(body.csr, requested);
    } catch (err) {
      if (err instanceof CsrError) return refuse(400, err.message, 'bad_csr', { identity: body.identity });
      throw err;
    }
    const reviewed = await review(token);
    // One node's pods are looked up only after the token names the node.
    const node = reviewed.authenticated ? reviewed.extra?.['authentication.kubernetes.io/node-name']?.[0] : undefined;
    const local = node === undefined ? [] : await podsOnNode(node, requested);
    const decision = decideSigning({ review: reviewed, allowedCallers: o.allowedCallers, audience: CA_TOKEN_AUDIENCE, trustDomain: o.trustDomain, requested, podsOnNode: () => local });
    if (!decision.allow) return refuse(decision.status, decision.reason, decision.status === 401 ? 'unauthenticated' : 'forbidden', { identity: body.identity, caller: reviewed.username });
    const certPem = await signWorkloadCert(o.ca, checked, o.certTtlMs);
    issued.inc();
    const expiresAt = new Date(Date.now() + o.certTtlMs).toISOString();
    o.log('certificate issued', { identity: formatSpiffeId(checked.identity), node: decision.node, expiresAt });
    sendJson(res, 200, { certChain: [certPem, ...o.ca.chainPem], expiresAt }, COMPACT);
  };

  const server: Server = createServer({ cert: o.serving.certPem, key: o.serving.keyPem, minVersion: 'TLSv1.3' }, (req, res) => {
    void (async () => {
      let release: (() => void) | undefined;
      try {
        if (req.method === 'GET' && req.url === '/healthz') return sendText(res, 200, 'ok\n', 'text/plain');
        if (req.method === 'GET' && req.url === '/metrics') return sendText(res, 200, await registry.metrics(), registry.contentType);
        if (req.method !== 'POST' || req.url !== '/v1/certificates') return sendJson(res, 404, { message: 'unknown endpoint; certificates are requested with POST /v1/certificates' }, COMPACT);
        const caller = req.socket.remoteAddress ?? 'unknown';
        const admission = limiter.admit(caller);
        if (!admission.admitted) {
          refused.inc({ reason: admission.reason === 'rate' ? 'rate_limited' : 'too_many_in_flight' });
          o.log('certificate request refused: caller over its limit', { caller, limit: admission.reason });
          res.setHeader('retry-after', String(admission.retryAfterSeconds));
          // The body is not read: close the connection rather than drain it.
          res.setHeader('connection', 'close');
          return sendJson(res, 429, { message: `too many requests from ${caller} (${admission.reason === 'rate' ? 'rate' : 'requests in flight'}); retry later` }, COMPACT);
        }
        release = admission.release;
        return await sign(req, res);
      } catch (err) {
        o.log('certificate request failed', { err: (err as Error).message });
        if (!res.headersSent) sendJson(res, 503, { message: 'the CA could not decide; try again later (details are in the CA log)' }, COMPACT);
      } finally {
        release?.();
      }
    })();
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    setServing: (serving) => server.setSecureContext({ cert: serving.certPem, key: serving.keyPem, minVersion: 'TLSv1.3' }),
    close: async () => {
      await pods.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
