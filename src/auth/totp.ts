import { randomBytes } from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';

/**
 * TOTP (RFC 6238) with the parameters every authenticator app understands:
 * HMAC-SHA-1, 30-second steps, 6 digits, and one step of tolerance either
 * side for clock drift (RFC 6238 §5.2 recommends at most one). A code is
 * accepted only for a time step later than the last one accepted for the same
 * user, so a code cannot be replayed (RFC 6238 §5.2: "the verifier MUST NOT
 * accept the second attempt of the OTP after the successful validation").
 */
export const TOTP_PERIOD = 30;
export const TOTP_DIGITS = 6;
const TOTP_ISSUER = 'Strongroom';

/** A new shared secret: 160 random bits (RFC 4226 §4 recommends 160), base32. */
export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

/** The `otpauth://` URI an authenticator app scans (as a QR code) or imports. */
export function totpUri(secret: string, account: string): string {
  return generateURI({
    issuer: TOTP_ISSUER,
    label: account,
    secret,
    algorithm: 'sha1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD,
  });
}

/**
 * The time step the code belongs to when it is valid at `nowMs` (± one step)
 * and later than `afterStep`; otherwise undefined.
 */
export async function verifyTotp(
  secret: string,
  code: string,
  nowMs: number,
  afterStep?: number,
): Promise<number | undefined> {
  if (!/^[0-9]{6}$/.test(code)) return undefined;
  try {
    const r = await verify({
      secret,
      token: code,
      epoch: Math.floor(nowMs / 1000),
      epochTolerance: TOTP_PERIOD,
      period: TOTP_PERIOD,
      digits: TOTP_DIGITS,
      algorithm: 'sha1',
      ...(afterStep === undefined ? {} : { afterTimeStep: afterStep }),
    });
    return r.valid && 'timeStep' in r ? r.timeStep : undefined;
  } catch {
    return undefined;
  }
}

// Crockford-style base32 without the look-alikes i, l, o, u
const RECOVERY_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
export const RECOVERY_CODES = 10;

/** One recovery code: 16 characters (80 random bits) in groups of four, e.g. `7kx2-m9qa-...`. */
export function newRecoveryCode(): string {
  const bytes = randomBytes(16);
  let out = '';
  for (let i = 0; i < 16; i++) {
    out += RECOVERY_ALPHABET[bytes[i]! & 31];
    if (i % 4 === 3 && i < 15) out += '-';
  }
  return out;
}

/** The canonical form of a typed recovery code (case, dashes and spaces ignored). */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}
