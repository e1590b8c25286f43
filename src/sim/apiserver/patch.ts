import jsonpatch from 'fast-json-patch';
import { ApiError } from './api-error.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

/**
 * Strategic merge patch, the subset kubectl uses on the kinds served here:
 * like a merge patch, but lists of objects that carry a merge key (`name`,
 * or `containerPort`/`port` for ports) merge element-wise, `$patch: delete`
 * removes an element, and the bookkeeping directives ($setElementOrder,
 * $retainKeys, $deleteFromPrimitiveList) are honoured or dropped.
 */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return patch;
  if (patch.$patch === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return rest;
  }
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [rawKey, v] of Object.entries(patch)) {
    if (rawKey.startsWith('$setElementOrder/') || rawKey === '$retainKeys' || rawKey === '$patch') continue;
    if (rawKey.startsWith('$deleteFromPrimitiveList/')) {
      const key = rawKey.slice('$deleteFromPrimitiveList/'.length);
      const current = out[key];
      if (Array.isArray(current) && Array.isArray(v)) out[key] = current.filter((x) => !v.includes(x));
      continue;
    }
    if (v === null) {
      delete out[rawKey];
      continue;
    }
    const current = out[rawKey];
    out[rawKey] = Array.isArray(v) && Array.isArray(current) ? mergeList(current, v) : strategicMergePatch(current ?? null, v);
  }
  return out;
}

const MERGE_KEYS = ['name', 'containerPort', 'port', 'mountPath', 'ip', 'type'];

function mergeKeyOf(list: Json[]): string | undefined {
  const objects = list.filter(isObject);
  if (objects.length === 0 || objects.length !== list.length) return undefined;
  return MERGE_KEYS.find((k) => objects.every((o) => o[k] !== undefined));
}

function mergeList(current: Json[], patch: Json[]): Json[] {
  const key = mergeKeyOf(patch);
  if (key === undefined || mergeKeyOf(current) !== key) return patch.filter((p) => !(isObject(p) && p.$patch === 'delete'));
  const out = current.map((c) => c);
  for (const p of patch as JsonObject[]) {
    const index = out.findIndex((c) => isObject(c) && c[key] === p[key]);
    if (p.$patch === 'delete') {
      if (index >= 0) out.splice(index, 1);
    } else if (index >= 0) out[index] = strategicMergePatch(out[index]!, p);
    else out.push(strategicMergePatch(null, p));
  }
  return out;
}

/** RFC 6902 JSON patch; a failing operation (e.g. `test`) is a 422 as kube-apiserver answers. */
export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new ApiError('BadRequest', 'a JSON patch must be an array of operations');
  try {
    return jsonpatch.applyPatch(structuredClone(target), ops as jsonpatch.Operation[], true, false).newDocument;
  } catch (err) {
    throw new ApiError('Invalid', `the JSON patch could not be applied: ${(err as Error).message.split('\n')[0]}`);
  }
}

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

export function patchTypeOf(contentType: string | undefined): PatchType {
  const ct = (contentType ?? '').split(';')[0]!.trim();
  if (ct === 'application/merge-patch+json') return 'merge';
  if (ct === 'application/strategic-merge-patch+json') return 'strategic';
  if (ct === 'application/json-patch+json') return 'json';
  if (ct === 'application/apply-patch+yaml') return 'apply';
  throw new ApiError('UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got "${ct}")`);
}

export function applyPatch(type: Exclude<PatchType, 'apply'>, target: Json, patch: unknown): Json {
  if (type === 'json') return jsonPatch(target, patch);
  if (!isObject(patch)) throw new ApiError('BadRequest', 'a merge patch must be a JSON object');
  return type === 'merge' ? mergePatch(target, patch) : strategicMergePatch(target, patch);
}

export type { Json, JsonObject };
