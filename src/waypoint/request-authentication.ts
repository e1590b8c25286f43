import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import type { JwtAuth, PolicyTarget } from './l7-authorization.js';
import { policyTargets } from './l7-authorization.js';

/**
 * RequestAuthentication (security.warren.io/v1, Istio's schema) in the
 * waypoint: a request carrying a token must carry a valid one (else 401); a
 * request without one passes unauthenticated, and an AuthorizationPolicy
 * asking for requestPrincipals then denies it (Istio's split of the two).
 * Tokens are verified with `jose` against inline JWKS or a jwksUri.
 */

export interface JwtRule {
  issuer: string;
  audiences: readonly string[];
  keys: JWTVerifyGetKey;
  fromHeaders: ReadonlyArray<{ name: string; prefix: string }>;
  fromParams: readonly string[];
  forwardOriginalToken: boolean;
  outputClaimToHeaders: ReadonlyArray<{ header: string; claim: string }>;
}

export interface RequestAuthentication {
  namespace: string;
  name: string;
  targets: readonly PolicyTarget[];
  rules: readonly JwtRule[];
  /** the stand-in for an object that failed to parse: any token is refused (401) where it applies */
  invalid?: boolean;
}

export type AuthnResult =
  | { kind: 'none'; stripHeaders: readonly string[] }
  | { kind: 'ok'; auth: JwtAuth; setHeaders: ReadonlyArray<[string, string]>; stripHeaders: readonly string[] }
  | { kind: 'invalid'; reason: string };

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$/, 'must be an HTTP header name');
const jwtRule = z.strictObject({
  issuer: z.string().min(1).max(1024),
  audiences: z.array(z.string().min(1)).max(32).optional(),
  jwksUri: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  jwks: z.string().min(2).max(65_536).optional(),
  fromHeaders: z.array(z.strictObject({ name: headerName, prefix: z.string().max(64).optional() })).max(8).optional(),
  fromParams: z.array(z.string().min(1).max(128)).max(8).optional(),
  fromCookies: z.array(z.string()).optional(),
  forwardOriginalToken: z.boolean().optional(),
  outputPayloadToHeader: z.string().optional(),
  outputClaimToHeaders: z.array(z.strictObject({ header: headerName, claim: z.string().min(1).max(256) })).max(16).optional(),
  timeout: z.string().optional(),
});
const schema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string() }),
  spec: z.strictObject({
    selector: z.unknown().optional(),
    targetRef: z.unknown().optional(),
    targetRefs: z.array(z.unknown()).optional(),
    jwtRules: z.array(jwtRule).max(16).default([]),
  }),
});

const invalid = (message: string): WarrenError => new WarrenError('ERR_POLICY_INVALID', message);

/** A RequestAuthentication object → its parsed form; throws ERR_POLICY_INVALID naming the field. */
export function parseRequestAuthentication(obj: unknown): RequestAuthentication {
  const parsed = schema.safeParse(obj);
  if (!parsed.success) throw invalid(describeIssue(parsed.error));
  const { metadata, spec } = parsed.data;
  if (spec.selector !== undefined) throw invalid('spec.selector: the waypoint takes targetRefs; selector-based RequestAuthentication is not supported by warren');
  const targets = policyTargets(obj);
  if (targets.length === 0) throw invalid('spec.targetRefs: must name the waypoint Gateway or a Service');
  const rules = spec.jwtRules.map((r, i): JwtRule => {
    const at = `spec.jwtRules.${i}`;
    if (r.fromCookies?.length) throw invalid(`${at}.fromCookies: not supported by warren`);
    if (r.outputPayloadToHeader !== undefined) throw invalid(`${at}.outputPayloadToHeader: not supported by warren`);
    if ((r.jwks === undefined) === (r.jwksUri === undefined)) throw invalid(`${at}: exactly one of jwks or jwksUri must be set`);
    let keys: JWTVerifyGetKey;
    if (r.jwks !== undefined) {
      try {
        keys = createLocalJWKSet(JSON.parse(r.jwks) as Parameters<typeof createLocalJWKSet>[0]);
      } catch (err) {
        throw invalid(`${at}.jwks: not a JSON Web Key Set (${(err as Error).message})`);
      }
    } else keys = createRemoteJWKSet(new URL(r.jwksUri!), { timeoutDuration: 5000, cacheMaxAge: 20 * 60_000 });
    return {
      issuer: r.issuer,
      audiences: r.audiences ?? [],
      keys,
      fromHeaders: r.fromHeaders?.length ? r.fromHeaders.map((h) => ({ name: h.name.toLowerCase(), prefix: h.prefix ?? '' })) : [{ name: 'authorization', prefix: 'Bearer ' }],
      fromParams: r.fromParams?.length ? r.fromParams : r.fromHeaders?.length ? [] : ['access_token'],
      forwardOriginalToken: r.forwardOriginalToken ?? false,
      outputClaimToHeaders: r.outputClaimToHeaders ?? [],
    };
  });
  return { namespace: metadata.namespace, name: metadata.name, targets, rules };
}

export interface AuthnRequest {
  header(name: string): string | undefined;
  query: URLSearchParams;
}

interface Found {
  token: string;
  rule: JwtRule;
  header?: string;
}

function tokensOf(rules: readonly JwtRule[], r: AuthnRequest): Found[] {
  const found: Found[] = [];
  for (const rule of rules) {
    for (const h of rule.fromHeaders) {
      const v = r.header(h.name);
      if (v !== undefined && v.startsWith(h.prefix) && v.length > h.prefix.length) found.push({ token: v.slice(h.prefix.length).trim(), rule, header: h.name });
    }
    for (const p of rule.fromParams) {
      const v = r.query.get(p);
      if (v !== null && v !== '') found.push({ token: v, rule });
    }
  }
  return found;
}

/** Validates the request's token (if any) against the rules of the RequestAuthentications that apply. */
export async function authenticate(policies: readonly RequestAuthentication[], r: AuthnRequest): Promise<AuthnResult> {
  const broken = policies.find((p) => p.invalid === true);
  if (broken !== undefined && (r.header('authorization') !== undefined || r.query.has('access_token'))) return { kind: 'invalid', reason: `RequestAuthentication ${broken.namespace}/${broken.name} is invalid` };
  const rules = policies.flatMap((p) => p.rules);
  if (rules.length === 0) return { kind: 'none', stripHeaders: [] };
  const found = tokensOf(rules, r);
  const strip = [...new Set(found.flatMap((f) => (f.header !== undefined && !f.rule.forwardOriginalToken ? [f.header] : [])))];
  const distinct = [...new Set(found.map((f) => f.token))];
  if (distinct.length === 0) return { kind: 'none', stripHeaders: [] };
  if (distinct.length > 1) return { kind: 'invalid', reason: 'more than one token' };
  const token = distinct[0]!;
  let issuer: string | undefined;
  try {
    issuer = decodeJwt(token).iss;
  } catch {
    return { kind: 'invalid', reason: 'token is not a JWT' };
  }
  const candidates = found.filter((f) => f.rule.issuer === issuer).map((f) => f.rule);
  if (candidates.length === 0) return { kind: 'invalid', reason: 'token issuer is not trusted' };
  let lastError = 'token rejected';
  for (const rule of new Set(candidates)) {
    try {
      const { payload } = await jwtVerify(token, rule.keys, { issuer: rule.issuer, ...(rule.audiences.length > 0 ? { audience: [...rule.audiences] } : {}), clockTolerance: 30 });
      const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      const claims = payload as Record<string, unknown>;
      const setHeaders = rule.outputClaimToHeaders.flatMap((o): Array<[string, string]> => {
        const v = claims[o.claim];
        return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? [[o.header.toLowerCase(), String(v)]] : [];
      });
      const presenter = typeof claims.azp === 'string' ? { presenter: claims.azp } : {};
      return { kind: 'ok', auth: { principal: `${payload.iss}/${payload.sub ?? ''}`, claims, audiences: aud, ...presenter }, setHeaders, stripHeaders: rule.forwardOriginalToken ? [] : strip };
    } catch (err) {
      // the reason names the check that failed (expired, signature, audience), never the token
      lastError = (err as { code?: string }).code ?? 'token rejected';
    }
  }
  return { kind: 'invalid', reason: lastError };
}
