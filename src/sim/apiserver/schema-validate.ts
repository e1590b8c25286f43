/**
 * CRD openAPIV3Schema validation, the part that catches real mistakes:
 * required fields, basic types, enums (unknown fields are fieldValidation's,
 * in field-validation.ts). Errors name the field path as kube-apiserver does
 * ("spec.action: Unsupported value").
 */
export interface FieldError {
  field: string;
  message: string;
}

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  additionalProperties?: Schema | boolean;
  'x-kubernetes-int-or-string'?: boolean;
}

function typeOk(type: string | undefined, value: unknown, intOrString: boolean): boolean {
  if (intOrString) return typeof value === 'string' || Number.isInteger(value);
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return true;
  }
}

function check(schema: Schema, value: unknown, path: string, out: FieldError[]): void {
  if (value === null || value === undefined) return;
  if (!typeOk(schema.type, value, schema['x-kubernetes-int-or-string'] === true)) {
    out.push({ field: path, message: `Invalid value: ${JSON.stringify(value)}: ${path} in body must be of type ${schema.type}` });
    return;
  }
  if (schema.enum !== undefined && !schema.enum.some((e) => e === value)) {
    out.push({ field: path, message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}` });
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => check(schema.items!, v, `${path}[${i}]`, out));
  if (schema.type === 'object' && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (obj[r] === undefined) out.push({ field: `${path}.${r}`, message: 'Required value' });
    for (const [k, v] of Object.entries(obj)) {
      const prop = schema.properties?.[k];
      if (prop) check(prop, v, `${path}.${k}`, out);
      else if (typeof schema.additionalProperties === 'object') check(schema.additionalProperties, v, `${path}.${k}`, out);
    }
  }
}

/** A validator for objects of one CRD version; metadata/apiVersion/kind are the server's to check. */
export function schemaValidator(schema: unknown): ((obj: Record<string, unknown>) => FieldError[]) | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  const s = schema as Schema;
  return (obj) => {
    const out: FieldError[] = [];
    const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = obj;
    const top: Schema = { ...s, properties: { ...s.properties } };
    delete top.properties!.metadata;
    delete top.properties!.apiVersion;
    delete top.properties!.kind;
    const required = (s.required ?? []).filter((r) => !['metadata', 'apiVersion', 'kind'].includes(r));
    check({ ...top, required, type: 'object' }, rest, '', out);
    return out.map((e) => ({ ...e, field: e.field.replace(/^\./, '') }));
  };
}
