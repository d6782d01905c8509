import { KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify, SignJWT } from 'jose';
import { quote, SpiffeError } from './errors.ts';
import { parseSpiffeId, type SpiffeId } from './id.ts';
import { type AnyKey, toKeyObject } from './keys.ts';

/**
 * JWT-SVIDs (github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md):
 * signing and verification with jose. The verifier decides everything it can
 * before touching a key (algorithm, headers, subject, trust domain, kid), so
 * a token can never choose how it is checked. Nothing is cached here.
 */

/** JWT-SVID.md §2.1: RFC 7518 §3.3-§3.5 signature algorithms, all asymmetric. Anything else (none, HS*) is rejected. */
export const JWT_SVID_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
] as const;
export type JwtSvidAlgorithm = (typeof JWT_SVID_ALGORITHMS)[number];

/** JWT-SVID.md §2: "Any header not described here, registered or private, MUST NOT be included". */
const ALLOWED_HEADERS = new Set(['alg', 'kid', 'typ']);
/** Longer tokens are refused before decoding. */
const MAX_JWT_BYTES = 16 * 1024;
/** Default and largest accepted clock skew for exp/nbf (JWT-SVID.md Appendix A: "a small amount of leeway"). */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;
const MAX_CLOCK_SKEW_SECONDS = 30;

/** A JWT signing authority of a trust domain, as carried in its bundle (`use: "jwt-svid"`). */
export interface JwtAuthority {
  readonly kid: string;
  readonly publicKey: AnyKey;
}

/** JWT authorities by trust domain name. */
export type JwtBundles = ReadonlyMap<string, readonly JwtAuthority[]>;

function toSeconds(t: Date | number): number {
  const ms = typeof t === 'number' ? t : t instanceof Date ? t.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new TypeError('a time must be a finite number of ms or a valid Date');
  return Math.floor(ms / 1000);
}

function isAbsoluteHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.host !== '';
  } catch {
    return false;
  }
}

function algorithmFor(key: KeyObject): JwtSvidAlgorithm {
  if (key.asymmetricKeyType === 'ec') {
    switch (key.asymmetricKeyDetails?.namedCurve) {
      case 'prime256v1':
        return 'ES256';
      case 'secp384r1':
        return 'ES384';
      case 'secp521r1':
        return 'ES512';
    }
  }
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'rsa-pss') return 'PS256';
  throw new SpiffeError('invalid_key', 'JWT-SVIDs are signed with an EC (P-256/384/521) or RSA key');
}

/**
 * Signs a JWT-SVID (JWT-SVID.md §2-§3): protected header {alg, kid, typ:"JWT"}
 * with alg from the key (ES256 for P-256), claims sub (the SPIFFE ID, which
 * must name a workload: a path, §3.1), aud (a non-empty array), iat = now,
 * exp = now + ttl, and iss when `issuer` is given (the URL an OIDC verifier
 * discovers the keys from; §3 allows further claims). Returns the compact
 * serialization (§5.1).
 */
export async function signJwtSvid(options: {
  key: { privateKey: AnyKey; kid: string };
  spiffeId: SpiffeId | string;
  audience: readonly string[];
  ttlSeconds: number;
  now: Date | number;
  /** An absolute https:// or http:// URL, set as `iss`. */
  issuer?: string;
}): Promise<string> {
  const { key, audience, ttlSeconds } = options;
  if (typeof key.kid !== 'string' || key.kid.length === 0)
    throw new TypeError('signJwtSvid: key.kid is required');
  if (
    !Array.isArray(audience) ||
    audience.length === 0 ||
    audience.some((a) => typeof a !== 'string' || a === '')
  ) {
    throw new TypeError(
      'signJwtSvid: audience must be a non-empty array of non-empty strings (JWT-SVID.md §3.2)',
    );
  }
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError('signJwtSvid: ttlSeconds must be a positive integer');
  }
  const id = parseSpiffeId(options.spiffeId.toString());
  if (id.path === '') {
    throw new SpiffeError(
      'invalid_spiffe_id',
      `${quote(id.toString())} is a trust domain; a JWT-SVID names a workload (JWT-SVID.md §3.1)`,
    );
  }
  if (options.issuer !== undefined && !isAbsoluteHttpUrl(options.issuer)) {
    throw new TypeError('signJwtSvid: issuer must be an absolute http(s) URL');
  }
  const privateKey = toKeyObject(key.privateKey);
  if (privateKey.type !== 'private') throw new TypeError('signJwtSvid: key.privateKey must be a private key');
  const iat = toSeconds(options.now);
  return new SignJWT(options.issuer === undefined ? {} : { iss: options.issuer })
    .setProtectedHeader({ alg: algorithmFor(privateKey), kid: key.kid, typ: 'JWT' })
    .setSubject(id.toString())
    .setAudience([...audience])
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds)
    .sign(privateKey);
}

/** What a verified JWT-SVID proves. */
export interface VerifiedJwtSvid {
  readonly spiffeId: SpiffeId;
  readonly trustDomain: string;
  readonly audience: readonly string[];
  readonly expiresAt: Date;
  readonly kid: string;
  /** All claims, for callers that use more (JWT-SVID.md §3 allows extra claims). */
  readonly claims: Readonly<JWTPayload>;
}

function invalid(why: string, cause?: unknown): SpiffeError {
  return new SpiffeError('invalid_jwt', why, cause === undefined ? undefined : { cause });
}

/**
 * Verifies a JWT-SVID per JWT-SVID.md (Appendix A and §2-§4):
 *
 * 1. compact JWS only (§5.1), at most 16 KiB;
 * 2. `alg` one of RS/ES/PS 256/384/512 (§2.1) — `none` and HS* never reach a key;
 * 3. only the `alg`, `kid` and `typ` headers (§2), so `jku`, `x5u`, `jwk`,
 *    `x5c`, `crit` and friends are refused; `typ`, if set, is JWT or JOSE (§2.3);
 * 4. `kid` present and found among the JWT authorities of the trust domain of
 *    `sub`, which must be the SPIFFE ID of a workload (§3.1: "the SPIFFE ID of
 *    the workload"), so a trust domain ID with no path is refused;
 * 5. the signature, then `exp` required and not past (§3.3), `nbf` if present,
 *    with `clockSkewSeconds` leeway (default and at most 30);
 * 6. `aud` present and containing `audience` (or one of them) (§3.2).
 *
 * Throws SpiffeError: invalid_jwt, unsupported_algorithm, invalid_spiffe_id,
 * untrusted (no bundle for the trust domain), unknown_key, expired,
 * not_yet_valid, wrong_audience.
 */
export async function verifyJwtSvid(
  token: string,
  options: {
    audience: string | readonly string[];
    bundles: JwtBundles;
    now: Date | number;
    clockSkewSeconds?: number;
  },
): Promise<VerifiedJwtSvid> {
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!Number.isFinite(skew) || skew < 0 || skew > MAX_CLOCK_SKEW_SECONDS) {
    throw new TypeError(`verifyJwtSvid: clockSkewSeconds must be between 0 and ${MAX_CLOCK_SKEW_SECONDS}`);
  }
  const expected = typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  if (expected.length === 0 || expected.some((a) => typeof a !== 'string' || a === '')) {
    throw new TypeError('verifyJwtSvid: audience must be a non-empty string or list of them');
  }
  const now = toSeconds(options.now);

  if (typeof token !== 'string' || token.length === 0) throw invalid('the token is empty');
  if (token.length > MAX_JWT_BYTES) throw invalid(`the token is longer than ${MAX_JWT_BYTES} bytes`);
  if (token.split('.').length !== 3) throw invalid('the token is not a compact JWS (JWT-SVID.md §5.1)');

  let header: Record<string, unknown>;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
    payload = decodeJwt(token);
  } catch (err) {
    throw invalid('the token does not decode as a JWT', err);
  }

  const alg = header.alg;
  if (typeof alg !== 'string' || !(JWT_SVID_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new SpiffeError(
      'unsupported_algorithm',
      `the token's alg ${quote(String(alg))} is not allowed; JWT-SVIDs use ${JWT_SVID_ALGORITHMS.join(', ')}`,
    );
  }
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADERS.has(name)) {
      throw invalid(
        `the token has a ${quote(name)} header; a JWT-SVID header may only hold alg, kid and typ`,
      );
    }
  }
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    throw invalid(`the token's typ ${quote(String(header.typ))} is neither JWT nor JOSE`);
  }
  const kid = header.kid;
  if (typeof kid !== 'string' || kid.length === 0) throw invalid('the token has no kid header');

  if (typeof payload.sub !== 'string') throw invalid('the token has no sub claim');
  const id = parseSpiffeId(payload.sub);
  if (id.path === '') {
    throw new SpiffeError(
      'invalid_spiffe_id',
      `the token's sub ${quote(payload.sub)} is a trust domain; a JWT-SVID names a workload (JWT-SVID.md §3.1)`,
    );
  }
  const authorities = options.bundles.get(id.trustDomain);
  if (!authorities || authorities.length === 0) {
    throw new SpiffeError(
      'untrusted',
      `there is no JWT bundle for the trust domain ${quote(id.trustDomain)}`,
    );
  }
  const authority = authorities.find((a) => a.kid === kid);
  if (!authority) {
    throw new SpiffeError(
      'unknown_key',
      `the key ${quote(kid)} is not an authority of the trust domain ${quote(id.trustDomain)}`,
    );
  }

  let verified: JWTPayload;
  try {
    const key =
      authority.publicKey instanceof KeyObject ? authority.publicKey : toKeyObject(authority.publicKey);
    ({ payload: verified } = await jwtVerify(token, key, {
      algorithms: [alg],
      currentDate: new Date(now * 1000),
      clockTolerance: skew,
      requiredClaims: ['exp', 'sub', 'aud'],
      audience: expected,
    }));
  } catch (err) {
    throw mapJoseError(err);
  }
  const aud = typeof verified.aud === 'string' ? [verified.aud] : (verified.aud ?? []);
  return Object.freeze({
    spiffeId: id,
    trustDomain: id.trustDomain,
    audience: Object.freeze([...aud]),
    expiresAt: new Date(verified.exp! * 1000),
    kid,
    claims: Object.freeze(verified),
  });
}

function mapJoseError(err: unknown): SpiffeError {
  if (err instanceof errors.JWTExpired)
    return new SpiffeError('expired', 'the token has expired', { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') {
      return err.reason === 'missing'
        ? invalid('the token has no aud claim (JWT-SVID.md §3.2)', err)
        : new SpiffeError('wrong_audience', 'the token is not meant for this audience', { cause: err });
    }
    if (err.claim === 'exp' && err.reason === 'missing')
      return invalid('the token has no exp claim (JWT-SVID.md §3.3)', err);
    if (err.claim === 'nbf' && err.reason === 'check_failed') {
      return new SpiffeError('not_yet_valid', 'the token is not valid yet (nbf)', { cause: err });
    }
    return invalid(`the token's ${quote(err.claim)} claim is invalid`, err);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return invalid('the token signature does not verify', err);
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new SpiffeError('unsupported_algorithm', 'the token algorithm is not allowed', { cause: err });
  }
  // jose throws TypeError/JOSENotSupported when the key cannot be used with the token's alg (e.g. ES256 with a P-384 key)
  return invalid('the token cannot be verified with the key named by its kid', err);
}
