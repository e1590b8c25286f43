import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { exec, kubectlOrSkip } from '../../helpers/kubectl.js';
import { startTestApiServer, type TestApiServer } from '../../helpers/apiserver.js';

// The machine's kubectl against the embedded API server, each command as a
// user types it (issue 22): what kubectl sends by default is what is tested.
let api: TestApiServer;
let kubectl: string | undefined;
let kubeconfigPath: string;

before(async () => {
  api = await startTestApiServer();
  kubeconfigPath = `${api.dir}/kubeconfig`;
  await writeFile(kubeconfigPath, api.kubeconfigText);
});
after(async () => {
  await api.stop();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function k(...args: string[]): Promise<Run> {
  try {
    const r = await exec(kubectl!, ['--kubeconfig', kubeconfigPath, ...args], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function ok(...args: string[]): Promise<string> {
  const r = await k(...args);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function manifest(name: string, text: string): Promise<string> {
  const path = `${api.dir}/${name}`;
  await writeFile(path, text);
  return path;
}

const deployment = (name: string, extra = ''): string =>
  `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  replicas: 1\n${extra}  selector:\n    matchLabels: {app: ${name}}\n  template:\n    metadata:\n      labels: {app: ${name}}\n    spec:\n      containers:\n      - {name: web, image: http-echo}\n`;

// The AuthorizationPolicy schema as issue 17 makes it: rules are closed objects, so a typo is an unknown field.
const strictPolicyCrd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: authorizationpolicies.security.warren.io}
spec:
  group: security.warren.io
  scope: Namespaced
  names: {kind: AuthorizationPolicy, plural: authorizationpolicies, singular: authorizationpolicy, shortNames: [ap]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              action: {type: string, enum: [ALLOW, DENY, AUDIT]}
              selector:
                type: object
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
              rules:
                type: array
                items:
                  type: object
                  properties:
                    from:
                      type: array
                      items:
                        type: object
                        properties:
                          source:
                            type: object
                            properties:
                              principals: {type: array, items: {type: string}}
                              namespaces: {type: array, items: {type: string}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`;

test('fieldValidation: kubectl apply/create reject a misspelt field by name (Strict, kubectl default); Warn and Ignore drop it', async (t) => {
  kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const typo = await manifest('typo.yaml', deployment('typo', '  revisionHistoryLimt: 3\n').replace('image: http-echo}', 'image: http-echo, imagePullPolicyy: Never}'));
  for (const verb of ['apply', 'create']) {
    const r = await k(verb, '-f', typo);
    assert.notEqual(r.code, 0, `${verb} must fail`);
    assert.match(r.stderr, /BadRequest/);
    assert.match(r.stderr, /unknown field "spec.revisionHistoryLimt"/);
    assert.match(r.stderr, /unknown field "spec.template.spec.containers\[0\].imagePullPolicyy"/);
  }
  assert.equal((await k('get', 'deploy', 'typo')).code, 1, 'nothing was stored');

  const warn = await k('apply', '--validate=warn', '-f', typo);
  assert.equal(warn.code, 0, warn.stderr);
  assert.match(warn.stderr, /Warning: unknown field "spec.revisionHistoryLimt"/);
  const stored = JSON.parse(await ok('get', 'deploy', 'typo', '-o', 'json'));
  assert.equal(stored.spec.revisionHistoryLimt, undefined, 'the unknown field was dropped');
  assert.equal(stored.spec.template.spec.containers[0].imagePullPolicyy, undefined);

  // A known field's update still passes Strict; the typo in an update is named too.
  const edit = await manifest('typo.yaml', deployment('typo', '  minReadySeconds: 2\n  paused: false\n  spek: {}\n'));
  const r = await k('apply', '-f', edit);
  assert.match(r.stderr, /unknown field "spec.spek"/);
  const ignore = await k('apply', '--validate=false', '-f', edit);
  assert.equal(ignore.code, 0, ignore.stderr);
  assert.doesNotMatch(ignore.stderr, /Warning/);
  assert.equal(JSON.parse(await ok('get', 'deploy', 'typo', '-o', 'json')).spec.minReadySeconds, 2);
  await ok('delete', 'deploy', 'typo');
});

test('fieldValidation on a CRD: an AuthorizationPolicy with rules: [{form: ...}] is rejected naming the field (issue 17)', async (t) => {
  kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  await ok('apply', '-f', await manifest('crd.yaml', strictPolicyCrd));
  const policy = (rule: string): string =>
    `apiVersion: security.warren.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-frontend, namespace: default}\nspec:\n  action: ALLOW\n  rules:\n  - ${rule}\n`;
  const typo = await manifest('ap.yaml', policy('form: [{source: {principals: ["cluster.local/ns/default/sa/frontend"]}}]'));
  const r = await k('apply', '-f', typo);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown field "spec.rules\[0\].form"/);
  assert.equal((await k('get', 'ap', 'allow-frontend')).code, 1, 'the typo never became an allow-all policy');
  const nested = await manifest('ap.yaml', policy('from: [{source: {principal: ["cluster.local/ns/default/sa/frontend"]}}]'));
  assert.match((await k('apply', '-f', nested)).stderr, /unknown field "spec.rules\[0\].from\[0\].source.principal"/);
  await ok('apply', '-f', await manifest('ap.yaml', policy('from: [{source: {principals: ["cluster.local/ns/default/sa/frontend"]}}]')));
  const stored = JSON.parse(await ok('get', 'ap', 'allow-frontend', '-o', 'json'));
  assert.deepEqual(stored.spec.rules, [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/frontend'] } }] }]);
  await ok('delete', 'crd', 'authorizationpolicies.security.warren.io');
});

test('--dry-run=server validates fully but stores nothing and emits no watch event', async (t) => {
  kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const events: string[] = [];
  const unsubscribe = api.server.objects.store.subscribe((ev) => events.push(`${ev.type} ${ev.object.metadata.name}`));
  try {
    const web = await manifest('dry.yaml', deployment('dry'));
    assert.match(await ok('apply', '--dry-run=server', '-f', web), /deployment.apps\/dry created \(server dry run\)/);
    assert.match(await ok('create', '--dry-run=server', '-f', web), /deployment.apps\/dry created \(server dry run\)/);
    assert.equal((await k('get', 'deploy', 'dry')).code, 1, 'a dry-run create stores nothing');
    const typo = await k('apply', '--dry-run=server', '-f', await manifest('dry-typo.yaml', deployment('dry', '  spek: {}\n')));
    assert.match(typo.stderr, /unknown field "spec.spek"/, 'a dry run validates as the real request would');
    const badName = await k('create', '--dry-run=server', '-f', await manifest('dry-bad.yaml', deployment('Dry')));
    assert.match(badName.stderr, /metadata.name: Invalid value: "Dry"/);
    assert.deepEqual(events, []);

    await ok('apply', '-f', web);
    events.length = 0;
    const before = await ok('get', 'deploy', 'dry', '-o', 'json');
    await ok('apply', '--dry-run=server', '-f', await manifest('dry.yaml', deployment('dry').replace('replicas: 1', 'replicas: 5')));
    await ok('scale', '--dry-run=server', 'deploy', 'dry', '--replicas=4');
    await ok('label', '--dry-run=server', 'deploy', 'dry', 'tier=web');
    assert.match(await ok('delete', '--dry-run=server', 'deploy', 'dry'), /deployment.apps "dry" deleted \(server dry run\)/);
    assert.equal(await ok('get', 'deploy', 'dry', '-o', 'json'), before, 'dry-run update, patch and delete change nothing');
    assert.deepEqual(events, [], 'no watch events');
  } finally {
    unsubscribe();
    await k('delete', 'deploy', 'dry');
  }
});

test('imperative commands (protobuf bodies): create namespace|deployment|configmap|secret|serviceaccount|role|pdb, create token, expose', async (t) => {
  kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  assert.match(await ok('create', 'namespace', 'shop'), /namespace\/shop created/);
  try {
    const n = ['-n', 'shop'];
    assert.match(await ok(...n, 'create', 'deployment', 'web', '--image=http-echo', '--replicas=2', '--port=8080'), /deployment.apps\/web created/);
    assert.match(await ok(...n, 'create', 'deployment', 'idle', '--image=http-echo', '--replicas=0'), /created/);
    assert.match(await ok(...n, 'create', 'configmap', 'cfg', '--from-literal=greeting=hello', '--from-literal=empty='), /configmap\/cfg created/);
    assert.match(await ok(...n, 'create', 'secret', 'generic', 'pw', '--from-literal=password=s3cr3t'), /secret\/pw created/);
    assert.match(await ok(...n, 'create', 'serviceaccount', 'bot'), /serviceaccount\/bot created/);
    assert.match(await ok(...n, 'create', 'role', 'reader', '--verb=get,list', '--resource=pods'), /created/);
    assert.match(await ok(...n, 'create', 'rolebinding', 'bot-reads', '--role=reader', '--serviceaccount=shop:bot'), /created/);
    assert.match(await ok(...n, 'create', 'poddisruptionbudget', 'web', '--selector=app=web', '--min-available=1'), /created/);
    assert.match(await ok(...n, 'expose', 'deployment', 'web', '--port=80', '--target-port=8080'), /service\/web exposed/);

    const d = JSON.parse(await ok(...n, 'get', 'deploy', 'web', '-o', 'json'));
    assert.equal(d.spec.replicas, 2);
    assert.deepEqual(d.spec.selector.matchLabels, { app: 'web' });
    assert.deepEqual(d.spec.template.spec.containers, [{ name: 'http-echo', image: 'http-echo', ports: [{ containerPort: 8080 }], resources: {} }]);
    assert.equal(d.metadata.creationTimestamp.endsWith('Z'), true);
    assert.equal(JSON.parse(await ok(...n, 'get', 'deploy', 'idle', '-o', 'json')).spec.replicas, 0, 'an explicit zero survives the wire');
    assert.deepEqual(JSON.parse(await ok(...n, 'get', 'cm', 'cfg', '-o', 'json')).data, { greeting: 'hello', empty: '' });
    const secret = JSON.parse(await ok(...n, 'get', 'secret', 'pw', '-o', 'json'));
    assert.equal(Buffer.from(secret.data.password, 'base64').toString(), 's3cr3t');
    assert.equal(secret.type, 'Opaque');
    const role = JSON.parse(await ok(...n, 'get', 'role', 'reader', '-o', 'json'));
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]);
    assert.deepEqual(JSON.parse(await ok(...n, 'get', 'pdb', 'web', '-o', 'json')).spec.minAvailable, 1);
    const svc = JSON.parse(await ok(...n, 'get', 'svc', 'web', '-o', 'json'));
    assert.deepEqual(svc.spec.ports, [{ port: 80, protocol: 'TCP', targetPort: 8080 }]);
    const token = (await ok(...n, 'create', 'token', 'bot', '--audience=istio-ca')).trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    assert.equal(claims.sub, 'system:serviceaccount:shop:bot');
    assert.deepEqual(claims.aud, ['istio-ca']);
  } finally {
    await k('delete', 'namespace', 'shop');
  }
});

test('server-side apply: CRD and objects, re-apply drops what is no longer applied, a second manager conflicts (409 naming field and manager) until forced, diff', async (t) => {
  kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  assert.match(await ok('apply', '--server-side', '-f', await manifest('crd.yaml', strictPolicyCrd)), /customresourcedefinition.apiextensions.k8s.io\/authorizationpolicies.security.warren.io serverside-applied/);
  const policy = await manifest('ap.yaml', `apiVersion: security.warren.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-all, namespace: default}\nspec: {action: DENY}\n`);
  assert.match(await ok('apply', '--server-side', '-f', policy), /authorizationpolicy.security.warren.io\/deny-all serverside-applied/);
  assert.equal(JSON.parse(await ok('get', 'ap', 'deny-all', '-o', 'json')).spec.action, 'DENY');

  const web = (replicas: number, labels: string): string => deployment('ssa').replace('replicas: 1', `replicas: ${replicas}`).replace('  namespace: default\n', `  namespace: default\n  labels: {${labels}}\n`);
  assert.match(await ok('apply', '--server-side', '-f', await manifest('ssa.yaml', web(2, 'tier: web, team: a'))), /deployment.apps\/ssa serverside-applied/);
  const first = JSON.parse(await ok('get', 'deploy', 'ssa', '-o', 'json', '--show-managed-fields'));
  assert.deepEqual(
    first.metadata.managedFields.map((m: { manager: string; operation: string }) => `${m.manager}/${m.operation}`),
    ['kubectl/Apply'],
  );
  assert.deepEqual(first.metadata.managedFields[0].fieldsV1['f:spec']['f:template']['f:spec']['f:containers']['k:{"name":"web"}']['f:image'], {});
  // Re-apply without the team label: the field this manager owned alone goes.
  await ok('apply', '--server-side', '-f', await manifest('ssa.yaml', web(2, 'tier: web')));
  assert.deepEqual(JSON.parse(await ok('get', 'deploy', 'ssa', '-o', 'json')).metadata.labels, { tier: 'web' });

  const diff = await k('diff', '--server-side', '-f', await manifest('ssa3.yaml', web(3, 'tier: web')));
  assert.equal(diff.code, 1, `diff exits 1 when there are differences: ${diff.stderr}`);
  assert.match(diff.stdout, /^-\s+replicas: 2$/m);
  assert.match(diff.stdout, /^\+\s+replicas: 3$/m);
  assert.equal(JSON.parse(await ok('get', 'deploy', 'ssa', '-o', 'json')).spec.replicas, 2, 'diff changed nothing');

  const conflict = await k('apply', '--server-side', '--field-manager=ci', '-f', await manifest('ssa3.yaml', web(3, 'tier: web')));
  assert.notEqual(conflict.code, 0);
  assert.match(conflict.stderr, /Apply failed with 1 conflict: conflict with "kubectl": \.spec\.replicas/);
  // The same value is shared ownership, not a conflict; forcing takes the field over.
  await ok('apply', '--server-side', '--field-manager=ci', '-f', await manifest('same.yaml', web(2, 'tier: web')));
  await ok('apply', '--server-side', '--field-manager=ci', '--force-conflicts', '-f', await manifest('ssa3.yaml', web(3, 'tier: web')));
  assert.equal(JSON.parse(await ok('get', 'deploy', 'ssa', '-o', 'json')).spec.replicas, 3);
  // An imperative change is owned too: the next apply with another value conflicts with it.
  await ok('scale', 'deploy', 'ssa', '--replicas=4');
  const afterScale = await k('apply', '--server-side', '--field-manager=ci', '-f', await manifest('ssa3.yaml', web(3, 'tier: web')));
  assert.match(afterScale.stderr, /conflict with "kubectl[^"]*" using apps\/v1: \.spec\.replicas/);
  assert.match(await ok('apply', '--server-side', '--dry-run=server', '--field-manager=ci', '--force-conflicts', '-f', await manifest('ssa3.yaml', web(3, 'tier: web'))), /serverside-applied \(server dry run\)/);
  assert.equal(JSON.parse(await ok('get', 'deploy', 'ssa', '-o', 'json')).spec.replicas, 4);
  await ok('delete', 'deploy', 'ssa');
  await ok('delete', 'crd', 'authorizationpolicies.security.warren.io');
});

test('server-side apply: re-applying the same configuration changes nothing (no new resourceVersion, no watch event)', async (t) => {
  kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const file = await manifest('same-again.yaml', deployment('again'));
  await ok('apply', '--server-side', '-f', file);
  const rv = JSON.parse(await ok('get', 'deploy', 'again', '-o', 'json')).metadata.resourceVersion;
  const events: string[] = [];
  const unsubscribe = api.server.objects.store.subscribe((ev) => events.push(ev.type));
  try {
    assert.match(await ok('apply', '--server-side', '-f', file), /serverside-applied/);
    assert.equal(JSON.parse(await ok('get', 'deploy', 'again', '-o', 'json')).metadata.resourceVersion, rv);
    assert.deepEqual(events, []);
  } finally {
    unsubscribe();
    await ok('delete', 'deploy', 'again');
  }
});
