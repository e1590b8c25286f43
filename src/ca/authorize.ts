import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { z } from 'zod';

/** What TokenReview said about the caller's bearer token. */
export interface ReviewedToken {
  authenticated: boolean;
  username?: string;
  extra?: Record<string, string[]>;
  /** the audiences the API server found the token valid for (status.audiences) */
  audiences?: string[];
}

export interface LocalWorkload {
  namespace: string;
  serviceAccount: string;
}

export type SigningDecision = { allow: true; node: string } | { allow: false; status: 401 | 403; reason: string };

export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/**
 * Whether the CA may sign `requested` for this caller (docs/architecture.md §5): a
 * valid token, of an allowed node-agent service account, bound to a pod on a
 * node (the node comes from the token, never from the request), and some pod
 * of that identity scheduled on that node. Pure: the caller looks up
 * `podsOnNode` for the node the token names.
 */
export function decideSigning(input: {
  review: ReviewedToken;
  allowedCallers: readonly string[];
  /** the only audience accepted (CA_TOKEN_AUDIENCE) */
  audience: string;
  trustDomain: string;
  requested: SpiffeId;
  podsOnNode: (node: string) => readonly LocalWorkload[];
}): SigningDecision {
  const { review, requested } = input;
  if (!review.authenticated || review.username === undefined) return { allow: false, status: 401, reason: 'the bearer token is not valid' };
  // An API server that ignores spec.audiences would answer for its own audience: check what it says it checked.
  if (!(review.audiences ?? []).includes(input.audience)) return { allow: false, status: 401, reason: `the bearer token is not for audience ${input.audience}` };
  if (!input.allowedCallers.includes(review.username)) return { allow: false, status: 403, reason: `${review.username} may not request workload certificates` };
  const node = review.extra?.[NODE_NAME_EXTRA]?.[0];
  if (node === undefined || node === '') return { allow: false, status: 403, reason: 'the token is not bound to a pod on a node (use a projected service account token)' };
  if (requested.trustDomain !== input.trustDomain) return { allow: false, status: 403, reason: `this CA signs for trust domain ${input.trustDomain}, not ${requested.trustDomain}` };
  const local = input.podsOnNode(node).some((w) => w.namespace === requested.namespace && w.serviceAccount === requested.serviceAccount);
  if (!local) return { allow: false, status: 403, reason: `no pod of ${formatSpiffeId(requested)} is scheduled on node ${node}` };
  return { allow: true, node };
}

const MAX_TOKEN_LENGTH = 8192;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
const claimsSchema = z.object({ aud: z.union([z.string(), z.array(z.string())]), exp: z.number() });

/**
 * Refuses, before any API call, a bearer token that cannot pass TokenReview:
 * not a JWT, over-long, expired, or not for `audience`. The claims are read
 * unverified, so this only ever refuses; TokenReview still decides the rest.
 * Returns the reason, or undefined when the token is worth reviewing.
 */
export function precheckToken(token: string, audience: string, nowMs: number): string | undefined {
  if (token.length > MAX_TOKEN_LENGTH) return 'the bearer token is too long';
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p))) return 'the bearer token is not a JWT';
  let claims;
  try {
    claims = claimsSchema.safeParse(JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')));
  } catch {
    return 'the bearer token is not a JWT';
  }
  if (!claims.success) return 'the bearer token is not a JWT';
  const aud = typeof claims.data.aud === 'string' ? [claims.data.aud] : claims.data.aud;
  if (!aud.includes(audience)) return `the bearer token is not for audience ${audience} (use a projected token with that audience)`;
  if (claims.data.exp * 1000 <= nowMs) return 'the bearer token has expired';
  return undefined;
}
