import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createListener } from '../../native/netns-socket.js';
import { ApiHandler } from './http-handler.js';
import { ApiObjects } from './objects.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';
import type { PodAccess } from './pod-log.js';
import { SnapshotWriter, loadSnapshot } from './persistence.js';
import { Registry } from './registry.js';
import { Store } from './store.js';
import { createServingCerts } from './tls.js';
import { TokenApi } from './token-api.js';
import { TokenIssuer } from './tokens.js';

export interface ListenAddress {
  address: string;
  port: number;
  /** a netns file; omitted: the process's own netns */
  netns?: string;
}

export interface ApiServerOptions {
  /** where state.json and the credentials live */
  dir: string;
  listen: ListenAddress[];
  /** the address in-cluster clients use; the `kubernetes` Service points at it */
  advertise: ListenAddress;
  bookmarkIntervalMs?: number;
  /** the kubelets' side of pods/log and pods/exec */
  pods?: PodAccess;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export interface RunningApiServer {
  objects: ApiObjects;
  tokens: TokenApi;
  caCertPem: string;
  adminToken: string;
  /** bound ports, in the order of `listen` (port 0 picks one) */
  ports: number[];
  close(): Promise<void>;
}

interface Credentials {
  caCertPem: string;
  certPem: string;
  keyPem: string;
  signingKey: Buffer;
  adminToken: string;
}

/** The CA, serving cert, token signing key and admin token: made once, then kept, so kubeconfigs and tokens survive restarts. */
function loadOrCreateCredentials(dir: string, ips: string[]): Credentials {
  const file = (name: string): string => `${dir}/${name}`;
  if (!existsSync(file('admin.token'))) {
    const certs = createServingCerts(ips, ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost']);
    writeFileAtomic(file('ca.crt'), certs.caCertPem, 0o644);
    writeFileAtomic(file('tls.crt'), certs.certPem, 0o644);
    writeFileAtomic(file('tls.key'), certs.keyPem);
    writeFileAtomic(file('sa-signing.key'), randomBytes(32).toString('base64'));
    writeFileAtomic(file('admin.token'), randomBytes(24).toString('base64url'));
  }
  return {
    caCertPem: readFileSync(file('ca.crt'), 'utf8'),
    certPem: readFileSync(file('tls.crt'), 'utf8'),
    keyPem: readFileSync(file('tls.key'), 'utf8'),
    signingKey: Buffer.from(readFileSync(file('sa-signing.key'), 'utf8'), 'base64'),
    adminToken: readFileSync(file('admin.token'), 'utf8').trim(),
  };
}

/** What kube-apiserver creates itself: the system namespaces and the `kubernetes` Service with its endpoints. */
function bootstrap(objects: ApiObjects, advertise: ListenAddress): void {
  const ensure = (group: string, version: string, resource: string, namespace: string | undefined, obj: Record<string, any>): void => {
    const type = objects.registry.lookup(group, version, resource);
    if (objects.store.find(type, namespace, obj.metadata.name) === undefined) objects.create(type, namespace, obj);
  };
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) ensure('', 'v1', 'namespaces', undefined, { metadata: { name } });
  ensure('', 'v1', 'services', 'default', {
    metadata: { name: 'kubernetes', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, targetPort: advertise.port }] },
  });
  ensure('discovery.k8s.io', 'v1', 'endpointslices', 'default', {
    metadata: { name: 'kubernetes', labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [advertise.address], conditions: { ready: true } }],
    ports: [{ name: 'https', port: advertise.port, protocol: 'TCP' }],
  });
}

function listen(server: Server, where: ListenAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    };
    if (where.netns === undefined) server.listen(where.port, where.address, done);
    else server.listen({ fd: createListener({ netns: where.netns, address: where.address, port: where.port, family: 4 }) }, done);
  });
}

export async function startApiServer(options: ApiServerOptions): Promise<RunningApiServer> {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const log = options.log ?? (() => {});
  const creds = loadOrCreateCredentials(options.dir, [...new Set([...options.listen.map((l) => l.address), options.advertise.address, '10.96.0.1'])]);
  const registry = new Registry();
  const store = new Store();
  const statePath = `${options.dir}/state.json`;
  const snapshot = loadSnapshot(statePath);
  if (snapshot) {
    // CRDs first, so the kinds they define exist when their objects are restored.
    for (const crd of snapshot.objects[CRD_KEY] ?? []) registry.registerCrd(crd);
    store.restore(snapshot, (key) => registry.byKey(key));
  }
  const objects = new ApiObjects(registry, store);
  const writer = new SnapshotWriter(statePath, () => store.snapshot());
  store.onChange = () => writer.changed();
  bootstrap(objects, options.advertise);
  writer.flush();

  const tokens = new TokenApi(objects, new TokenIssuer(creds.signingKey), creds.adminToken);
  const handler = new ApiHandler(objects, tokens, {
    serverAddress: `${options.advertise.address}:${options.advertise.port}`,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    log,
    pods: options.pods,
  });
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    for (const where of options.listen) {
      const server = createServer({ cert: creds.certPem, key: creds.keyPem }, handler.handle);
      server.on('upgrade', handler.upgrade);
      servers.push(server);
      ports.push(await listen(server, where));
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  return {
    objects,
    tokens,
    caCertPem: creds.caCertPem,
    adminToken: creds.adminToken,
    ports,
    close: async () => {
      handler.closeWatches();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      writer.flush();
    },
  };
}

const CRD_KEY = 'apiextensions.k8s.io/v1/customresourcedefinitions';
