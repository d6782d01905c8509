// biome-ignore-all lint/style/noExcessiveLinesPerFile: X.509-SVID issuing and verification by the SPIFFE rules: the checks share the parsed certificate and must be read together
import {
  createHash,
  type KeyObject,
  type X509Certificate as NodeX509Certificate,
  randomBytes,
  sign,
} from 'node:crypto';
import {
  type CertificateInfo,
  type CertificateInput,
  certificateInfo,
  KeyUsage,
  readCertificateFields,
  toNodeCertificate,
} from './certificate.ts';
import { csrDer, parseCsr } from './csr.ts';
import {
  bitString,
  bool,
  children,
  DerError,
  expectTag,
  explicit,
  implicit,
  OID,
  octetString,
  oid,
  readWhole,
  seq,
  set,
  smallInteger,
  Tag,
  time,
  tlv,
  unsignedInteger,
  utf8,
  valueBytes,
} from './der.ts';
import { validateDnsNames } from './dns.ts';
import { isSpiffeError, quote, SpiffeError } from './errors.ts';
import { parseSpiffeId, parseTrustDomain, type SpiffeId, trustDomainId } from './id.ts';
import {
  type AnyKey,
  assertAcceptablePublicKey,
  type CryptoKeyPair,
  ecdsaSigningAlgorithm,
  exportPublicKeyDer,
  publicKeyObject,
  toKeyObject,
} from './keys.ts';
import { x509 } from './peculiar.ts';

/**
 * X.509-SVIDs (github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md):
 * building a trust domain's root CA, validating a workload's CSR, issuing a
 * leaf, and verifying a presented chain against per-trust-domain bundles.
 * No I/O; time is always passed in.
 */

/** A certificate produced by this module, in every form callers need. */
export interface IssuedCertificate {
  readonly certificate: NodeX509Certificate;
  readonly der: Buffer;
  readonly pem: string;
  /** Uppercase hex, as node:crypto prints it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Leaves are backdated this much so a verifier whose clock is slightly behind accepts them at once. */
export const ISSUANCE_BACKDATE_SECONDS = 10;
/** The longest chain (leaf + intermediates) a verifier walks. */
export const MAX_CHAIN_LENGTH = 8;
/** Larger CSRs are refused before parsing. */
const MAX_CSR_BYTES = 64 * 1024;

function toMs(t: Date | number): number {
  const ms = typeof t === 'number' ? t : t instanceof Date ? t.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new TypeError('a time must be a finite number of ms or a valid Date');
  return ms;
}

/** X.509 validity has one-second resolution (RFC 5280 §4.1.2.5); truncate so comparisons agree with what gets encoded. */
function floorSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** 128 random bits (RFC 5280 §4.1.2.2 allows up to 20 octets, positive; CA/B BR §7.1 asks for >= 64 random bits). */
function randomSerial(): Buffer {
  for (;;) {
    const b = randomBytes(16);
    if (b.some((x) => x !== 0)) return b;
  }
}

function issued(der: Buffer): IssuedCertificate {
  const fields = readCertificateFields(der);
  let node: NodeX509Certificate | undefined;
  // node:crypto's parse costs ~60 µs (OpenSSL 3 decoders); most issuers only store the DER/PEM
  const parsed = (): NodeX509Certificate => {
    node ??= toNodeCertificate(der);
    return node;
  };
  return Object.freeze({
    get certificate() {
      return parsed();
    },
    der,
    pem: `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`,
    serialNumber: fields.serialNumber,
    notBefore: new Date(fields.notBefore),
    notAfter: new Date(fields.notAfter),
  });
}

/**
 * Builds the self-signed root CA certificate of a trust domain
 * (X509-SVID.md §3.2 and §4, SPIFFE_Trust_Domain_and_Bundle.md Appendix A):
 * URI SAN `spiffe://<td>`, basicConstraints cA=true (critical), keyUsage
 * keyCertSign|cRLSign (critical), a subject key identifier. `keys` is an
 * ECDSA P-256 (or P-384) pair. Uses @peculiar/x509 over WebCrypto.
 */
export async function buildCaCertificate(options: {
  trustDomain: string;
  keys: CryptoKeyPair;
  notBefore: Date | number;
  notAfter: Date | number;
  /** hex; 128 random bits when omitted */
  serial?: string;
  /** Subject common name; defaults to the trust domain. */
  commonName?: string;
}): Promise<IssuedCertificate> {
  const td = parseTrustDomain(options.trustDomain);
  const notBefore = floorSecond(toMs(options.notBefore));
  const notAfter = floorSecond(toMs(options.notAfter));
  if (notAfter <= notBefore) throw new TypeError('buildCaCertificate: notAfter must be after notBefore');
  if (options.serial !== undefined && !/^[0-9a-fA-F]{1,40}$/.test(options.serial)) {
    throw new TypeError('buildCaCertificate: serial must be 1 to 40 hex digits');
  }
  const signingAlgorithm = ecdsaSigningAlgorithm(options.keys.privateKey);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: options.serial ?? randomSerial().toString('hex'),
    name: [{ CN: [options.commonName ?? td] }, { O: ['Strongroom'] }],
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    keys: options.keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(td).toString() }]),
      await x509.SubjectKeyIdentifierExtension.create(options.keys.publicKey),
    ],
  });
  return issued(Buffer.from(cert.rawData));
}

// ---------------------------------------------------------------- CSR

/** What a valid CSR asks for. */
export interface ValidatedCsr {
  readonly spiffeId: SpiffeId;
  /** The key to certify (the CSR's signature proved possession of its private half). */
  readonly publicKey: KeyObject;
  /** Requested DNS SANs, validated, lowercased and deduplicated. */
  readonly dnsNames: readonly string[];
}

function csrError(why: string, cause?: unknown): SpiffeError {
  return new SpiffeError('invalid_csr', why, cause === undefined ? undefined : { cause });
}

/**
 * Validates a PKCS#10 CSR (PEM or DER) for an X.509-SVID as SPIRE's
 * MintX509SVID does (pkg/server/api/svid/v1/service.go): it parses, its
 * signature verifies (proof of possession; SHA-1 refused), it has exactly one
 * URI SAN, that URI is a SPIFFE ID (SPIFFE-ID.md §2) in `trustDomain` with a
 * non-empty path (a workload, not the trust domain itself: X509-SVID.md §3.1),
 * its DNS SANs are valid and do not overlap, its key is acceptable (EC
 * P-256/384/521, RSA >= 2048, Ed25519), and `allowed(id)` (the caller's
 * policy) agrees. Everything else in the CSR (subject, other extensions such
 * as a request for cA=true) is ignored: the issuer decides those.
 *
 * Codes: invalid_csr, invalid_spiffe_id, wrong_trust_domain, not_allowed.
 */
export async function validateCsr(
  csr: string | Uint8Array,
  options: { trustDomain: string; allowed?: (id: SpiffeId) => boolean | Promise<boolean> },
): Promise<ValidatedCsr> {
  const td = parseTrustDomain(options.trustDomain);
  if (typeof csr !== 'string' && !(csr instanceof Uint8Array)) {
    throw new TypeError('validateCsr: the CSR must be a PEM string or DER bytes');
  }
  if (csr.length === 0) throw csrError('the CSR is empty');
  if (csr.length > MAX_CSR_BYTES) throw csrError(`the CSR is larger than ${MAX_CSR_BYTES} bytes`);

  let parsed: ReturnType<typeof parseCsr>;
  try {
    parsed = parseCsr(csrDer(csr));
  } catch (err) {
    if (!(err instanceof DerError)) throw err;
    throw csrError(`the CSR is malformed: ${err.message}`, err);
  }
  if (!parsed.signatureValid) throw csrError('the CSR signature does not verify');
  if (parsed.sanExtensions > 1) throw csrError('the CSR has more than one subjectAltName extension');

  const { uris } = parsed;
  if (uris.length === 0) throw csrError('the CSR has no URI SAN; exactly one, the SPIFFE ID, is required');
  if (uris.length > 1)
    throw csrError(`the CSR has ${uris.length} URI SANs; exactly one, the SPIFFE ID, is allowed`);

  const id = parseSpiffeId(uris[0]!);
  if (id.trustDomain !== td) {
    throw new SpiffeError(
      'wrong_trust_domain',
      `the CSR asks for ${quote(id.toString())}, which is not in the trust domain ${quote(td)}`,
    );
  }
  if (id.path === '') {
    throw new SpiffeError(
      'invalid_spiffe_id',
      `the CSR asks for the trust domain's own ID ${quote(id.toString())}; a workload ID needs a path`,
    );
  }
  const dnsNames = validateDnsNames(parsed.dnsNames, 'invalid_csr');
  try {
    assertAcceptablePublicKey(parsed.publicKey);
  } catch (err) {
    throw csrError(
      `the CSR's public key is not acceptable: ${isSpiffeError(err) ? err.message : 'unknown type'}`,
      err,
    );
  }
  if (options.allowed && !(await options.allowed(id))) {
    throw new SpiffeError('not_allowed', `issuing an SVID for ${quote(id.toString())} is not allowed`);
  }
  return Object.freeze({ spiffeId: id, publicKey: parsed.publicKey, dnsNames: Object.freeze(dnsNames) });
}

// ---------------------------------------------------------------- issuance

/** A CA certificate prepared for issuing, computed once per certificate object. */
interface PreparedCa {
  info: CertificateInfo;
  trustDomain: string | undefined;
  /** keyIdentifier for the leaves' authorityKeyIdentifier (RFC 5280 §4.2.1.1) */
  keyId: Buffer;
  /** signing state per private key object, once it is checked to match the certificate */
  signers: WeakMap<object, Signer>;
}

interface Signer {
  key: KeyObject;
  /** node:crypto digest name */
  digest: string;
  /** the DER AlgorithmIdentifier (RFC 5758 §3.2: ecdsa-with-SHA* have no parameters) */
  algorithm: Buffer;
}

const preparedCas = new WeakMap<object, PreparedCa>();

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bits. */
function keyIdentifier(spkiDer: Uint8Array): Buffer {
  const [, bits] = children(spkiDer, expectTag(readWhole(spkiDer), Tag.sequence, 'SubjectPublicKeyInfo'));
  const value = valueBytes(spkiDer, expectTag(bits, Tag.bitString, 'subjectPublicKey'));
  return createHash('sha1').update(value.subarray(1)).digest();
}

function prepareCa(input: CertificateInput): PreparedCa {
  const cached = typeof input === 'object' ? preparedCas.get(input) : undefined;
  if (cached) return cached;
  const info = certificateInfo(toNodeCertificate(input));
  if (!info.ext.basicConstraints?.ca) {
    throw new SpiffeError(
      'invalid_certificate',
      'the issuing certificate is not a CA (basicConstraints cA is not true)',
    );
  }
  if (info.ext.keyUsage !== undefined && !(info.ext.keyUsage & KeyUsage.keyCertSign)) {
    throw new SpiffeError(
      'invalid_certificate',
      'the issuing certificate may not sign certificates (no keyCertSign)',
    );
  }
  const spiffeUris = info.ext.uris.filter((u) => u.startsWith('spiffe://'));
  const prepared: PreparedCa = {
    info,
    trustDomain: spiffeUris.length === 1 ? parseSpiffeId(spiffeUris[0]!).trustDomain : undefined,
    keyId: info.ext.subjectKeyId ?? keyIdentifier(exportPublicKeyDer(info.cert.publicKey)),
    signers: new WeakMap(),
  };
  if (typeof input === 'object') preparedCas.set(input, prepared);
  return prepared;
}

function caSigner(ca: PreparedCa, privateKey: AnyKey): Signer {
  let signer = ca.signers.get(privateKey);
  if (!signer) {
    const key = toKeyObject(privateKey);
    if (key.type !== 'private') throw new TypeError('issueX509Svid: ca.privateKey must be a private key');
    if (!publicKeyObject(key).equals(ca.info.cert.publicKey)) {
      throw new SpiffeError(
        'invalid_key',
        "the CA private key does not match the CA certificate's public key",
      );
    }
    const { hash } = ecdsaSigningAlgorithm(key);
    signer = { key, digest: hash.replace('-', '').toLowerCase(), algorithm: seq(oid(ECDSA_OIDS[hash])) };
    ca.signers.set(privateKey, signer);
  }
  return signer;
}

const ECDSA_OIDS = {
  'SHA-256': OID.ecdsaWithSha256,
  'SHA-384': OID.ecdsaWithSha384,
  'SHA-512': OID.ecdsaWithSha512,
};

/**
 * Issues a leaf X.509-SVID (X509-SVID.md §2-§4): exactly one URI SAN (the
 * SPIFFE ID) plus optional DNS SANs, basicConstraints cA=false (critical),
 * keyUsage digitalSignature only (critical), extKeyUsage serverAuth and
 * clientAuth, a random 128-bit serial, subject and authority key identifiers,
 * notBefore = now - 10 s (not before the CA's), notAfter = min(now + ttl, the
 * CA's notAfter). The CA key must be ECDSA. Refuses (SpiffeError) an ID
 * outside the CA's trust domain (wrong_trust_domain), an ID without a path
 * (invalid_spiffe_id), an expired or not-yet-valid CA, and a private key that
 * does not match the CA certificate (invalid_key). Callers validate the
 * request first (validateCsr) and decide the TTL.
 *
 * The certificate is DER-encoded here and signed with node:crypto (~0.1 ms);
 * pass the same `ca.cert` object each time so it is read once.
 */
export async function issueX509Svid(options: {
  ca: { cert: CertificateInput; privateKey: AnyKey };
  csrPublicKey: AnyKey;
  spiffeId: SpiffeId | string;
  ttlSeconds: number;
  now: Date | number;
  dnsNames?: readonly string[];
}): Promise<IssuedCertificate> {
  const { ttlSeconds } = options;
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError('issueX509Svid: ttlSeconds must be a positive integer');
  }
  const now = toMs(options.now);
  const id = parseSpiffeId(options.spiffeId.toString());
  if (id.path === '') {
    throw new SpiffeError(
      'invalid_spiffe_id',
      `${quote(id.toString())} is a trust domain ID; a leaf SVID's ID needs a path (X509-SVID.md §3.1)`,
    );
  }
  const dnsNames = validateDnsNames(options.dnsNames ?? [], 'invalid_svid');
  const ca = prepareCa(options.ca.cert);
  if (ca.trustDomain !== undefined && ca.trustDomain !== id.trustDomain) {
    throw new SpiffeError(
      'wrong_trust_domain',
      `the CA of ${quote(ca.trustDomain)} cannot issue ${quote(id.toString())}, which is in another trust domain`,
    );
  }
  if (now < ca.info.notBefore) throw new SpiffeError('not_yet_valid', 'the CA certificate is not valid yet');
  if (now >= ca.info.notAfter) throw new SpiffeError('expired', 'the CA certificate has expired');
  const signer = caSigner(ca, options.ca.privateKey);
  assertAcceptablePublicKey(options.csrPublicKey);

  const notBefore = Math.max(floorSecond(now - ISSUANCE_BACKDATE_SECONDS * 1000), ca.info.notBefore);
  const notAfter = Math.min(floorSecond(now + ttlSeconds * 1000), ca.info.notAfter);
  const spki = exportPublicKeyDer(options.csrPublicKey);
  const { algorithm } = signer;
  const extensions = seq(
    // X509-SVID.md §4.1: a leaf has cA=false (DER omits the DEFAULT FALSE, leaving an empty SEQUENCE)
    seq(oid(OID.basicConstraints), bool(true), octetString(seq())),
    // §4.3: critical, digitalSignature (bit 0) only; DER drops trailing zero bits, so 7 unused bits
    seq(oid(OID.keyUsage), bool(true), octetString(tlv(Tag.bitString, Buffer.from([0x07, 0x80])))),
    // §4.4: serverAuth and clientAuth
    seq(oid(OID.extKeyUsage), octetString(seq(oid(OID.serverAuth), oid(OID.clientAuth)))),
    // §2: exactly one URI SAN, the SPIFFE ID ([6] IA5String), then DNS names ([2])
    seq(
      oid(OID.subjectAltName),
      octetString(seq(implicit(6, Buffer.from(id.toString(), 'ascii')), ...dnsNames.map((d) => dnsName(d)))),
    ),
    seq(oid(OID.subjectKeyIdentifier), octetString(octetString(keyIdentifier(spki)))),
    seq(oid(OID.authorityKeyIdentifier), octetString(seq(implicit(0, ca.keyId)))),
  );
  const tbs = seq(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(randomSerial()),
    algorithm,
    ca.info.subjectDer, // issuer = the CA's subject, byte for byte (RFC 5280 §7.1 name chaining)
    seq(time(notBefore), time(notAfter)),
    seq(set(seq(oid(OID.organizationName), utf8('Strongroom')))),
    spki,
    explicit(3, extensions),
  );
  const signature = sign(signer.digest, tbs, { key: signer.key, dsaEncoding: 'der' });
  return issued(seq(tbs, algorithm, bitString(signature)));
}

function dnsName(name: string): Buffer {
  return implicit(2, Buffer.from(name, 'ascii'));
}

// ---------------------------------------------------------------- verification

/** What a verified X.509-SVID proves. */
export interface VerifiedX509Svid {
  readonly spiffeId: SpiffeId;
  readonly trustDomain: string;
  readonly notAfter: Date;
  readonly dnsNames: readonly string[];
  /** The leaf, as node:crypto parsed it. */
  readonly certificate: NodeX509Certificate;
}

/** Trust bundles by trust domain name: the X.509 authorities of each (X509-SVID.md §6.2). */
export type X509Bundles = ReadonlyMap<string, readonly CertificateInput[]>;

function timeProblem(info: CertificateInfo, now: number): 'expired' | 'not_yet_valid' | undefined {
  // RFC 5280 §4.1.2.5: the validity period includes both bounds
  if (now < info.notBefore) return 'not_yet_valid';
  if (now > info.notAfter) return 'expired';
  return undefined;
}

/** RFC 5280 §4.2.1.9 / §4.2.1.3 / §4.2: may this certificate sign certificates? */
function canSign(info: CertificateInfo): boolean {
  if (!info.ext.basicConstraints?.ca) return false;
  if (info.ext.keyUsage !== undefined && !(info.ext.keyUsage & KeyUsage.keyCertSign)) return false;
  return info.ext.unknownCritical.length === 0;
}

/** RFC 5280 §6.1.4 (l)-(m): pathLenConstraint bounds the intermediates below a CA. */
function pathLenAllows(info: CertificateInfo, intermediatesBelow: number): boolean {
  const max = info.ext.basicConstraints?.pathLen;
  return max === undefined || intermediatesBelow <= max;
}

function signedBy(child: CertificateInfo, issuer: CertificateInfo): boolean {
  // checkIssued: issuer name and AKI/SKI match (OpenSSL X509_check_issued); verify: the signature itself
  return child.cert.checkIssued(issuer.cert) && child.cert.verify(issuer.cert.publicKey);
}

/**
 * Verifies an X.509-SVID chain (leaf first, then intermediates in any order)
 * against the bundle of the leaf's trust domain, per X509-SVID.md §5:
 *
 * - leaf (§5.2): exactly one URI SAN, a valid SPIFFE ID with a path;
 *   basicConstraints cA false; keyUsage present, critical (§4.3), with
 *   digitalSignature and without keyCertSign/cRLSign; an empty subject only
 *   with a critical subjectAltName (RFC 5280 §4.2.1.6); no critical extension
 *   this code does not understand; valid at `now`;
 * - path (§5.1, RFC 5280 §6): from the leaf through presented intermediates
 *   (each cA=true, keyCertSign, pathLen respected, valid at `now`) to a root
 *   in **the bundle of the ID's own trust domain**: a CA of another trust
 *   domain never vouches for this one;
 * - when `purpose` is given and the leaf has an extKeyUsage, it must allow it.
 *
 * Never matches host names. Synchronous. Pass node X509Certificate objects
 * in `bundles` (parseSpiffeBundle returns them) so roots are read once.
 * Throws SpiffeError: invalid_certificate, invalid_svid, invalid_spiffe_id,
 * expired, not_yet_valid, untrusted.
 */
export function verifyX509Svid(
  chain: readonly CertificateInput[],
  bundles: X509Bundles,
  options: { now: Date | number; purpose?: 'client' | 'server' },
): VerifiedX509Svid {
  const now = toMs(options.now);
  if (!Array.isArray(chain) || chain.length === 0)
    throw new SpiffeError('invalid_svid', 'no certificate was presented');
  if (chain.length > MAX_CHAIN_LENGTH) {
    throw new SpiffeError(
      'invalid_svid',
      `the chain has ${chain.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`,
    );
  }
  const certs = chain.map((c) => certificateInfo(toNodeCertificate(c)));
  const leaf = certs[0]!;
  const ext = leaf.ext;

  // X509-SVID.md §2: exactly one URI SAN, and it is the SPIFFE ID
  if (ext.uris.length !== 1) {
    throw new SpiffeError(
      'invalid_svid',
      `the leaf has ${ext.uris.length} URI SANs; an X.509-SVID has exactly one`,
    );
  }
  const id = parseSpiffeId(ext.uris[0]!);
  // §3.1 / §5.2: a leaf identifies a workload, so its ID has a path
  if (id.path === '') {
    throw new SpiffeError(
      'invalid_svid',
      `the leaf's ID ${quote(id.toString())} has no path; only signing certificates carry a trust domain ID`,
    );
  }
  // §4.1 / §5.2: a leaf is not a CA
  if (ext.basicConstraints?.ca) {
    throw new SpiffeError('invalid_svid', 'the leaf is a CA certificate (basicConstraints cA=true)');
  }
  // §4.3 / §5.2: keyUsage is mandatory; digitalSignature set, keyCertSign and cRLSign not
  if (ext.keyUsage === undefined) throw new SpiffeError('invalid_svid', 'the leaf has no keyUsage extension');
  // §4.3: "MUST be marked critical": a verifier that ignores keyUsage must not accept the key for other uses
  if (!ext.keyUsageCritical) {
    throw new SpiffeError('invalid_svid', 'the leaf keyUsage extension is not marked critical');
  }
  if (!(ext.keyUsage & KeyUsage.digitalSignature)) {
    throw new SpiffeError('invalid_svid', 'the leaf keyUsage lacks digitalSignature');
  }
  if (ext.keyUsage & (KeyUsage.keyCertSign | KeyUsage.cRLSign)) {
    throw new SpiffeError(
      'invalid_svid',
      'the leaf keyUsage allows keyCertSign or cRLSign, which only signing certificates may',
    );
  }
  if (ext.unknownCritical.length > 0) {
    throw new SpiffeError(
      'invalid_svid',
      `the leaf has a critical extension this verifier does not understand (${ext.unknownCritical[0]})`,
    );
  }
  // RFC 5280 §4.2.1.6: with an empty subject the SAN is the only name, and the issuer MUST mark it critical
  if (leaf.subjectEmpty && !ext.subjectAltNameCritical) {
    throw new SpiffeError(
      'invalid_svid',
      'the leaf has an empty subject and a subjectAltName extension not marked critical',
    );
  }
  if (options.purpose && ext.extKeyUsage) {
    const wanted = options.purpose === 'client' ? OID.clientAuth : OID.serverAuth;
    if (!ext.extKeyUsage.includes(wanted) && !ext.extKeyUsage.includes(OID.anyExtendedKeyUsage)) {
      throw new SpiffeError(
        'invalid_svid',
        `the leaf extKeyUsage does not allow ${options.purpose} authentication`,
      );
    }
  }
  const leafTime = timeProblem(leaf, now);
  if (leafTime === 'expired')
    throw new SpiffeError('expired', `the SVID of ${quote(id.toString())} has expired`);
  if (leafTime === 'not_yet_valid') {
    throw new SpiffeError('not_yet_valid', `the SVID of ${quote(id.toString())} is not valid yet`);
  }

  const authorities = bundles.get(id.trustDomain);
  if (!authorities || authorities.length === 0) {
    throw new SpiffeError(
      'untrusted',
      `there is no X.509 bundle for the trust domain ${quote(id.trustDomain)}`,
    );
  }
  const roots = authorities.map((c) => certificateInfo(toNodeCertificate(c)));
  const intermediates = certs.slice(1);

  // Depth-first path building: presented intermediates may come in any order, or include extras.
  let timeFailure: { code: 'expired' | 'not_yet_valid'; what: string } | undefined;
  const used = new Set<CertificateInfo>();
  const walk = (current: CertificateInfo, below: number): boolean => {
    for (const root of roots) {
      if (!canSign(root) || !signedBy(current, root)) continue;
      const t = timeProblem(root, now);
      if (t) {
        timeFailure ??= { code: t, what: 'a root CA certificate' };
        continue;
      }
      if (pathLenAllows(root, below)) return true;
    }
    if (below + 1 >= MAX_CHAIN_LENGTH) return false;
    for (const next of intermediates) {
      if (used.has(next) || !canSign(next) || !signedBy(current, next)) continue;
      const t = timeProblem(next, now);
      if (t) {
        timeFailure ??= { code: t, what: 'an intermediate CA certificate' };
        continue;
      }
      if (!pathLenAllows(next, below)) continue;
      used.add(next);
      if (walk(next, below + 1)) return true;
      used.delete(next);
    }
    return false;
  };
  if (!walk(leaf, 0)) {
    if (timeFailure) {
      const state = timeFailure.code === 'expired' ? 'has expired' : 'is not valid yet';
      throw new SpiffeError(
        timeFailure.code,
        `${timeFailure.what} in the chain of ${quote(id.toString())} ${state}`,
      );
    }
    throw new SpiffeError(
      'untrusted',
      `the chain of ${quote(id.toString())} does not lead to an authority of the trust domain ${quote(id.trustDomain)}`,
    );
  }
  return Object.freeze({
    spiffeId: id,
    trustDomain: id.trustDomain,
    notAfter: leaf.cert.validToDate,
    dnsNames: ext.dnsNames,
    certificate: leaf.cert,
  });
}
