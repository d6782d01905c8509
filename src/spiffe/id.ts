import { quote, SpiffeError } from './errors.ts';

/**
 * SPIFFE IDs, parsed exactly as github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md
 * says (and as go-spiffe's spiffeid package enforces): no normalisation, no
 * percent-decoding, nothing lenient. A string is either already the canonical
 * form of an ID or it is rejected, so two IDs are equal iff their strings are.
 */

/** A parsed SPIFFE ID. `String(id)` and `JSON.stringify(id)` give the canonical URI. */
export interface SpiffeId {
  /** The trust domain name, e.g. `example.org`. */
  readonly trustDomain: string;
  /** The path, `''` for the trust domain's own ID, otherwise `/seg(/seg)*`. */
  readonly path: string;
  /** `spiffe://<trustDomain><path>`. */
  toString(): string;
  toJSON(): string;
}

/** SPIFFE-ID.md §2.3: implementations need not accept IDs longer than 2048 bytes. */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** SPIFFE-ID.md §2.3: the host component (the trust domain) is at most 255 bytes (RFC 3986). */
const MAX_TRUST_DOMAIN_BYTES = 255;

const SCHEME_PREFIX = 'spiffe://';

// SPIFFE-ID.md §2.1: trust domain names contain only lowercase letters, digits, '.', '-' and '_'.
// This alone rules out a port (':'), userinfo ('@'), percent-encoding ('%'), uppercase and IP literals ('[').
function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
}

// SPIFFE-ID.md §2.2: path segments contain only letters, digits, '.', '-' and '_'
// (so no percent-encoding, no '?' query and no '#' fragment can appear).
function isPathChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2e ||
    c === 0x2d ||
    c === 0x5f
  );
}

function invalid(s: string, why: string): SpiffeError {
  return new SpiffeError('invalid_spiffe_id', `${quote(s)} is not a SPIFFE ID: ${why}`);
}

/** Returns why `td` is not a trust domain name, or undefined when it is one. */
function trustDomainProblem(td: string): string | undefined {
  if (td.length === 0) return 'the trust domain is missing';
  if (td.length > MAX_TRUST_DOMAIN_BYTES)
    return `the trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  for (let i = 0; i < td.length; i++) {
    const c = td.charCodeAt(i);
    if (isTrustDomainChar(c)) continue;
    if (c === 0x3a) return 'a port (or any ":") is not allowed in the trust domain';
    if (c === 0x40) return 'userinfo ("@") is not allowed in the trust domain';
    if (c === 0x25) return 'percent-encoding is not allowed in the trust domain';
    if (c >= 0x41 && c <= 0x5a) return 'the trust domain must be lowercase';
    return `the trust domain contains the character ${quote(td[i])}; only a-z, 0-9, ".", "-" and "_" are allowed`;
  }
  return undefined;
}

/** Returns why `path` (non-empty, after the trust domain) is not a SPIFFE ID path, or undefined. */
function pathProblem(path: string): string | undefined {
  if (path.charCodeAt(0) !== 0x2f) return 'the trust domain must be followed by "/" or nothing';
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      const seg = path.slice(segStart, i);
      if (seg.length === 0) {
        return i === path.length
          ? 'a trailing "/" is not allowed'
          : 'empty path segments ("//") are not allowed';
      }
      if (seg === '.' || seg === '..') return 'dot segments ("." and "..") are not allowed';
      segStart = i + 1;
      continue;
    }
    if (isPathChar(c)) continue;
    if (c === 0x3f) return 'a query ("?") is not allowed';
    if (c === 0x23) return 'a fragment ("#") is not allowed';
    if (c === 0x25) return 'percent-encoding is not allowed in the path';
    return `the path contains the character ${quote(path[i])}; only A-Z, a-z, 0-9, ".", "-" and "_" are allowed`;
  }
  return undefined;
}

function makeId(trustDomain: string, path: string): SpiffeId {
  const uri = `${SCHEME_PREFIX}${trustDomain}${path}`;
  return Object.freeze({
    trustDomain,
    path,
    toString: () => uri,
    toJSON: () => uri,
  });
}

/**
 * Parses a SPIFFE ID (SPIFFE-ID.md §2): scheme exactly `spiffe` (lowercase),
 * a non-empty trust domain of `[a-z0-9._-]` with no userinfo or port, an
 * optional path of `/`-separated non-empty segments of `[A-Za-z0-9._-]` that
 * are not `.` or `..`, no trailing `/`, no query, no fragment, at most 2048
 * bytes. Throws SpiffeError('invalid_spiffe_id') saying which rule failed.
 */
export function parseSpiffeId(s: string): SpiffeId {
  if (typeof s !== 'string') throw new SpiffeError('invalid_spiffe_id', 'a SPIFFE ID must be a string');
  // Every allowed character is ASCII, so length in UTF-16 units >= length in bytes
  // for valid IDs; a non-ASCII string is rejected below anyway.
  if (s.length > MAX_SPIFFE_ID_BYTES || Buffer.byteLength(s) > MAX_SPIFFE_ID_BYTES) {
    throw invalid(s, `it is longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  }
  if (!s.startsWith(SCHEME_PREFIX)) {
    if (s.toLowerCase().startsWith(SCHEME_PREFIX)) throw invalid(s, 'the scheme must be lowercase "spiffe"');
    throw invalid(s, 'the scheme must be "spiffe://"');
  }
  const rest = s.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const td = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdWhy = trustDomainProblem(td);
  if (tdWhy) throw invalid(s, tdWhy);
  if (path.length > 0) {
    const pathWhy = pathProblem(path);
    if (pathWhy) throw invalid(s, pathWhy);
  }
  return makeId(td, path);
}

/** True when `s` is a SPIFFE ID (see parseSpiffeId); never throws. */
export function isSpiffeId(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  try {
    parseSpiffeId(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses a trust domain name (SPIFFE-ID.md §2.1). Accepts a bare name
 * (`example.org`) or a SPIFFE ID (`spiffe://example.org[/path]`), as go-spiffe's
 * TrustDomainFromString does, and returns the bare name. Throws
 * SpiffeError('invalid_trust_domain').
 */
export function parseTrustDomain(s: string): string {
  if (typeof s !== 'string') throw new SpiffeError('invalid_trust_domain', 'a trust domain must be a string');
  if (s.includes(':/')) {
    try {
      return parseSpiffeId(s).trustDomain;
    } catch (err) {
      throw new SpiffeError('invalid_trust_domain', (err as Error).message, { cause: err });
    }
  }
  const why = trustDomainProblem(s);
  if (why) throw new SpiffeError('invalid_trust_domain', `${quote(s)} is not a trust domain name: ${why}`);
  return s;
}

/**
 * The SPIFFE ID of a trust domain itself (`spiffe://td`, no path): the ID a
 * signing certificate carries (X509-SVID.md §3.2).
 */
export function trustDomainId(trustDomain: string): SpiffeId {
  return makeId(parseTrustDomain(trustDomain), '');
}

/**
 * True when `id` belongs to `trustDomain` (a bare name or `spiffe://` form).
 * Invalid input on either side is simply not a member; this never throws.
 */
export function isMemberOf(id: SpiffeId | string, trustDomain: string): boolean {
  try {
    const parsed = typeof id === 'string' ? parseSpiffeId(id) : parseSpiffeId(id.toString());
    return parsed.trustDomain === parseTrustDomain(trustDomain);
  } catch {
    return false;
  }
}
