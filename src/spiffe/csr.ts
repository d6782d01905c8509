import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { readGeneralNames } from './certificate.ts';
import {
  children,
  DerError,
  decodeOid,
  expectTag,
  inner,
  OID,
  rawTlv,
  readWhole,
  Tag,
  type Tlv,
  valueBytes,
} from './der.ts';
import { rememberSpki } from './keys.ts';

/**
 * PKCS#10 certification requests (RFC 2986), read with the DER reader and
 * checked with node:crypto: the subset an SVID issuer needs (the public key,
 * the proof of possession, the requested SANs). Internal to the SPIFFE layer;
 * validateCsr in x509-svid.ts applies the SPIFFE rules on top.
 */

export interface ParsedCsr {
  readonly publicKey: KeyObject;
  /** URI SANs requested through the extensionRequest attribute (RFC 2985 §5.4.2) */
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  /** number of subjectAltName extensions requested (more than one is malformed) */
  readonly sanExtensions: number;
  /** whether the signature over certificationRequestInfo verifies with the enclosed key */
  readonly signatureValid: boolean;
}

/** Signature algorithms accepted on a CSR, with the digest node:crypto needs (null for Ed25519). SHA-1 is refused. */
const SIGNATURE_ALGORITHMS: Record<string, { hash: string | null; keyType: string }> = {
  [OID.ecdsaWithSha256]: { hash: 'sha256', keyType: 'ec' },
  [OID.ecdsaWithSha384]: { hash: 'sha384', keyType: 'ec' },
  [OID.ecdsaWithSha512]: { hash: 'sha512', keyType: 'ec' },
  [OID.sha256WithRsa]: { hash: 'sha256', keyType: 'rsa' },
  [OID.sha384WithRsa]: { hash: 'sha384', keyType: 'rsa' },
  [OID.sha512WithRsa]: { hash: 'sha512', keyType: 'rsa' },
  [OID.ed25519]: { hash: null, keyType: 'ed25519' },
};

/** Reads and signature-checks a DER PKCS#10 request. Throws DerError when it is malformed or uses an unsupported algorithm. */
export function parseCsr(der: Uint8Array): ParsedCsr {
  // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
  const top = children(der, expectTag(readWhole(der), Tag.sequence, 'CertificationRequest'));
  if (top.length !== 3) throw new DerError('CertificationRequest must have three fields');
  const info = expectTag(top[0], Tag.sequence, 'CertificationRequestInfo');
  const algId = children(der, expectTag(top[1], Tag.sequence, 'AlgorithmIdentifier'));
  const sigBits = expectTag(top[2], Tag.bitString, 'signature BIT STRING');

  // CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name, subjectPKInfo, attributes [0] }
  const fields = children(der, info);
  const version = expectTag(fields[0], Tag.integer, 'version');
  if (version.end - version.start !== 1 || der[version.start] !== 0)
    throw new DerError('unsupported CSR version');
  expectTag(fields[1], Tag.sequence, 'subject Name');
  const spki = expectTag(fields[2], Tag.sequence, 'SubjectPublicKeyInfo');
  const attributes = fields[3];
  if (attributes && attributes.tag !== 0xa0) throw new DerError('expected attributes [0]');
  if (fields.length > 4) throw new DerError('trailing fields in CertificationRequestInfo');

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: rawTlv(der, spki), format: 'der', type: 'spki' });
  } catch {
    throw new DerError('the public key does not parse');
  }
  rememberSpki(publicKey, rawTlv(der, spki));

  const uris: string[] = [];
  const dnsNames: string[] = [];
  let sanExtensions = 0;
  let extensionRequests = 0;
  if (attributes) {
    for (const attr of children(der, attributes)) {
      // Attribute ::= SEQUENCE { type OID, values SET OF ANY }
      const [type, values] = children(der, expectTag(attr, Tag.sequence, 'Attribute'));
      if (decodeOid(der, expectTag(type, Tag.oid, 'attribute type')) !== OID.extensionRequest) continue;
      if (++extensionRequests > 1) throw new DerError('more than one extensionRequest attribute');
      const vals = children(der, expectTag(values, Tag.set, 'attribute values'));
      if (vals.length !== 1) throw new DerError('extensionRequest must have exactly one value');
      for (const ext of children(der, expectTag(vals[0], Tag.sequence, 'Extensions'))) {
        const parts = children(der, expectTag(ext, Tag.sequence, 'Extension'));
        if (decodeOid(der, expectTag(parts[0], Tag.oid, 'extension OID')) !== OID.subjectAltName) continue;
        sanExtensions++;
        const value: Tlv = expectTag(parts[parts.length - 1], Tag.octetString, 'extension value');
        readGeneralNames(der, inner(der, value), uris, dnsNames);
      }
    }
  }

  const algOid = decodeOid(der, expectTag(algId[0], Tag.oid, 'signature algorithm'));
  const alg = SIGNATURE_ALGORITHMS[algOid];
  if (!alg) throw new DerError(`the signature algorithm ${algOid} is not accepted`);
  if (publicKey.asymmetricKeyType !== alg.keyType)
    throw new DerError('the signature algorithm does not match the key');
  if (der[sigBits.start] !== 0) throw new DerError('the signature BIT STRING has unused bits');
  const signature = valueBytes(der, sigBits).subarray(1);
  let signatureValid = false;
  try {
    signatureValid = verify(alg.hash, rawTlv(der, info), { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    signatureValid = false;
  }
  return { publicKey, uris, dnsNames, sanExtensions, signatureValid };
}

/** The DER of a PEM "CERTIFICATE REQUEST" (or "NEW CERTIFICATE REQUEST"), or of DER bytes as they are. */
export function csrDer(input: string | Uint8Array): Uint8Array {
  if (typeof input !== 'string') return input;
  const m =
    /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*$/.exec(
      input,
    );
  if (!m) throw new DerError('not a PEM "CERTIFICATE REQUEST"');
  return Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64');
}
