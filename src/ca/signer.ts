import { randomBytes } from 'node:crypto';
import type { CheckedCsr } from '../identity/csr.js';
import { toPkcs8Pem } from '../identity/csr.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import { EC_P256, webcrypto, x509 } from '../identity/x509-provider.js';

export interface CaMaterial {
  certPem: string;
  /** PKCS#8 PEM */
  keyPem: string;
}

export interface LoadedCa {
  cert: x509.X509Certificate;
  key: Awaited<ReturnType<typeof webcrypto.subtle.importKey>>;
  /** the CA's certificate and its issuers up to the root, PEM, served with every certificate */
  chainPem: string[];
}

const CLOCK_SKEW_MS = 60_000;
const serial = (): string => {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive
  return bytes.toString('hex');
};

/** A self-signed ECDSA P-256 root for the trust domain (made on a CA's first start). */
export async function createRootCa(trustDomain: string, validDays = 3650, now = new Date()): Promise<CaMaterial> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=warren, CN=warren root CA ${trustDomain}`,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + validDays * 86_400_000),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await toPkcs8Pem(keys.privateKey) };
}

export async function loadCa(material: CaMaterial, chainAbovePem: string[] = []): Promise<LoadedCa> {
  const cert = new x509.X509Certificate(material.certPem);
  const der = Buffer.from(material.keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const key = await webcrypto.subtle.importKey('pkcs8', der, EC_P256, false, ['sign']);
  return { cert, key, chainPem: [cert.toString('pem'), ...chainAbovePem] };
}

/**
 * A workload certificate for a checked CSR: no subject, the SPIFFE URI as
 * its only (critical) SAN, digitalSignature, client and server auth, never
 * a CA; valid from a minute ago (clock skew) for `ttlMs`, never past the CA.
 */
export async function signWorkloadCert(ca: LoadedCa, csr: CheckedCsr, ttlMs: number, now = new Date()): Promise<string> {
  const notAfter = new Date(Math.min(now.getTime() + ttlMs, ca.cert.notAfter.getTime()));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: '',
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    publicKey: csr.request.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(csr.identity) }], true),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return cert.toString('pem');
}

/** The CA's own HTTPS certificate (agents reach it by Service name or IP and trust the root). */
export async function signServingCert(ca: LoadedCa, dnsNames: string[], ips: string[], ttlMs: number, now = new Date()): Promise<CaMaterial> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${dnsNames[0] ?? 'warren-ca'}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(Math.min(now.getTime() + ttlMs, ca.cert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))]),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await toPkcs8Pem(keys.privateKey) };
}
