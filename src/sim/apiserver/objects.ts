import { ApiError } from './api-error.js';
import { checkEnvelope, checkName, defaultOnCreate, invalid } from './admission.js';
import { ClusterIpAllocator } from './cluster-ip.js';
import { checkFields, unknownPaths, type FieldCheck } from './field-validation.js';
import { recordUpdate, serverSideApply } from './managed-fields.js';
import { fromScale, toScale } from './scale.js';
import { applyPatch, type Json, type PatchType } from './patch.js';
import type { Registry } from './registry.js';
import { groupVersion, typeKey, type ResourceType } from './resource-types.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';
import type { KubeObject, Store } from './store.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ListOptions {
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
}

/** How a client's write is taken; in-process writers (controllers, kubelet) pass none. */
export interface WriteOptions {
  /** fieldValidation for the body; absent: the writer is trusted, fields are kept as sent */
  fields?: FieldCheck | undefined;
  /** dryRun=All: validate and admit, store nothing, emit nothing */
  dryRun?: boolean | undefined;
  /** fieldManager: who owns the fields this write sets (metadata.managedFields) */
  manager?: string | undefined;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
}

/**
 * The verbs, with the semantics kube-apiserver gives them: admission on the
 * way in, optimistic concurrency, namespaces that must exist, CRDs that start
 * serving their kinds, and cascading deletes (namespaces empty themselves,
 * dependents named by ownerReferences go with their owner).
 */
export class ApiObjects {
  private readonly clusterIps: ClusterIpAllocator;

  constructor(
    readonly registry: Registry,
    readonly store: Store,
  ) {
    this.clusterIps = new ClusterIpAllocator(() => this.store.list(this.registry.lookup('', 'v1', 'services')));
  }

  private crdType(): ResourceType {
    return this.registry.lookup('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
  }

  private requireNamespace(type: ResourceType, namespace: string | undefined): void {
    if (!type.namespaced || namespace === undefined) return;
    const nsType = this.registry.lookup('', 'v1', 'namespaces');
    if (this.store.find(nsType, undefined, namespace) === undefined) {
      throw new ApiError('NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' });
    }
  }

  private validate(type: ResourceType, obj: KubeObject): void {
    const errors = type.validate?.(obj) ?? [];
    if (errors.length > 0) throw invalid(type, obj.metadata.name, errors.map((e) => ({ ...e, reason: 'FieldValueInvalid' })));
  }

  get(type: ResourceType, namespace: string | undefined, name: string, subresource?: string): KubeObject {
    const obj = this.store.get(type, namespace, name);
    return subresource === 'scale' ? toScale(obj) : obj;
  }

  list(type: ResourceType, namespace: string | undefined, options: ListOptions = {}): ListResult {
    const labels = parseLabelSelector(options.labelSelector);
    const fields = parseFieldSelector(options.fieldSelector);
    const items = this.store
      .list(type, namespace)
      .filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o))
      .sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
    return { items, resourceVersion: String(this.store.resourceVersion) };
  }

  create(type: ResourceType, namespace: string | undefined, body: unknown, opts: WriteOptions = {}): KubeObject {
    const decoded = opts.fields === undefined ? body : checkFields(type, body, opts.fields);
    const obj = checkEnvelope(type, structuredClone(decoded), namespace);
    delete obj.metadata.resourceVersion;
    delete obj.metadata.uid;
    if (opts.manager !== undefined) obj.metadata.managedFields = recordUpdate(undefined, obj, opts.manager, groupVersion(type));
    defaultOnCreate(type, obj, this.clusterIps);
    this.validate(type, obj);
    this.requireNamespace(type, obj.metadata.namespace);
    if (typeKey(type) === typeKey(this.crdType())) return this.createCrd(obj, opts.dryRun === true);
    return this.store.create(type, obj, opts.dryRun);
  }

  private createCrd(obj: KubeObject, dryRun: boolean): KubeObject {
    const spec = obj.spec as { group?: string; names?: { plural?: string; kind?: string }; versions?: unknown[]; scope?: string } | undefined;
    const causes = [];
    if (!spec?.group) causes.push({ field: 'spec.group', message: 'Required value' });
    if (!spec?.names?.plural) causes.push({ field: 'spec.names.plural', message: 'Required value' });
    if (!spec?.names?.kind) causes.push({ field: 'spec.names.kind', message: 'Required value' });
    if (!Array.isArray(spec?.versions) || spec.versions.length === 0) causes.push({ field: 'spec.versions', message: 'Required value: must have exactly one version marked as storage version' });
    if (spec?.scope !== 'Namespaced' && spec?.scope !== 'Cluster') causes.push({ field: 'spec.scope', message: 'Unsupported value: supported values: "Cluster", "Namespaced"' });
    if (causes.length === 0 && obj.metadata.name !== `${spec!.names!.plural}.${spec!.group}`) {
      causes.push({ field: 'metadata.name', message: `Invalid value: "${obj.metadata.name}": must be spec.names.plural+"."+spec.group` });
    }
    if (causes.length > 0) throw invalid(this.crdType(), obj.metadata.name, causes);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    obj.status = {
      acceptedNames: spec!.names,
      storedVersions: (spec!.versions as Array<{ name: string; storage?: boolean }>).filter((v) => v.storage).map((v) => v.name),
      conditions: [
        { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: now },
        { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: now },
      ],
    };
    if (dryRun) return this.store.create(this.crdType(), obj, true);
    this.registry.registerCrd(obj);
    return this.store.create(this.crdType(), obj);
  }

  update(type: ResourceType, namespace: string | undefined, name: string, body: unknown, subresource?: string, opts: WriteOptions = {}): KubeObject {
    if (subresource === 'scale') return toScale(this.replace(type, namespace, name, fromScale(this.store.get(type, namespace, name), body), undefined, opts));
    const decoded = opts.fields === undefined ? body : checkFields(type, body, opts.fields);
    return this.replace(type, namespace, name, decoded, subresource, opts);
  }

  /**
   * Server-side apply (PATCH application/apply-patch+yaml): creates the object if it is missing;
   * `created` tells the caller to answer 201.
   */
  apply(type: ResourceType, namespace: string | undefined, name: string, body: unknown, force: boolean, opts: WriteOptions & { manager: string }): { object: KubeObject; created: boolean } {
    const decoded = opts.fields === undefined ? body : checkFields(type, body, opts.fields);
    if (!isObject(decoded) || decoded.apiVersion === undefined || decoded.kind === undefined) {
      throw new ApiError('BadRequest', 'an applied configuration must set apiVersion and kind');
    }
    const applied = checkEnvelope(type, structuredClone(decoded), namespace);
    if (applied.metadata.name !== name) {
      throw new ApiError('BadRequest', `the name of the object (${String(applied.metadata.name)}) does not match the name on the URL (${name})`);
    }
    const live = this.store.find(type, namespace, name);
    const object = serverSideApply(live, applied, opts.manager, force, groupVersion(type));
    const write = { dryRun: opts.dryRun };
    if (live === undefined) return { object: this.create(type, namespace, object, write), created: true };
    object.metadata.resourceVersion = applied.metadata.resourceVersion ?? live.metadata.resourceVersion;
    return { object: this.replace(type, namespace, name, object, undefined, write), created: false };
  }

  private replace(type: ResourceType, namespace: string | undefined, name: string, body: unknown, subresource: string | undefined, opts: WriteOptions): KubeObject {
    const dryRun = opts.dryRun === true;
    const obj = checkEnvelope(type, structuredClone(body), namespace);
    if (obj.metadata.name !== name) {
      throw new ApiError('BadRequest', `the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    }
    checkName(type, obj);
    if (subresource !== 'status') this.validate(type, obj);
    const current = this.store.get(type, namespace, name);
    if (type.kind === 'Service' && type.group === '') {
      // ClusterIP is immutable once allocated, as in kube-apiserver.
      obj.spec = { ...obj.spec, clusterIP: current.spec?.clusterIP, clusterIPs: current.spec?.clusterIPs };
    }
    obj.metadata.managedFields = opts.manager === undefined ? (obj.metadata.managedFields ?? current.metadata.managedFields) : recordUpdate(current, obj, opts.manager, groupVersion(type), subresource);
    if (obj.metadata.managedFields === undefined) delete obj.metadata.managedFields;
    const updated = this.store.update(type, obj, subresource, dryRun);
    if (!dryRun && typeKey(type) === typeKey(this.crdType())) this.registry.registerCrd(updated);
    return updated;
  }

  patch(type: ResourceType, namespace: string | undefined, name: string, patchType: Exclude<PatchType, 'apply'>, patch: unknown, subresource?: string, opts: WriteOptions = {}): KubeObject {
    const current = this.store.get(type, namespace, name);
    if (subresource === 'scale') {
      const scaled = fromScale(current, applyPatch(patchType, toScale(current) as unknown as Json, patch));
      return toScale(this.replace(type, namespace, name, scaled, undefined, opts));
    }
    let next = applyPatch(patchType, current as unknown as Json, patch) as KubeObject;
    if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new ApiError('BadRequest', 'the patch must leave an object');
    if (opts.fields !== undefined) next = checkFields(type, next, opts.fields, unknownPaths(type, current)) as KubeObject;
    // A patch applies to the version it was computed against only if it says so.
    const patchRv = (patch as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
    next.metadata = { ...next.metadata, resourceVersion: typeof patchRv === 'string' ? patchRv : current.metadata.resourceVersion };
    return this.replace(type, namespace, name, next, subresource, opts);
  }

  delete(type: ResourceType, namespace: string | undefined, name: string, opts: WriteOptions = {}): KubeObject {
    if (opts.dryRun) return this.store.get(type, namespace, name);
    const gone = this.store.delete(type, namespace, name);
    if (type.kind === 'Namespace' && type.group === '') this.emptyNamespace(name);
    if (typeKey(type) === typeKey(this.crdType())) {
      for (const t of this.registry.unregisterCrd(name)) for (const o of this.store.list(t)) this.store.delete(t, o.metadata.namespace, o.metadata.name);
    }
    this.deleteDependents(gone.metadata.uid);
    return gone;
  }

  deleteCollection(type: ResourceType, namespace: string | undefined, options: ListOptions, opts: WriteOptions = {}): KubeObject[] {
    return this.list(type, namespace, options).items.map((o) => this.delete(type, o.metadata.namespace, o.metadata.name, opts));
  }

  /** Finalizer-free namespace deletion: its contents go at once. */
  private emptyNamespace(namespace: string): void {
    for (const t of this.registry.all()) {
      if (!t.namespaced || t.createOnly) continue;
      for (const o of this.store.list(t, namespace)) if (this.store.find(t, namespace, o.metadata.name)) this.store.delete(t, namespace, o.metadata.name);
    }
  }

  /** Background cascading deletion by ownerReferences (the garbage collector). */
  private deleteDependents(ownerUid: string): void {
    for (const t of this.registry.all()) {
      if (t.createOnly) continue;
      for (const o of this.store.list(t)) {
        const refs = o.metadata.ownerReferences as Array<{ uid?: string }> | undefined;
        if (refs?.some((r) => r.uid === ownerUid) && this.store.find(t, o.metadata.namespace, o.metadata.name)) {
          this.delete(t, o.metadata.namespace, o.metadata.name);
        }
      }
    }
  }
}
