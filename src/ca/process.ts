import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import pino from 'pino';
import { WarrenError } from '../errors/warren-error.js';
import type { CaConfig } from './config.js';
import { startCaServer } from './server.js';
import { loadCa, signServingCert, type CaMaterial, type LoadedCa } from './signer.js';
import { loadOrCreateRoot } from './root-store.js';
import { joinPem, parseCertificateBundle } from '../identity/pem.js';
import { publishTrustBundle } from './trust-bundle-publisher.js';
import { x509 } from '../identity/x509-provider.js';
import { startWaypointController } from '../gateway/waypoint-controller.js';
import { hostname } from 'node:os';

const SERVING_TTL_MS = 7 * 86_400_000;
const SERVING_RENEW_MS = 86_400_000;

interface CaKeys {
  ca: LoadedCa;
  /** what workloads trust: the root at the top of the chain */
  bundlePem: string;
  source: string;
}

/**
 * The signing CA from files (an intermediate from the user's PKI: its
 * certificate, then its issuers; the root from --root-cert or the chain's
 * self-signed end) or, by default, a root kept in Secret warren-ca.
 */
async function loadSigningCa(config: CaConfig, core: CoreV1Api): Promise<CaKeys> {
  if (config.caCert === undefined || config.caKey === undefined) {
    const root = await loadOrCreateRoot(core, config.namespace, config.trustDomain);
    return { ca: await loadCa(root), bundlePem: root.certPem, source: `secret ${config.namespace}/warren-ca` };
  }
  const chain = parseCertificateBundle(readFileSync(config.caCert, 'utf8'), `--ca-cert ${config.caCert}`);
  const material: CaMaterial = { certPem: chain[0]!, keyPem: readFileSync(config.caKey, 'utf8') };
  const ca = await loadCa(material, chain.slice(1)).catch((err: Error) => {
    throw new WarrenError('ERR_CONFIG', `--ca-key ${config.caKey}: not an ECDSA P-256 PKCS#8 key (${err.message})`);
  });
  if (!ca.cert.getExtension(x509.BasicConstraintsExtension)?.ca) throw new WarrenError('ERR_CONFIG', `--ca-cert ${config.caCert}: the first certificate is not a CA certificate`);
  let bundlePem: string;
  if (config.rootCert !== undefined) bundlePem = joinPem(parseCertificateBundle(readFileSync(config.rootCert, 'utf8'), `--root-cert ${config.rootCert}`));
  else {
    const top = new x509.X509Certificate(chain[chain.length - 1]!);
    if (!(await top.isSelfSigned())) throw new WarrenError('ERR_CONFIG', `--ca-cert ${config.caCert} does not end with a self-signed root; give the root with --root-cert`);
    bundlePem = joinPem([top.toString('pem')]);
  }
  return { ca, bundlePem, source: config.caCert };
}

/** The CA's HTTPS certificate: its Service names, the listen IP, loopback, and any extra names asked for. */
function servingNames(config: CaConfig): { dns: string[]; ips: string[] } {
  const host = config.listen.slice(0, config.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const ns = config.namespace;
  const names = ['warren-ca', `warren-ca.${ns}`, `warren-ca.${ns}.svc`, `warren-ca.${ns}.svc.cluster.local`, 'localhost', ...config.servingNames];
  const ips = ['127.0.0.1', ...(host !== '0.0.0.0' && host !== '::' ? [host] : [])];
  return { dns: [...new Set(names.filter((n) => isIP(n) === 0))], ips: [...new Set([...ips, ...names.filter((n) => isIP(n) !== 0)])] };
}

/** `warren ca`: signs workload certificates for node agents and publishes the trust bundle, until SIGTERM. */
export async function runCa(config: CaConfig): Promise<number> {
  const log = pino({ base: { component: 'warren-ca' } });
  const logFn = (msg: string, fields: Record<string, unknown>): void => log.info(fields, msg);
  const kc = loadKubeConfig(config.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const { ca, bundlePem, source } = await loadSigningCa(config, core);
  const names = servingNames(config);
  // Clients trust only the root, so the HTTPS certificate goes out with the CA's chain.
  const serving = async (): Promise<CaMaterial> => {
    const m = await signServingCert(ca, names.dns, names.ips, SERVING_TTL_MS);
    return { ...m, certPem: joinPem([m.certPem, ...ca.chainPem]) };
  };
  const [host, port] = [config.listen.slice(0, config.listen.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(config.listen.slice(config.listen.lastIndexOf(':') + 1))];
  const server = await startCaServer({ kc, ca, trustDomain: config.trustDomain, certTtlMs: config.certTtl, allowedCallers: config.allowedCallers, host, port, serving: await serving(), log: logFn });
  const renewServing = setInterval(() => void serving().then(server.setServing, (err: Error) => log.error({ err: err.message }, 'serving certificate renewal failed')), SERVING_RENEW_MS);
  const publisher = publishTrustBundle(kc, bundlePem, logFn);
  // In the CA process as istiod runs its waypoint controller: one control-plane Deployment (docs/architecture.md §13).
  const waypoints = config.waypointController === 'on' ? startWaypointController(kc, { image: config.waypointImage }, logFn, process.env.POD_NAME ?? hostname()) : undefined;
  log.info(
    { listen: config.listen, trustDomain: config.trustDomain, certTtlMs: config.certTtl, allowedCallers: config.allowedCallers, caSource: source, caSubject: ca.cert.subject, caNotAfter: ca.cert.notAfter.toISOString() },
    'warren ca ready',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  clearInterval(renewServing);
  await publisher.stop();
  await waypoints?.stop();
  await server.close();
  return 0;
}
