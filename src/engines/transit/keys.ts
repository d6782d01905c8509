import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPair,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign as signData,
  verify as verifyData,
} from 'node:crypto';
import { promisify } from 'node:util';
import type { HashAlgorithm, KeyType } from '../../api/transit.ts';
import { constantTimeEqual } from '../../crypto/random.ts';
import { StrongroomError } from '../../errors/errors.ts';

/**
 * The transit engine's cryptography, in Vault's formats (docs/transit.md): AEAD ciphertexts are
 * `vault:v<N>:base64(nonce ‖ ciphertext ‖ tag)` with a 96-bit random nonce; signatures and HMACs are
 * `vault:v<N>:base64(…)`. Keys are kept as bytes (a raw key, or PKCS#8 DER of a private key) in the
 * barrier, and turned into `KeyObject`s once per version (DESIGN.md §6: a cached KeyObject costs a fraction
 * of importing the bytes again).
 */

/** One version of a key, as stored (inside the barrier). */
export interface KeyVersion {
  /** base64 of the raw key (symmetric) or of the PKCS#8 DER private key. */
  key: string;
  /** base64 of the version's HMAC key (every key type can compute HMACs, as in Vault). */
  hmac_key: string;
  /** For a key pair: its public key (PEM SPKI; Ed25519: base64 of the 32 raw bytes, as Vault shows it). */
  public_key?: string;
  /** A version held in the HSM: the label of its key on the token (`key` is then empty). */
  hsm_label?: string;
  created_at: string;
}

/** What the HSM does for a version it holds (HsmPort's `hsm`). */
export interface Hsm {
  encrypt(label: string, plaintext: Buffer, aad: Buffer | undefined): Promise<Buffer>;
  decrypt(label: string, data: Buffer, aad: Buffer | undefined): Promise<Buffer | undefined>;
}

function hsmOf(hsm: Hsm | undefined, context: Buffer | undefined): Hsm {
  if (!hsm) {
    throw new StrongroomError(
      'hsm_unavailable',
      'this key is held in an HSM and this vault has none configured (seal: pkcs11)',
    );
  }
  if (context)
    throw new StrongroomError(
      'unsupported_operation',
      'a key held in the HSM is not derived: send no context',
    );
  return hsm;
}

/** encrypt(), or through the HSM for a version it holds. */
export async function encryptVersion(
  type: KeyType,
  version: number,
  v: KeyVersion,
  plaintext: Buffer,
  opts: { context?: Buffer | undefined; aad?: Buffer | undefined },
  hsm: Hsm | undefined,
): Promise<string> {
  if (!v.hsm_label) return encrypt(type, version, v, plaintext, opts);
  return versioned(version, await hsmOf(hsm, opts.context).encrypt(v.hsm_label, plaintext, opts.aad));
}

/** decrypt(), or through the HSM for a version it holds; the same one answer for what does not open. */
export async function decryptVersion(
  type: KeyType,
  v: KeyVersion,
  bytes: Buffer,
  opts: { context?: Buffer | undefined; aad?: Buffer | undefined },
  hsm: Hsm | undefined,
): Promise<Buffer> {
  if (!v.hsm_label) return decrypt(type, v, bytes, opts);
  const plain = await hsmOf(hsm, opts.context).decrypt(v.hsm_label, bytes, opts.aad);
  if (!plain) throw new StrongroomError('invalid_ciphertext', 'the ciphertext could not be decrypted');
  return plain;
}

const AEAD: Partial<Record<KeyType, { cipher: string; bytes: number }>> = {
  'aes128-gcm96': { cipher: 'aes-128-gcm', bytes: 16 },
  'aes256-gcm96': { cipher: 'aes-256-gcm', bytes: 32 },
  'chacha20-poly1305': { cipher: 'chacha20-poly1305', bytes: 32 },
};
const NONCE = 12;
const TAG = 16;

export const isEncryptionKey = (t: KeyType): boolean => AEAD[t] !== undefined;
export const isSigningKey = (t: KeyType): boolean =>
  t === 'ed25519' || t.startsWith('ecdsa-') || t.startsWith('rsa-');

const gen = promisify(generateKeyPair);

async function keyPair(type: KeyType): Promise<KeyObject> {
  if (type === 'ed25519') return (await gen('ed25519')).privateKey;
  if (type.startsWith('ecdsa-')) {
    const namedCurve = { 'ecdsa-p256': 'P-256', 'ecdsa-p384': 'P-384', 'ecdsa-p521': 'P-521' }[
      type as 'ecdsa-p256'
    ];
    return (await gen('ec', { namedCurve })).privateKey;
  }
  const modulusLength = Number(type.slice('rsa-'.length));
  return (await gen('rsa', { modulusLength })).privateKey;
}

/** The public key as Vault shows it: PEM, or base64 of the raw key for Ed25519. */
function publicOf(priv: KeyObject): string {
  const pub = createPublicKey(priv);
  if (priv.asymmetricKeyType === 'ed25519')
    return (pub.export({ format: 'jwk' }).x as string)
      .replaceAll('-', '+')
      .replaceAll('_', '/')
      .padEnd(44, '=');
  return pub.export({ format: 'pem', type: 'spki' }) as string;
}

/** A new version of a key of `type` (asynchronous: an RSA key pair takes a while). */
export async function newVersion(type: KeyType, now: Date, hmacBytes = 32): Promise<KeyVersion> {
  const hmac_key = randomBytes(32).toString('base64');
  const created_at = now.toISOString();
  const aead = AEAD[type];
  if (aead) return { key: randomBytes(aead.bytes).toString('base64'), hmac_key, created_at };
  if (type === 'hmac') {
    const k = randomBytes(hmacBytes).toString('base64');
    return { key: k, hmac_key: k, created_at };
  }
  const priv = await keyPair(type);
  const der = priv.export({ format: 'der', type: 'pkcs8' });
  return { key: der.toString('base64'), hmac_key, public_key: publicOf(priv), created_at };
}

// --- key objects, imported once per version ---

const CACHE_MAX = 4096;
const cache = new Map<string, KeyObject>();

function cached(material: string, make: () => KeyObject): KeyObject {
  let k = cache.get(material);
  if (k) return k;
  k = make();
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(material, k);
  return k;
}

const secretKey = (b64: string) => cached(b64, () => createSecretKey(Buffer.from(b64, 'base64')));
const privateKey = (b64: string) =>
  cached(b64, () => createPrivateKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'pkcs8' }));

/** Forgets every imported key (the vault sealed). */
export function forgetKeyObjects(): void {
  cache.clear();
}

/** HKDF-SHA256 of the key with the context as info (Vault's `hkdf_sha256` derivation). */
function derive(v: KeyVersion, bytes: number, context: Buffer | undefined): KeyObject {
  if (!context) return secretKey(v.key);
  if (context.length > 1024) throw new StrongroomError('invalid_value', 'a context is at most 1024 bytes');
  const raw = Buffer.from(hkdfSync('sha256', Buffer.from(v.key, 'base64'), Buffer.alloc(0), context, bytes));
  return createSecretKey(raw);
}

// --- the versioned wire forms ---

const PREFIX = /^vault:v([1-9][0-9]{0,6}):/;

/** Splits `vault:vN:payload`: the version and the payload's bytes (base64, or base64url for JWS). */
export function parseVersioned(s: string, what: string, urlSafe = false): { version: number; bytes: Buffer } {
  const m = PREFIX.exec(s);
  if (!m) throw new StrongroomError('invalid_ciphertext', `the ${what} must look like vault:v<N>:<base64>`);
  const body = s.slice(m[0].length);
  const ok = urlSafe ? /^[A-Za-z0-9_-]*={0,2}$/.test(body) : /^[A-Za-z0-9+/]*={0,2}$/.test(body);
  if (!ok)
    throw new StrongroomError('invalid_ciphertext', `the ${what} is not valid base64 after vault:v<N>:`);
  return { version: Number(m[1]), bytes: Buffer.from(body, urlSafe ? 'base64url' : 'base64') };
}

const versioned = (version: number, bytes: Buffer, urlSafe = false) =>
  `vault:v${version}:${bytes.toString(urlSafe ? 'base64url' : 'base64')}`;

// --- encryption ---

function encrypt(
  type: KeyType,
  version: number,
  v: KeyVersion,
  plaintext: Buffer,
  opts: { context?: Buffer | undefined; aad?: Buffer | undefined },
): string {
  const aead = AEAD[type]!;
  const nonce = randomBytes(NONCE);
  const c = createCipheriv(aead.cipher as 'aes-256-gcm', derive(v, aead.bytes, opts.context), nonce, {
    authTagLength: TAG,
  });
  if (opts.aad) c.setAAD(opts.aad, { plaintextLength: plaintext.length });
  const out = Buffer.concat([nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
  return versioned(version, out);
}

/** The plaintext, or an `invalid_ciphertext` error that says nothing more (no oracle). */
function decrypt(
  type: KeyType,
  v: KeyVersion,
  bytes: Buffer,
  opts: { context?: Buffer | undefined; aad?: Buffer | undefined },
): Buffer {
  const aead = AEAD[type]!;
  const fail = () => new StrongroomError('invalid_ciphertext', 'the ciphertext could not be decrypted');
  if (bytes.length < NONCE + TAG) throw fail();
  const nonce = bytes.subarray(0, NONCE);
  const tag = bytes.subarray(bytes.length - TAG);
  try {
    const d = createDecipheriv(aead.cipher as 'aes-256-gcm', derive(v, aead.bytes, opts.context), nonce, {
      authTagLength: TAG,
    });
    if (opts.aad) d.setAAD(opts.aad, { plaintextLength: bytes.length - NONCE - TAG });
    d.setAuthTag(tag);
    return Buffer.concat([d.update(bytes.subarray(NONCE, bytes.length - TAG)), d.final()]);
  } catch {
    throw fail();
  }
}

// --- signatures and HMACs ---

const NODE_HASH: Record<HashAlgorithm, string> = {
  'sha2-224': 'sha224',
  'sha2-256': 'sha256',
  'sha2-384': 'sha384',
  'sha2-512': 'sha512',
  'sha3-224': 'sha3-224',
  'sha3-256': 'sha3-256',
  'sha3-384': 'sha3-384',
  'sha3-512': 'sha3-512',
};
export const nodeHash = (h: HashAlgorithm): string => NODE_HASH[h];

export interface SignOptions {
  hash: HashAlgorithm;
  signatureAlgorithm: 'pss' | 'pkcs1v15';
  marshaling: 'asn1' | 'jws';
  saltLength: string;
}

function rsaOptions(opts: SignOptions, signing: boolean) {
  if (opts.signatureAlgorithm === 'pkcs1v15') return { padding: constants.RSA_PKCS1_PADDING };
  const saltLength =
    opts.saltLength === 'hash'
      ? constants.RSA_PSS_SALTLEN_DIGEST
      : opts.saltLength === 'auto'
        ? signing
          ? constants.RSA_PSS_SALTLEN_MAX_SIGN
          : constants.RSA_PSS_SALTLEN_AUTO
        : Number(opts.saltLength);
  return { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength };
}

function signingParams(type: KeyType, key: KeyObject, opts: SignOptions, signing: boolean) {
  if (type === 'ed25519') return { algorithm: null, key: { key } };
  const algorithm = nodeHash(opts.hash);
  if (type.startsWith('ecdsa-')) {
    return {
      algorithm,
      key: { key, dsaEncoding: opts.marshaling === 'jws' ? ('ieee-p1363' as const) : ('der' as const) },
    };
  }
  return { algorithm, key: { key, ...rsaOptions(opts, signing) } };
}

export function sign(
  type: KeyType,
  version: number,
  v: KeyVersion,
  input: Buffer,
  opts: SignOptions,
): string {
  const p = signingParams(type, privateKey(v.key), opts, true);
  let sig: Buffer;
  try {
    sig = signData(p.algorithm, input, p.key);
  } catch {
    // a salt too long for the key, a hash the key cannot take: the caller's options, not a fault
    throw new StrongroomError(
      'invalid_value',
      'the key cannot sign with these options (salt_length, hash_algorithm)',
    );
  }
  return versioned(version, sig, type.startsWith('ecdsa-') && opts.marshaling === 'jws');
}

export function verify(type: KeyType, v: KeyVersion, input: Buffer, sig: Buffer, opts: SignOptions): boolean {
  const p = signingParams(type, createPublicKey(privateKey(v.key)), opts, false);
  try {
    return verifyData(p.algorithm, input, p.key, sig);
  } catch {
    // a malformed signature (a DER that does not parse) is not a valid one
    return false;
  }
}

export function hmac(version: number, v: KeyVersion, input: Buffer, hash: HashAlgorithm): string {
  return versioned(version, hmacBytes(v, input, hash));
}

const hmacBytes = (v: KeyVersion, input: Buffer, hash: HashAlgorithm) =>
  createHmac(nodeHash(hash), secretKey(v.hmac_key)).update(input).digest();

export function verifyHmac(v: KeyVersion, input: Buffer, mac: Buffer, hash: HashAlgorithm): boolean {
  return constantTimeEqual(hmacBytes(v, input, hash), mac);
}

// --- export, in Vault's formats ---

export function exportKey(
  type: KeyType,
  v: KeyVersion,
  kind: 'encryption-key' | 'signing-key' | 'hmac-key' | 'public-key',
): string {
  if (kind === 'hmac-key') return v.hmac_key;
  if (kind === 'encryption-key') return v.key;
  if (kind === 'public-key') return v.public_key!;
  const priv = privateKey(v.key);
  if (type === 'ed25519') {
    // Vault exports an Ed25519 key as base64 of the 64-byte private key (seed ‖ public key)
    const jwk = priv.export({ format: 'jwk' });
    return Buffer.concat([
      Buffer.from(jwk.d as string, 'base64url'),
      Buffer.from(jwk.x as string, 'base64url'),
    ]).toString('base64');
  }
  return priv.export({ format: 'pem', type: type.startsWith('rsa-') ? 'pkcs1' : 'sec1' }) as string;
}
