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

/** Rules are validated by warren itself (errors go to the policy's status), so the schema keeps them as written. */
export const AUTHORIZATION_POLICY_CRD = crd('AuthorizationPolicy', 'authorizationpolicies', 'ap', {
  type: 'object',
  properties: {
    selector,
    action: { type: 'string', enum: ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] },
    provider: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    rules: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
  },
});

export const WARREN_CRDS = [PEER_AUTHENTICATION_CRD, AUTHORIZATION_POLICY_CRD];
