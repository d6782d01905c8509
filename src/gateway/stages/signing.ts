import { createHash, hash, KeyObject, sign, X509Certificate } from 'node:crypto';
import { compactVerify } from 'jose';
import { isSpiffeError, verifyX509Svid, type X509Bundles } from '../../spiffe/index.ts';
import { type ProvenanceLink, StageRefusal } from '../types.ts';

/**
 * Stage provenance (issue 7, item 7): each stage signs what it passes on with
 * the key of its X.509-SVID, as a compact JWS with a detached payload
 * (RFC 7515 Appendix F) over
 *
 *   {"body_sha256","stage","spiffe_id","trace_id","prev","iat"}
 *
 * where `prev` is the previous link's JWS (or null), so each signature also
 * covers the whole chain before it. The protected header is
 * `{alg: "ES256", typ: "strongroom-provenance+jws", x5c: [leaf, ...], iat}`:
 * `iat` is replicated in the header (as RFC 7519 §5.3 does for claims) because
 * the verifier rebuilds the payload from what it holds (the body, the trace
 * id, the previous link) and needs the time the signer put in it.
 * A link that also vouches for the request it answers (the gateway's one link
 * per call when no remote stage runs, decision 0017) carries that request's
 * SHA-256 as the protected header member `req`, signed with the rest.
 * See docs/stages.md.
 */

const PROVENANCE_TYP = 'strongroom-provenance+jws';
export const PROVENANCE_HEADER = 'x-strongroom-provenance';
/** Largest accepted JWS (a leaf and an intermediate in x5c fit in 4 KiB). */
const MAX_JWS_BYTES = 16 * 1024;
/** Largest accepted `x-strongroom-provenance` value. */
const MAX_PROVENANCE_HEADER_BYTES = 64 * 1024;
/** Most links in a chain. */
export const MAX_LINKS = 16;
const MAX_X5C = 8;
const CLOCK_SKEW_SECONDS = 30;

/** A provenance check failed: code `provenance_invalid`; `reason` is for logs and audit. */
export class ProvenanceError extends StageRefusal {
  readonly reason: string;
  constructor(stage: string, reason: string, message: string) {
    super(stage, 'provenance_invalid', message);
    this.name = 'ProvenanceError';
    this.reason = reason;
  }
}

/** What a stage signs with: its SVID's private key and chain (leaf first). */
export interface StageKey {
  privateKey: KeyObject;
  chain: readonly (X509Certificate | Uint8Array | string)[];
}

type Body = Buffer | Uint8Array | string;

// the one-shot hash (no Hash object) for the common bodies; a Uint8Array view is hashed as its bytes
const sha256 = (body: Body) =>
  typeof body === 'string' || Buffer.isBuffer(body)
    ? hash('sha256', body, 'base64url')
    : createHash('sha256').update(body).digest('base64url');
const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** The payload both sides build, member order fixed so the bytes are the same. */
function payloadOf(p: {
  bodySha256: string;
  stage: string;
  spiffeId: string;
  traceId: string;
  prev: string | null;
  iat: number;
}): string {
  return JSON.stringify({
    body_sha256: p.bodySha256,
    stage: p.stage,
    spiffe_id: p.spiffeId,
    trace_id: p.traceId,
    prev: p.prev,
    iat: p.iat,
  });
}

/** The `x5c` member for a chain, computed once per chain (the chain changes only on rotation). */
const X5C = new WeakMap<object, string[]>();
function x5cOf(chain: StageKey['chain']): string[] {
  let v = X5C.get(chain);
  if (!v) {
    v = chain.map((c) => derOf(c).toString('base64'));
    X5C.set(chain, v);
  }
  return v;
}

function derOf(c: X509Certificate | Uint8Array | string): Buffer {
  if (c instanceof X509Certificate) return c.raw;
  if (typeof c === 'string') return new X509Certificate(c).raw;
  return Buffer.from(c);
}

/** The protected header (base64url) of the last signature made with a chain, per second (`iat` is in it). */
const HEADERS = new WeakMap<object, { iat: number; header: string }>();
function headerOf(chain: StageKey['chain'], iat: number, req: string | undefined): string {
  if (req !== undefined) {
    return b64url(JSON.stringify({ alg: 'ES256', typ: PROVENANCE_TYP, x5c: x5cOf(chain), iat, req }));
  }
  const hit = HEADERS.get(chain);
  if (hit?.iat === iat) return hit.header;
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: PROVENANCE_TYP, x5c: x5cOf(chain), iat }));
  HEADERS.set(chain, { iat, header });
  return header;
}

/** Whether a key is a P-256 private key (the fast path below); asked once per key. */
const P256 = new WeakMap<KeyObject, boolean>();
function isP256(key: KeyObject): boolean {
  let v = P256.get(key);
  if (v === undefined) {
    v =
      key.type === 'private' &&
      key.asymmetricKeyType === 'ec' &&
      key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
    P256.set(key, v);
  }
  return v;
}

/**
 * An ECDSA P-256 signature over `data` in the JWS encoding (r || s, 32 bytes each; RFC 7518 §3.4).
 * Signing with the KeyObject itself and converting the DER signature here is about twice as fast as
 * asking node:crypto for `ieee-p1363` (an options object sends the key through a slow path); any
 * other key, or an unexpected DER, takes node's own conversion.
 */
function es256(data: Buffer, key: KeyObject): Buffer {
  if (key instanceof KeyObject && isP256(key)) {
    const der = sign('sha256', data, key);
    const raw = derToJose(der);
    if (raw) return raw;
  }
  return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
}

/** SEQUENCE { INTEGER r, INTEGER s } -> r || s (32 bytes each); undefined when it is not that shape. */
function derToJose(der: Buffer): Buffer | undefined {
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) return undefined;
  const out = Buffer.alloc(64);
  let at = 2;
  for (let k = 0; k < 2; k++) {
    if (der[at] !== 0x02) return undefined;
    const len = der[at + 1]!;
    let start = at + 2;
    const end = start + len;
    if (len === 0 || end > der.length) return undefined;
    // DER integers are positive here: a leading 0 byte only when the top bit is set
    while (start < end - 1 && der[start] === 0) start++;
    if (end - start > 32) return undefined;
    der.copy(out, k * 32 + 32 - (end - start), start, end);
    at = end;
  }
  return at === der.length ? out : undefined;
}

/** Signs one stage's output; returns its link (the JWS with the payload segment left empty). */
export async function signStage(options: {
  body: Body;
  stage: string;
  spiffeId: string;
  traceId: string;
  prev?: string | null;
  key: StageKey;
  /** The request this link also vouches for: its SHA-256 goes in the protected header (`req`). */
  request?: Body | undefined;
  /** ms since the epoch (default Date.now()). */
  now?: number;
}): Promise<ProvenanceLink> {
  const { stage, spiffeId, traceId, key } = options;
  if (!stage || !spiffeId || !traceId)
    throw new TypeError('signStage: stage, spiffeId and traceId are required');
  if (!key?.privateKey || !key.chain?.length)
    throw new TypeError('signStage: key.privateKey and key.chain are required');
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  const payload = payloadOf({
    bodySha256: sha256(options.body),
    stage,
    spiffeId,
    traceId,
    prev: options.prev ?? null,
    iat,
  });
  // RFC 7515 §5.1 done directly with node:crypto (ECDSA P-256, the JWS r||s encoding, RFC 7518 §3.4):
  // several times cheaper than going through WebCrypto, and it is on every gateway call
  const header = headerOf(
    key.chain,
    iat,
    options.request === undefined ? undefined : sha256(options.request),
  );
  const signingInput = `${header}.${b64url(payload)}`;
  const sig = es256(Buffer.from(signingInput), key.privateKey);
  return { stage, spiffe_id: spiffeId, jws: `${header}..${sig.toString('base64url')}` };
}

export interface VerifyStageOptions {
  /** The body the link's stage passed on. */
  body: Body;
  traceId: string;
  /** The previous link's JWS (null or absent for the first link). */
  prev?: string | null;
  bundles: X509Bundles;
  /** Which signers are acceptable (given the verified SPIFFE ID and the stage name). */
  expectSpiffeId?: (spiffeId: string, stage: string) => boolean;
  /** ms since the epoch. */
  now: number;
  /** Refuse links older than this (seconds); default: no limit beyond the SVID's validity. */
  maxAgeSeconds?: number;
  /** The request the link must vouch for (its `req` member); without it a `req` is returned unchecked. */
  request?: Body | undefined;
}

/** What a verified link proves. */
export interface VerifiedLink {
  stage: string;
  spiffeId: string;
  iat: number;
  /** The SHA-256 (base64url) of the request the link vouches for, when it carries one (`req`). */
  requestSha256?: string;
}

function decodeHeader(segment: string): Record<string, unknown> {
  const json = Buffer.from(segment, 'base64url').toString('utf8');
  const v = JSON.parse(json) as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
  return v as Record<string, unknown>;
}

/**
 * Verifies one link: a detached compact JWS, `alg` ES256 only (so `none` and
 * HMAC are refused before any key is used), `typ` ours, no `crit`; the x5c
 * leaf is an X.509-SVID valid at `now` by the SPIFFE rules (verifyX509Svid,
 * against the bundle of its own trust domain), whose ID is the link's
 * `spiffe_id` and acceptable to `expectSpiffeId`; the signature verifies with
 * the leaf's key over the payload rebuilt from `body`, `traceId` and `prev`.
 * Throws ProvenanceError.
 */
export async function verifyStage(link: ProvenanceLink, options: VerifyStageOptions): Promise<VerifiedLink> {
  const stage = typeof link?.stage === 'string' ? link.stage : 'unknown';
  const fail = (reason: string, message: string): never => {
    throw new ProvenanceError(
      stage,
      reason,
      `the provenance of stage ${JSON.stringify(stage.slice(0, 64))} ${message}`,
    );
  };
  if (
    typeof link !== 'object' ||
    link === null ||
    typeof link.jws !== 'string' ||
    typeof link.stage !== 'string' ||
    typeof link.spiffe_id !== 'string'
  ) {
    fail('malformed', 'is missing or malformed');
  }
  if (link.jws.length > MAX_JWS_BYTES) fail('malformed', 'is too large');
  const parts = link.jws.split('.');
  if (parts.length !== 3 || !parts[0] || !parts[2]) fail('malformed', 'is not a compact JWS');
  if (parts[1] !== '') fail('malformed', 'must have a detached payload');
  let header: Record<string, unknown> = {};
  try {
    header = decodeHeader(parts[0]!);
  } catch {
    fail('malformed', 'has an unreadable header');
  }
  if (header.alg !== 'ES256') fail('bad_algorithm', 'is not signed with ES256');
  if (header.typ !== PROVENANCE_TYP) fail('malformed', 'has the wrong typ');
  for (const k of Object.keys(header)) {
    if (!['alg', 'typ', 'x5c', 'iat', 'req'].includes(k))
      fail('malformed', `has an unexpected header parameter`);
  }
  const req = header.req;
  if (req !== undefined && (typeof req !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(req))) {
    fail('malformed', 'has a malformed req');
  }
  if (options.request !== undefined && req !== sha256(options.request)) {
    fail(req === undefined ? 'no_request' : 'request_mismatch', 'does not vouch for this request');
  }
  const iat = header.iat;
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat)) fail('malformed', 'has no iat');
  const x5c = header.x5c;
  if (
    !Array.isArray(x5c) ||
    x5c.length === 0 ||
    x5c.length > MAX_X5C ||
    !x5c.every((c) => typeof c === 'string')
  ) {
    fail('malformed', 'has no usable x5c');
  }
  let ders: Buffer[] = [];
  try {
    ders = (x5c as string[]).map((c) => {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(c)) throw new Error('not base64');
      return Buffer.from(c, 'base64');
    });
  } catch {
    fail('malformed', 'has an x5c that is not base64');
  }
  let spiffeId = '';
  let leaf: X509Certificate | undefined;
  try {
    const v = verifyX509Svid(ders, options.bundles, { now: options.now });
    spiffeId = v.spiffeId.toString();
    leaf = v.certificate;
  } catch (err) {
    const reason = isSpiffeError(err) ? err.code : 'invalid_svid';
    fail(reason, `is signed by a certificate that is not a valid X.509-SVID (${reason})`);
  }
  if (spiffeId !== link.spiffe_id) fail('wrong_signer', 'names a signer other than its certificate');
  if (options.expectSpiffeId && !options.expectSpiffeId(spiffeId, stage)) {
    fail('unexpected_signer', `is signed by ${JSON.stringify(spiffeId)}, which may not sign it`);
  }
  const nowSec = Math.floor(options.now / 1000);
  if ((iat as number) > nowSec + CLOCK_SKEW_SECONDS) fail('not_yet_valid', 'is dated in the future');
  if (options.maxAgeSeconds !== undefined && nowSec - (iat as number) > options.maxAgeSeconds) {
    fail('too_old', 'is too old');
  }
  // RFC 7515 Appendix F: put the payload we expect back in, then verify
  const payload = payloadOf({
    bodySha256: sha256(options.body),
    stage: link.stage,
    spiffeId,
    traceId: options.traceId,
    prev: options.prev ?? null,
    iat: iat as number,
  });
  try {
    await compactVerify(`${parts[0]}.${b64url(payload)}.${parts[2]}`, leaf!.publicKey, {
      algorithms: ['ES256'],
    });
  } catch {
    fail('signature_mismatch', 'does not verify: the body, trace id or chain differs from what was signed');
  }
  return {
    stage: link.stage,
    spiffeId,
    iat: iat as number,
    ...(typeof req === 'string' ? { requestSha256: req } : {}),
  };
}

/**
 * Verifies a whole chain: links[0].prev is null and each next link's prev is
 * the one before it, every signature verifies. `bodies` is one body for all
 * links (request stages pass the body on unchanged) or one per link.
 * Returns what each link proves.
 */
export async function verifyChain(
  links: readonly ProvenanceLink[],
  options: Omit<VerifyStageOptions, 'body' | 'prev'> & { bodies: Body | readonly Body[] },
): Promise<VerifiedLink[]> {
  if (!Array.isArray(links) || links.length === 0) {
    throw new ProvenanceError('provenance', 'missing', 'the provenance chain is missing');
  }
  if (links.length > MAX_LINKS)
    throw new ProvenanceError('provenance', 'malformed', 'the provenance chain is too long');
  const perLink = Array.isArray(options.bodies);
  if (perLink && (options.bodies as readonly Body[]).length !== links.length) {
    throw new TypeError('verifyChain: give one body, or one per link');
  }
  const out: VerifiedLink[] = [];
  for (let i = 0; i < links.length; i++) {
    const body = perLink ? (options.bodies as readonly Body[])[i]! : (options.bodies as Body);
    const last = i === links.length - 1;
    out.push(
      await verifyStage(links[i]!, {
        ...options,
        body,
        prev: i === 0 ? null : links[i - 1]!.jws,
        // the request is vouched for by the link that answers it: the last
        request: last ? options.request : undefined,
      }),
    );
  }
  return out;
}

/** The `x-strongroom-provenance` header value: base64url of the JSON array of links. */
export function encodeProvenanceHeader(links: readonly ProvenanceLink[]): string {
  const value = Buffer.from(
    JSON.stringify(links.map((l) => ({ stage: l.stage, spiffe_id: l.spiffe_id, jws: l.jws }))),
  ).toString('base64url');
  if (value.length > MAX_PROVENANCE_HEADER_BYTES)
    throw new RangeError('the provenance chain is too large for a header');
  return value;
}

/** Parses `x-strongroom-provenance`; throws ProvenanceError (malformed) on anything but a list of links. */
export function decodeProvenanceHeader(value: string | undefined | null): ProvenanceLink[] {
  const bad = (message: string) => new ProvenanceError('provenance', 'malformed', message);
  if (typeof value !== 'string' || value.length === 0)
    throw new ProvenanceError('provenance', 'missing', 'no provenance was given');
  if (value.length > MAX_PROVENANCE_HEADER_BYTES) throw bad('the provenance header is too large');
  if (!/^[A-Za-z0-9_-]+$/.test(value)) throw bad('the provenance header is not base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw bad('the provenance header is not JSON');
  }
  return parseLinks(parsed);
}

/** Checks the shape of a list of links from the wire. */
export function parseLinks(parsed: unknown): ProvenanceLink[] {
  const bad = (message: string) => new ProvenanceError('provenance', 'malformed', message);
  if (!Array.isArray(parsed)) throw bad('the provenance is not a list');
  if (parsed.length > MAX_LINKS) throw bad('the provenance chain is too long');
  return parsed.map((l) => {
    if (
      typeof l !== 'object' ||
      l === null ||
      typeof l.stage !== 'string' ||
      typeof l.spiffe_id !== 'string' ||
      typeof l.jws !== 'string' ||
      l.stage.length > 128 ||
      l.spiffe_id.length > 2048 ||
      l.jws.length > MAX_JWS_BYTES
    ) {
      throw bad('a provenance link is malformed');
    }
    return { stage: l.stage, spiffe_id: l.spiffe_id, jws: l.jws };
  });
}
