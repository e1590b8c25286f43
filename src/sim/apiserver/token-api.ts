import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ApiError } from './api-error.js';
import type { ApiObjects } from './objects.js';
import { ISSUER, userInfoOf, type TokenClaims, type TokenIssuer } from './tokens.js';

export interface User {
  username: string;
  groups: string[];
}

const tokenRequestSchema = z.object({
  spec: z
    .object({
      audiences: z.array(z.string()).optional(),
      expirationSeconds: z.number().int().min(600).max(2 ** 32).optional(),
      boundObjectRef: z.object({ kind: z.literal('Pod'), name: z.string(), uid: z.string().optional() }).optional(),
    })
    .default({}),
});

const tokenReviewSchema = z.object({
  spec: z.object({ token: z.string(), audiences: z.array(z.string()).optional() }),
});

function zodError(kind: string, error: z.ZodError): ApiError {
  const issue = error.issues[0]!;
  return new ApiError('Invalid', `${kind} is invalid: ${issue.path.join('.')}: ${issue.message}`);
}

/**
 * TokenRequest and TokenReview over the objects: tokens are bound to a pod
 * (and through it to its node) when asked, and stop being valid when the pod
 * or service account they name is gone, as bound tokens do.
 */
export class TokenApi {
  constructor(
    private readonly objects: ApiObjects,
    private readonly issuer: TokenIssuer,
    private readonly adminToken: string,
  ) {}

  private find(resource: string, namespace: string | undefined, name: string): Record<string, any> | undefined {
    return this.objects.store.find(this.objects.registry.lookup('', 'v1', resource), namespace, name);
  }

  requestToken(namespace: string, serviceAccount: string, body: unknown): object {
    const sa = this.find('serviceaccounts', namespace, serviceAccount);
    if (sa === undefined) throw new ApiError('NotFound', `serviceaccounts "${serviceAccount}" not found`, { name: serviceAccount, kind: 'serviceaccounts' });
    const parsed = tokenRequestSchema.safeParse(body);
    if (!parsed.success) throw zodError('TokenRequest', parsed.error);
    const spec = parsed.data.spec;
    const expirationSeconds = spec.expirationSeconds ?? 3600;
    const k8s: TokenClaims['kubernetes.io'] = { namespace, serviceaccount: { name: serviceAccount, uid: sa.metadata.uid } };
    if (spec.boundObjectRef) {
      const pod = this.find('pods', namespace, spec.boundObjectRef.name);
      if (pod === undefined || (spec.boundObjectRef.uid !== undefined && spec.boundObjectRef.uid !== pod.metadata.uid)) {
        throw new ApiError('NotFound', `pods "${spec.boundObjectRef.name}" not found`, { name: spec.boundObjectRef.name, kind: 'pods' });
      }
      k8s.pod = { name: pod.metadata.name, uid: pod.metadata.uid };
      const nodeName = pod.spec?.nodeName as string | undefined;
      const node = nodeName === undefined ? undefined : this.find('nodes', undefined, nodeName);
      if (node) k8s.node = { name: node.metadata.name, uid: node.metadata.uid };
    }
    const exp = Math.floor(Date.now() / 1000) + expirationSeconds;
    const token = this.issuer.issue({ sub: `system:serviceaccount:${namespace}:${serviceAccount}`, aud: spec.audiences ?? [ISSUER], exp, 'kubernetes.io': k8s });
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: serviceAccount, namespace, creationTimestamp: null },
      spec: { ...spec, audiences: spec.audiences ?? [ISSUER], expirationSeconds },
      status: { token, expirationTimestamp: new Date(exp * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  /** Claims of a token that is signed, unexpired, and whose service account and bound pod still exist. */
  private liveClaims(token: string): TokenClaims | undefined {
    const claims = this.issuer.verify(token);
    if (claims === undefined) return undefined;
    const k = claims['kubernetes.io'];
    const sa = this.find('serviceaccounts', k.namespace, k.serviceaccount.name);
    if (sa?.metadata.uid !== k.serviceaccount.uid) return undefined;
    if (k.pod && this.find('pods', k.namespace, k.pod.name)?.metadata.uid !== k.pod.uid) return undefined;
    return claims;
  }

  review(body: unknown): object {
    const parsed = tokenReviewSchema.safeParse(body);
    if (!parsed.success) throw zodError('TokenReview', parsed.error);
    const { token, audiences } = parsed.data.spec;
    const claims = this.liveClaims(token);
    const wanted = audiences ?? [ISSUER];
    const matched = claims?.aud.filter((a) => wanted.includes(a)) ?? [];
    const status =
      claims === undefined || matched.length === 0
        ? { authenticated: false, error: claims === undefined ? 'invalid bearer token' : 'token audiences do not match the requested audiences' }
        : { authenticated: true, user: userInfoOf(claims), audiences: matched };
    return { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: parsed.data.spec, status };
  }

  /** Who a bearer token belongs to: the admin, or a live service account token for this API server. */
  authenticate(authorization: string | undefined): User | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) return undefined;
    const given = Buffer.from(m[1]!);
    const admin = Buffer.from(this.adminToken);
    if (given.length === admin.length && timingSafeEqual(given, admin)) return { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };
    const claims = this.liveClaims(m[1]!);
    if (claims === undefined || !claims.aud.includes(ISSUER)) return undefined;
    return { username: claims.sub, groups: userInfoOf(claims).groups as string[] };
  }
}
