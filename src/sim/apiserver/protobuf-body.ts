import protobuf from 'protobufjs';
import { ApiError } from './api-error.js';
import { K8S_PROTO_SCHEMA } from './k8s-proto-schema.js';

/**
 * Request bodies in `application/vnd.kubernetes.protobuf`, which kubectl's
 * generators (`create namespace|deployment|configmap|secret|serviceaccount`,
 * `create token`) send: the 4-byte magic `k8s\0`, then a runtime.Unknown whose
 * typeMeta names the kind and whose raw bytes are the object's message.
 * Messages and field numbers are Kubernetes' generated.proto
 * (scripts/gen-k8s-proto.mjs); protobufjs decodes them by reflection. The
 * result is the object as Kubernetes' JSON would carry it, so everything
 * after decoding is the JSON path. Responses stay JSON: clients accept it
 * (they ask for protobuf *or* JSON).
 */
export const PROTOBUF = 'application/vnd.kubernetes.protobuf';
const MAGIC = Buffer.from('k8s\0', 'latin1');

const root = protobuf.Root.fromJSON(K8S_PROTO_SCHEMA as protobuf.INamespace);
const UNKNOWN = root.lookupType('k8s.io.apimachinery.pkg.runtime.Unknown');

/** The proto package of an API group (k8s.io/api/<package>/<version>). */
function protoPackage(group: string): string {
  if (group === '') return 'core';
  return group.split('.')[0]!; // apps, policy, rbac.authorization.k8s.io → rbac, discovery.k8s.io → discovery
}

function messageFor(apiVersion: string, kind: string): protobuf.Type | undefined {
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const found = root.lookup(`k8s.io.api.${protoPackage(group)}.${version}.${kind}`);
  return found instanceof protobuf.Type ? found : undefined;
}

/**
 * Go marshals every non-pointer field, zero or not, and its JSON leaves the
 * zero ones out (omitempty); the wire cannot tell them from pointer fields
 * set to zero. These are the pointer fields whose zero means something.
 */
const MEANINGFUL_ZERO = new Set([
  'replicas',
  'revisionHistoryLimit',
  'progressDeadlineSeconds',
  'terminationGracePeriodSeconds',
  'activeDeadlineSeconds',
  'runAsUser',
  'runAsGroup',
  'fsGroup',
  'runAsNonRoot',
  'privileged',
  'allowPrivilegeEscalation',
  'readOnlyRootFilesystem',
  'automountServiceAccountToken',
  'enableServiceLinks',
  'shareProcessNamespace',
  'hostUsers',
  'defaultMode',
  'mode',
  'optional',
  'expirationSeconds',
  'immutable',
]);

const toNumber = (v: unknown): number => (typeof v === 'object' && v !== null && 'toNumber' in v ? (v as { toNumber(): number }).toNumber() : Number(v));

/** meta/v1 Time as RFC 3339; Go's zero time is JSON null, i.e. unset. */
function time(m: Record<string, unknown>, micro: boolean): string | undefined {
  const seconds = toNumber(m.seconds ?? 0);
  const nanos = toNumber(m.nanos ?? 0);
  if (seconds === 0 && nanos === 0) return undefined;
  const iso = new Date(seconds * 1000 + Math.floor(nanos / 1e6)).toISOString();
  return micro ? iso.replace(/\.\d+Z$/, `.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z`) : iso.replace(/\.\d+Z$/, 'Z');
}

function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const s = ns / 1e9;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = +(s % 60).toFixed(9);
  return `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${rest}s`;
}

function parseEmbeddedJson(raw: Uint8Array, where: string): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    throw new ApiError('BadRequest', `the protobuf body is corrupt: ${where} does not hold JSON`);
  }
}

/** The JSON form of one decoded message, following the types' JSON marshalers. */
function toJson(type: protobuf.Type, m: Record<string, unknown>, path: string): unknown {
  switch (type.name) {
    case 'Time':
      return time(m, false);
    case 'MicroTime':
      return time(m, true);
    case 'Duration':
      return goDuration(toNumber(m.duration ?? 0));
    case 'Quantity':
      return m.string === '' ? undefined : m.string;
    case 'IntOrString':
      return toNumber(m.type ?? 0) === 1 ? m.strVal : toNumber(m.intVal ?? 0) === 0 ? undefined : toNumber(m.intVal);
    case 'RawExtension':
      return parseEmbeddedJson((m.raw as Uint8Array | undefined) ?? new Uint8Array(), path);
    case 'FieldsV1':
      return parseEmbeddedJson((m.Raw as Uint8Array | undefined) ?? new Uint8Array(), path);
  }
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (!Object.prototype.hasOwnProperty.call(m, field.name)) continue;
    const v = scalarOrMessage(field, m[field.name], `${path}.${field.name}`);
    if (v !== undefined) out[field.name] = v;
  }
  return out;
}

function one(field: protobuf.Field, v: unknown, path: string, keepZero: boolean): unknown {
  if (field.resolvedType instanceof protobuf.Type) return toJson(field.resolvedType, v as Record<string, unknown>, path);
  if (v instanceof Uint8Array) return v.length === 0 && !keepZero ? undefined : Buffer.from(v).toString('base64');
  if (typeof v === 'object' && v !== null) v = toNumber(v);
  if (!keepZero && (v === '' || v === 0 || v === false)) return undefined;
  return v;
}

function scalarOrMessage(field: protobuf.Field, v: unknown, path: string): unknown {
  if (field.map) {
    const entries = Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, one(field, x, `${path}.${k}`, true)] as const);
    return entries.length === 0 ? undefined : Object.fromEntries(entries);
  }
  if (field.repeated) {
    const list = (v as unknown[]).map((x, i) => one(field, x, `${path}[${i}]`, true));
    return list.length === 0 ? undefined : list;
  }
  return one(field, v, path, MEANINGFUL_ZERO.has(field.name));
}

function decode(type: protobuf.Type, bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    return type.decode(bytes) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new ApiError('BadRequest', `the protobuf body is corrupt: ${what}: ${(err as Error).message}`);
  }
}

/** A protobuf request body as the JSON object it encodes; 400 if corrupt, 415 naming a kind not decoded here. */
export function decodeProtobufBody(bytes: Buffer): Record<string, unknown> {
  if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ApiError('BadRequest', 'the protobuf body is corrupt: it does not start with the "k8s\\x00" magic of a Kubernetes protobuf envelope');
  }
  const envelope = decode(UNKNOWN, bytes.subarray(MAGIC.length), 'runtime.Unknown envelope');
  const typeMeta = (envelope.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const apiVersion = typeMeta.apiVersion ?? '';
  const kind = typeMeta.kind ?? '';
  if (apiVersion === '' || kind === '') throw new ApiError('BadRequest', 'the protobuf body is corrupt: runtime.Unknown has no typeMeta apiVersion and kind');
  if ((envelope.contentEncoding ?? '') !== '') throw new ApiError('UnsupportedMediaType', `protobuf bodies with contentEncoding "${String(envelope.contentEncoding)}" are not supported`);
  const type = messageFor(apiVersion, kind);
  if (type === undefined) {
    throw new ApiError('UnsupportedMediaType', `the warren simulator does not decode ${kind} (${apiVersion}) from protobuf: send it as JSON (kubectl apply -f, or kubectl create … -o yaml --dry-run=client | kubectl apply -f -)`);
  }
  const message = decode(type, (envelope.raw as Uint8Array | undefined) ?? new Uint8Array(), `${kind} (${apiVersion})`);
  return { ...(toJson(type, message, '') as Record<string, unknown>), apiVersion, kind };
}
