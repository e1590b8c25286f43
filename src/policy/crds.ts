/**
 * warren's CRDs (docs/architecture.md §6): group security.warren.io, version v1, with
 * Istio's schema so an Istio manifest works after changing its apiVersion.
 * The simulator installs these objects; deploy/01-crd-*.yaml are generated from them.
 */
const MODE = { type: 'string', enum: ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] };

const selector = {
  type: 'object',
  properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } },
};

/** On each CRD, so uninstall finds them all. */
export const CRD_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/part-of': 'warren' };

function crd(kind: string, plural: string, short: string, spec: object): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.security.warren.io`, labels: { ...CRD_LABELS } },
    spec: {
      group: 'security.warren.io',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List`, shortNames: [short], categories: ['warren-io', 'security-warren-io'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: { openAPIV3Schema: { type: 'object', properties: { spec, status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } },
        },
      ],
    },
  };
}

export const PEER_AUTHENTICATION_CRD = crd('PeerAuthentication', 'peerauthentications', 'pa', {
  type: 'object',
  properties: {
    selector,
    mtls: { type: 'object', properties: { mode: MODE } },
    portLevelMtls: { type: 'object', additionalProperties: { type: 'object', properties: { mode: MODE } } },
  },
});

const strings = { type: 'array', items: { type: 'string' } };
const object = (properties: Record<string, object>, required?: string[]): object => ({ type: 'object', properties, ...(required ? { required } : {}) });
const targetRef = object({ group: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' }, namespace: { type: 'string' } }, ['kind', 'name']);
const fields = (names: string[]): Record<string, object> => Object.fromEntries(names.map((n) => [n, strings]));

/**
 * Istio's AuthorizationPolicy schema, every level declared: no
 * x-kubernetes-preserve-unknown-fields below spec, so the API server prunes
 * or (kubectl's default fieldValidation=Strict) refuses an unknown field
 * such as `form:` for `from:` or `value:` for `values:`, instead of storing
 * a rule that matches everyone. warren's parser refuses them as well.
 */
export const AUTHORIZATION_POLICY_CRD = crd('AuthorizationPolicy', 'authorizationpolicies', 'ap', {
  type: 'object',
  properties: {
    selector,
    targetRef,
    targetRefs: { type: 'array', items: targetRef },
    action: { type: 'string', enum: ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] },
    provider: object({ name: { type: 'string' } }),
    rules: {
      type: 'array',
      items: object({
        from: {
          type: 'array',
          items: object({
            source: object(
              fields(['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks']),
            ),
          }),
        },
        to: { type: 'array', items: object({ operation: object(fields(['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'])) }) },
        when: { type: 'array', items: object({ key: { type: 'string' }, ...fields(['values', 'notValues']) }, ['key']) },
      }),
    },
  },
});

/**
 * Istio's RequestAuthentication schema (JWT rules), enforced by the waypoint
 * for the targets it names (docs/architecture.md §14). Every
 * level declared, as above: a misspelled field is pruned or refused, never
 * stored as a rule that checks nothing.
 */
export const REQUEST_AUTHENTICATION_CRD = crd('RequestAuthentication', 'requestauthentications', 'ra', {
  type: 'object',
  properties: {
    selector,
    targetRef,
    targetRefs: { type: 'array', items: targetRef },
    jwtRules: {
      type: 'array',
      items: object(
        {
          issuer: { type: 'string' },
          audiences: strings,
          jwksUri: { type: 'string' },
          jwks: { type: 'string' },
          fromHeaders: { type: 'array', items: object({ name: { type: 'string' }, prefix: { type: 'string' } }, ['name']) },
          fromParams: strings,
          fromCookies: strings,
          outputPayloadToHeader: { type: 'string' },
          forwardOriginalToken: { type: 'boolean' },
          outputClaimToHeaders: { type: 'array', items: object({ header: { type: 'string' }, claim: { type: 'string' } }, ['header', 'claim']) },
          timeout: { type: 'string' },
        },
        ['issuer'],
      ),
    },
  },
});

export const WARREN_CRDS = [PEER_AUTHENTICATION_CRD, AUTHORIZATION_POLICY_CRD, REQUEST_AUTHENTICATION_CRD];
