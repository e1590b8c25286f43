import * as models from '@kubernetes/client-node';

/**
 * Which fields an object may carry, for fieldValidation: unknown fields are
 * reported (Strict, Warn) and dropped (Warn, Ignore) as kube-apiserver's
 * typed decoding and CRD pruning do. Built-in kinds take their fields from
 * @kubernetes/client-node's generated models (the same OpenAPI the real
 * server serves); custom resources from the CRD's structural schema.
 */
export type FieldSchema =
  | { kind: 'any' }
  | { kind: 'scalar' }
  | { kind: 'array'; items: FieldSchema }
  | { kind: 'map'; values: FieldSchema }
  | { kind: 'object'; field: (name: string) => FieldSchema | undefined; keepUnknown?: boolean };

const ANY: FieldSchema = { kind: 'any' };
const SCALAR: FieldSchema = { kind: 'scalar' };

interface Attribute {
  baseName: string;
  type: string;
}

type ModelClass = { getAttributeTypeMap?: () => Attribute[] };
const modelCache = new Map<string, FieldSchema | undefined>();

/** A client-node type string ("V1PodSpec", "Array<V1Container>", "{ [key: string]: string; }") as a schema. */
function fromTypeName(type: string): FieldSchema {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return { kind: 'array', items: fromTypeName(array[1]!) };
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return { kind: 'map', values: fromTypeName(map[1]!) };
  if (['string', 'number', 'boolean', 'Date', 'IntOrString'].includes(type)) return SCALAR;
  return modelSchema(type) ?? ANY;
}

/** The schema of a client-node model class, e.g. `V1Deployment`; undefined when there is none. */
export function modelSchema(name: string): FieldSchema | undefined {
  if (modelCache.has(name)) return modelCache.get(name);
  const cls = (models as unknown as Record<string, ModelClass | undefined>)[name];
  const attrs = typeof cls?.getAttributeTypeMap === 'function' ? cls.getAttributeTypeMap() : undefined;
  if (attrs === undefined) {
    modelCache.set(name, undefined);
    return undefined;
  }
  const fields = new Map<string, string>(attrs.map((a) => [a.baseName, a.type]));
  const resolved = new Map<string, FieldSchema>();
  const schema: FieldSchema = {
    kind: 'object',
    field: (n) => {
      const t = fields.get(n);
      if (t === undefined) return undefined;
      let s = resolved.get(n);
      if (s === undefined) resolved.set(n, (s = fromTypeName(t)));
      return s;
    },
  };
  modelCache.set(name, schema);
  return schema;
}

/** client-node's model name for a built-in kind. */
export function builtinSchema(group: string, kind: string): FieldSchema | undefined {
  return modelSchema(group === '' && kind === 'Event' ? 'CoreV1Event' : `V1${kind}`);
}

interface StructuralSchema {
  type?: string;
  properties?: Record<string, StructuralSchema>;
  items?: StructuralSchema;
  additionalProperties?: StructuralSchema | boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
}

const OBJECT_META = (): FieldSchema => modelSchema('V1ObjectMeta') ?? ANY;

/** An object's envelope: apiVersion, kind and ObjectMeta are always known. */
function withEnvelope(inner: FieldSchema): FieldSchema {
  if (inner.kind !== 'object') return inner;
  return {
    ...inner,
    field: (n) => (n === 'apiVersion' || n === 'kind' ? SCALAR : n === 'metadata' ? OBJECT_META() : inner.field(n)),
  };
}

/** A CRD version's openAPIV3Schema, read as the API server prunes with it. */
export function crdSchema(raw: unknown): FieldSchema {
  if (typeof raw !== 'object' || raw === null) return ANY;
  return withEnvelope(fromStructural(raw as StructuralSchema));
}

function fromStructural(s: StructuralSchema): FieldSchema {
  if (s['x-kubernetes-int-or-string']) return SCALAR;
  if (s.type === 'array') return { kind: 'array', items: s.items ? fromStructural(s.items) : ANY };
  const keepUnknown = s['x-kubernetes-preserve-unknown-fields'] === true;
  if (s.type === 'object' || s.properties !== undefined || s.additionalProperties !== undefined || keepUnknown) {
    if (typeof s.additionalProperties === 'object') return { kind: 'map', values: fromStructural(s.additionalProperties) };
    if (s.additionalProperties === true) return { kind: 'map', values: ANY };
    const props = new Map(Object.entries(s.properties ?? {}).map(([k, v]) => [k, fromStructural(v)] as const));
    const obj: FieldSchema = { kind: 'object', field: (n) => props.get(n), keepUnknown };
    return s['x-kubernetes-embedded-resource'] ? withEnvelope(obj) : obj;
  }
  return s.type === undefined ? ANY : SCALAR;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The paths of fields `schema` does not know (`spec.template.spec.containers[0].imagee`),
 * and the value without them. Values of the wrong shape are left for validation to name.
 */
export function pruneUnknown(schema: FieldSchema, value: unknown, path = ''): { value: unknown; unknown: string[] } {
  const unknown: string[] = [];
  const walk = (s: FieldSchema, v: unknown, p: string): unknown => {
    if (s.kind === 'array' && Array.isArray(v)) return v.map((x, i) => walk(s.items, x, `${p}[${i}]`));
    if (s.kind === 'map' && isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(s.values, x, `${p}.${k}`)]));
    if (s.kind !== 'object' || !isObject(v)) return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const child = s.field(k);
      const cp = p === '' ? k : `${p}.${k}`;
      if (child !== undefined) out[k] = walk(child, x, cp);
      else if (s.keepUnknown) out[k] = x;
      else unknown.push(cp);
    }
    return out;
  };
  return { value: walk(schema, value, path), unknown };
}
