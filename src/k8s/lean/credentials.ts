import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import yaml from 'js-yaml';
import { z } from 'zod';
import { WarrenError } from '../../errors/warren-error.js';

/** Where a pod's service account credentials are mounted (Kubernetes' in-cluster convention). */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** A projected token is rotated by the kubelet; re-reading it this often keeps requests on a live one. */
const TOKEN_REREAD_MS = 60_000;

/** What a request to the API server needs: its URL, the TLS material and the bearer token, if any. */
export interface ApiCredentials {
  server: URL;
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  insecureSkipTlsVerify: boolean;
  /** the current bearer token (re-read from its file when it came from one) */
  token(): string | undefined;
}

const clusterSchema = z.object({
  server: z.string().url(),
  'certificate-authority': z.string().optional(),
  'certificate-authority-data': z.string().optional(),
  'insecure-skip-tls-verify': z.boolean().optional(),
});
const userSchema = z.looseObject({
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-certificate-data': z.string().optional(),
  'client-key': z.string().optional(),
  'client-key-data': z.string().optional(),
});
const kubeconfigSchema = z.object({
  clusters: z.array(z.object({ name: z.string(), cluster: clusterSchema })),
  users: z.array(z.object({ name: z.string(), user: userSchema.nullish() })).default([]),
  contexts: z.array(z.object({ name: z.string(), context: z.object({ cluster: z.string(), user: z.string().optional() }) })),
  'current-context': z.string(),
});

/** The API server credentials of the agent: a kubeconfig file if given, the pod's service account otherwise. */
export function loadApiCredentials(file: string | undefined): ApiCredentials {
  try {
    return file === undefined ? inCluster() : fromKubeconfig(file);
  } catch (err) {
    if (err instanceof WarrenError) throw err;
    throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file ?? '(in-cluster)'}: ${(err as Error).message}`, { cause: err });
  }
}

function inCluster(): ApiCredentials {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || port === undefined) throw new WarrenError('ERR_CONFIG', '--kubeconfig (in-cluster): no cluster (not running in a pod? give --kubeconfig)');
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca: readFileSync(`${SERVICE_ACCOUNT_DIR}/ca.crt`),
    insecureSkipTlsVerify: false,
    token: tokenFromFile(`${SERVICE_ACCOUNT_DIR}/token`),
  };
}

function fromKubeconfig(file: string): ApiCredentials {
  const parsed = kubeconfigSchema.safeParse(yaml.load(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const config = parsed.data;
  const context = config.contexts.find((c) => c.name === config['current-context'])?.context;
  if (context === undefined) throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file}: current-context ${config['current-context']} is not among its contexts`);
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.cluster;
  if (cluster === undefined) throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file}: context ${config['current-context']} names cluster ${context.cluster}, which it does not define`);
  const user = config.users.find((u) => u.name === context.user)?.user ?? {};
  // Credential plugins (cloud CLIs) are for people's kubeconfigs; the agent runs with a token or certificate.
  for (const plugin of ['exec', 'auth-provider']) {
    if (plugin in user) throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file}: user ${context.user} authenticates with ${plugin}, which the node agent does not run; give it a token, token file or client certificate`);
  }
  // As kubectl does: relative paths in a kubeconfig are relative to the file.
  const material = (data: string | undefined, path: string | undefined): Buffer | undefined =>
    data !== undefined ? Buffer.from(data, 'base64') : path !== undefined ? readFileSync(resolve(dirname(file), path)) : undefined;
  const fixed = user.token;
  return {
    server: new URL(cluster.server),
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: material(user['client-certificate-data'], user['client-certificate']),
    key: material(user['client-key-data'], user['client-key']),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] ?? false,
    token: fixed !== undefined ? () => fixed : user.tokenFile !== undefined ? tokenFromFile(resolve(dirname(file), user.tokenFile)) : () => undefined,
  };
}

/** A token file, re-read at most every TOKEN_REREAD_MS: the kubelet rotates projected tokens in place. */
function tokenFromFile(path: string): () => string {
  let token = readFileSync(path, 'utf8').trim();
  let readAt = Date.now();
  return () => {
    if (Date.now() - readAt >= TOKEN_REREAD_MS) {
      readAt = Date.now();
      try {
        token = readFileSync(path, 'utf8').trim();
      } catch {
        // A rotation in progress: the previous token stays valid for a while yet.
      }
    }
    return token;
  };
}
