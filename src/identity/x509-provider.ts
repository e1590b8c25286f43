// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type X509Crypto = ReturnType<typeof x509.cryptoProvider.get>;
// Node's webcrypto is the WebCrypto the library expects; only the lib typings differ.
x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);

/** ECDSA P-256 with SHA-256: the key type of every workload and CA key (docs/architecture.md §5). */
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export { x509, webcrypto };
