import { parseArgs } from 'node:util';
import { WAYPOINT_ENV as E, loadWaypointConfig, type RawWaypointConfig } from '../waypoint/config.js';

const HELP = `Usage: warren waypoint-proxy --name GATEWAY --namespace NS [options]

The L7 waypoint process (runs in a waypoint pod; docs/architecture.md, "The
waypoint"). Its node's agent terminates HBONE and hands each stream to
--listen-port behind a PROXY v2 header (client address, original Service
VIP:port, client SPIFFE ID in TLV 0xD0). HTTP/1.1, HTTP/2 (h2c, gRPC) and
WebSocket are routed by HTTPRoute/GRPCRoute, authorized by AuthorizationPolicy
and RequestAuthentication with targetRefs; anything else is forwarded as TCP.
Flags override the environment variables shown.

  --name NAME                  the Gateway this waypoint serves ($${E.name}; required)
  --namespace NS               its namespace ($${E.namespace}; required)
  --kubeconfig FILE            API server credentials ($${E.kubeconfig}; default: in-cluster)
  --listen-address IP          PROXY v2 listener address ($${E.listenAddress}; 0.0.0.0)
  --listen-port N              PROXY v2 listener port ($${E.listenPort}; 15088)
  --admin-address IP           metrics/admin and readiness address ($${E.adminAddress}; 0.0.0.0)
  --admin-port N               /metrics, /debug/routes, /debug/policies, /ready ($${E.adminPort}; 15020)
  --readiness-port N           /healthz/ready ($${E.readinessPort}; 15021)
  --trusted-sources A,B        who may connect to the PROXY port: the node agent, from inside the pod
                               ($${E.trustedSources}; 127.0.0.0/8,::1/128)
  --cluster-domain D           DNS domain in destination_service labels ($${E.clusterDomain}; cluster.local)
  --root-namespace NS          mesh root namespace ($${E.rootNamespace}; warren-system)
  --otlp-endpoint URL          export one span per request over OTLP/HTTP, e.g.
                               http://collector:4318/v1/traces ($${E.otlpEndpoint}; off)
  --log-level L                trace | debug | info | warn | error | fatal ($${E.logLevel}; info)
  --access-log-level L         level of the per-request access log lines, or off ($${E.accessLogLevel}; info)
  --max-header-bytes N         request line and headers; beyond: 431 ($${E.maxHeaderBytes}; 61440)
  --max-retry-body-bytes N     bodies up to N are kept for retries; bigger ones are never retried
                               ($${E.maxRetryBodyBytes}; 65536)
  --connect-timeout D          upstream connect timeout ($${E.connectTimeout}; 5s)
  --protocol-detection-timeout D
                               a stream that sends nothing for D is forwarded as TCP
                               ($${E.protocolDetectionTimeout}; 500ms)`;

export function parseWaypointArgs(argv: string[]): { help: boolean; flags: RawWaypointConfig } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      name: { type: 'string' },
      namespace: { type: 'string' },
      kubeconfig: { type: 'string' },
      'listen-address': { type: 'string' },
      'listen-port': { type: 'string' },
      'admin-address': { type: 'string' },
      'admin-port': { type: 'string' },
      'readiness-port': { type: 'string' },
      'trusted-sources': { type: 'string' },
      'cluster-domain': { type: 'string' },
      'root-namespace': { type: 'string' },
      'otlp-endpoint': { type: 'string' },
      'log-level': { type: 'string' },
      'access-log-level': { type: 'string' },
      'max-header-bytes': { type: 'string' },
      'max-retry-body-bytes': { type: 'string' },
      'connect-timeout': { type: 'string' },
      'protocol-detection-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return {
    help: values.help,
    flags: {
      name: values.name,
      namespace: values.namespace,
      kubeconfig: values.kubeconfig,
      listenAddress: values['listen-address'],
      listenPort: values['listen-port'],
      adminAddress: values['admin-address'],
      adminPort: values['admin-port'],
      readinessPort: values['readiness-port'],
      trustedSources: values['trusted-sources'],
      clusterDomain: values['cluster-domain'],
      rootNamespace: values['root-namespace'],
      otlpEndpoint: values['otlp-endpoint'],
      logLevel: values['log-level'],
      accessLogLevel: values['access-log-level'],
      maxHeaderBytes: values['max-header-bytes'],
      maxRetryBodyBytes: values['max-retry-body-bytes'],
      connectTimeout: values['connect-timeout'],
      protocolDetectionTimeout: values['protocol-detection-timeout'],
    },
  };
}

export async function runWaypointProxyCommand(argv: string[]): Promise<number> {
  const { help, flags } = parseWaypointArgs(argv);
  if (help) {
    console.log(HELP);
    return 0;
  }
  const config = loadWaypointConfig(flags, process.env);
  // Imported on use: the rest of the CLI does not load the waypoint's module graph.
  const { runWaypointProxy } = await import('../waypoint/waypoint-proxy.js');
  return runWaypointProxy(config);
}
