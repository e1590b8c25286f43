import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { KubeApi, KubeApiError } from '../../src/k8s/lean/api-client.js';
import { loadApiCredentials } from '../../src/k8s/lean/credentials.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { startTestApiServer } from '../helpers/apiserver.js';

test('a kubeconfig with a CA file and a token file relative to it reaches the API server over TLS; a wrong token is a 401 KubeApiError', async () => {
  const api = await startTestApiServer();
  try {
    await mkdir(`${api.dir}/conf/secrets`, { recursive: true });
    await writeFile(`${api.dir}/conf/secrets/ca.crt`, api.server.caCertPem);
    await writeFile(`${api.dir}/conf/secrets/token`, `${api.server.adminToken}\n`);
    const config = (token: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: api.url, 'certificate-authority': 'secrets/ca.crt' } }],
      users: [{ name: 'u', user: token }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    });
    await writeFile(`${api.dir}/conf/kubeconfig`, yaml.dump(config({ tokenFile: 'secrets/token' })));
    const client = new KubeApi(loadApiCredentials(`${api.dir}/conf/kubeconfig`));
    try {
      const list = await client.get<{ items: { metadata: { name: string } }[] }>('/api/v1/namespaces');
      assert.ok(list.items.some((n) => n.metadata.name === 'default'));
    } finally {
      client.close();
    }
    await writeFile(`${api.dir}/conf/wrong`, yaml.dump(config({ token: 'not-the-token' })));
    const wrong = new KubeApi(loadApiCredentials(`${api.dir}/conf/wrong`));
    try {
      await assert.rejects(wrong.get('/api/v1/namespaces'), (err: unknown) => err instanceof KubeApiError && err.status === 401 && err.code === 'ERR_K8S_API' && !err.message.includes('not-the-token'));
    } finally {
      wrong.close();
    }
  } finally {
    await api.stop();
  }
});

test('kubeconfigs the agent cannot use are ERR_CONFIG naming what is wrong', async () => {
  const api = await startTestApiServer();
  try {
    const write = async (name: string, config: unknown): Promise<string> => {
      await writeFile(`${api.dir}/${name}`, yaml.dump(config));
      return `${api.dir}/${name}`;
    };
    const base = { clusters: [{ name: 'c', cluster: { server: api.url } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' };
    const refused = (file: string, pattern: RegExp) => assert.throws(() => loadApiCredentials(file), (err: unknown) => err instanceof WarrenError && err.code === 'ERR_CONFIG' && pattern.test(err.message));
    refused(await write('exec', { ...base, users: [{ name: 'u', user: { exec: { command: 'aws' } } }] }), /user u authenticates with exec/);
    refused(await write('nocontext', { ...base, 'current-context': 'y' }), /current-context y is not among its contexts/);
    refused(await write('noserver', { ...base, clusters: [{ name: 'c', cluster: {} }] }), /clusters\.0\.cluster\.server/);
  } finally {
    await api.stop();
  }
});
