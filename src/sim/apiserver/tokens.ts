import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * Service account tokens: JWTs signed with HS256 by a key only this server
 * holds, shaped like kube-apiserver's bound tokens (the `kubernetes.io`
 * claim names the namespace, service account, and the pod and node the token
 * is bound to), so TokenReview can answer with the same `extra` fields.
 */
const claimsSchema = z.object({
  iss: z.string(),
  sub: z.string(),
  aud: z.array(z.string()),
  exp: z.number(),
  iat: z.number(),
  'kubernetes.io': z.object({
    namespace: z.string(),
    serviceaccount: z.object({ name: z.string(), uid: z.string() }),
    pod: z.object({ name: z.string(), uid: z.string() }).optional(),
    node: z.object({ name: z.string(), uid: z.string() }).optional(),
  }),
});
export type TokenClaims = z.infer<typeof claimsSchema>;

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';

const b64 = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

export class TokenIssuer {
  constructor(private readonly key: Buffer = randomBytes(32)) {}

  get signingKey(): Buffer {
    return this.key;
  }

  issue(claims: Omit<TokenClaims, 'iss' | 'iat'>, now = Date.now()): string {
    const header = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const payload = b64(JSON.stringify({ ...claims, iss: ISSUER, iat: Math.floor(now / 1000) }));
    return `${header}.${payload}.${this.sign(`${header}.${payload}`)}`;
  }

  /** The claims of a valid, unexpired token this issuer signed; otherwise undefined. */
  verify(token: string, now = Date.now()): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [header, payload, sig] = parts as [string, string, string];
    const expected = Buffer.from(this.sign(`${header}.${payload}`));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    const claims = claimsSchema.safeParse(json);
    if (!claims.success || claims.data.iss !== ISSUER || claims.data.exp * 1000 <= now) return undefined;
    return claims.data;
  }

  private sign(data: string): string {
    return createHmac('sha256', this.key).update(data).digest('base64url');
  }
}

/** TokenReview status.user for a verified token, as kube-apiserver fills it for bound tokens. */
export function userInfoOf(claims: TokenClaims): Record<string, unknown> {
  const k = claims['kubernetes.io'];
  const extra: Record<string, string[]> = {};
  if (k.pod) {
    extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
    extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
  }
  if (k.node) {
    extra['authentication.kubernetes.io/node-name'] = [k.node.name];
    extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
  }
  return {
    username: claims.sub,
    uid: k.serviceaccount.uid,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'],
    extra,
  };
}
