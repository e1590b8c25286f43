import { parseArgs } from 'node:util';
import { CA_ENV, DEFAULT_WAYPOINT_IMAGE, loadCaConfig } from '../ca/config.js';
import { runCa } from '../ca/process.js';
import { NODE_PORTS } from '../redirect/constants.js';

const HELP = `Usage: warren ca [options]

The workload certificate authority (a Deployment). Node agents POST a CSR for
a SPIFFE identity with their service account token; the CA checks the token
(TokenReview), the caller, that a pod of that identity runs on the caller's
node and the CSR, then signs. The root is made on first start and kept in
Secret warren-ca, or comes from your PKI with --ca-cert/--ca-key. The trust
bundle is published as ConfigMap warren-ca-root (root-cert.pem) in every
namespace. Flags override the environment variables shown.

  --kubeconfig FILE          API server credentials ($${CA_ENV.kubeconfig}; default: in-cluster)
  --namespace NS             where the root Secret lives ($${CA_ENV.namespace}; warren-system)
  --listen IP:PORT           HTTPS address ($${CA_ENV.listen}; 0.0.0.0:${NODE_PORTS.ca})
  --trust-domain TD          SPIFFE trust domain ($${CA_ENV.trustDomain}; cluster.local)
  --cert-ttl DURATION        workload certificate lifetime, e.g. 24h, 1h, 20s ($${CA_ENV.certTtl}; 24h)
  --allowed-callers A,B      service accounts that may ask ($${CA_ENV.allowedCallers};
                             system:serviceaccount:<namespace>:warren-node)
  --ca-cert FILE             signing CA certificate, then its issuers ($${CA_ENV.caCert})
  --ca-key FILE              its ECDSA P-256 PKCS#8 key ($${CA_ENV.caKey})
  --root-cert FILE           the root(s) workloads trust, if --ca-cert does not end with it ($${CA_ENV.rootCert})
  --serving-names A,B        extra DNS names or IPs for the CA's HTTPS certificate ($${CA_ENV.servingNames})
  --waypoint-controller on|off  run the waypoint controller: a Deployment, Service and
                             ServiceAccount per Gateway of class warren-waypoint ($${CA_ENV.waypointController}; on)
  --waypoint-image IMAGE     what waypoint Deployments run ($${CA_ENV.waypointImage}; ${DEFAULT_WAYPOINT_IMAGE})

Endpoints: POST /v1/certificates, GET /healthz, GET /metrics (on the same port).`;

/** `warren ca`'s argv as the config loader's flags (the Deployment manifest test parses its args with this too). */
export function parseCaArgs(argv: string[]): { help: boolean; flags: Record<string, unknown> } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      listen: { type: 'string' },
      'trust-domain': { type: 'string' },
      'cert-ttl': { type: 'string' },
      'allowed-callers': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      'root-cert': { type: 'string' },
      'serving-names': { type: 'string' },
      'waypoint-controller': { type: 'string' },
      'waypoint-image': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const flags = {
    kubeconfig: values.kubeconfig,
    namespace: values.namespace,
    listen: values.listen,
    trustDomain: values['trust-domain'],
    certTtl: values['cert-ttl'],
    allowedCallers: values['allowed-callers'],
    caCert: values['ca-cert'],
    caKey: values['ca-key'],
    rootCert: values['root-cert'],
    servingNames: values['serving-names'],
    waypointController: values['waypoint-controller'],
    waypointImage: values['waypoint-image'],
  };
  return { help: values.help, flags };
}

export async function runCaCommand(argv: string[]): Promise<number> {
  const { help, flags } = parseCaArgs(argv);
  if (help) {
    console.log(HELP);
    return 0;
  }
  return runCa(loadCaConfig(flags, process.env));
}
