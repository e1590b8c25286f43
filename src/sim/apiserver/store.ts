import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from './api-error.js';
import { typeKey, type ResourceType } from './resource-types.js';

export type KubeObject = Record<string, any> & { metadata: Record<string, any> };

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  typeKey: string;
  object: KubeObject;
  /** the object before a MODIFIED event, so selector-filtered watches see objects leave or enter */
  prev?: KubeObject;
  rv: number;
}

export interface StoreSnapshot {
  resourceVersion: number;
  objects: Record<string, KubeObject[]>;
}

/**
 * The objects, one global resourceVersion sequence, and a bounded window of
 * recent events so a watch can resume from a recent version; older versions
 * are answered with 410 Gone and clients relist, as against etcd compaction.
 */
export class Store {
  private rv = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: WatchEvent[] = [];
  private readonly listeners = new Set<(ev: WatchEvent) => void>();
  /** the oldest resourceVersion a watch can still resume from */
  private oldestResumable = 0;
  onChange: () => void = () => {};

  constructor(private readonly historyLimit = 5000) {}

  get resourceVersion(): number {
    return this.rv;
  }

  private bucket(type: ResourceType): Map<string, KubeObject> {
    const key = typeKey(type);
    let b = this.objects.get(key);
    if (b === undefined) {
      b = new Map();
      this.objects.set(key, b);
    }
    return b;
  }

  private emit(type: ResourceType, evType: WatchEvent['type'], object: KubeObject, prev?: KubeObject): void {
    const ev: WatchEvent = { type: evType, typeKey: typeKey(type), object, rv: this.rv, ...(prev === undefined ? {} : { prev }) };
    this.history.push(ev);
    if (this.history.length > this.historyLimit) this.oldestResumable = this.history.shift()!.rv;
    for (const l of this.listeners) l(ev);
    this.onChange();
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.bucket(type).get(`${namespace ?? ''}/${name}`);
    if (obj === undefined) throw notFound(type, name);
    return obj;
  }

  find(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.bucket(type).get(`${namespace ?? ''}/${name}`);
  }

  list(type: ResourceType, namespace?: string): KubeObject[] {
    const all = [...this.bucket(type).values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  /** `dryRun`: the object as it would be stored; nothing is stored or emitted. */
  create(type: ResourceType, obj: KubeObject, dryRun = false): KubeObject {
    const ns = type.namespaced ? obj.metadata.namespace : undefined;
    const key = `${ns ?? ''}/${obj.metadata.name}`;
    if (this.bucket(type).has(key)) {
      throw new ApiError('AlreadyExists', `${type.resource}${type.group ? '.' + type.group : ''} "${obj.metadata.name}" already exists`, {
        name: obj.metadata.name,
        group: type.group,
        kind: type.resource,
      });
    }
    const stored: KubeObject = {
      ...obj,
      metadata: {
        ...obj.metadata,
        uid: randomUUID(),
        resourceVersion: dryRun ? '' : String(this.rv + 1),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        generation: 1,
      },
    };
    if (!type.namespaced) delete stored.metadata.namespace;
    if (dryRun) return stored;
    this.rv++;
    this.bucket(type).set(key, stored);
    this.emit(type, 'ADDED', stored);
    return stored;
  }

  /**
   * Replaces an object. A resourceVersion in `obj` must match (optimistic
   * concurrency); none means "last write wins", as for kubectl's PUT-less
   * patches. `subresource` 'status' changes only status; the main resource
   * never changes status when the kind has a status subresource.
   */
  update(type: ResourceType, obj: KubeObject, subresource?: string, dryRun = false): KubeObject {
    const ns = type.namespaced ? obj.metadata.namespace : undefined;
    const current = this.get(type, ns, obj.metadata.name);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion) {
      throw new ApiError(
        'Conflict',
        `Operation cannot be fulfilled on ${type.resource} "${obj.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name: obj.metadata.name, group: type.group, kind: type.resource },
      );
    }
    let next: KubeObject;
    if (subresource === 'status') {
      next = { ...current, status: obj.status };
    } else {
      next = { ...obj, metadata: { ...obj.metadata } };
      if (type.subresources.includes('status')) {
        if (current.status === undefined) delete next.status;
        else next.status = current.status;
      }
    }
    // Identity fields are the server's, whatever the client sent.
    next.metadata = {
      ...next.metadata,
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      generation: current.metadata.generation,
      ...(ns === undefined ? {} : { namespace: ns }),
    };
    if (!type.namespaced) delete next.metadata.namespace;
    const { metadata: _a, status: _b, ...specNow } = current;
    const { metadata: _c, status: _d, ...specNext } = next;
    if (!isDeepStrictEqual(specNow, specNext)) next.metadata.generation = (current.metadata.generation ?? 1) + 1;
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (isDeepStrictEqual(next, current)) return current; // a no-op write bumps nothing
    if (dryRun) return next;
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    this.bucket(type).set(`${ns ?? ''}/${obj.metadata.name}`, next);
    this.emit(type, 'MODIFIED', next, current);
    return next;
  }

  delete(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.get(type, namespace, name);
    this.bucket(type).delete(`${namespace ?? ''}/${name}`);
    this.rv++;
    const gone = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(this.rv) } };
    this.emit(type, 'DELETED', gone);
    return gone;
  }

  /** Events after `rv`, or 410 if the window no longer reaches back that far. */
  eventsSince(rv: number): WatchEvent[] {
    if (rv < this.oldestResumable) {
      throw new ApiError('Expired', `too old resource version: ${rv} (${this.oldestResumable})`);
    }
    return this.history.filter((e) => e.rv > rv);
  }

  subscribe(listener: (ev: WatchEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): StoreSnapshot {
    const objects: Record<string, KubeObject[]> = {};
    for (const [key, bucket] of this.objects) if (bucket.size > 0) objects[key] = [...bucket.values()];
    return { resourceVersion: this.rv, objects };
  }

  /** Loads a snapshot: history starts empty, so watches from before a restart get 410 and relist. */
  restore(snapshot: StoreSnapshot, typeOf: (key: string) => ResourceType | undefined): void {
    this.rv = snapshot.resourceVersion;
    this.oldestResumable = this.rv;
    for (const [key, objs] of Object.entries(snapshot.objects)) {
      const type = typeOf(key);
      if (type === undefined) continue;
      const bucket = this.bucket(type);
      for (const o of objs) bucket.set(`${type.namespaced ? o.metadata.namespace : ''}/${o.metadata.name}`, o);
    }
  }
}

function notFound(type: ResourceType, name: string): ApiError {
  return new ApiError('NotFound', `${type.resource}${type.group ? '.' + type.group : ''} "${name}" not found`, {
    name,
    group: type.group,
    kind: type.resource,
  });
}
