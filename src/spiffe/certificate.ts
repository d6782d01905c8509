import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import {
  children,
  DerError,
  decodeOid,
  expectTag,
  inner,
  OID,
  rawTlv,
  readAscii,
  readBoolean,
  readTime,
  readTlv,
  readWhole,
  Tag,
  type Tlv,
  valueBytes,
} from './der.ts';
import { SpiffeError } from './errors.ts';
import { x509 } from './peculiar.ts';

/**
 * Certificate inputs accepted across the SPIFFE layer, their conversion to
 * node:crypto's X509Certificate (the verifier's representation: parsing is
 * ~30 µs and verification runs in OpenSSL), and the reading of the extensions
 * node:crypto does not expose (RFC 5280 §4.2).
 */

/** A certificate as a node:crypto or @peculiar/x509 object, a PEM string, or DER (or PEM) bytes. */
export type CertificateInput = NodeX509Certificate | x509.X509Certificate | string | Uint8Array;

/** Larger inputs are refused before parsing; real SVIDs and CA certificates are a few KiB. */
const MAX_CERTIFICATE_BYTES = 64 * 1024;

/** RFC 5280 §4.2.1.3 KeyUsage named bits, as flags (bit n -> 1 << n); the same values as @peculiar/x509's KeyUsageFlags. */
export const KeyUsage = {
  digitalSignature: 1,
  nonRepudiation: 2,
  keyEncipherment: 4,
  dataEncipherment: 8,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
  encipherOnly: 128,
  decipherOnly: 256,
} as const;

/** Converts a CertificateInput to a node:crypto X509Certificate. Throws SpiffeError('invalid_certificate'). */
export function toNodeCertificate(input: CertificateInput): NodeX509Certificate {
  if (input instanceof NodeX509Certificate) return input;
  let bytes: Buffer | string;
  if (input instanceof x509.X509Certificate) bytes = Buffer.from(input.rawData);
  else if (typeof input === 'string') bytes = input;
  else if (input instanceof Uint8Array) bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  else throw new TypeError('a certificate must be an X509Certificate, a PEM string or DER bytes');
  if (bytes.length > MAX_CERTIFICATE_BYTES) {
    throw new SpiffeError(
      'invalid_certificate',
      `a certificate is larger than ${MAX_CERTIFICATE_BYTES} bytes`,
    );
  }
  try {
    return new NodeX509Certificate(bytes);
  } catch (err) {
    throw new SpiffeError('invalid_certificate', 'a certificate does not parse as X.509', { cause: err });
  }
}

/** Splits a PEM document holding one or more certificates (a chain or a CA file). */
export function parsePemCertificates(pem: string): NodeX509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new SpiffeError('invalid_certificate', 'no PEM certificate found');
  return blocks.map((b) => toNodeCertificate(b));
}

/** DER bytes of any CertificateInput. */
export function certificateDer(input: CertificateInput): Buffer {
  if (input instanceof x509.X509Certificate) return Buffer.from(input.rawData);
  return toNodeCertificate(input).raw;
}

/** The extensions a SPIFFE verifier or issuer looks at. */
export interface CertificateExtensions {
  /** basicConstraints, when present (RFC 5280 §4.2.1.9). Absent means "not a CA". */
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen: number | undefined } | undefined;
  /** keyUsage flags (see KeyUsage), undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  /** Whether keyUsage is marked critical (X509-SVID.md §4.3 requires it); false when absent. */
  readonly keyUsageCritical: boolean;
  /** extKeyUsage OIDs, undefined when the extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** The URI SANs, in order (X509-SVID.md §2). */
  readonly uris: readonly string[];
  /** The DNS SANs, in order. */
  readonly dnsNames: readonly string[];
  /** Whether subjectAltName is marked critical (RFC 5280 §4.2.1.6: required with an empty subject); false when absent. */
  readonly subjectAltNameCritical: boolean;
  /** The subject key identifier, when present. */
  readonly subjectKeyId: Buffer | undefined;
  /** OIDs of critical extensions this layer does not understand (RFC 5280 §4.2: such a certificate must be rejected). */
  readonly unknownCritical: readonly string[];
}

/** Extensions this layer understands and enforces. */
const UNDERSTOOD = new Set<string>([
  OID.subjectKeyIdentifier,
  OID.keyUsage,
  OID.subjectAltName,
  OID.basicConstraints,
  OID.authorityKeyIdentifier,
  OID.extKeyUsage,
]);

function parseBasicConstraints(buf: Uint8Array, v: Tlv): { ca: boolean; pathLen: number | undefined } {
  let ca = false;
  let pathLen: number | undefined;
  for (const c of children(buf, expectTag(inner(buf, v), Tag.sequence, 'basicConstraints SEQUENCE'))) {
    if (c.tag === Tag.boolean && pathLen === undefined) ca = readBoolean(buf, c);
    else if (c.tag === Tag.integer && pathLen === undefined) {
      if (c.end - c.start > 4 || c.end === c.start || buf[c.start]! & 0x80)
        throw new DerError('bad pathLenConstraint');
      pathLen = 0;
      for (let i = c.start; i < c.end; i++) pathLen = pathLen * 256 + buf[i]!;
    } else throw new DerError('unexpected field in basicConstraints');
  }
  return { ca, pathLen };
}

function parseKeyUsage(buf: Uint8Array, v: Tlv): number {
  const bits = expectTag(inner(buf, v), Tag.bitString, 'keyUsage BIT STRING');
  const n = bits.end - bits.start;
  if (n < 1 || n > 3) throw new DerError('bad keyUsage length');
  let flags = 0;
  for (let i = 0; i < (n - 1) * 8 && i < 9; i++) {
    if (buf[bits.start + 1 + (i >> 3)]! & (0x80 >> (i & 7))) flags |= 1 << i;
  }
  return flags;
}

function parseEku(buf: Uint8Array, v: Tlv): string[] {
  const s = expectTag(inner(buf, v), Tag.sequence, 'extKeyUsage SEQUENCE');
  return children(buf, s).map((c) => decodeOid(buf, expectTag(c, Tag.oid, 'OID')));
}

/** GeneralNames (RFC 5280 §4.2.1.6): collects [6] uniformResourceIdentifier and [2] dNSName, ignores other kinds. */
export function readGeneralNames(
  buf: Uint8Array,
  generalNames: Tlv,
  uris: string[],
  dnsNames: string[],
): void {
  for (const name of children(buf, expectTag(generalNames, Tag.sequence, 'GeneralNames SEQUENCE'))) {
    if (name.tag === 0x86) uris.push(readAscii(buf, name));
    else if (name.tag === 0xa6) throw new DerError('a constructed URI SAN');
    else if (name.tag === 0x82) dnsNames.push(readAscii(buf, name));
  }
}

/**
 * Reads the extensions of an Extensions SEQUENCE (RFC 5280 §4.1, §4.2).
 * Duplicates are rejected ("A certificate MUST NOT include more than one
 * instance of a particular extension"), as are malformed known ones.
 */
function readExtensions(buf: Uint8Array, exts: Tlv | undefined): CertificateExtensions {
  let basicConstraints: CertificateExtensions['basicConstraints'];
  let keyUsage: number | undefined;
  let keyUsageCritical = false;
  let subjectAltNameCritical = false;
  let extKeyUsage: string[] | undefined;
  let subjectKeyId: Buffer | undefined;
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const unknownCritical: string[] = [];
  if (exts) {
    const seen = new Set<string>();
    for (const ext of children(buf, expectTag(exts, Tag.sequence, 'Extensions SEQUENCE'))) {
      const parts = children(buf, expectTag(ext, Tag.sequence, 'Extension SEQUENCE'));
      const oid = decodeOid(buf, expectTag(parts[0], Tag.oid, 'extension OID'));
      let critical = false;
      let i = 1;
      if (parts[i]?.tag === Tag.boolean) critical = readBoolean(buf, parts[i++]!);
      const value = expectTag(parts[i], Tag.octetString, 'extension OCTET STRING');
      if (parts.length !== i + 1) throw new DerError('trailing data in an extension');
      if (seen.has(oid)) throw new DerError(`extension ${oid} appears twice`);
      seen.add(oid);
      if (critical && !UNDERSTOOD.has(oid)) unknownCritical.push(oid);
      if (oid === OID.basicConstraints) basicConstraints = parseBasicConstraints(buf, value);
      else if (oid === OID.keyUsage) {
        keyUsage = parseKeyUsage(buf, value);
        keyUsageCritical = critical;
      } else if (oid === OID.extKeyUsage) extKeyUsage = parseEku(buf, value);
      else if (oid === OID.subjectAltName) {
        readGeneralNames(buf, inner(buf, value), uris, dnsNames);
        subjectAltNameCritical = critical;
      } else if (oid === OID.subjectKeyIdentifier) {
        subjectKeyId = Buffer.from(
          valueBytes(buf, expectTag(inner(buf, value), Tag.octetString, 'keyIdentifier')),
        );
      }
    }
  }
  return {
    basicConstraints,
    keyUsage,
    keyUsageCritical,
    extKeyUsage,
    uris,
    dnsNames,
    subjectAltNameCritical,
    subjectKeyId,
    unknownCritical,
  };
}

/** The parts of a certificate this layer reads from its DER. */
export interface CertificateFields {
  readonly ext: CertificateExtensions;
  /** The DER of the subject Name, byte for byte (a leaf's issuer field copies it). */
  readonly subjectDer: Buffer;
  /** The subject Name is an empty SEQUENCE (no RDN): the SANs then carry the identity (RFC 5280 §4.1.2.6). */
  readonly subjectEmpty: boolean;
  /** Uppercase hex without leading zero bytes, as node:crypto prints it. */
  readonly serialNumber: string;
  /** ms since the epoch */
  readonly notBefore: number;
  /** ms since the epoch */
  readonly notAfter: number;
}

/** Reads a DER certificate's extensions and subject (RFC 5280 §4.1). Throws DerError. */
export function readCertificateFields(der: Uint8Array): CertificateFields {
  const cert = expectTag(readWhole(der), Tag.sequence, 'Certificate SEQUENCE');
  const tbs = expectTag(readTlv(der, cert.start, cert.end), Tag.sequence, 'TBSCertificate SEQUENCE');
  const fields = children(der, tbs);
  // version [0] is optional (absent = v1); then serial, signature, issuer, validity, subject
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = valueBytes(der, expectTag(fields[base], Tag.integer, 'serialNumber'));
  const validity = children(der, expectTag(fields[base + 3], Tag.sequence, 'Validity'));
  const subject = expectTag(fields[base + 4], Tag.sequence, 'subject Name');
  const extsWrapper = fields.find((t) => t.tag === 0xa3);
  let i = 0;
  while (i < serial.length - 1 && serial[i] === 0) i++;
  return {
    ext: readExtensions(der, extsWrapper ? inner(der, extsWrapper) : undefined),
    subjectDer: Buffer.from(rawTlv(der, subject)),
    subjectEmpty: subject.end === subject.start,
    serialNumber: serial.subarray(i).toString('hex').toUpperCase(),
    notBefore: readTime(der, validity[0]!),
    notAfter: readTime(der, validity[1]!),
  };
}

/** What the verifier and issuer need to know about a certificate, computed once per X509Certificate object. */
export interface CertificateInfo extends CertificateFields {
  readonly cert: NodeX509Certificate;
}

const infoCache = new WeakMap<NodeX509Certificate, CertificateInfo>();

/**
 * The CertificateInfo of a node certificate, cached per object (bundle roots
 * are read once, not per verification). Throws SpiffeError('invalid_certificate').
 */
export function certificateInfo(cert: NodeX509Certificate): CertificateInfo {
  let info = infoCache.get(cert);
  if (!info) {
    let fields: CertificateFields;
    try {
      fields = readCertificateFields(cert.raw);
    } catch (err) {
      if (!(err instanceof DerError)) throw err;
      throw new SpiffeError(
        'invalid_certificate',
        `a certificate's extensions are malformed: ${err.message}`,
        {
          cause: err,
        },
      );
    }
    info = Object.freeze({ ...fields, cert });
    infoCache.set(cert, info);
  }
  return info;
}
