import { ApiError } from './api-error.js';

/** One requirement of a label selector (apimachinery labels.Requirement). */
export type LabelRequirement =
  | { key: string; op: 'exists' | 'notexists' }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'eq' | 'neq'; values: [string] };

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;

/** Splits on commas that are not inside parentheses (set-based values). */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += ch;
  }
  if (current.trim() !== '') terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t !== '');
}

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key)) throw new ApiError('BadRequest', `unable to parse requirement: invalid label key "${key}" in selector "${whole}"`);
  return key;
}

export function parseLabelSelector(text: string | undefined): LabelRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  return splitTerms(text).map((term): LabelRequirement => {
    let m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) {
      const values = m[3]!.split(',').map((v) => v.trim()).filter((v) => v !== '');
      return { key: checkKey(m[1]!, text), op: m[2] as 'in' | 'notin', values };
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (m) return { key: checkKey(m[1]!, text), op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3]!] };
    m = /^!\s*(\S+)$/.exec(term);
    if (m) return { key: checkKey(m[1]!, text), op: 'notexists' };
    if (/^\S+$/.test(term)) return { key: checkKey(term, text), op: 'exists' };
    throw new ApiError('BadRequest', `unable to parse requirement: "${term}" in selector "${text}"`);
  });
}

export function matchesLabels(requirements: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return requirements.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'eq':
        return has && l[r.key] === r.values[0];
      case 'neq':
        return !has || l[r.key] !== r.values[0];
      case 'in':
        return has && r.values.includes(l[r.key]!);
      case 'notin':
        return !has || !r.values.includes(l[r.key]!);
    }
  });
}

export interface FieldRequirement {
  field: string;
  value: string;
  negate: boolean;
}

/** Fields the server can select on, as kube-apiserver allows for the common kinds. */
const FIELDS: Record<string, (obj: Record<string, any>) => string | undefined> = {
  'metadata.name': (o) => o.metadata?.name,
  'metadata.namespace': (o) => o.metadata?.namespace,
  'spec.nodeName': (o) => o.spec?.nodeName ?? '',
  'status.phase': (o) => o.status?.phase ?? '',
  'spec.serviceAccountName': (o) => o.spec?.serviceAccountName ?? '',
  type: (o) => o.type,
};

export function parseFieldSelector(text: string | undefined): FieldRequirement[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((term) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*$/.exec(term);
    if (!m) throw new ApiError('BadRequest', `invalid field selector term "${term}"`);
    if (!(m[1]! in FIELDS)) throw new ApiError('BadRequest', `field label not supported: ${m[1]}`);
    return { field: m[1]!, value: m[3]!, negate: m[2] === '!=' };
  });
}

export function matchesFields(requirements: FieldRequirement[], obj: Record<string, unknown>): boolean {
  return requirements.every((r) => (FIELDS[r.field]!(obj) === r.value) !== r.negate);
}
