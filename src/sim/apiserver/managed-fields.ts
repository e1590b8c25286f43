import { isDeepStrictEqual } from 'node:util';
import { ApiError } from './api-error.js';
import type { KubeObject } from './store.js';

/**
 * Field ownership (metadata.managedFields) and server-side apply, the part
 * `kubectl apply --server-side` relies on: each manager owns the leaf fields
 * it applied or changed; an apply sets what it sends, removes what it no
 * longer sends (unless another manager owns it too), and a field another
 * manager owns with a different value is a conflict (409 naming field and
 * manager) unless forced. Lists of objects keyed by `name` (containers, env,
 * volumes…) or a port are associative (`k:{"name":"web"}`); other lists are
 * atomic, one field as a whole — the default for CRD lists too.
 */
export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

type Json = unknown;
type Path = string[]; // fieldsV1 keys: "f:spec", "k:{\"name\":\"web\"}"

const LIST_KEYS = ['name', 'containerPort', 'port'];
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fields that are the server's, never owned: identity, bookkeeping and (own subresource) status. */
const SERVER_FIELDS = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'deletionTimestamp']);

function listKey(list: unknown[]): string | undefined {
  if (list.length === 0 || !list.every(isObject)) return undefined;
  return LIST_KEYS.find((k) => list.every((o) => (o as Record<string, unknown>)[k] !== undefined));
}

const itemKey = (key: string, item: Record<string, unknown>): string => `k:${JSON.stringify({ [key]: item[key] })}`;

function walk(v: Json, prefix: Path, out: Map<string, Json>): void {
  if (isObject(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) walk(x, [...prefix, `f:${k}`], out);
    return;
  }
  const key = Array.isArray(v) ? listKey(v) : undefined;
  if (key !== undefined) {
    for (const item of v as Array<Record<string, unknown>>) walk(item, [...prefix, itemKey(key, item)], out);
    return;
  }
  out.set(JSON.stringify(prefix), v);
}

/** Leaf field paths of an object (JSON-encoded Path) with their values. */
export function leafFields(obj: KubeObject): Map<string, Json> {
  const out = new Map<string, Json>();
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind' || k === 'status') continue;
    if (k === 'metadata' && isObject(v)) {
      for (const [mk, mv] of Object.entries(v)) if (!SERVER_FIELDS.has(mk)) walk(mv, ['f:metadata', `f:${mk}`], out);
      continue;
    }
    walk(v, [`f:${k}`], out);
  }
  return out;
}

function valueAt(obj: Json, path: Path): Json {
  let cur: Json = obj;
  for (const el of path) {
    if (el.startsWith('f:') && isObject(cur)) cur = cur[el.slice(2)];
    else if (el.startsWith('k:') && Array.isArray(cur)) {
      const want = JSON.parse(el.slice(2)) as Record<string, unknown>;
      cur = cur.find((i) => isObject(i) && Object.entries(want).every(([k, x]) => i[k] === x));
    } else return undefined;
  }
  return cur;
}

/** Removes the field at `path`, and parents it leaves empty. */
function removeAt(obj: Record<string, unknown>, path: Path): void {
  const parent = valueAt(obj, path.slice(0, -1));
  const last = path.at(-1)!;
  if (last.startsWith('f:') && isObject(parent)) delete parent[last.slice(2)];
  else if (last.startsWith('k:') && Array.isArray(parent)) {
    const item = valueAt(obj, path);
    parent.splice(parent.indexOf(item), 1);
  }
  const emptied = valueAt(obj, path.slice(0, -1));
  if (path.length > 1 && ((isObject(emptied) && Object.keys(emptied).length === 0) || (Array.isArray(emptied) && emptied.length === 0))) removeAt(obj, path.slice(0, -1));
}

/** An applied configuration merged into a live value: objects field by field, keyed lists item by item, the rest replaced. */
function merge(live: Json, applied: Json): Json {
  if (isObject(applied)) {
    const out: Record<string, unknown> = isObject(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(applied)) out[k] = merge(out[k], v);
    return out;
  }
  const key = Array.isArray(applied) ? listKey(applied) : undefined;
  if (key !== undefined && Array.isArray(live) && listKey(live) === key) {
    const rest = live.filter((l) => !(applied as Array<Record<string, unknown>>).some((a) => a[key] === (l as Record<string, unknown>)[key]));
    const mergedApplied = (applied as Array<Record<string, unknown>>).map((a) => merge(live.find((l) => (l as Record<string, unknown>)[key] === a[key]), a));
    return [...mergedApplied, ...rest];
  }
  return structuredClone(applied);
}

/** fieldsV1 form of a set of paths: nested `f:`/`k:` keys, `{}` at leaves, `".": {}` on keyed list items. */
function toFieldsV1(paths: Iterable<string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const p of paths) {
    let node = root;
    for (const el of JSON.parse(p) as Path) {
      node = (node[el] ??= {}) as Record<string, unknown>;
      if (el.startsWith('k:')) node['.'] ??= {};
    }
  }
  return root;
}

function fromFieldsV1(f: unknown, prefix: Path = [], out: Set<string> = new Set()): Set<string> {
  if (!isObject(f)) return out;
  const children = Object.keys(f).filter((k) => k !== '.');
  if (children.length === 0 && prefix.length > 0) out.add(JSON.stringify(prefix));
  for (const k of children) fromFieldsV1(f[k], [...prefix, k], out);
  return out;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

function entriesOf(obj: KubeObject | undefined): Array<ManagedFieldsEntry & { set: Set<string> }> {
  const list = (obj?.metadata.managedFields ?? []) as ManagedFieldsEntry[];
  return list.map((e) => ({ ...e, set: fromFieldsV1(e.fieldsV1) }));
}

function finish(entries: Array<ManagedFieldsEntry & { set: Set<string> }>): ManagedFieldsEntry[] {
  return entries.filter((e) => e.set.size > 0).map(({ set, ...e }) => ({ ...e, fieldsV1: toFieldsV1([...set].sort()) }));
}

function upsert(entries: Array<ManagedFieldsEntry & { set: Set<string> }>, manager: string, operation: 'Apply' | 'Update', apiVersion: string, subresource: string | undefined): ManagedFieldsEntry & { set: Set<string> } {
  let e = entries.find((x) => x.manager === manager && x.operation === operation && x.subresource === subresource);
  if (e === undefined) {
    e = { manager, operation, apiVersion, time: now(), fieldsType: 'FieldsV1', fieldsV1: {}, set: new Set(), ...(subresource === undefined ? {} : { subresource }) };
    entries.push(e);
  }
  e.apiVersion = apiVersion;
  return e;
}

/** managedFields after an ordinary write by `manager`: it owns what it changed; others lose those fields. */
export function recordUpdate(before: KubeObject | undefined, after: KubeObject, manager: string, apiVersion: string, subresource?: string): ManagedFieldsEntry[] {
  const entries = entriesOf(before);
  const old = before === undefined ? new Map<string, Json>() : leafFields(before);
  const next = leafFields(after);
  const changed = [...next].filter(([p, v]) => !old.has(p) || !isDeepStrictEqual(old.get(p), v)).map(([p]) => p);
  const removed = [...old.keys()].filter((p) => !next.has(p));
  for (const e of entries) for (const p of [...changed, ...removed]) e.set.delete(p);
  if (changed.length > 0) {
    const mine = upsert(entries, manager, 'Update', apiVersion, subresource);
    mine.time = now();
    for (const p of changed) mine.set.add(p);
  }
  return finish(entries);
}

/**
 * The object after `manager` applies `applied` (a full intent, as kubectl sends it) to `live`
 * (undefined: it does not exist yet), with its managedFields; a conflict is a 409.
 */
export function serverSideApply(live: KubeObject | undefined, applied: KubeObject, manager: string, force: boolean, apiVersion: string): KubeObject {
  const entries = entriesOf(live);
  const want = leafFields(applied);
  const conflicts: string[] = [];
  for (const [p, v] of want) {
    if (live !== undefined && isDeepStrictEqual(valueAt(live, JSON.parse(p) as Path), v)) continue;
    for (const e of entries) {
      if (e.manager === manager || !e.set.has(p)) continue;
      if (force) e.set.delete(p);
      else conflicts.push(`conflict with "${e.manager}"${e.operation === 'Update' ? ` using ${e.apiVersion}` : ''}: .${(JSON.parse(p) as Path).map((el) => (el.startsWith('f:') ? el.slice(2) : `[${el.slice(2)}]`)).join('.').replace(/\.\[/g, '[')}`);
    }
  }
  if (conflicts.length > 0) {
    throw new ApiError('Conflict', `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${conflicts.join('\n')}`, {
      name: applied.metadata.name,
      causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: c.split(': ')[0]!, field: c.split(': ').slice(1).join(': ') })),
    });
  }
  const mine = upsert(entries, manager, 'Apply', apiVersion, undefined);
  const base = structuredClone(live ?? { metadata: {} }) as KubeObject;
  for (const p of mine.set) {
    if (want.has(p) || entries.some((e) => e !== mine && e.set.has(p))) continue;
    removeAt(base, JSON.parse(p) as Path);
  }
  const owned = new Set(want.keys());
  const { status: _ignored, ...intent } = applied;
  const object = merge(base, intent) as KubeObject;
  // A re-apply that changes nothing leaves the entry, and so the object, as it was.
  if (!isDeepStrictEqual(owned, mine.set) || !isDeepStrictEqual(leafFields(object), live === undefined ? undefined : leafFields(live))) mine.time = now();
  mine.set = owned;
  object.metadata = { ...object.metadata, managedFields: finish(entries) };
  return object;
}
