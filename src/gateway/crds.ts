import { CRD_LABELS } from '../policy/crds.js';
import { GATEWAY_GROUP, GATEWAY_VERSION } from './constants.js';

/**
 * The Gateway API kinds warren uses (docs/architecture.md §13), as CRDs with
 * warren's own structural schemas: the fields a waypoint, its routes and
 * their status need, every level declared, so the API server prunes or
 * (fieldValidation=Strict) refuses a misspelled field instead of storing a
 * route that silently matches something else. A cluster that already has
 * the upstream Gateway API CRDs keeps them (deploy/README.md): they accept
 * everything these do.
 */
const str = { type: 'string' };
const int = { type: 'integer' };
const strings = { type: 'array', items: str };
const obj = (properties: Record<string, object>, required?: string[]): object => ({ type: 'object', properties, ...(required ? { required } : {}) });
const list = (items: object): object => ({ type: 'array', items });
const anyStatus = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };

const parentRef = obj({ group: str, kind: str, namespace: str, name: str, sectionName: str, port: int }, ['name']);
const backendObjectRef = { group: str, kind: str, name: str, namespace: str, port: int };
const headerMods = obj({ set: list(obj({ name: str, value: str }, ['name', 'value'])), add: list(obj({ name: str, value: str }, ['name', 'value'])), remove: strings });
const pathModifier = obj({ type: { type: 'string', enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] }, replaceFullPath: str, replacePrefixMatch: str }, ['type']);
const mirror = obj({ backendRef: obj(backendObjectRef, ['name']), percent: int, fraction: obj({ numerator: int, denominator: int }, ['numerator']) }, ['backendRef']);
const extensionRef = obj({ group: str, kind: str, name: str }, ['group', 'kind', 'name']);

const HTTP_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef'];
const httpFilter = obj(
  {
    type: { type: 'string', enum: HTTP_FILTER_TYPES },
    requestHeaderModifier: headerMods,
    responseHeaderModifier: headerMods,
    requestMirror: mirror,
    requestRedirect: obj({ scheme: { type: 'string', enum: ['http', 'https'] }, hostname: str, path: pathModifier, port: int, statusCode: { type: 'integer', enum: [301, 302, 303, 307, 308] } }),
    urlRewrite: obj({ hostname: str, path: pathModifier }),
    extensionRef,
  },
  ['type'],
);
const grpcFilter = obj(
  { type: { type: 'string', enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'] }, requestHeaderModifier: headerMods, responseHeaderModifier: headerMods, requestMirror: mirror, extensionRef },
  ['type'],
);
const backendRef = (filter: object): object => obj({ ...backendObjectRef, weight: int, filters: list(filter) }, ['name']);
const headerMatch = obj({ type: { type: 'string', enum: ['Exact', 'RegularExpression'] }, name: str, value: str }, ['name', 'value']);
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

const httpRouteSpec = obj({
  parentRefs: list(parentRef),
  hostnames: strings,
  rules: list(
    obj({
      name: str,
      matches: list(
        obj({
          path: obj({ type: { type: 'string', enum: ['Exact', 'PathPrefix', 'RegularExpression'] }, value: str }),
          headers: list(headerMatch),
          queryParams: list(headerMatch),
          method: { type: 'string', enum: METHODS },
        }),
      ),
      filters: list(httpFilter),
      backendRefs: list(backendRef(httpFilter)),
      timeouts: obj({ request: str, backendRequest: str }),
      retry: obj({ codes: list(int), attempts: int, backoff: str }),
    }),
  ),
});

const grpcRouteSpec = obj({
  parentRefs: list(parentRef),
  hostnames: strings,
  rules: list(
    obj({
      name: str,
      matches: list(obj({ method: obj({ type: { type: 'string', enum: ['Exact', 'RegularExpression'] }, service: str, method: str }), headers: list(headerMatch) })),
      filters: list(grpcFilter),
      backendRefs: list(backendRef(grpcFilter)),
    }),
  ),
});

const gatewaySpec = obj(
  {
    gatewayClassName: str,
    listeners: list(
      obj(
        {
          name: str,
          hostname: str,
          port: int,
          protocol: str,
          allowedRoutes: obj({
            namespaces: obj({ from: { type: 'string', enum: ['All', 'Same', 'Selector'] }, selector: obj({ matchLabels: { type: 'object', additionalProperties: str } }) }),
            kinds: list(obj({ group: str, kind: str }, ['kind'])),
          }),
        },
        ['name', 'port', 'protocol'],
      ),
    ),
    addresses: list(obj({ type: str, value: str }, ['value'])),
    infrastructure: obj({ labels: { type: 'object', additionalProperties: str }, annotations: { type: 'object', additionalProperties: str }, parametersRef: obj({ group: str, kind: str, name: str }, ['group', 'kind', 'name']) }),
  },
  ['gatewayClassName', 'listeners'],
);

const gatewayClassSpec = obj({ controllerName: str, description: str }, ['controllerName']);

function crd(kind: string, plural: string, scope: 'Namespaced' | 'Cluster', shortNames: string[], spec: object, printerColumns: object[]): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${GATEWAY_GROUP}`, labels: { ...CRD_LABELS } },
    spec: {
      group: GATEWAY_GROUP,
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List`, shortNames, categories: ['gateway-api'] },
      scope,
      versions: [
        {
          name: GATEWAY_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: printerColumns,
          schema: { openAPIV3Schema: { type: 'object', properties: { spec, status: anyStatus }, required: ['spec'] } },
        },
      ],
    },
  };
}

const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const GATEWAY_API_CRDS = [
  crd('GatewayClass', 'gatewayclasses', 'Cluster', ['gc'], gatewayClassSpec, [
    { name: 'Controller', type: 'string', jsonPath: '.spec.controllerName' },
    { name: 'Accepted', type: 'string', jsonPath: '.status.conditions[?(@.type=="Accepted")].status' },
    age,
  ]),
  crd('Gateway', 'gateways', 'Namespaced', ['gtw'], gatewaySpec, [
    { name: 'Class', type: 'string', jsonPath: '.spec.gatewayClassName' },
    { name: 'Address', type: 'string', jsonPath: '.status.addresses[*].value' },
    { name: 'Programmed', type: 'string', jsonPath: '.status.conditions[?(@.type=="Programmed")].status' },
    age,
  ]),
  crd('HTTPRoute', 'httproutes', 'Namespaced', [], httpRouteSpec, [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }, age]),
  crd('GRPCRoute', 'grpcroutes', 'Namespaced', [], grpcRouteSpec, [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }, age]),
];
