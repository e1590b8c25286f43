import { ApiError } from './api-error.js';
import { pruneUnknown } from './field-schema.js';
import { duplicateJsonKeys } from './json-duplicates.js';
import type { ResourceType } from './resource-types.js';

/**
 * kube-apiserver's `fieldValidation` query parameter: what to do with
 * unknown and duplicate fields. Strict fails the request (400, as a strict
 * decoding error), Warn (the default) drops them with a `Warning` header per
 * field, Ignore drops them silently.
 */
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export function fieldValidationOf(q: URLSearchParams): FieldValidation {
  const v = q.get('fieldValidation');
  if (v === null || v === '') return 'Warn';
  if (v === 'Strict' || v === 'Warn' || v === 'Ignore') return v;
  throw new ApiError('BadRequest', `fieldValidation: Unsupported value: "${v}": supported values: "Ignore", "Strict", "Warn"`);
}

export interface FieldCheck {
  directive: FieldValidation;
  /** the request body as sent, for duplicate keys (JSON bodies only) */
  rawBody?: string | undefined;
  /** collects one message per dropped or duplicate field under Warn */
  warnings: string[];
}

/**
 * The object as the typed decoder would leave it: unknown fields dropped,
 * or a 400 naming them under Strict. `known` lists paths already unknown in
 * the stored object (a patch is judged by what it adds).
 */
export function checkFields(type: ResourceType, obj: unknown, check: FieldCheck, known: Set<string> = new Set()): unknown {
  const duplicates = check.rawBody === undefined ? [] : duplicateJsonKeys(check.rawBody);
  const { value, unknown } = type.fields === undefined ? { value: obj, unknown: [] } : pruneUnknown(type.fields, obj);
  const problems = [...unknown.filter((p) => !known.has(p)).map((p) => `unknown field "${p}"`), ...duplicates.map((p) => `duplicate field "${p}"`)];
  if (problems.length === 0 || check.directive === 'Ignore') return value;
  if (check.directive === 'Strict') {
    throw new ApiError('BadRequest', `${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: strict decoding error: ${problems.join(', ')}`);
  }
  check.warnings.push(...problems);
  return value;
}

/** The unknown-field paths an object already has (stored before a schema tightened). */
export function unknownPaths(type: ResourceType, obj: unknown): Set<string> {
  return new Set(type.fields === undefined ? [] : pruneUnknown(type.fields, obj).unknown);
}
