import {
  createHash,
  createPublicKey,
  type KeyObject,
  verify as verifySignature,
  X509Certificate,
} from 'node:crypto';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';

/**
 * The OpenSSF model signing format, v1.0 (sigstore/model-transparency, `docs/model_signing_format.md`
 * and `src/model_signing/_signing/signing.py`): a Sigstore bundle (v0.3) holding a DSSE envelope over an
 * in-toto Statement v1 whose predicate (`https://model_signing/signature/v1.0`) lists every file of the
 * model with its SHA-256, in name order, and whose one subject carries the SHA-256 over those digests.
 * The wire contract of a model signature: the SDK writes and checks it, the vault checks it before it
 * releases a model's keys (docs/models.md). Signed with a key, as the upstream `key` method does: the
 * bundle names the key by `publicKey.hint`, the hex SHA-256 of its PEM (SPKI).
 */
const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
const PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
/** What the upstream tool leaves out of a model by default (and the signature file itself). */
export const DEFAULT_IGNORE = ['model.sig', '.git', '.gitattributes', '.github', '.gitignore'];
const HEX64 = '^[0-9a-f]{64}$';

export const ModelResource = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 4096 }),
  algorithm: Type.Literal('sha256'),
  digest: Type.String({ pattern: HEX64 }),
});
export type ModelResource = Static<typeof ModelResource>;

export const Serialization = Type.Object({
  method: Type.Literal('files'),
  hash_type: Type.Literal('sha256'),
  allow_symlinks: Type.Boolean(),
  ignore_paths: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 1024 })),
});
export type Serialization = Static<typeof Serialization>;

const Statement = Type.Object({
  _type: Type.Literal(STATEMENT_TYPE),
  subject: Type.Array(
    Type.Object({
      name: Type.String({ maxLength: 1024 }),
      digest: Type.Object({ sha256: Type.String({ pattern: HEX64 }) }),
    }),
    { minItems: 1, maxItems: 1 },
  ),
  predicateType: Type.Literal(PREDICATE_TYPE),
  predicate: Type.Object({
    serialization: Serialization,
    resources: Type.Array(ModelResource, { maxItems: 100_000 }),
  }),
});
export type Statement = Static<typeof Statement>;

/** A model signature file, as far as we read it (a Sigstore bundle v0.3 signed with a key). */
export const ModelSignatureBundle = Type.Object({
  mediaType: Type.Literal(BUNDLE_MEDIA_TYPE),
  // signed with a key (named by the hint), or with a certificate chain (a workload's X.509-SVID)
  verificationMaterial: Type.Union([
    Type.Object({
      publicKey: Type.Object({ hint: Type.String({ pattern: HEX64 }) }),
      tlogEntries: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 0 })),
    }),
    Type.Object({
      x509CertificateChain: Type.Object({
        certificates: Type.Array(Type.Object({ rawBytes: Type.String({ maxLength: 16_384 }) }), {
          minItems: 1,
          maxItems: 8,
        }),
      }),
      tlogEntries: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 0 })),
    }),
  ]),
  dsseEnvelope: Type.Object({
    payload: Type.String({ maxLength: 32 * 1024 * 1024 }),
    payloadType: Type.Literal(PAYLOAD_TYPE),
    signatures: Type.Array(
      Type.Object({ sig: Type.String({ maxLength: 4096 }), keyid: Type.Optional(Type.String()) }),
      {
        minItems: 1,
        maxItems: 1,
      },
    ),
  }),
});
export type ModelSignatureBundle = Static<typeof ModelSignatureBundle>;

/** What a verified signature says: the model's name and its files, by name. */
export interface SignedManifest {
  model: string;
  serialization: Serialization;
  resources: ModelResource[];
}

/** DSSE's pre-authentication encoding: what is signed (DSSE v1 protocol). */
export function pae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `),
    payload,
  ]);
}

const asPublic = (k: KeyObject | string): KeyObject =>
  typeof k !== 'string' && k.type === 'public' ? k : createPublicKey(k);

/** The hex SHA-256 of a public key's PEM (SPKI): how a bundle names the key that signed it. */
export function keyHint(publicKey: KeyObject | string): string {
  const pem = asPublic(publicKey).export({ type: 'spki', format: 'pem' }) as string;
  return createHash('sha256').update(pem).digest('hex');
}

/** The statement for a model's files (sorted by name, as upstream canonicalizes them). */
export function statementFor(
  model: string,
  resources: ModelResource[],
  serialization: Serialization,
): Statement {
  const sorted = [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const root = createHash('sha256');
  for (const r of sorted) root.update(Buffer.from(r.digest, 'hex'));
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: model, digest: { sha256: root.digest('hex') } }],
    predicateType: PREDICATE_TYPE,
    predicate: { serialization, resources: sorted },
  };
}

/** The bundle around a statement and its signature (DER ECDSA over the PAE). */
export function bundleFor(payload: Buffer, signature: Buffer, hint: string): ModelSignatureBundle {
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
    dsseEnvelope: {
      payload: payload.toString('base64'),
      payloadType: PAYLOAD_TYPE,
      signatures: [{ sig: signature.toString('base64'), keyid: '' }],
    },
  };
}

/** Why a signature is refused: a reason meant for the person who asked. */
export class SignatureRefused extends Error {}

const CURVE_HASH: Record<string, string> = { prime256v1: 'sha256', secp384r1: 'sha384', secp521r1: 'sha512' };

/**
 * Checks a bundle against the public keys allowed to sign (any of them), and returns what it signs.
 * Refuses, with the reason: a malformed bundle, a key not allowed, a signature that does not verify, a
 * statement of another type, resources that do not add up to the subject's digest.
 */
/** The bundle around a statement signed with a certificate chain's leaf key (leaf first, DER). */
export function bundleForChain(
  payload: Buffer,
  signature: Buffer,
  chain: readonly Buffer[],
): ModelSignatureBundle {
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: {
      x509CertificateChain: { certificates: chain.map((c) => ({ rawBytes: c.toString('base64') })) },
      tlogEntries: [],
    },
    dsseEnvelope: {
      payload: payload.toString('base64'),
      payloadType: PAYLOAD_TYPE,
      signatures: [{ sig: signature.toString('base64'), keyid: '' }],
    },
  };
}

/** Who may have signed: public keys, and/or certificate chains up to a trust bundle, for some SPIFFE IDs. */
export interface SignerTrust {
  keys?: readonly (KeyObject | string)[];
  /** PEM certificates: the trust bundle (a SPIFFE trust domain's CA certificates). */
  anchors?: string;
  /** The leaf's SPIFFE ID must be one of these (a trailing `*` matches a prefix); absent: any. */
  spiffeIds?: readonly string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The leaf's key, if the chain leads to one of the anchors and the leaf names an allowed SPIFFE ID. A
 * key-signed bundle carries no trusted time, so the leaf's expiry is not checked (an SVID lives an hour;
 * its signature outlives it): the issuers must be valid now, and the leaf must not be a CA.
 */
function chainKey(
  certsB64: readonly { rawBytes: string }[],
  trust: SignerTrust,
): { key: KeyObject; id: string } {
  let certs: X509Certificate[];
  try {
    certs = certsB64.map((c) => new X509Certificate(Buffer.from(c.rawBytes, 'base64')));
  } catch {
    throw new SignatureRefused('the signature’s certificate chain does not parse');
  }
  const anchors = (trust.anchors?.match(PEM_CERT) ?? []).map((p) => new X509Certificate(p));
  if (anchors.length === 0)
    throw new SignatureRefused('the model was signed with a certificate, and no trust bundle was given');
  const now = Date.now();
  const current = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
  const leaf = certs[0]!;
  if (leaf.ca) throw new SignatureRefused('the signing certificate is a CA certificate, not a workload’s');
  if (Date.parse(leaf.validFrom) > now)
    throw new SignatureRefused('the signing certificate is not valid yet');
  for (let n = 0; n + 1 < certs.length; n++) {
    const [child, parent] = [certs[n]!, certs[n + 1]!];
    if (!parent.ca || !current(parent) || !child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new SignatureRefused(
        `certificate ${n} of the signature’s chain is not issued by the next one (or that one is not a valid CA now)`,
      );
    }
  }
  const top = certs[certs.length - 1]!;
  const anchored = anchors.some(
    (a) =>
      current(a) &&
      (a.fingerprint256 === top.fingerprint256 || (top.checkIssued(a) && top.verify(a.publicKey))),
  );
  if (!anchored)
    throw new SignatureRefused('the signature’s certificate chain does not lead to the trust bundle');
  const id = /URI:(spiffe:\/\/[^,\s]+)/.exec(leaf.subjectAltName ?? '')?.[1];
  if (!id) throw new SignatureRefused('the signing certificate names no SPIFFE ID (URI SAN)');
  const allowed = trust.spiffeIds;
  if (allowed && !allowed.some((p) => (p.endsWith('*') ? id.startsWith(p.slice(0, -1)) : p === id))) {
    throw new SignatureRefused(`the model was signed by ${id}, which is not an allowed signer`);
  }
  return { key: leaf.publicKey, id };
}

export function verifyModelSignature(
  bundle: unknown,
  allowed: readonly (KeyObject | string)[] | SignerTrust,
): SignedManifest & { hint: string; signer: string } {
  const trust: SignerTrust = Array.isArray(allowed) ? { keys: allowed } : (allowed as SignerTrust);
  if (!Value.Check(ModelSignatureBundle, bundle)) {
    throw new SignatureRefused(
      'the signature is not a Sigstore bundle (v0.3) signed with a key or a certificate chain, as model signing v1.0 writes it',
    );
  }
  const material = bundle.verificationMaterial;
  let key: KeyObject;
  let hint: string;
  let signer: string;
  if ('publicKey' in material) {
    hint = material.publicKey.hint;
    const found = (trust.keys ?? []).map(asPublic).find((k) => keyHint(k) === hint);
    if (!found) {
      throw new SignatureRefused(
        `the model was signed by a key that is not allowed (key ${hint.slice(0, 16)}…)`,
      );
    }
    key = found;
    signer = `key ${hint}`;
  } else {
    const c = chainKey(material.x509CertificateChain.certificates, trust);
    key = c.key;
    hint = keyHint(c.key);
    signer = c.id;
  }
  const payload = Buffer.from(bundle.dsseEnvelope.payload, 'base64');
  const sig = Buffer.from(bundle.dsseEnvelope.signatures[0]!.sig, 'base64');
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const hash = key.asymmetricKeyType === 'ec' ? CURVE_HASH[curve ?? ''] : undefined;
  if (!hash)
    throw new SignatureRefused('model signatures are made with an ECDSA key on P-256, P-384 or P-521');
  if (!verifySignature(hash, pae(PAYLOAD_TYPE, payload), key, sig)) {
    throw new SignatureRefused(
      'the signature does not verify: the signed statement was changed, or it was signed by another key',
    );
  }
  let statement: unknown;
  try {
    statement = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new SignatureRefused('the signed payload is not JSON');
  }
  if (!Value.Check(Statement, statement)) {
    throw new SignatureRefused(
      `the signed payload is not an in-toto Statement v1 with predicate ${PREDICATE_TYPE}`,
    );
  }
  const root = createHash('sha256');
  for (const r of statement.predicate.resources) root.update(Buffer.from(r.digest, 'hex'));
  if (root.digest('hex') !== statement.subject[0]!.digest.sha256) {
    throw new SignatureRefused(
      'the signed manifest is inconsistent: its files do not add up to the subject digest',
    );
  }
  return {
    hint,
    signer,
    model: statement.subject[0]!.name,
    serialization: statement.predicate.serialization,
    resources: statement.predicate.resources,
  };
}
