import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';

/** AES-256-GCM with a random 96-bit nonce (NIST SP 800-38D §8.2.2). */
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export function importAesKey(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== KEY_BYTES) throw new TypeError(`AES-256 key must be ${KEY_BYTES} bytes`);
  return createSecretKey(raw);
}

/**
 * Nonces come from a pool of CSPRNG bytes refilled 256 nonces at a time: one
 * `randomBytes` call costs about as much as the whole AES-GCM of a small
 * record, and a barrier write seals three records (the value, its index bucket
 * and the index root). Each nonce is used once (the offset only moves forward);
 * the pool is as random as the bytes it holds, which is what NIST SP 800-38D
 * §8.2.2 asks of a random nonce.
 */
const POOL_NONCES = 256;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;

function nextNonce(): Buffer {
  if (nonceOffset + NONCE_BYTES > noncePool.byteLength) {
    noncePool = randomBytes(NONCE_BYTES * POOL_NONCES);
    nonceOffset = 0;
  }
  const nonce = noncePool.subarray(nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}

/** Returns nonce || ciphertext || tag. */
export function seal(key: KeyObject, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = nextNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([nonce, head, tail, cipher.getAuthTag()]);
}

/** Opens nonce || ciphertext || tag; returns undefined when authentication fails (never partial data). */
export function open(key: KeyObject, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.byteLength < NONCE_BYTES + TAG_BYTES) return undefined;
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const nonce = buf.subarray(0, NONCE_BYTES);
  const tag = buf.subarray(buf.byteLength - TAG_BYTES);
  const body = buf.subarray(NONCE_BYTES, buf.byteLength - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const head = decipher.update(body);
    const tail = decipher.final();
    return tail.byteLength === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    return undefined;
  }
}
