import { combine as shamirCombine, split as shamirSplit } from 'shamir-secret-sharing';

/** Shamir's secret sharing over GF(2^8) (the audited `shamir-secret-sharing` package). */
const MAX_SHARES = 255;

export async function splitSecret(secret: Uint8Array, shares: number, threshold: number): Promise<Buffer[]> {
  if (!Number.isInteger(shares) || !Number.isInteger(threshold))
    throw new TypeError('shares and threshold must be integers');
  if (threshold < 1 || shares < threshold || shares > MAX_SHARES)
    throw new TypeError('need 1 <= threshold <= shares <= 255');
  if (shares === 1) {
    // the library requires at least two shares; one share is the secret itself plus a marker byte
    return [Buffer.concat([secret, Buffer.from([0])])];
  }
  // the library accepts plain Uint8Arrays only (not Buffers)
  return (await shamirSplit(Uint8Array.from(secret), shares, threshold)).map((s) => Buffer.from(s));
}

export async function combineShares(shares: Uint8Array[]): Promise<Buffer> {
  if (shares.length === 1) {
    const s = shares[0]!;
    return Buffer.from(s.subarray(0, s.byteLength - 1));
  }
  return Buffer.from(await shamirCombine(shares.map((s) => Uint8Array.from(s))));
}
