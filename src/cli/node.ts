import { parseArgs } from 'node:util';
import { runNodeAgent } from '../agent/node-agent.js';
import { ENV, loadNodeAgentConfig, type RawConfig } from '../agent/config.js';

const HELP = `Usage: warren node [options]

The per-node agent (a DaemonSet pod, hostNetwork, privileged): installs the
warren-cni plugin, watches the API server, and enrolls the pods of its node
whose namespace (or pod) is labeled warren.io/dataplane-mode=ambient, without
restarting them. Flags override the environment variables shown.

  --kubeconfig FILE            API server credentials ($${ENV.kubeconfig}; default: in-cluster)
  --node-name NAME             this node ($${ENV.nodeName}; required)
  --cni-conf-dir DIR           CNI network configs ($${ENV.cniConfDir}; /etc/cni/net.d)
  --cni-bin-dir DIR            CNI plugin binaries ($${ENV.cniBinDir}; /opt/cni/bin)
  --cni-socket PATH            unix socket the plugin calls ($${ENV.cniSocket}; /var/run/warren/cni.sock)
  --cni-plugin-binary FILE     static warren-cni executable copied into the CNI bin dir
                               ($${ENV.cniPluginBinary}; build/Release/warren-cni of this package, built
                               by node-gyp at install)
  --redirect-backend B         nft | iptables | auto ($${ENV.redirectBackend}; auto)
  --exclude-namespaces A,B     never enrolled ($${ENV.excludeNamespaces}; kube-system)
  --state-dir DIR              agent state ($${ENV.stateDir}; /var/run/warren)
  --drain-seconds N            unenrolled pods' open connections may finish for N s ($${ENV.drainSeconds}; 30)
  --dataplane node|native     what moves pods' bytes: node:tls/node:http2 on the event loop, or the
                               native data path's worker threads ($${ENV.dataplane}; node)
  --dataplane-threads N        native data path worker threads ($${ENV.dataplaneThreads}; one per core)
  --readiness-address H:P      /healthz/ready ($${ENV.readinessAddress}; 0.0.0.0:15021)
  --metrics-address H:P        Prometheus /metrics ($${ENV.metricsAddress}; 0.0.0.0:15020)
  --admin-address H:P          admin API: /certs ($${ENV.adminAddress}; 127.0.0.1:15000)
  --ca-address URL             warren ca ($${ENV.caAddress}; https://warren-ca.warren-system.svc:15012)
  --ca-token-file FILE         service account token for the CA ($${ENV.caTokenFile};
                               /var/run/secrets/tokens/warren-ca-token)
  --system-namespace NS        where ConfigMap warren-ca-root is read ($${ENV.systemNamespace}; warren-system)
  --root-namespace NS          mesh-wide AuthorizationPolicy and PeerAuthentication live here
                               ($${ENV.rootNamespace}; warren-system)
  --trust-domain TD            SPIFFE trust domain ($${ENV.trustDomain}; cluster.local)
  --cluster-domain D           DNS domain in destination_service labels ($${ENV.clusterDomain}; cluster.local)
  --log-level L                trace | debug | info | warn | error | fatal ($${ENV.logLevel}; info)
  --access-log-level L         level of the per-connection access log lines, or off
                               ($${ENV.accessLogLevel}; info)
  --hbone-max-connections-per-peer N
                               HBONE connections one peer IP may hold to this node's pods
                               ($${ENV.hboneMaxConnectionsPerPeer}; 256)
  --hbone-max-connections N    HBONE connections to this node's pods in total ($${ENV.hboneMaxConnections}; 4096)
  --hbone-handshake-timeout D  an HBONE TLS handshake must finish within D ($${ENV.hboneHandshakeTimeout}; 5s)
  --hbone-stream-idle-timeout D
                               an HBONE stream idle for D is reset ($${ENV.hboneStreamIdleTimeout}; 1h)
  --hbone-stream-buffer-bytes N
                               bytes one HBONE stream may hold in the agent: its HTTP/2 window
                               ($${ENV.hboneStreamBufferBytes}; 4194304)
  --no-install-cni             do not install or watch the CNI plugin
  --uninstall                  remove what the agent put on this node (every rule, the CNI entry and
                               plugin, its socket, its pod annotations), then exit; run it once the
                               agent is stopped (deploy/uninstall/README.md)`;

/** `warren node`'s argv as the config loader's flags (the DaemonSet manifest test parses its args with this too). */
export function parseNodeArgs(argv: string[]): { help: boolean; flags: RawConfig } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kubeconfig: { type: 'string' },
      'node-name': { type: 'string' },
      'cni-conf-dir': { type: 'string' },
      'cni-bin-dir': { type: 'string' },
      'cni-socket': { type: 'string' },
      'cni-plugin-binary': { type: 'string' },
      'redirect-backend': { type: 'string' },
      'exclude-namespaces': { type: 'string' },
      'state-dir': { type: 'string' },
      'drain-seconds': { type: 'string' },
      dataplane: { type: 'string' },
      'dataplane-threads': { type: 'string' },
      'readiness-address': { type: 'string' },
      'metrics-address': { type: 'string' },
      'admin-address': { type: 'string' },
      'ca-address': { type: 'string' },
      'ca-token-file': { type: 'string' },
      'system-namespace': { type: 'string' },
      'root-namespace': { type: 'string' },
      'trust-domain': { type: 'string' },
      'cluster-domain': { type: 'string' },
      'log-level': { type: 'string' },
      'access-log-level': { type: 'string' },
      'hbone-max-connections-per-peer': { type: 'string' },
      'hbone-max-connections': { type: 'string' },
      'hbone-handshake-timeout': { type: 'string' },
      'hbone-stream-idle-timeout': { type: 'string' },
      'hbone-stream-buffer-bytes': { type: 'string' },
      'no-install-cni': { type: 'boolean', default: false },
      uninstall: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const flags: RawConfig = {
    kubeconfig: values.kubeconfig,
    nodeName: values['node-name'],
    cniConfDir: values['cni-conf-dir'],
    cniBinDir: values['cni-bin-dir'],
    cniSocket: values['cni-socket'],
    cniPluginBinary: values['cni-plugin-binary'],
    redirectBackend: values['redirect-backend'],
    excludeNamespaces: values['exclude-namespaces'],
    stateDir: values['state-dir'],
    drainSeconds: values['drain-seconds'],
    dataplane: values.dataplane,
    dataplaneThreads: values['dataplane-threads'],
    readinessAddress: values['readiness-address'],
    metricsAddress: values['metrics-address'],
    adminAddress: values['admin-address'],
    caAddress: values['ca-address'],
    caTokenFile: values['ca-token-file'],
    systemNamespace: values['system-namespace'],
    rootNamespace: values['root-namespace'],
    trustDomain: values['trust-domain'],
    clusterDomain: values['cluster-domain'],
    logLevel: values['log-level'],
    accessLogLevel: values['access-log-level'],
    hboneMaxConnectionsPerPeer: values['hbone-max-connections-per-peer'],
    hboneMaxConnections: values['hbone-max-connections'],
    hboneHandshakeTimeout: values['hbone-handshake-timeout'],
    hboneStreamIdleTimeout: values['hbone-stream-idle-timeout'],
    hboneStreamBufferBytes: values['hbone-stream-buffer-bytes'],
    installCni: !values['no-install-cni'],
    uninstall: values.uninstall,
  };
  return { help: values.help, flags };
}

export async function runNode(argv: string[]): Promise<number> {
  const { help, flags } = parseNodeArgs(argv);
  if (help) {
    console.log(HELP);
    return 0;
  }
  return runNodeAgent(loadNodeAgentConfig(flags, process.env));
}
