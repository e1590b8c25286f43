import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, dumpYaml, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';
import { GATEWAY_GROUP, GATEWAY_VERSION, USE_WAYPOINT_LABEL, WAYPOINT_CLASS, WAYPOINT_FOR_LABEL, WAYPOINT_FOR_VALUES, WAYPOINT_PORTS, type WaypointFor } from '../gateway/constants.js';
import type { Condition, GatewayObject } from '../gateway/waypoint-objects.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { formatTable } from './admin-client.js';

const HELP = `Usage: warren waypoint <apply|list|status|delete> [options]

Waypoints are Gateway API Gateways of class ${WAYPOINT_CLASS} (one HBONE listener on
${WAYPOINT_PORTS.mesh}); warren ca's controller runs each as a Deployment with its Service and
ServiceAccount. Services, pods or whole namespaces use one with the label
${USE_WAYPOINT_LABEL}=<name> (none opts out; warren.io/use-waypoint-namespace names
another namespace's waypoint).

  apply                 create or update a waypoint
    --for service|workload|all|none
                        what traffic it takes (label ${WAYPOINT_FOR_LABEL}; service)
    --enroll-namespace  also label the namespace ${USE_WAYPOINT_LABEL}=<name>
    --wait              wait until it is Programmed (a pod ready), up to --timeout
  list                  the waypoints of the namespace (-A: of every namespace)
  status                a waypoint's conditions and address
  delete [NAME...]      delete waypoints (--all: every waypoint of the namespace); their
                        Deployment, Service and ServiceAccount go with them

  -n, --namespace NS    the waypoint's namespace (default)
  --name NAME           the waypoint's name (waypoint)
  -A, --all-namespaces  list: every namespace
  --timeout SECONDS     apply --wait: how long (60)
  --kubeconfig FILE     the cluster ($KUBECONFIG, then ~/.kube/config)
  -o, --output table|json|yaml
                        list and status output (table)`;

const GATEWAYS = { group: GATEWAY_GROUP, version: GATEWAY_VERSION, plural: 'gateways' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The Gateway `warren waypoint apply` makes, as `istioctl waypoint generate` prints Istio's. */
export function waypointGateway(namespace: string, name: string, waypointFor: WaypointFor): GatewayObject {
  return {
    apiVersion: `${GATEWAY_GROUP}/${GATEWAY_VERSION}`,
    kind: 'Gateway',
    metadata: { name, namespace, labels: { [WAYPOINT_FOR_LABEL]: waypointFor } },
    spec: { gatewayClassName: WAYPOINT_CLASS, listeners: [{ name: 'mesh', port: WAYPOINT_PORTS.mesh, protocol: 'HBONE' }] },
  };
}

/** The cluster for CLI commands that talk to the API: --kubeconfig, then $KUBECONFIG, then ~/.kube/config. */
export function kubeConfig(file: string | undefined): KubeConfig {
  if (file !== undefined || process.env.KUBECONFIG === undefined) {
    if (file !== undefined) return loadKubeConfig(file);
    const kc = new KubeConfig();
    kc.loadFromDefault();
    if (kc.getCurrentCluster() === null) throw new WarrenError('ERR_USAGE', 'no cluster: give --kubeconfig FILE (or set KUBECONFIG)');
    return kc;
  }
  return loadKubeConfig(process.env.KUBECONFIG);
}

const condition = (gw: GatewayObject, type: string): Condition | undefined => gw.status?.conditions?.find((c) => c.type === type);

/** An API failure as the user can act on it. */
function apiError(err: unknown, what: string): never {
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    const message = (() => {
      try {
        return (JSON.parse(body) as { message?: string }).message ?? body;
      } catch {
        return body;
      }
    })();
    if (err.code === 404 && /gateways|gateway\.networking/.test(message + what)) {
      throw new WarrenError('ERR_WAYPOINT', `${what}: ${message} (are the Gateway API CRDs installed? kubectl apply -k deploy/)`);
    }
    throw new WarrenError('ERR_WAYPOINT', `${what}: the API server answered ${err.code}: ${message}`);
  }
  throw err;
}

export async function runWaypoint(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n', default: 'default' },
      name: { type: 'string', default: 'waypoint' },
      for: { type: 'string', default: 'service' },
      'enroll-namespace': { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '60' },
      all: { type: 'boolean', default: false },
      'all-namespaces': { type: 'boolean', short: 'A', default: false },
      kubeconfig: { type: 'string' },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [verb, ...names] = positionals;
  if (values.help || verb === undefined) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  if (!['apply', 'list', 'status', 'delete'].includes(verb)) throw new WarrenError('ERR_USAGE', `unknown waypoint command ${JSON.stringify(verb)}: apply, list, status or delete (see --help)`);
  const ns = values.namespace;
  if (!K8S_NAME.test(ns)) throw new WarrenError('ERR_USAGE', `--namespace ${JSON.stringify(ns)} is not a namespace name`);
  for (const n of [values.name, ...names]) if (!K8S_NAME.test(n) || n.length > 63) throw new WarrenError('ERR_USAGE', `${JSON.stringify(n)} is not a waypoint name (lowercase letters, digits, dashes; at most 63)`);
  if (!['table', 'json', 'yaml'].includes(values.output)) throw new WarrenError('ERR_USAGE', `-o ${values.output}: table, json or yaml`);
  const kc = kubeConfig(values.kubeconfig);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const read = (name: string): Promise<GatewayObject | undefined> =>
    custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: ns, name }).then(
      (g) => g as GatewayObject,
      (err: unknown) => (err instanceof ApiException && err.code === 404 && !/the server could not find the requested resource/.test(String(err.body)) ? undefined : apiError(err, `waypoint ${ns}/${name}`)),
    );

  switch (verb) {
    case 'apply': {
      if (names.length > 0) throw new WarrenError('ERR_USAGE', `apply takes no positional names (got ${names.join(' ')}): use --name`);
      if (!(WAYPOINT_FOR_VALUES as readonly string[]).includes(values.for)) throw new WarrenError('ERR_USAGE', `--for ${JSON.stringify(values.for)}: one of ${WAYPOINT_FOR_VALUES.join(', ')}`);
      const timeoutS = Number(values.timeout);
      if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 3600) throw new WarrenError('ERR_USAGE', `--timeout ${values.timeout}: whole seconds, 1-3600`);
      await core.readNamespace({ name: ns }).catch((err: unknown) => {
        if (err instanceof ApiException && err.code === 404) throw new WarrenError('ERR_WAYPOINT', `namespace ${ns} does not exist`);
        apiError(err, `namespace ${ns}`);
      });
      const body = waypointGateway(ns, values.name, values.for as WaypointFor);
      const existing = await read(values.name);
      if (existing === undefined) await custom.createNamespacedCustomObject({ ...GATEWAYS, namespace: ns, body }).catch((err: unknown) => apiError(err, `waypoint ${ns}/${values.name}`));
      else if (existing.spec.gatewayClassName !== WAYPOINT_CLASS) throw new WarrenError('ERR_WAYPOINT', `Gateway ${ns}/${values.name} exists with class ${existing.spec.gatewayClassName}: not a waypoint; choose another --name`);
      else await custom.patchNamespacedCustomObject({ ...GATEWAYS, namespace: ns, name: values.name, body: { metadata: body.metadata, spec: body.spec } }, mergePatch).catch((err: unknown) => apiError(err, `waypoint ${ns}/${values.name}`));
      console.log(`waypoint ${ns}/${values.name} ${existing === undefined ? 'applied' : 'updated'} (for ${values.for} traffic)`);
      if (values['enroll-namespace']) {
        await core.patchNamespace({ name: ns, body: { metadata: { labels: { [USE_WAYPOINT_LABEL]: values.name } } } }, mergePatch).catch((err: unknown) => apiError(err, `namespace ${ns}`));
        console.log(`namespace ${ns} labeled ${USE_WAYPOINT_LABEL}=${values.name}`);
      }
      if (!values.wait) return 0;
      const deadline = Date.now() + timeoutS * 1000;
      for (;;) {
        const gw = await read(values.name);
        const programmed = gw === undefined ? undefined : condition(gw, 'Programmed');
        if (programmed?.status === 'True') {
          console.log(`waypoint ${ns}/${values.name} is programmed: ${gw!.status?.addresses?.map((a) => a.value).join(', ') ?? ''}`);
          return 0;
        }
        if (Date.now() > deadline) throw new WarrenError('ERR_WAYPOINT', `waypoint ${ns}/${values.name} not programmed within ${timeoutS}s: ${programmed?.message ?? 'no status yet (is warren ca running?)'}`);
        await sleep(500);
      }
    }
    case 'list': {
      const list = (values['all-namespaces'] ? await custom.listClusterCustomObject(GATEWAYS) : await custom.listNamespacedCustomObject({ ...GATEWAYS, namespace: ns }).catch((err: unknown) => apiError(err, 'waypoints'))) as { items: GatewayObject[] };
      const waypoints = list.items.filter((g) => g.spec?.gatewayClassName === WAYPOINT_CLASS);
      if (values.output !== 'table') return print(waypoints, values.output);
      if (waypoints.length === 0) {
        console.log(`no waypoints ${values['all-namespaces'] ? 'in any namespace' : `in namespace ${ns}`}`);
        return 0;
      }
      const rows = waypoints.map((g) => [g.metadata!.namespace!, g.metadata!.name!, g.metadata?.labels?.[WAYPOINT_FOR_LABEL] ?? 'service', condition(g, 'Programmed')?.status ?? 'Unknown', g.status?.addresses?.map((a) => a.value).join(',') || '-']);
      console.log(formatTable(['NAMESPACE', 'NAME', 'FOR', 'PROGRAMMED', 'ADDRESS'], rows));
      return 0;
    }
    case 'status': {
      const targets = names.length > 0 ? names : [values.name];
      const found = await Promise.all(targets.map(async (n) => ({ n, gw: await read(n) })));
      const missing = found.filter((f) => f.gw === undefined).map((f) => `${ns}/${f.n}`);
      if (values.output !== 'table') print(found.flatMap((f) => (f.gw ? [f.gw] : [])), values.output);
      else {
        for (const { gw } of found) {
          if (gw === undefined) continue;
          console.log(`waypoint ${ns}/${gw.metadata!.name} (for ${gw.metadata?.labels?.[WAYPOINT_FOR_LABEL] ?? 'service'} traffic), address ${gw.status?.addresses?.map((a) => a.value).join(', ') || 'none yet'}`);
          const rows = (gw.status?.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message]);
          console.log(rows.length === 0 ? '  no status yet (is warren ca running?)' : formatTable(['CONDITION', 'STATUS', 'REASON', 'MESSAGE'], rows));
        }
      }
      if (missing.length > 0) console.error(`warren: no waypoint ${missing.join(', ')}`);
      return missing.length > 0 || found.some((f) => f.gw !== undefined && condition(f.gw, 'Programmed')?.status !== 'True') ? 1 : 0;
    }
    case 'delete': {
      if (values.all && names.length > 0) throw new WarrenError('ERR_USAGE', 'delete: give names or --all, not both');
      const targets = values.all
        ? ((await custom.listNamespacedCustomObject({ ...GATEWAYS, namespace: ns }).catch((err: unknown) => apiError(err, 'waypoints'))) as { items: GatewayObject[] }).items.filter((g) => g.spec?.gatewayClassName === WAYPOINT_CLASS).map((g) => g.metadata!.name!)
        : names.length > 0
          ? names
          : [values.name];
      let failed = 0;
      for (const name of targets) {
        const gw = await read(name);
        if (gw === undefined || gw.spec.gatewayClassName !== WAYPOINT_CLASS) {
          console.error(`warren: no waypoint ${ns}/${name}`);
          failed++;
          continue;
        }
        await custom.deleteNamespacedCustomObject({ ...GATEWAYS, namespace: ns, name }).catch((err: unknown) => apiError(err, `waypoint ${ns}/${name}`));
        console.log(`waypoint ${ns}/${name} deleted`);
      }
      if (values.all && targets.length === 0) console.log(`no waypoints in namespace ${ns}`);
      return failed > 0 ? 1 : 0;
    }
    default:
      return 2;
  }
}

function print(objects: KubernetesObject[], output: string): number {
  console.log(output === 'yaml' ? objects.map((o) => dumpYaml(o)).join('---\n') : JSON.stringify(objects, null, 2));
  return 0;
}
