import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import yaml from 'js-yaml';
import { readBodyBytes } from '../../net/read-body.js';
import { ApiError, statusObject } from './api-error.js';
import { apiGroupList, apiResourceList, apiVersions } from './discovery.js';
import { fieldValidationOf } from './field-validation.js';
import type { ApiObjects, WriteOptions } from './objects.js';
import { openApiGroupVersion, openApiRoot } from './openapi.js';
import { patchTypeOf } from './patch.js';
import { execRequestOf, serveExec } from './pod-exec.js';
import { containerOf, logOptionsOf, servePodLog, type PodAccess } from './pod-log.js';
import type { KubeObject } from './store.js';
import { decodeProtobufBody, PROTOBUF } from './protobuf-body.js';
import { groupVersion, type ResourceType } from './resource-types.js';
import { parseRoute, type Route } from './routes.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { toTable, wantsTable } from './table.js';
import type { TokenApi } from './token-api.js';
import { parseResourceVersion, serveWatch } from './watch-stream.js';

const MAX_BODY = 3 * 1024 * 1024; // kube-apiserver's request size limit
const KUBE_VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0-warren-sim', platform: 'linux/amd64', goVersion: 'n/a', compiler: 'n/a', buildDate: '2026-11-23T00:00:00Z', gitCommit: '', gitTreeState: 'clean' };

export interface HandlerOptions {
  /** the address clients in the cluster use (discovery's serverAddressByClientCIDRs) */
  serverAddress: string;
  bookmarkIntervalMs: number;
  log: (msg: string, fields: Record<string, unknown>) => void;
  /** the nodes' side of pods/log and pods/exec; absent: those answer 404 */
  pods?: PodAccess | undefined;
}

/** JSON, or protobuf for the built-in kinds kubectl's generators send (patches are JSON by their types). */
function bodyFormat(req: IncomingMessage): 'json' | 'yaml' | 'protobuf' {
  const ct = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
  if (req.method === 'PATCH' && ct === 'application/apply-patch+yaml') return 'yaml';
  if (req.method === 'PATCH' || ct === 'application/json' || ct === '') return 'json';
  if (ct === PROTOBUF && req.method !== 'DELETE') return 'protobuf';
  throw new ApiError('UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, ${PROTOBUF} (got "${ct}")`);
}

interface Body {
  value: unknown;
  /** the JSON text, for duplicate keys */
  text?: string;
}

async function readBody(req: IncomingMessage): Promise<Body> {
  const format = bodyFormat(req);
  let bytes: Buffer;
  try {
    bytes = await readBodyBytes(req, MAX_BODY);
  } catch (err) {
    throw new ApiError('BadRequest', (err as Error).message);
  }
  if (format === 'protobuf') return { value: decodeProtobufBody(bytes) };
  const text = bytes.toString('utf8');
  if (text.trim() === '') return { value: undefined };
  // kubectl and client-go send apply patches as JSON, which YAML includes; other clients send YAML.
  if (format === 'yaml' && !text.trimStart().startsWith('{')) {
    try {
      return { value: yaml.load(text, { schema: yaml.CORE_SCHEMA }) };
    } catch (err) {
      throw new ApiError('BadRequest', `the request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  try {
    return { value: JSON.parse(text), text };
  } catch (err) {
    throw new ApiError('BadRequest', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** RFC 7234 warn-code 299 with the message quoted, as kube-apiserver sends and kubectl prints ("Warning: …"). */
const warningHeader = (message: string): string => `299 - ${JSON.stringify(message)}`;

function send(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number | string[]> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) };
  if (warnings.length > 0) headers.Warning = warnings.map(warningHeader);
  res.writeHead(code, headers);
  res.end(text);
}

/** kube-apiserver's rule: the fieldManager parameter, else the client's User-Agent up to its first "/". */
function fieldManagerOf(q: URLSearchParams, userAgent: string | undefined): string {
  const m = q.get('fieldManager');
  if (m !== null && m !== '') {
    if (m.length > 128) throw new ApiError('BadRequest', 'fieldManager: Too long: may not be longer than 128');
    return m;
  }
  return (userAgent ?? 'unknown').split('/')[0]!.slice(0, 128) || 'unknown';
}

/** `dryRun=All` is the only value kube-apiserver accepts; a DELETE may carry it in its DeleteOptions body. */
function dryRunOf(q: URLSearchParams, deleteOptions: unknown): boolean {
  const inBody = (deleteOptions as { dryRun?: unknown } | undefined)?.dryRun;
  const values = [...q.getAll('dryRun'), ...(Array.isArray(inBody) ? inBody.map(String) : [])];
  if (values.length === 0) return false;
  if (values.every((v) => v === 'All')) return true;
  throw new ApiError('BadRequest', `dryRun: Unsupported value: ${JSON.stringify(values.find((v) => v !== 'All'))}: supported values: "All"`);
}

const flag = (v: string | null): boolean => v === 'true' || v === '1';

/** The HTTP face of the API server: authentication, routing, verbs, watch streams. */
export class ApiHandler {
  private readonly watches = new Set<() => void>();

  constructor(
    private readonly objects: ApiObjects,
    private readonly tokens: TokenApi,
    private readonly options: HandlerOptions,
  ) {}

  /** Ends every open watch, so clients reconnect (and relist if needed) after a restart. */
  closeWatches(): void {
    for (const stop of [...this.watches]) stop();
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.dispatch(req, res).catch((err: unknown) => {
      const apiErr = err instanceof ApiError ? err : new ApiError('InternalError', `internal error: ${(err as Error).message}`);
      if (apiErr.code >= 500) this.options.log('request failed', { method: req.method, url: req.url, err: (err as Error).stack });
      if (res.headersSent) res.end();
      else send(res, apiErr.code, apiErr.toStatus());
    });
  };

  /** HTTP upgrades: `pods/NAME/exec` over WebSocket; anything else is answered with a Status and closed. */
  upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy()); // a client gone mid-handshake must not take the server down
    try {
      const url = new URL(req.url ?? '/', 'https://apiserver');
      const route = parseRoute(url.pathname, (g, v, r) => this.objects.registry.hasNamespaced(g, v, r));
      if (this.tokens.authenticate(req.headers.authorization) === undefined) throw new ApiError('Unauthorized', 'Unauthorized');
      if (route.kind !== 'resource' || route.group !== '' || route.resource !== 'pods' || route.subresource !== 'exec' || route.name === undefined) {
        throw new ApiError('BadRequest', 'only pods/NAME/exec can be upgraded to a WebSocket');
      }
      const pod = this.runnablePod(route.namespace, route.name);
      containerOf(pod, url.searchParams.get('container'));
      serveExec(req, socket, head, execRequestOf(url.searchParams, (command) => this.options.pods!.execArgv(pod, command)));
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : new ApiError('InternalError', `internal error: ${(err as Error).message}`);
      const body = JSON.stringify(apiErr.toStatus());
      socket.end(`HTTP/1.1 ${apiErr.code} ${apiErr.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
  };

  /** A pod whose containers run on a node this server reaches. */
  private runnablePod(namespace: string | undefined, name: string): KubeObject {
    if (this.options.pods === undefined) throw new ApiError('NotFound', 'the server could not find the requested resource (no kubelets are attached to this API server)');
    const pod = this.objects.get(this.objects.registry.lookup('', 'v1', 'pods'), namespace, name);
    if (!pod.spec?.nodeName) throw new ApiError('BadRequest', `pod ${name} does not have a host assigned`);
    return pod;
  }

  private async podLog(res: ServerResponse, namespace: string | undefined, name: string, q: URLSearchParams): Promise<void> {
    const pod = this.runnablePod(namespace, name);
    const options = logOptionsOf(pod, q);
    const podType = this.objects.registry.lookup('', 'v1', 'pods');
    const uid = pod.metadata.uid;
    const stillThere = (): boolean => this.objects.store.find(podType, namespace, name)?.metadata.uid === uid;
    await servePodLog(res, this.options.pods!.logPath(namespace ?? '', name, options.container), options, stillThere);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://apiserver');
    const route = parseRoute(url.pathname, (g, v, r) => this.objects.registry.hasNamespaced(g, v, r));
    if (route.kind === 'health') return void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    if (route.kind === 'version') return send(res, 200, KUBE_VERSION);
    if (this.tokens.authenticate(req.headers.authorization) === undefined) {
      return send(res, 401, statusObject(401, 'Unauthorized', 'Unauthorized'));
    }
    if (route.kind === 'openapi') return send(res, 200, this.openApi(route.path));
    if (route.kind !== 'resource') {
      if (req.method !== 'GET') throw new ApiError('MethodNotAllowed', `the server does not allow this method on the requested resource`);
      return send(res, 200, this.discovery(route));
    }
    const type = this.objects.registry.lookup(route.group, route.version, route.resource);
    if (route.subresource === 'log' && route.group === '' && route.resource === 'pods' && route.name !== undefined && req.method === 'GET') {
      return this.podLog(res, route.namespace, route.name, url.searchParams);
    }
    if (route.subresource === 'exec') throw new ApiError('BadRequest', 'pods/exec is served over WebSocket (Upgrade: websocket, subprotocol v5.channel.k8s.io)');
    const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method ?? '') ? await readBody(req) : { value: undefined };
    const warnings: string[] = [];
    const write: WriteOptions = {
      dryRun: dryRunOf(url.searchParams, req.method === 'DELETE' ? body.value : undefined),
      fields: { directive: fieldValidationOf(url.searchParams), rawBody: body.text, warnings },
      manager: fieldManagerOf(url.searchParams, req.headers['user-agent']),
    };
    const result = this.verb(req, res, url, route, type, body.value, write);
    if (result !== undefined) send(res, result.code, result.body, warnings);
  }

  /** OpenAPI v3 only: v2 is protobuf-first for kubectl, and it falls back cleanly when v2 is absent. */
  private openApi(path: string): object {
    if (path === 'v3') return openApiRoot(this.objects.registry);
    if (path.startsWith('v3/')) return openApiGroupVersion(this.objects.registry, path.slice(3));
    throw new ApiError('NotFound', `the server could not find the requested resource (openapi/${path})`);
  }

  private discovery(route: Exclude<Route, { kind: 'resource' | 'health' | 'version' | 'openapi' }>): object {
    switch (route.kind) {
      case 'api':
        return apiVersions(this.options.serverAddress);
      case 'apis':
        return apiGroupList(this.objects.registry);
      case 'groupVersion': {
        const list = apiResourceList(this.objects.registry, route.group, route.version);
        if (list === undefined) throw new ApiError('NotFound', `the server could not find the requested resource (${route.group}/${route.version})`);
        return list;
      }
    }
  }

  private verb(req: IncomingMessage, res: ServerResponse, url: URL, route: Extract<Route, { kind: 'resource' }>, type: ResourceType, body: unknown, write: WriteOptions): { code: number; body: unknown } | undefined {
    const { namespace, name, subresource } = route;
    const q = url.searchParams;
    const o = this.objects;
    if (subresource !== undefined && !type.subresources.includes(subresource)) {
      throw new ApiError('NotFound', `the server could not find the requested resource (${type.resource}/${subresource})`);
    }
    if (type.createOnly) {
      if (req.method !== 'POST' || name !== undefined) throw new ApiError('MethodNotAllowed', `only create is allowed on ${type.resource}`);
      return { code: 201, body: this.tokens.review(body) };
    }
    const listOptions = { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined };
    switch (req.method) {
      case 'GET':
        if (name !== undefined) return { code: 200, body: this.present(req, q, type, [o.get(type, namespace, name, subresource)], false) };
        if (flag(q.get('watch'))) {
          const stop = serveWatch(
            o.store,
            {
              type,
              namespace,
              labels: parseLabelSelector(listOptions.labelSelector),
              fields: parseFieldSelector(listOptions.fieldSelector),
              resourceVersion: parseResourceVersion(q.get('resourceVersion') ?? undefined),
              bookmarks: flag(q.get('allowWatchBookmarks')),
              timeoutSeconds: Number(q.get('timeoutSeconds') ?? 0) || 1800 + Math.floor(Math.random() * 1800),
              ...(wantsTable(req.headers.accept) ? { asTable: (objs, withColumns) => toTable(type.kind, objs, String(o.store.resourceVersion), q.get('includeObject') ?? 'Metadata', withColumns) } : {}),
            },
            res,
            this.options.bookmarkIntervalMs,
          );
          this.watches.add(stop);
          res.on('close', () => this.watches.delete(stop));
          return undefined;
        }
        return { code: 200, body: this.present(req, q, type, o.list(type, namespace, listOptions).items, true) };
      case 'POST':
        if (subresource === 'token' && name !== undefined) return { code: 201, body: this.tokens.requestToken(namespace ?? '', name, body) };
        if (name !== undefined) throw new ApiError('MethodNotAllowed', 'POST is for collections');
        return { code: 201, body: o.create(type, namespace, body, write) };
      case 'PUT':
        if (name === undefined) throw new ApiError('MethodNotAllowed', 'PUT needs an object name');
        return { code: 200, body: o.update(type, namespace, name, body, subresource, write) };
      case 'PATCH': {
        if (name === undefined) throw new ApiError('MethodNotAllowed', 'PATCH needs an object name');
        const patchType = patchTypeOf(req.headers['content-type']);
        if (patchType !== 'apply') return { code: 200, body: o.patch(type, namespace, name, patchType, body, subresource, write) };
        if (subresource !== undefined) throw new ApiError('UnsupportedMediaType', `server-side apply is not supported on the ${subresource} subresource by the warren simulator`);
        if (!q.get('fieldManager')) throw new ApiError('BadRequest', 'PATCH with application/apply-patch+yaml requires the fieldManager query parameter');
        const applied = o.apply(type, namespace, name, body, flag(q.get('force')), { ...write, manager: q.get('fieldManager')! });
        return { code: applied.created ? 201 : 200, body: applied.object };
      }
      case 'DELETE':
        if (name !== undefined) return { code: 200, body: o.delete(type, namespace, name, write) };
        return { code: 200, body: this.listBody(type, o.deleteCollection(type, namespace, listOptions, write), String(o.store.resourceVersion)) };
      default:
        throw new ApiError('MethodNotAllowed', `method ${req.method} is not supported`);
    }
  }

  private listBody(type: ResourceType, items: object[], resourceVersion: string): object {
    return { kind: `${type.kind}List`, apiVersion: groupVersion(type), metadata: { resourceVersion }, items };
  }

  private present(req: IncomingMessage, q: URLSearchParams, type: ResourceType, items: Array<Record<string, any>>, isList: boolean): object {
    const rv = String(this.objects.store.resourceVersion);
    if (wantsTable(req.headers.accept)) return toTable(type.kind, items as never, isList ? rv : items[0]!.metadata.resourceVersion, q.get('includeObject') ?? 'Metadata');
    return isList ? this.listBody(type, items, rv) : items[0]!;
  }
}
