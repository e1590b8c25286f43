import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';

/** What TokenReview said about the caller's bearer token. */
export interface ReviewedToken {
  authenticated: boolean;
  username?: string;
  extra?: Record<string, string[]>;
}

export interface LocalWorkload {
  namespace: string;
  serviceAccount: string;
}

export type SigningDecision = { allow: true; node: string } | { allow: false; status: 401 | 403; reason: string };

export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/**
 * Whether the CA may sign `requested` for this caller (DESIGN.md §5): a
 * valid token, of an allowed node-agent service account, bound to a pod on a
 * node (the node comes from the token, never from the request), and some pod
 * of that identity scheduled on that node. Pure: the caller looks up
 * `podsOnNode` for the node the token names.
 */
export function decideSigning(input: {
  review: ReviewedToken;
  allowedCallers: readonly string[];
  trustDomain: string;
  requested: SpiffeId;
  podsOnNode: (node: string) => readonly LocalWorkload[];
}): SigningDecision {
  const { review, requested } = input;
  if (!review.authenticated || review.username === undefined) return { allow: false, status: 401, reason: 'the bearer token is not valid' };
  if (!input.allowedCallers.includes(review.username)) return { allow: false, status: 403, reason: `${review.username} may not request workload certificates` };
  const node = review.extra?.[NODE_NAME_EXTRA]?.[0];
  if (node === undefined || node === '') return { allow: false, status: 403, reason: 'the token is not bound to a pod on a node (use a projected service account token)' };
  if (requested.trustDomain !== input.trustDomain) return { allow: false, status: 403, reason: `this CA signs for trust domain ${input.trustDomain}, not ${requested.trustDomain}` };
  const local = input.podsOnNode(node).some((w) => w.namespace === requested.namespace && w.serviceAccount === requested.serviceAccount);
  if (!local) return { allow: false, status: 403, reason: `no pod of ${formatSpiffeId(requested)} is scheduled on node ${node}` };
  return { allow: true, node };
}
