import { ApiError } from './api-error.js';
import { BUILTIN_TYPES, groupVersion, typeKey, type ResourceType } from './resource-types.js';
import { crdSchema } from './field-schema.js';
import { schemaValidator } from './schema-validate.js';
import type { KubeObject } from './store.js';

/** The kinds being served: the built-ins plus whatever CRDs define. */
export class Registry {
  private readonly types = new Map<string, ResourceType>();
  private readonly byCrd = new Map<string, string[]>();

  constructor() {
    for (const t of BUILTIN_TYPES) this.types.set(typeKey(t), t);
  }

  all(): ResourceType[] {
    return [...this.types.values()];
  }

  byKey(key: string): ResourceType | undefined {
    return this.types.get(key);
  }

  lookup(group: string, version: string, resource: string): ResourceType {
    const t = this.types.get(`${group}/${version}/${resource}`);
    if (t === undefined) throw new ApiError('NotFound', `the server could not find the requested resource (${resource}.${groupVersion({ group, version })})`);
    return t;
  }

  hasNamespaced(group: string, version: string, resource: string): boolean {
    return this.types.get(`${group}/${version}/${resource}`)?.namespaced === true;
  }

  groups(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const t of this.types.values()) {
      if (t.group === '') continue;
      const versions = groups.get(t.group) ?? [];
      if (!versions.includes(t.version)) versions.push(t.version);
      groups.set(t.group, versions);
    }
    return groups;
  }

  /** Serves the kinds a CRD defines (every served version); replaces earlier ones of the same CRD. */
  registerCrd(crd: KubeObject): void {
    this.unregisterCrd(crd.metadata.name);
    const spec = crd.spec as {
      group: string;
      scope: string;
      names: { plural: string; singular?: string; kind: string; shortNames?: string[] };
      versions: Array<{ name: string; served: boolean; schema?: { openAPIV3Schema?: unknown }; subresources?: { status?: unknown } }>;
    };
    const keys: string[] = [];
    for (const v of spec.versions.filter((x) => x.served)) {
      const t: ResourceType = {
        group: spec.group,
        version: v.name,
        resource: spec.names.plural,
        singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
        kind: spec.names.kind,
        namespaced: spec.scope === 'Namespaced',
        shortNames: spec.names.shortNames ?? [],
        subresources: v.subresources?.status === undefined ? [] : ['status'],
        validate: schemaValidator(v.schema?.openAPIV3Schema),
        fields: crdSchema(v.schema?.openAPIV3Schema),
      };
      this.types.set(typeKey(t), t);
      keys.push(typeKey(t));
    }
    this.byCrd.set(crd.metadata.name, keys);
  }

  unregisterCrd(name: string): ResourceType[] {
    const keys = this.byCrd.get(name) ?? [];
    const removed = keys.map((k) => this.types.get(k)).filter((t): t is ResourceType => t !== undefined);
    for (const k of keys) this.types.delete(k);
    this.byCrd.delete(name);
    return removed;
  }
}
