import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { WorkloadCertificate } from '../../../src/identity/cert-manager.js';
import { joinPem } from '../../../src/identity/pem.js';
import { formatSpiffeId } from '../../../src/identity/spiffe.js';
import { TrustBundle } from '../../../src/identity/trust-bundle.js';
import { createListener } from '../../../src/native/netns-socket.js';
import type { DataPlane } from '../../../src/tunnel/dataplane.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard } from '../../../src/tunnel/hbone-limits.js';
import { NativeHub } from '../../../src/tunnel/native-hub.js';
import { CLIENT, SERVER, freePort, testCa } from '../../helpers/native-dataplane.js';
import { issueWorkloadCert } from '../../helpers/workload-certs.js';

/** The ALPN the server chose and the SPIFFE ID it proved, or the handshake's failure. */
function handshake(port: number, client: WorkloadCertificate, rootPem: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ port, host: '127.0.0.1', key: client.privateKeyPem, cert: joinPem(client.chainPem), ca: [rootPem], ALPNProtocols: ['h2'], checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
    s.once('secureConnect', () => {
      const uri = s.getPeerCertificate().subjectaltname ?? '';
      s.destroy();
      resolve(`${String(s.alpnProtocol)} ${uri}`);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(`failed: ${e.code ?? e.message}`));
  });
}

test('an HBONE listener refuses TLS until its identity has a certificate, then serves it; a rotated certificate reaches new handshakes', async () => {
  const { ca, rootPem } = await testCa();
  const client = await issueWorkloadCert(ca, CLIENT);
  let current: WorkloadCertificate | undefined;
  const plane = { trustDomain: 'cluster.local', bundle: new TrustBundle(rootPem), certificate: () => current, hbone: new HboneGuard(DEFAULT_HBONE_LIMITS) } as unknown as DataPlane;
  const hub = new NativeHub(plane, 1);
  try {
    assert.equal(hub.useIdentity(SERVER), false);
    const port = await freePort();
    hub.listen(createListener({ address: '127.0.0.1', port }), 'hbone', { decide: () => ({ action: 'reset', reason: 'test' }) }, formatSpiffeId(SERVER));
    assert.match(await handshake(port, client, rootPem), /^failed/);
    current = await issueWorkloadCert(ca, SERVER);
    assert.equal(hub.ready(SERVER), true);
    assert.equal(await handshake(port, client, rootPem), `h2 URI:${formatSpiffeId(SERVER)}`);
    // rotation: a new certificate (another key) is what the next handshake shows
    const rotated = await issueWorkloadCert(ca, SERVER);
    current = rotated;
    assert.equal(hub.ready(SERVER), true);
    const serial = await new Promise<string>((resolve) => {
      const s = tlsConnect({ port, host: '127.0.0.1', key: client.privateKeyPem, cert: joinPem(client.chainPem), ca: [rootPem], ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      s.once('secureConnect', () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.once('error', () => resolve('failed'));
    });
    assert.equal(serial.toUpperCase(), rotated.serial.toUpperCase());
  } finally {
    hub.stop();
  }
});

test("the workers' pools are listed once per event-loop turn: /connections asks for every enrolled pod, and each listing waits on every worker", async () => {
  const { rootPem } = await testCa();
  const plane = { trustDomain: 'cluster.local', bundle: new TrustBundle(rootPem), certificate: () => undefined, hbone: new HboneGuard(DEFAULT_HBONE_LIMITS) } as unknown as DataPlane;
  const hub = new NativeHub(plane, 2);
  try {
    const first = hub.pools();
    assert.equal(hub.pools(), first, 'a second pod in the same turn gets the same listing');
    await nextTurn();
    assert.notEqual(hub.pools(), first, 'the next turn lists again');
  } finally {
    hub.stop();
  }
});
