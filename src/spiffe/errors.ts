/**
 * The error type of the SPIFFE layer. `code` comes from a closed set so callers
 * (the CA engine, the mTLS library, the server) can map it to their own errors
 * without parsing messages. Messages say what is wrong with the input and never
 * contain key material; attacker-supplied strings in them are quoted and
 * truncated.
 */
export const SPIFFE_ERROR_CODES = [
  /** A string is not a SPIFFE ID (SPIFFE-ID.md §2). */
  'invalid_spiffe_id',
  /** A string is not a trust domain name (SPIFFE-ID.md §2.1). */
  'invalid_trust_domain',
  /** Bytes that should be an X.509 certificate do not parse. */
  'invalid_certificate',
  /** A certificate parses but is not a valid leaf X.509-SVID (X509-SVID.md §5.2). */
  'invalid_svid',
  /** No path to a trusted authority of the SPIFFE ID's trust domain. */
  'untrusted',
  /** A certificate or token is past its expiry. */
  'expired',
  /** A certificate or token is not valid yet. */
  'not_yet_valid',
  /** A PKCS#10 CSR is malformed, badly signed or asks for something we never issue. */
  'invalid_csr',
  /** A SPIFFE ID belongs to a trust domain other than the one expected. */
  'wrong_trust_domain',
  /** The caller's policy (`allowed`) refused the SPIFFE ID. */
  'not_allowed',
  /** A JWT is malformed, badly signed, or breaks a JWT-SVID rule. */
  'invalid_jwt',
  /** The JOSE `alg` is not one of the asymmetric algorithms JWT-SVID allows (JWT-SVID.md §2.1). */
  'unsupported_algorithm',
  /** The token's `aud` does not contain the audience the verifier identifies with. */
  'wrong_audience',
  /** The token's `kid` is not in the bundle of its trust domain. */
  'unknown_key',
  /** A SPIFFE bundle document is malformed (SPIFFE_Trust_Domain_and_Bundle.md §4). */
  'invalid_bundle',
  /** A key is of an unsupported type or does not parse. */
  'invalid_key',
] as const;

export type SpiffeErrorCode = (typeof SPIFFE_ERROR_CODES)[number];

export class SpiffeError extends Error {
  readonly code: SpiffeErrorCode;

  constructor(code: SpiffeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SpiffeError';
    this.code = code;
  }
}

/** True when `err` is a SpiffeError (with the given code, if one is passed). */
export function isSpiffeError(err: unknown, code?: SpiffeErrorCode): err is SpiffeError {
  return err instanceof SpiffeError && (code === undefined || err.code === code);
}

/** An attacker-supplied string made safe to put in a message: JSON-quoted, at most `max` characters. */
export function quote(s: unknown, max = 80): string {
  const text = typeof s === 'string' ? s : String(s);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
