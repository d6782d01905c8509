import { createHmac, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';

export function randomKey(bytes = 32): Buffer {
  return randomBytes(bytes);
}

/** Constant-time comparison of two byte strings or strings (length leaks, content does not). */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const x = typeof a === 'string' ? Buffer.from(a) : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.byteLength !== y.byteLength) {
    // still spend the time of a comparison
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** HMAC-SHA256; pass a KeyObject on hot paths (a raw key costs ~13 µs more per call in Node 24). */
export function hmacSha256(key: KeyObject | Uint8Array, data: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** A random identifier (not a secret): 128 bits, base64url. */
export function randomId(): string {
  return randomBytes(16).toString('base64url');
}
