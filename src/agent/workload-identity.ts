import { Counter, Gauge, type Registry } from 'prom-client';
import { createCaClient } from '../identity/ca-client.js';
import { CertManager } from '../identity/cert-manager.js';
import type { SpiffeId } from '../identity/spiffe.js';
import { TrustBundle } from '../identity/trust-bundle.js';
import { watchTrustBundle } from '../identity/trust-bundle-watch.js';
import type { Watcher } from '../k8s/watcher.js';
import type { NodeAgentConfig } from './config.js';
import type { PodView } from './enrollment-plan.js';

export interface WorkloadIdentity {
  certs: CertManager;
  bundle: TrustBundle;
  acquire(pod: PodView): Promise<SpiffeId>;
  release(uid: string): void;
  stop(): Promise<void>;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * The agent's identity plumbing: the trust bundle followed from its
 * ConfigMap, the CA client with the agent's token, the certificate manager,
 * and their metrics (expiry per identity, renewals, roots).
 */
export function startWorkloadIdentity(watch: Watcher, config: NodeAgentConfig, registry: Registry, log: Log): WorkloadIdentity {
  const bundle = new TrustBundle();
  const bundleWatch = watchTrustBundle(watch, config.systemNamespace, bundle, log);
  const renewals = new Counter({ name: 'warren_certificate_renewals_total', help: 'Workload certificate renewals, by result', labelNames: ['result'], registers: [registry] });
  const certs = new CertManager({
    ca: createCaClient({ address: config.caAddress, tokenFile: config.caTokenFile, bundle }),
    bundle,
    trustDomain: config.trustDomain,
    log,
    onRenewal: (_identity, ok) => renewals.inc({ result: ok ? 'success' : 'failure' }),
  });
  new Gauge({
    name: 'warren_workload_certificate_expiry_timestamp_seconds',
    help: 'When each workload certificate held by this agent expires (seconds since the epoch)',
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset();
      for (const e of certs.expiries()) this.set({ identity: e.identity }, e.notAfter);
    },
  });
  new Gauge({
    name: 'warren_trust_bundle_roots',
    help: 'Root certificates in the trust bundle this agent verifies peers against',
    registers: [registry],
    collect() {
      this.set(bundle.pems().length);
    },
  });
  return {
    certs,
    bundle,
    async acquire(pod) {
      const id = { trustDomain: config.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccount };
      await certs.acquire(pod.uid, id);
      return id;
    },
    release: (uid) => certs.release(uid),
    async stop() {
      certs.stop();
      await bundleWatch.stop();
    },
  };
}
