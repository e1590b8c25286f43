import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { WarrenError } from '../../errors/warren-error.js';
import { readBodyText } from '../../net/read-body.js';
import type { ApiCredentials } from './credentials.js';

/** A request that is not a watch and has no answer by then failed (the API server is slow or gone). */
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_ERROR_BODY = 64 * 1024;
/** A list of every pod of a large cluster is tens of MiB; an answer past this is refused, not buffered. */
const MAX_ANSWER = 512 * 1024 * 1024;

/** The API server answered with a status other than 2xx; `status` is the HTTP status (404, 409, 410…). */
export class KubeApiError extends WarrenError {
  readonly status: number;
  constructor(status: number, what: string, message: string) {
    super('ERR_K8S_API', `${what}: the API server answered ${status}${message === '' ? '' : ` (${message})`}`, { retryable: status === 429 || status >= 500 });
    this.status = status;
  }
}

export type Query = Record<string, string | undefined>;

/**
 * The few REST calls the node agent makes, over one keep-alive connection pool
 * (docs/architecture.md §4: why the agent does not load @kubernetes/client-node).
 * Paths are the API's own (`/api/v1/namespaces/x/pods/y`); bodies are JSON.
 */
export class KubeApi {
  private readonly agent: HttpAgent;

  constructor(private readonly credentials: ApiCredentials) {
    const tls = credentials.server.protocol === 'https:';
    this.agent = tls
      ? new HttpsAgent({ keepAlive: true, ca: credentials.ca, cert: credentials.cert, key: credentials.key, rejectUnauthorized: !credentials.insecureSkipTlsVerify })
      : new HttpAgent({ keepAlive: true });
  }

  get<T>(path: string, query: Query = {}): Promise<T> {
    return this.json<T>('GET', path, query);
  }

  /** A JSON merge patch (RFC 7386): only the given fields change, `null` deletes one. */
  mergePatch<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>('PATCH', path, {}, body, 'application/merge-patch+json');
  }

  create<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>('POST', path, {}, body, 'application/json');
  }

  /**
   * A watch stream: resolves with the response once the server answered 200
   * (its body is newline-delimited JSON events), rejects with KubeApiError otherwise.
   * `idleMs`: a stream silent that long is cut (a half-open connection must not stall the informer).
   */
  async stream(path: string, query: Query, idleMs: number): Promise<IncomingMessage> {
    const res = await this.send('GET', path, query, undefined, undefined, idleMs);
    if (res.statusCode === 200) return res;
    throw await this.failure(res, `GET ${path}`);
  }

  close(): void {
    this.agent.destroy();
  }

  private async json<T>(method: string, path: string, query: Query, body?: unknown, contentType?: string): Promise<T> {
    const res = await this.send(method, path, query, body === undefined ? undefined : JSON.stringify(body), contentType, REQUEST_TIMEOUT_MS);
    if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) throw await this.failure(res, `${method} ${path}`);
    return JSON.parse(await readBodyText(res, MAX_ANSWER)) as T;
  }

  private send(method: string, path: string, query: Query, body: string | undefined, contentType: string | undefined, timeoutMs: number): Promise<IncomingMessage> {
    const url = new URL(path, this.credentials.server);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const token = this.credentials.token();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, agent: this.agent }, resolve);
      req.setTimeout(timeoutMs, () => req.destroy(new WarrenError('ERR_K8S_API', `${method} ${url.pathname}: no answer or data from the API server in ${timeoutMs} ms`, { retryable: true })));
      req.on('error', reject);
      req.end(body);
    });
  }

  private async failure(res: IncomingMessage, what: string): Promise<KubeApiError> {
    const text = await readBodyText(res, MAX_ERROR_BODY).catch(() => '');
    let message = '';
    try {
      const status = JSON.parse(text) as { message?: unknown };
      if (typeof status.message === 'string') message = status.message;
    } catch {
      // not a Status object: the status code says enough
    }
    return new KubeApiError(res.statusCode ?? 0, what, message);
  }
}
