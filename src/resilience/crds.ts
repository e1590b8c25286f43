import { CRD_LABELS } from '../policy/crds.js';

/**
 * networking.warren.io/v1: DestinationRule, VirtualService (Istio's field
 * names) and BackendTrafficPolicy (Envoy Gateway's rateLimit.local shape),
 * docs/architecture.md §15. Structural schemas with every level declared, so
 * the API server prunes or (fieldValidation=Strict) refuses a misspelled
 * field; the waypoint's zod parsing names what the schema cannot express.
 */
export const NETWORKING_GROUP = 'networking.warren.io';
export const NETWORKING_VERSION = 'v1';

const str = { type: 'string' };
const int = { type: 'integer' };
const num = { type: 'number' };
const obj = (properties: Record<string, object>, required?: string[]): object => ({ type: 'object', properties, ...(required ? { required } : {}) });
const list = (items: object): object => ({ type: 'array', items });
const strMap = { type: 'object', additionalProperties: str };
const percent = obj({ value: num });
const portSelector = obj({ number: int });

const connectionPool = obj({
  tcp: obj({ maxConnections: int, connectTimeout: str }),
  http: obj({ http1MaxPendingRequests: int, http2MaxRequests: int, maxRequestsPerConnection: int, maxRetries: int }),
});
const outlierDetection = obj({ consecutive5xxErrors: int, consecutiveGatewayErrors: int, interval: str, baseEjectionTime: str, maxEjectionPercent: int, minHealthPercent: int });
const loadBalancer = obj({ simple: { type: 'string', enum: ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM'] }, consistentHash: obj({ httpHeaderName: str }) });
const policyFields = { connectionPool, outlierDetection, loadBalancer };
const trafficPolicy = obj({ ...policyFields, portLevelSettings: list(obj({ port: portSelector, ...policyFields })) });

const destinationRuleSpec = obj({ host: str, trafficPolicy, subsets: list(obj({ name: str, labels: strMap, trafficPolicy }, ['name'])), exportTo: list(str) }, ['host']);

const stringMatch = obj({ exact: str, prefix: str, regex: str });
const virtualServiceSpec = obj(
  {
    hosts: list(str),
    exportTo: list(str),
    http: list(
      obj(
        {
          name: str,
          match: list(obj({ name: str, headers: { type: 'object', additionalProperties: stringMatch } })),
          fault: obj({ delay: obj({ fixedDelay: str, percentage: percent }), abort: obj({ httpStatus: int, grpcStatus: str, percentage: percent }) }),
          route: list(obj({ destination: obj({ host: str, subset: str, port: portSelector }, ['host']), weight: int })),
        },
        ['route'],
      ),
    ),
  },
  ['hosts'],
);

const backendTrafficPolicySpec = obj(
  {
    targetRefs: list(obj({ group: str, kind: str, name: str, sectionName: str }, ['kind', 'name'])),
    rateLimit: obj(
      { type: { type: 'string', enum: ['Local'] }, local: obj({ rules: list(obj({ limit: obj({ requests: int, unit: { type: 'string', enum: ['Second', 'Minute', 'Hour'] }, burst: int }, ['requests', 'unit']) }, ['limit'])) }) },
      ['type'],
    ),
  },
  ['targetRefs'],
);

const accepted = { name: 'Accepted', type: 'string', jsonPath: '.status.conditions[?(@.type=="Accepted")].status' };
const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function crd(kind: string, plural: string, short: string, spec: object, columns: object[]): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${NETWORKING_GROUP}`, labels: { ...CRD_LABELS } },
    spec: {
      group: NETWORKING_GROUP,
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List`, shortNames: [short], categories: ['warren-io', 'networking-warren-io'] },
      scope: 'Namespaced',
      versions: [
        {
          name: NETWORKING_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...columns, accepted, age],
          schema: { openAPIV3Schema: { type: 'object', properties: { spec, status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } }, required: ['spec'] } },
        },
      ],
    },
  };
}

export const RESILIENCE_CRDS = [
  crd('DestinationRule', 'destinationrules', 'dr', destinationRuleSpec, [{ name: 'Host', type: 'string', jsonPath: '.spec.host' }]),
  crd('VirtualService', 'virtualservices', 'vs', virtualServiceSpec, [{ name: 'Hosts', type: 'string', jsonPath: '.spec.hosts' }]),
  crd('BackendTrafficPolicy', 'backendtrafficpolicies', 'btp', backendTrafficPolicySpec, []),
];
