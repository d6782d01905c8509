import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Password hashing with argon2id (RFC 9106) through Node's built-in
 * `crypto.argon2`, which runs on the libuv thread pool and so does not block
 * the event loop.
 *
 * Parameters follow the OWASP Password Storage Cheat Sheet's first argon2id
 * option: m = 19 MiB, t = 2, p = 1 (≈ 40 ms per hash on the 2-core machines
 * this project is measured on). The parameters are stored with every hash, so
 * they can be raised later without breaking existing hashes; a login with
 * outdated parameters rehashes (see `needsRehash`).
 */
export interface PasswordHash {
  alg: 'argon2id';
  /** Argon2 version (0x13 = 19, the only one Node implements). */
  v: 19;
  /** Memory in KiB. */
  m: number;
  /** Passes (iterations). */
  t: number;
  /** Parallelism (lanes). */
  p: number;
  /** base64 */
  salt: string;
  /** base64 */
  hash: string;
}

export const ARGON2_PARAMS = Object.freeze({ m: 19_456, t: 2, p: 1 });
const SALT_BYTES = 16;
const TAG_BYTES = 32;

const PASSWORD_MIN_CHARS = 12;
const PASSWORD_MAX_CHARS = 1024;

/**
 * The form a password is hashed in: Unicode NFKC, so the same password typed
 * on two keyboards (composed or decomposed accents, fullwidth forms) matches
 * (NIST SP 800-63B §5.1.1.2). Nothing is trimmed: spaces are part of it.
 */
function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Why a new password is refused, or undefined when it is acceptable. */
export function passwordProblem(password: string, username?: string): string | undefined {
  const p = normalizePassword(password);
  const chars = [...p].length;
  if (chars < PASSWORD_MIN_CHARS)
    return `the password is too short: use at least ${PASSWORD_MIN_CHARS} characters (a passphrase of a few words is easiest)`;
  if (chars > PASSWORD_MAX_CHARS) return `the password is too long: at most ${PASSWORD_MAX_CHARS} characters`;
  if (username !== undefined && p.toLowerCase().includes(username.toLowerCase()) && username.length >= 4)
    return 'the password must not contain the username';
  return undefined;
}

function derive(
  password: string,
  salt: Buffer,
  params: { m: number; t: number; p: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    argon2(
      'argon2id',
      {
        message: normalizePassword(password),
        nonce: salt,
        parallelism: params.p,
        tagLength: TAG_BYTES,
        memory: params.m,
        passes: params.t,
      },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, ARGON2_PARAMS);
  return {
    alg: 'argon2id',
    v: 19,
    ...ARGON2_PARAMS,
    salt: salt.toString('base64'),
    hash: hash.toString('base64'),
  };
}

/** Whether `password` matches `stored`; the comparison is constant-time. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, 'base64');
  const actual = await derive(password, Buffer.from(stored.salt, 'base64'), stored);
  return actual.byteLength === expected.byteLength && timingSafeEqual(actual, expected);
}

/** True when `stored` was made with other parameters than today's. */
export function needsRehash(stored: PasswordHash): boolean {
  return stored.m !== ARGON2_PARAMS.m || stored.t !== ARGON2_PARAMS.t || stored.p !== ARGON2_PARAMS.p;
}

let dummy: Promise<PasswordHash> | undefined;

/**
 * A hash of a random password with today's parameters, verified against when
 * the user does not exist, so an unknown user costs the same argon2 run as a
 * wrong password and the two cannot be told apart by timing.
 */
export function dummyHash(): Promise<PasswordHash> {
  dummy ??= hashPassword(randomBytes(32).toString('base64url'));
  return dummy;
}
