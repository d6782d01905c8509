import {
  createPublicKey,
  type JsonWebKey,
  type KeyObject,
  type X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { type CertificateInput, certificateDer, toNodeCertificate } from './certificate.ts';
import { quote, SpiffeError } from './errors.ts';
import { parseTrustDomain } from './id.ts';
import type { JwtAuthority, JwtBundles } from './jwt-svid.ts';
import { publicKeyObject } from './keys.ts';
import type { X509Bundles } from './x509-svid.ts';

/**
 * SPIFFE bundles: a trust domain's authorities as a JWK Set
 * (github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md §4),
 * X.509 CAs as `use: "x509-svid"` keys with `x5c` (X509-SVID.md §6) and JWT
 * signing keys as `use: "jwt-svid"` keys with `kid` (JWT-SVID.md).
 */

/** A JWK as it appears in a bundle. */
export interface BundleJwk {
  readonly kty: string;
  readonly use: 'x509-svid' | 'jwt-svid';
  readonly kid?: string;
  readonly x5c?: readonly string[];
  readonly [param: string]: unknown;
}

/** The JSON document of a SPIFFE bundle (serialize with JSON.stringify). */
export interface SpiffeBundleDocument {
  readonly keys: readonly BundleJwk[];
  readonly spiffe_sequence?: number;
  readonly spiffe_refresh_hint?: number;
}

/** A parsed, validated bundle. */
export interface SpiffeBundle {
  readonly trustDomain: string;
  readonly x509Authorities: readonly NodeX509Certificate[];
  readonly jwtAuthorities: readonly { readonly kid: string; readonly publicKey: KeyObject }[];
  readonly sequence: number | undefined;
  /** seconds */
  readonly refreshHint: number | undefined;
}

/** Larger bundle documents are refused before JSON parsing. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;
/** More keys than this in one bundle is refused. */
export const MAX_BUNDLE_KEYS = 1024;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const KNOWN_KTY = new Set(['EC', 'RSA', 'OKP']);

function publicJwk(key: KeyObject): JsonWebKey {
  const jwk = key.export({ format: 'jwk' });
  for (const m of PRIVATE_MEMBERS) {
    // belt and braces: publicKeyObject() already dropped the private half
    if (m in jwk) throw new Error('refusing to put a private key into a bundle');
  }
  return jwk;
}

function nonNegativeInteger(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0)
    throw new TypeError(`${what} must be a non-negative integer`);
  return v as number;
}

/**
 * Builds the bundle document of a trust domain (§4): one `x509-svid` JWK per
 * CA certificate (the certificate's key, `x5c` = [its base64 DER], no `kid`:
 * X509-SVID.md §6.1) and one `jwt-svid` JWK per JWT authority (with `kid`),
 * plus `spiffe_sequence` (§4.1.1) and `spiffe_refresh_hint` (§4.1.2, seconds).
 * Only public key material is ever written.
 */
export function toSpiffeBundle(options: {
  x509Authorities: readonly CertificateInput[];
  jwtAuthorities: readonly JwtAuthority[];
  sequence?: number;
  refreshHintSeconds?: number;
}): SpiffeBundleDocument {
  const keys: BundleJwk[] = [];
  for (const cert of options.x509Authorities) {
    const node = toNodeCertificate(cert);
    keys.push({
      ...publicJwk(node.publicKey),
      use: 'x509-svid',
      x5c: [certificateDer(node).toString('base64')],
    } as BundleJwk);
  }
  const kids = new Set<string>();
  for (const a of options.jwtAuthorities) {
    if (typeof a.kid !== 'string' || a.kid === '')
      throw new TypeError('toSpiffeBundle: every JWT authority needs a kid');
    if (kids.has(a.kid)) throw new TypeError(`toSpiffeBundle: the kid ${quote(a.kid)} appears twice`);
    kids.add(a.kid);
    keys.push({ ...publicJwk(publicKeyObject(a.publicKey)), use: 'jwt-svid', kid: a.kid } as BundleJwk);
  }
  const doc: { keys: BundleJwk[]; spiffe_sequence?: number; spiffe_refresh_hint?: number } = { keys };
  if (options.sequence !== undefined) doc.spiffe_sequence = nonNegativeInteger(options.sequence, 'sequence');
  if (options.refreshHintSeconds !== undefined) {
    doc.spiffe_refresh_hint = nonNegativeInteger(options.refreshHintSeconds, 'refreshHintSeconds');
  }
  return doc;
}

function bad(td: string, why: string, cause?: unknown): SpiffeError {
  return new SpiffeError(
    'invalid_bundle',
    `the bundle of ${quote(td)} is malformed: ${why}`,
    cause === undefined ? undefined : { cause },
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7517 §4.7: x5c values are standard base64 (not base64url) of DER. */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses and validates the bundle document of `trustDomain` (§4). Accepts the
 * JSON text, its bytes, or an already-parsed object. Rules:
 *
 * - at most 1 MiB and 1024 keys; `keys` must be an array (§4.1.3);
 * - `spiffe_sequence` and `spiffe_refresh_hint`, when present, are
 *   non-negative integers (§4.1.1, §4.1.2);
 * - every key is an object with a string `kty` (§4.2.1) and no private key
 *   member (`d`, `p`, ...); keys with an unknown `kty` or `use` are ignored
 *   (§4.1.3, §4.2.2);
 * - `x509-svid` keys: a missing or empty `x5c` is ignored and only its first
 *   certificate is used (X509-SVID.md §6.2); that certificate must parse and
 *   hold the same public key as the JWK;
 * - `jwt-svid` keys: `kid` is required and unique, the key must import.
 *
 * Throws SpiffeError('invalid_bundle').
 */
export function parseSpiffeBundle(
  input: string | Uint8Array | object,
  trustDomain: string,
  options: { maxBytes?: number } = {},
): SpiffeBundle {
  const td = parseTrustDomain(trustDomain);
  const maxBytes = options.maxBytes ?? MAX_BUNDLE_BYTES;
  let doc: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
    if (size > maxBytes) throw bad(td, `it is larger than ${maxBytes} bytes`);
    try {
      doc = JSON.parse(typeof input === 'string' ? input : Buffer.from(input).toString('utf8'));
    } catch (err) {
      throw bad(td, 'it is not JSON', err);
    }
  }
  if (!isObject(doc)) throw bad(td, 'it is not a JSON object');
  if (!Array.isArray(doc.keys)) throw bad(td, 'the "keys" array is missing (§4.1.3)');
  if (doc.keys.length > MAX_BUNDLE_KEYS) throw bad(td, `it has more than ${MAX_BUNDLE_KEYS} keys`);
  const optionalInt = (name: string): number | undefined => {
    const v = doc[name];
    if (v === undefined) return undefined;
    if (!Number.isSafeInteger(v) || (v as number) < 0)
      throw bad(td, `"${name}" must be a non-negative integer`);
    return v as number;
  };
  const sequence = optionalInt('spiffe_sequence');
  const refreshHint = optionalInt('spiffe_refresh_hint');

  const x509Authorities: NodeX509Certificate[] = [];
  const jwtAuthorities: { kid: string; publicKey: KeyObject }[] = [];
  const kids = new Set<string>();
  doc.keys.forEach((key: unknown, i: number) => {
    const where = `key #${i}`;
    if (!isObject(key)) throw bad(td, `${where} is not an object`);
    if (typeof key.kty !== 'string') throw bad(td, `${where} has no "kty" (§4.2.1)`);
    for (const m of PRIVATE_MEMBERS) {
      if (m in key) throw bad(td, `${where} contains private key material ("${m}")`);
    }
    if (!KNOWN_KTY.has(key.kty)) return; // §4.2.1: unknown key types are ignored
    if (key.use === 'x509-svid') {
      if (key.x5c === undefined) return; // X509-SVID.md §6.2: ignored
      if (!Array.isArray(key.x5c)) throw bad(td, `${where} has an "x5c" that is not an array`);
      if (key.x5c.length === 0) return; // §6.2: ignored
      const first = key.x5c[0];
      if (typeof first !== 'string' || !BASE64.test(first))
        throw bad(td, `${where} has an "x5c" that is not base64`);
      let cert: NodeX509Certificate;
      try {
        cert = toNodeCertificate(Buffer.from(first, 'base64'));
      } catch (err) {
        throw bad(td, `${where} has an "x5c" certificate that does not parse`, err);
      }
      let jwkKey: KeyObject;
      try {
        jwkKey = createPublicKey({ key: stripJwk(key), format: 'jwk' });
      } catch (err) {
        throw bad(td, `${where} has key parameters that do not form a public key`, err);
      }
      // RFC 7517 §4.7: the key in the first x5c certificate MUST match the JWK's
      if (!jwkKey.equals(cert.publicKey))
        throw bad(td, `${where}: the JWK and its x5c certificate hold different keys`);
      x509Authorities.push(cert);
    } else if (key.use === 'jwt-svid') {
      if (typeof key.kid !== 'string' || key.kid === '') throw bad(td, `${where} (jwt-svid) has no "kid"`);
      if (kids.has(key.kid)) throw bad(td, `the kid ${quote(key.kid)} appears twice`);
      kids.add(key.kid);
      let publicKey: KeyObject;
      try {
        publicKey = createPublicKey({ key: stripJwk(key), format: 'jwk' });
      } catch (err) {
        throw bad(td, `${where} (kid ${quote(key.kid)}) does not import as a public key`, err);
      }
      jwtAuthorities.push({ kid: key.kid, publicKey });
    }
    // §4.2.2: any other `use` (or none) is ignored
  });
  return Object.freeze({
    trustDomain: td,
    x509Authorities: Object.freeze(x509Authorities),
    jwtAuthorities: Object.freeze(jwtAuthorities.map((a) => Object.freeze(a))),
    sequence,
    refreshHint,
  });
}

/** The members node:crypto needs to import a public JWK (it rejects unknown ones such as use/x5c on some versions). */
function stripJwk(key: Record<string, unknown>): JsonWebKey {
  const { kty, crv, x, y, n, e } = key;
  const out: Record<string, unknown> = { kty };
  for (const [k, v] of Object.entries({ crv, x, y, n, e })) if (v !== undefined) out[k] = v;
  return out as JsonWebKey;
}

/**
 * Indexes parsed bundles by trust domain for verifyX509Svid and
 * verifyJwtSvid (a federated set: one bundle per trust domain; a second
 * bundle for the same trust domain is a TypeError).
 */
export function bundleMaps(bundles: readonly SpiffeBundle[]): { x509: X509Bundles; jwt: JwtBundles } {
  const x509 = new Map<string, readonly NodeX509Certificate[]>();
  const jwt = new Map<string, readonly JwtAuthority[]>();
  for (const b of bundles) {
    if (x509.has(b.trustDomain)) throw new TypeError(`bundleMaps: two bundles for ${quote(b.trustDomain)}`);
    x509.set(b.trustDomain, b.x509Authorities);
    jwt.set(b.trustDomain, b.jwtAuthorities);
  }
  return { x509, jwt };
}
