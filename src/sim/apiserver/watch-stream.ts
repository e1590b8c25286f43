import type { ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';
import { groupVersion, typeKey, type ResourceType } from './resource-types.js';
import { matchesFields, matchesLabels, type FieldRequirement, type LabelRequirement } from './selectors.js';
import type { KubeObject, Store, WatchEvent } from './store.js';

export interface WatchRequest {
  type: ResourceType;
  namespace: string | undefined;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  /** undefined, '' or '0': start with the current state as ADDED events */
  resourceVersion: string | undefined;
  bookmarks: boolean;
  timeoutSeconds: number;
  /** when set, objects travel as one-row Tables (kubectl get -w) */
  asTable?: (objects: KubeObject[], withColumns: boolean) => object;
}

type OutEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KubeObject };

/**
 * What one watcher sees of a store event. With selectors, an object that
 * stops matching is DELETED for this watcher and one that starts matching is
 * ADDED, as kube-apiserver's cacher does.
 */
export function project(ev: WatchEvent, req: Pick<WatchRequest, 'type' | 'namespace' | 'labels' | 'fields'>): OutEvent | undefined {
  if (ev.typeKey !== typeKey(req.type)) return undefined;
  if (req.namespace !== undefined && ev.object.metadata.namespace !== req.namespace) return undefined;
  const matches = (o: KubeObject | undefined): boolean => o !== undefined && matchesLabels(req.labels, o.metadata.labels) && matchesFields(req.fields, o);
  const now = matches(ev.object);
  if (ev.type !== 'MODIFIED') return now ? { type: ev.type, object: ev.object } : undefined;
  const before = matches(ev.prev);
  if (now) return { type: before ? 'MODIFIED' : 'ADDED', object: ev.object };
  return before ? { type: 'DELETED', object: ev.object } : undefined;
}

const MAX_BUFFERED = 16 * 1024 * 1024;

/** Streams watch events as newline-delimited JSON until timeout, client close, or `stop()`. */
export function serveWatch(store: Store, req: WatchRequest, res: ServerResponse, bookmarkIntervalMs: number): () => void {
  let first = true;
  const send = (type: string, object: KubeObject | object): void => {
    const payload = req.asTable && type !== 'ERROR' && type !== 'BOOKMARK' ? req.asTable([object as KubeObject], first) : object;
    first = false;
    res.write(JSON.stringify({ type, object: payload }) + '\n');
    if (res.writableLength > MAX_BUFFERED) stop(); // a client that does not read is dropped, not buffered forever
  };
  const timers: NodeJS.Timeout[] = [];
  let unsubscribe = (): void => {};
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    for (const t of timers) clearTimeout(t);
    res.end();
  };
  res.on('close', stop);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache' });
  res.flushHeaders();

  const rv = req.resourceVersion;
  if (rv === undefined || rv === '' || rv === '0') {
    for (const o of store.list(req.type, req.namespace)) {
      if (matchesLabels(req.labels, o.metadata.labels) && matchesFields(req.fields, o)) send('ADDED', o);
    }
  } else {
    let backlog: WatchEvent[];
    try {
      backlog = store.eventsSince(Number(rv));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      send('ERROR', err.toStatus());
      stop();
      return stop;
    }
    for (const ev of backlog) {
      const out = project(ev, req);
      if (out) send(out.type, out.object);
    }
  }
  unsubscribe = store.subscribe((ev) => {
    const out = project(ev, req);
    if (out) send(out.type, out.object);
  });
  if (req.bookmarks) {
    const bookmark = (): void => {
      send('BOOKMARK', { kind: req.type.kind, apiVersion: groupVersion(req.type), metadata: { resourceVersion: String(store.resourceVersion) } });
      timers[0] = setTimeout(bookmark, bookmarkIntervalMs);
    };
    timers[0] = setTimeout(bookmark, bookmarkIntervalMs);
  }
  timers.push(setTimeout(stop, req.timeoutSeconds * 1000));
  return stop;
}

export function parseResourceVersion(rv: string | undefined): string | undefined {
  if (rv !== undefined && rv !== '' && !/^\d+$/.test(rv)) throw new ApiError('BadRequest', `invalid resource version "${rv}"`);
  return rv;
}
