import { X509Certificate } from 'node:crypto';
import { WarrenError } from '../errors/warren-error.js';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The certificates of a PEM bundle (a file, a ConfigMap value), each checked
 * to parse; `what` names the source in the ERR_PEM error. An empty bundle is
 * an error: trusting nothing must be said explicitly, not by accident.
 */
export function parseCertificateBundle(text: string, what: string): string[] {
  const blocks = text.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw new WarrenError('ERR_PEM', `${what} holds no PEM certificate`);
  return blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem).toString();
    } catch (err) {
      throw new WarrenError('ERR_PEM', `${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

/** PEM blocks as one text (a chain for TLS, a bundle file): each block on its own lines. */
export function joinPem(pems: readonly string[]): string {
  return pems.map((p) => `${p.trim()}\n`).join('');
}
