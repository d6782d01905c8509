// reflect-metadata must be evaluated before @peculiar/x509 (tsyringe needs it; ES modules evaluate imports in order).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 signs and verifies through WebCrypto; Node's is globalThis.crypto.
x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
