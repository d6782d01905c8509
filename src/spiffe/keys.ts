import { createPrivateKey, createPublicKey, KeyObject, type webcrypto } from 'node:crypto';
import { SpiffeError } from './errors.ts';

/**
 * Key helpers for the SPIFFE layer. Keys live as WebCrypto CryptoKeys (what
 * @peculiar/x509 signs with) or node KeyObjects (what node:crypto and jose use
 * fastest); these convert between the two without ever exposing key bytes in
 * errors.
 */

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
/** A key in either representation. */
export type AnyKey = CryptoKey | KeyObject;

export type EcCurve = 'P-256' | 'P-384';

/** Generates an ECDSA key pair (P-256 unless told) for a CA or a workload. Extractable by default so it can be sealed and stored. */
export async function generateEcKeyPair(
  curve: EcCurve = 'P-256',
  options: { extractable?: boolean } = {},
): Promise<CryptoKeyPair> {
  return (await globalThis.crypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: curve },
    options.extractable ?? true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
}

/** The node KeyObject for a key (no copy of secret bytes leaves native memory). */
export function toKeyObject(key: AnyKey): KeyObject {
  return key instanceof KeyObject ? key : KeyObject.from(key);
}

/**
 * The WebCrypto CryptoKey for a signing key (ECDSA, RSASSA-PKCS1-v1_5 with
 * SHA-256, or Ed25519), with usage `sign` for private keys and `verify` for
 * public ones. Throws SpiffeError('invalid_key') for other key types.
 */
export function toCryptoKey(key: AnyKey, options: { extractable?: boolean } = {}): CryptoKey {
  if (!(key instanceof KeyObject)) return key;
  const usages: webcrypto.KeyUsage[] = key.type === 'private' ? ['sign'] : ['verify'];
  const extractable = options.extractable ?? true;
  switch (key.asymmetricKeyType) {
    case 'ec':
      return key.toCryptoKey({ name: 'ECDSA', namedCurve: ecCurve(key) }, extractable, usages);
    case 'rsa':
      return key.toCryptoKey({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, extractable, usages);
    case 'ed25519':
      return key.toCryptoKey({ name: 'Ed25519' }, extractable, usages);
    default:
      throw new SpiffeError('invalid_key', `keys of type ${String(key.asymmetricKeyType)} are not supported`);
  }
}

/** The WebCrypto curve name of an EC KeyObject; throws for curves other than P-256/P-384/P-521. */
function ecCurve(key: KeyObject): 'P-256' | 'P-384' | 'P-521' {
  switch (key.asymmetricKeyDetails?.namedCurve) {
    case 'prime256v1':
      return 'P-256';
    case 'secp384r1':
      return 'P-384';
    case 'secp521r1':
      return 'P-521';
    default:
      throw new SpiffeError(
        'invalid_key',
        `the EC curve ${String(key.asymmetricKeyDetails?.namedCurve)} is not supported`,
      );
  }
}

/**
 * A short description of a public or private key's algorithm (`EC P-256`,
 * `RSA 2048`, `Ed25519`), for messages and policy checks.
 */
export function describeKey(key: AnyKey): string {
  const k = toKeyObject(key);
  switch (k.asymmetricKeyType) {
    case 'ec':
      return `EC ${ecCurve(k)}`;
    case 'rsa':
      return `RSA ${k.asymmetricKeyDetails?.modulusLength ?? '?'}`;
    case 'ed25519':
      return 'Ed25519';
    default:
      return String(k.asymmetricKeyType ?? k.type);
  }
}

/**
 * Throws SpiffeError('invalid_key') unless `key` is a public key strong enough
 * to certify: EC P-256/P-384/P-521, RSA of at least 2048 bits, or Ed25519.
 */
const acceptedKeys = new WeakSet<object>();

export function assertAcceptablePublicKey(key: AnyKey): void {
  // asymmetricKeyDetails costs tens of µs per call; a key object's type never changes
  if (acceptedKeys.has(key)) return;
  checkPublicKey(key);
  acceptedKeys.add(key);
}

function checkPublicKey(key: AnyKey): void {
  const k = toKeyObject(key);
  if (k.type !== 'public') throw new SpiffeError('invalid_key', 'a public key is required');
  if (k.asymmetricKeyType === 'ec') {
    ecCurve(k);
    return;
  }
  if (k.asymmetricKeyType === 'rsa') {
    const bits = k.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048)
      throw new SpiffeError('invalid_key', `RSA keys must have at least 2048 bits (got ${bits})`);
    return;
  }
  if (k.asymmetricKeyType === 'ed25519') return;
  throw new SpiffeError('invalid_key', `public keys of type ${String(k.asymmetricKeyType)} are not accepted`);
}

/** The public KeyObject of a public key, or the public half of a private key. */
export function publicKeyObject(key: AnyKey): KeyObject {
  const k = toKeyObject(key);
  if (k.type === 'public') return k;
  if (k.type === 'private') return createPublicKey(k);
  throw new TypeError('an asymmetric key is required');
}

/** PKCS#8 PEM of a private key. */
export function exportPrivateKeyPem(key: AnyKey): string {
  const k = toKeyObject(key);
  if (k.type !== 'private') throw new TypeError('exportPrivateKeyPem needs a private key');
  return k.export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** SPKI PEM of a public key (or of the public half of a private key). */
export function exportPublicKeyPem(key: AnyKey): string {
  return publicKeyObject(key).export({ format: 'pem', type: 'spki' }) as string;
}

// OpenSSL 3 key encoding costs ~100 µs; a key that arrived as SPKI DER (a CSR's) keeps its bytes here.
const spkiCache = new WeakMap<object, Buffer>();

/** Records the SPKI DER a public key was imported from, so exportPublicKeyDer need not re-encode it. */
export function rememberSpki(key: AnyKey, spkiDer: Uint8Array): void {
  spkiCache.set(key, Buffer.from(spkiDer));
}

/** SPKI DER of a public key (or of the public half of a private key). */
export function exportPublicKeyDer(key: AnyKey): Buffer {
  let der = spkiCache.get(key);
  if (!der) {
    der = publicKeyObject(key).export({ format: 'der', type: 'spki' });
    spkiCache.set(key, der);
  }
  return Buffer.from(der);
}

/** Imports a PKCS#8 (or SEC1/PKCS#1) PEM private key as a signing CryptoKey. Throws SpiffeError('invalid_key'). */
export function importPrivateKeyPem(pem: string, options: { extractable?: boolean } = {}): CryptoKey {
  let k: KeyObject;
  try {
    k = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new SpiffeError('invalid_key', 'the private key PEM does not parse', { cause: err });
  }
  return toCryptoKey(k, options);
}

/** Imports an SPKI PEM public key as a verifying CryptoKey. Throws SpiffeError('invalid_key'). */
export function importPublicKeyPem(pem: string): CryptoKey {
  let k: KeyObject;
  try {
    k = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new SpiffeError('invalid_key', 'the public key PEM does not parse', { cause: err });
  }
  return toCryptoKey(k);
}

/** The ECDSA signature algorithm matching a CA key's curve (RFC 5758 §3.2: SHA-256 for P-256, SHA-384 for P-384). */
export function ecdsaSigningAlgorithm(key: AnyKey): {
  name: 'ECDSA';
  hash: 'SHA-256' | 'SHA-384' | 'SHA-512';
} {
  const k = toKeyObject(key);
  if (k.asymmetricKeyType !== 'ec') throw new SpiffeError('invalid_key', 'an ECDSA signing key is required');
  const curve = ecCurve(k);
  return { name: 'ECDSA', hash: curve === 'P-256' ? 'SHA-256' : curve === 'P-384' ? 'SHA-384' : 'SHA-512' };
}
