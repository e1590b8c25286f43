import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

export interface ServingCerts {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

function newCert(subject: string, keys: forge.pki.rsa.KeyPair, issuer: forge.pki.Certificate | undefined, issuerKey: forge.pki.rsa.PrivateKey, extensions: object[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01' + forge.util.bytesToHex(forge.random.getBytesSync(15));
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600 * 1000);
  const attrs = [{ name: 'commonName', value: subject }];
  cert.setSubject(attrs);
  cert.setIssuer(issuer === undefined ? attrs : issuer.subject.attributes);
  cert.setExtensions(extensions);
  cert.sign(issuerKey, forge.md.sha256.create());
  return cert;
}

/** Node's native key generation is ~100× faster than forge's JavaScript one. */
function rsaKeys(): forge.pki.rsa.KeyPair {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

/**
 * A CA and a serving certificate for the simulator's API server. RSA through
 * node-forge: this CA only serves the simulator's own API endpoint (workload
 * identities use ECDSA, see src/identity).
 */
export function createServingCerts(ipSans: string[], dnsSans: string[]): ServingCerts {
  const caKeys = rsaKeys();
  const ca = newCert('warren-sim-ca', caKeys, undefined, caKeys.privateKey, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  const keys = rsaKeys();
  const cert = newCert('kube-apiserver', keys, ca, caKeys.privateKey, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [...dnsSans.map((value) => ({ type: 2, value })), ...ipSans.map((ip) => ({ type: 7, ip }))] },
  ]);
  return {
    caCertPem: forge.pki.certificateToPem(ca),
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}
