import { WarrenError } from '../errors/warren-error.js';

/** A workload identity (docs/architecture.md §5): spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>. */
export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function formatSpiffeId(id: SpiffeId): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * Parses the only SPIFFE ID shape warren issues and accepts. Anything else
 * (other path shapes, query, fragment, port, upper case, empty segments) is
 * refused with ERR_SPIFFE_ID naming what is wrong: identities are compared
 * as strings, so one spelling per workload matters.
 */
export function parseSpiffeId(text: string): SpiffeId {
  const fail = (why: string): never => {
    throw new WarrenError('ERR_SPIFFE_ID', `${JSON.stringify(text)} is not a workload SPIFFE ID: ${why}`);
  };
  if (!text.startsWith('spiffe://')) fail('it must start with spiffe://');
  const rest = text.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) fail('it needs a trust domain and a path');
  const trustDomain = rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain)) fail('the trust domain must be lowercase letters, digits, dots, dashes or underscores');
  const parts = rest.slice(slash + 1).split('/');
  if (parts.length !== 4 || parts[0] !== 'ns' || parts[2] !== 'sa') fail('the path must be /ns/<namespace>/sa/<service-account>');
  const [, namespace, , serviceAccount] = parts as [string, string, string, string];
  if (!K8S_NAME.test(namespace) || namespace.length > 63) fail('the namespace is not a Kubernetes namespace name');
  if (!K8S_NAME.test(serviceAccount) || serviceAccount.length > 253) fail('the service account is not a Kubernetes name');
  return { trustDomain, namespace, serviceAccount };
}

export function sameIdentity(a: SpiffeId, b: SpiffeId): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}
