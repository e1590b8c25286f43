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
import { decideSigning, type LocalWorkload, type ReviewedToken } from './authorize.js';
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
}

export interface RunningCaServer {
  port: number;
  /** swaps the HTTPS certificate for new connections (renewal) */
  setServing(serving: CaMaterial): void;
  close(): Promise<void>;
}

const requestSchema = z.strictObject({ csr: z.string().min(1).max(16_384), identity: z.string().min(1).max(512) });
const MAX_BODY = 32 * 1024;

function reply(res: ServerResponse, status: number, body: object | string, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * `warren ca`'s HTTPS API: POST /v1/certificates signs a workload CSR for a
 * node agent after TokenReview and a check that the identity has a pod on
 * the agent's node; GET /healthz; GET /metrics. Every decision is logged,
 * the token never.
 */
export async function startCaServer(o: CaServerOptions): Promise<RunningCaServer> {
  const auth = o.kc.makeApiClient(AuthenticationV1Api);
  const core = o.kc.makeApiClient(CoreV1Api);
  const registry = new Registry();
  const issued = new Counter({ name: 'warren_ca_certificates_issued_total', help: 'Workload certificates signed', registers: [registry] });
  const refused = new Counter({ name: 'warren_ca_requests_refused_total', help: 'Certificate requests refused, by reason', labelNames: ['reason'], registers: [registry] });

  const review = async (token: string): Promise<ReviewedToken> => {
    const r = await auth.createTokenReview({ body: { spec: { token } } });
    return { authenticated: r.status?.authenticated === true, ...(r.status?.user?.username ? { username: r.status.user.username } : {}), extra: r.status?.user?.extra ?? {} };
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
      reply(res, status, { message: reason });
    };
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) return refuse(401, 'a Bearer service account token is required', 'unauthenticated');
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
      return refuse(400, (err as Error).message, 'bad_request');
    }
    const reviewed = await review(token);
    // One node's pods are looked up only after the token names the node.
    const node = reviewed.extra?.['authentication.kubernetes.io/node-name']?.[0];
    const local = node === undefined ? [] : await podsOnNode(node, requested);
    const decision = decideSigning({ review: reviewed, allowedCallers: o.allowedCallers, trustDomain: o.trustDomain, requested, podsOnNode: () => local });
    if (!decision.allow) return refuse(decision.status, decision.reason, decision.status === 401 ? 'unauthenticated' : 'forbidden', { identity: body.identity, caller: reviewed.username });
    let checked;
    try {
      checked = await checkCsr(body.csr, requested);
    } catch (err) {
      if (err instanceof CsrError) return refuse(400, err.message, 'bad_csr', { identity: body.identity, node: decision.node });
      throw err;
    }
    const certPem = await signWorkloadCert(o.ca, checked, o.certTtlMs);
    issued.inc();
    const expiresAt = new Date(Date.now() + o.certTtlMs).toISOString();
    o.log('certificate issued', { identity: formatSpiffeId(checked.identity), node: decision.node, expiresAt });
    reply(res, 200, { certChain: [certPem, ...o.ca.chainPem], expiresAt });
  };

  const server: Server = createServer({ cert: o.serving.certPem, key: o.serving.keyPem, minVersion: 'TLSv1.3' }, (req, res) => {
    void (async () => {
      try {
        if (req.method === 'GET' && req.url === '/healthz') return reply(res, 200, 'ok\n', 'text/plain');
        if (req.method === 'GET' && req.url === '/metrics') return reply(res, 200, await registry.metrics(), registry.contentType);
        if (req.method === 'POST' && req.url === '/v1/certificates') return await sign(req, res);
        reply(res, 404, { message: `unknown endpoint ${req.method} ${req.url}` });
      } catch (err) {
        o.log('certificate request failed', { err: (err as Error).message });
        if (!res.headersSent) reply(res, 503, { message: `the CA could not decide: ${(err as Error).message}` });
      }
    })();
  });
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
