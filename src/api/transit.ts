import { type Static, type TSchema, Type } from 'typebox';
import { op } from './op.ts';
import { Strings } from './response-schemas.ts';

/**
 * Wire contract of the transit engine (docs/transit.md): encryption, signatures and HMACs as a service
 * under named, versioned keys that never leave the vault unless made exportable. The routes and the
 * shapes are Vault's (`/v1/transit/…`, answers under `data`, ciphertexts `vault:vN:…`), so Vault's transit
 * clients (hvac, node-vault) work unchanged.
 */
const Strict = { additionalProperties: false } as const;

export const KEY_TYPES = [
  'aes128-gcm96',
  'aes256-gcm96',
  'chacha20-poly1305',
  'ed25519',
  'ecdsa-p256',
  'ecdsa-p384',
  'ecdsa-p521',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
  'hmac',
] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export const HASH_ALGORITHMS = [
  'sha2-224',
  'sha2-256',
  'sha2-384',
  'sha2-512',
  'sha3-224',
  'sha3-256',
  'sha3-384',
  'sha3-512',
] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

/** One of `values` (a JSON Schema enum, so ajv names the allowed values in its message). */
const literals = <T extends readonly string[]>(values: T) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });

/** A key's name: also how a scope names it (`transit/NAME`, docs/access.md). */
const Name = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_-]*$' });
/** Base64 (standard alphabet), as Vault takes plaintext, inputs, contexts and associated data. */
const B64 = (maxLength: number) => Type.String({ maxLength, pattern: '^[A-Za-z0-9+/]*={0,2}$' });
/** Largest plaintext or input of one item, base64: 12 MiB (a 9 MiB value); a request body holds 16 MiB. */
const DATA = 12 * 1024 * 1024;
/** A context, associated data or nonce: at most 1024 bytes (HKDF's `info` limit), in base64. */
const CONTEXT = B64(1368);
const Version = Type.Integer({ minimum: 0, maximum: 1_000_000 });
/** `vault:v<N>:<base64>`: what encrypt, sign and hmac answer. */
const Versioned = Type.String({ minLength: 1, maxLength: DATA + 64 });
const Reference = Type.String({ maxLength: 256 });
const Hash = literals(HASH_ALGORITHMS);
const SignatureAlgorithm = Type.Union([Type.Literal('pss'), Type.Literal('pkcs1v15')]);
const Marshaling = Type.Union([Type.Literal('asn1'), Type.Literal('jws')]);
const SaltLength = Type.Union([
  Type.Literal('auto'),
  Type.Literal('hash'),
  Type.String({ pattern: '^[0-9]{1,3}$' }),
]);
const BATCH = { minItems: 1, maxItems: 1000 } as const;
/**
 * The single-item field beside `batch_input`: hvac always sends it, as null when a batch is given,
 * and Vault then ignores it; so do we.
 */
const Single = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

export const TransitKeyParams = Type.Object({ name: Name }, Strict);
export type TransitKeyParams = Static<typeof TransitKeyParams>;
export const TransitHashParams = Type.Object({ name: Name, hash_algorithm: Hash }, Strict);
export const TransitDatakeyParams = Type.Object(
  { kind: Type.Union([Type.Literal('plaintext'), Type.Literal('wrapped')]), name: Name },
  Strict,
);
export const TransitExportParams = Type.Object(
  {
    key_type: Type.Union([
      Type.Literal('encryption-key'),
      Type.Literal('signing-key'),
      Type.Literal('hmac-key'),
      Type.Literal('public-key'),
    ]),
    name: Name,
    version: Type.Optional(Type.String({ pattern: '^(latest|[1-9][0-9]{0,6})$' })),
  },
  Strict,
);
export type TransitExportParams = Static<typeof TransitExportParams>;
export const TransitListQuery = Type.Object({ list: Type.Optional(Type.String({ maxLength: 8 })) }, Strict);

/** POST /v1/transit/keys/{name} */
export const TransitKeyCreateRequest = Type.Object(
  {
    /** Default aes256-gcm96. */
    type: Type.Optional(literals(KEY_TYPES)),
    /** Whether the key may ever leave the vault (`export/…`). Once true, stays true. Default false. */
    exportable: Type.Optional(Type.Boolean()),
    allow_plaintext_backup: Type.Optional(Type.Boolean()),
    /** Encryption keys derived per `context` (HKDF-SHA256): every call then needs a context. */
    derived: Type.Optional(Type.Boolean()),
    /** Refused: deterministic encryption reveals equal plaintexts (docs/transit.md). */
    convergent_encryption: Type.Optional(Type.Boolean()),
    /** Bytes of an hmac key (default 32; 16 to 512). */
    key_size: Type.Optional(Type.Integer({ minimum: 0, maximum: 512 })),
    /** Accepted as Vault sends it; only "0" (no automatic rotation) for now. */
    auto_rotate_period: Type.Optional(Type.Union([Type.Literal(0), Type.Literal('0'), Type.Literal('0s')])),
    /**
     * Strongroom: each version made and used inside the HSM of the vault's PKCS#11 seal (aes256-gcm96
     * only; never exportable). Encryption then goes through PKCS#11.
     */
    hsm: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type TransitKeyCreateRequest = Static<typeof TransitKeyCreateRequest>;

/** POST /v1/transit/keys/{name}/config */
export const TransitKeyConfigRequest = Type.Object(
  {
    /** Ciphertexts and signatures older than this version are refused (decrypt, rewrap, verify). */
    min_decryption_version: Type.Optional(Version),
    /** The oldest version encrypt may be asked to use (0: only the latest). */
    min_encryption_version: Type.Optional(Version),
    deletion_allowed: Type.Optional(Type.Boolean()),
    exportable: Type.Optional(Type.Boolean()),
    allow_plaintext_backup: Type.Optional(Type.Boolean()),
    auto_rotate_period: Type.Optional(Type.Union([Type.Literal(0), Type.Literal('0'), Type.Literal('0s')])),
  },
  Strict,
);
export type TransitKeyConfigRequest = Static<typeof TransitKeyConfigRequest>;

/** POST /v1/transit/keys/{name}/trim */
export const TransitTrimRequest = Type.Object(
  { min_available_version: Type.Integer({ minimum: 1, maximum: 1_000_000 }) },
  Strict,
);
export type TransitTrimRequest = Static<typeof TransitTrimRequest>;

/** What an encryption or decryption item may add: a derived key's context, associated data, a version. */
const AeadOptions = {
  context: Type.Optional(CONTEXT),
  associated_data: Type.Optional(CONTEXT),
  nonce: Type.Optional(CONTEXT),
  key_version: Type.Optional(Version),
};

const EncryptItem = Type.Object(
  {
    plaintext: B64(DATA),
    ...AeadOptions,
    reference: Type.Optional(Reference),
  },
  Strict,
);
export type EncryptItem = Static<typeof EncryptItem>;

/** POST /v1/transit/encrypt/{name}: one `plaintext` or a `batch_input`. */
export const TransitEncryptRequest = Type.Object(
  {
    plaintext: Single(B64(DATA)),
    ...AeadOptions,
    /** Vault creates a missing key on first encrypt when this names its type (an upsert). */
    type: Type.Optional(literals(KEY_TYPES)),
    convergent_encryption: Type.Optional(Type.Boolean()),
    batch_input: Type.Optional(Type.Array(EncryptItem, BATCH)),
  },
  Strict,
);
export type TransitEncryptRequest = Static<typeof TransitEncryptRequest>;

const DecryptItem = Type.Object(
  {
    ciphertext: Versioned,
    ...AeadOptions,
    reference: Type.Optional(Reference),
  },
  Strict,
);
export type DecryptItem = Static<typeof DecryptItem>;

/** POST /v1/transit/decrypt/{name} and /rewrap/{name}: one `ciphertext` or a `batch_input`. */
export const TransitDecryptRequest = Type.Object(
  {
    ciphertext: Single(Versioned),
    context: Type.Optional(CONTEXT),
    associated_data: Type.Optional(CONTEXT),
    nonce: Type.Optional(CONTEXT),
    /** rewrap: the version to wrap under (default the latest). */
    key_version: Type.Optional(Version),
    batch_input: Type.Optional(Type.Array(DecryptItem, BATCH)),
  },
  Strict,
);
export type TransitDecryptRequest = Static<typeof TransitDecryptRequest>;

/** POST /v1/transit/datakey/{plaintext|wrapped}/{name} */
export const TransitDatakeyRequest = Type.Object(
  {
    context: Type.Optional(CONTEXT),
    nonce: Type.Optional(CONTEXT),
    bits: Type.Optional(Type.Union([Type.Literal(128), Type.Literal(256), Type.Literal(512)])),
    key_version: Type.Optional(Version),
  },
  Strict,
);
export type TransitDatakeyRequest = Static<typeof TransitDatakeyRequest>;

const SignOptions = {
  hash_algorithm: Type.Optional(Hash),
  /** Vault's older name for hash_algorithm. */
  algorithm: Type.Optional(Hash),
  context: Type.Optional(CONTEXT),
  prehashed: Type.Optional(Type.Boolean()),
  signature_algorithm: Type.Optional(SignatureAlgorithm),
  marshaling_algorithm: Type.Optional(Marshaling),
  salt_length: Type.Optional(SaltLength),
};

const SignItem = Type.Object(
  { input: B64(DATA), context: Type.Optional(CONTEXT), reference: Type.Optional(Reference) },
  Strict,
);

/** POST /v1/transit/sign/{name}[/{hash_algorithm}] */
export const TransitSignRequest = Type.Object(
  {
    input: Single(B64(DATA)),
    key_version: Type.Optional(Version),
    ...SignOptions,
    batch_input: Type.Optional(Type.Array(SignItem, BATCH)),
  },
  Strict,
);
export type TransitSignRequest = Static<typeof TransitSignRequest>;

const VerifyItem = Type.Object(
  {
    input: B64(DATA),
    signature: Type.Optional(Versioned),
    hmac: Type.Optional(Versioned),
    context: Type.Optional(CONTEXT),
    reference: Type.Optional(Reference),
  },
  Strict,
);

/** POST /v1/transit/verify/{name}[/{hash_algorithm}]: a `signature` or an `hmac`. */
export const TransitVerifyRequest = Type.Object(
  {
    /** hvac repeats the key's name in the body; the path's wins. */
    name: Type.Optional(Type.String({ maxLength: 63 })),
    input: Single(B64(DATA)),
    signature: Type.Optional(Versioned),
    hmac: Type.Optional(Versioned),
    ...SignOptions,
    batch_input: Type.Optional(Type.Array(VerifyItem, BATCH)),
  },
  Strict,
);
export type TransitVerifyRequest = Static<typeof TransitVerifyRequest>;

const HmacItem = Type.Object({ input: B64(DATA), reference: Type.Optional(Reference) }, Strict);

/** POST /v1/transit/hmac/{name}[/{algorithm}] */
export const TransitHmacRequest = Type.Object(
  {
    input: Single(B64(DATA)),
    key_version: Type.Optional(Version),
    algorithm: Type.Optional(Hash),
    hash_algorithm: Type.Optional(Hash),
    batch_input: Type.Optional(Type.Array(HmacItem, BATCH)),
  },
  Strict,
);
export type TransitHmacRequest = Static<typeof TransitHmacRequest>;

/** POST /v1/transit/random[/{bytes}] */
export const TransitRandomRequest = Type.Object(
  {
    bytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 131_072 })),
    format: Type.Optional(Type.Union([Type.Literal('base64'), Type.Literal('hex')])),
  },
  Strict,
);
export type TransitRandomRequest = Static<typeof TransitRandomRequest>;
export const TransitRandomParams = Type.Object(
  { bytes: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,5}$' })) },
  Strict,
);

/** POST /v1/transit/hash[/{algorithm}] */
export const TransitHashRequest = Type.Object(
  {
    input: B64(DATA),
    algorithm: Type.Optional(Hash),
    format: Type.Optional(Type.Union([Type.Literal('base64'), Type.Literal('hex')])),
  },
  Strict,
);
export type TransitHashRequest = Static<typeof TransitHashRequest>;

// --- answers: Vault's, under `data` ---

const Data = <T extends Parameters<typeof Type.Object>[0]>(fields: T) =>
  Type.Object({ data: Type.Object(fields) });

/** One item of a batch answer: what the single call answers, or `error`. */
const BatchItem = Type.Object({
  ciphertext: Type.Optional(Type.String()),
  plaintext: Type.Optional(Type.String()),
  signature: Type.Optional(Type.String()),
  hmac: Type.Optional(Type.String()),
  valid: Type.Optional(Type.Boolean()),
  key_version: Type.Optional(Type.Integer()),
  reference: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
});
export type BatchItem = Static<typeof BatchItem>;
const Batch = { batch_results: Type.Optional(Type.Array(BatchItem)) };

const KeyInfoSchema = Data({
  name: Type.String(),
  type: Type.String(),
  /** Per version: its creation time in Unix seconds, or for a key pair {public_key, name, creation_time}. */
  keys: Type.Record(Type.String(), Type.Unknown()),
  latest_version: Type.Integer(),
  min_available_version: Type.Integer(),
  min_decryption_version: Type.Integer(),
  min_encryption_version: Type.Integer(),
  deletion_allowed: Type.Boolean(),
  derived: Type.Boolean(),
  exportable: Type.Boolean(),
  allow_plaintext_backup: Type.Boolean(),
  supports_encryption: Type.Boolean(),
  supports_decryption: Type.Boolean(),
  supports_derivation: Type.Boolean(),
  supports_signing: Type.Boolean(),
  auto_rotate_period: Type.Integer(),
  imported_key: Type.Boolean(),
  /** Strongroom: the key's versions live in the HSM. */
  hsm: Type.Boolean(),
});
export type TransitKeyInfo = Static<typeof KeyInfoSchema>;

export const TransitKeyCreate = op<TransitKeyParams & TransitKeyCreateRequest>()(
  'transit.key.create',
  KeyInfoSchema,
);
export const TransitKeyRead = op<TransitKeyParams>()('transit.key.read', KeyInfoSchema);
export const TransitKeyList = op()('transit.key.list', Data({ keys: Strings }));
export const TransitKeyDelete = op<TransitKeyParams>()(
  'transit.key.delete',
  Type.Object({ deleted: Type.Boolean() }),
);
export const TransitKeyConfig = op<TransitKeyParams & TransitKeyConfigRequest>()(
  'transit.key.config',
  KeyInfoSchema,
);
export const TransitKeyRotate = op<TransitKeyParams>()('transit.key.rotate', KeyInfoSchema);
export const TransitKeyTrim = op<TransitKeyParams & TransitTrimRequest>()('transit.key.trim', KeyInfoSchema);
export const TransitKeyExport = op<TransitExportParams>()(
  'transit.key.export',
  Data({ name: Type.String(), type: Type.String(), keys: Type.Record(Type.String(), Type.String()) }),
);

export const TransitEncrypt = op<TransitKeyParams & TransitEncryptRequest>()(
  'transit.encrypt',
  Data({ ciphertext: Type.Optional(Type.String()), key_version: Type.Optional(Type.Integer()), ...Batch }),
);
export const TransitDecrypt = op<TransitKeyParams & TransitDecryptRequest>()(
  'transit.decrypt',
  Data({ plaintext: Type.Optional(Type.String()), ...Batch }),
);
export const TransitRewrap = op<TransitKeyParams & TransitDecryptRequest>()(
  'transit.rewrap',
  Data({ ciphertext: Type.Optional(Type.String()), key_version: Type.Optional(Type.Integer()), ...Batch }),
);
export const TransitDatakey = op<
  TransitKeyParams & TransitDatakeyRequest & { kind: 'plaintext' | 'wrapped' }
>()(
  'transit.datakey',
  Data({ plaintext: Type.Optional(Type.String()), ciphertext: Type.String(), key_version: Type.Integer() }),
);
export const TransitSign = op<TransitKeyParams & TransitSignRequest>()(
  'transit.sign',
  Data({ signature: Type.Optional(Type.String()), key_version: Type.Optional(Type.Integer()), ...Batch }),
);
export const TransitVerify = op<TransitKeyParams & TransitVerifyRequest>()(
  'transit.verify',
  Data({ valid: Type.Optional(Type.Boolean()), ...Batch }),
);
export const TransitHmac = op<TransitKeyParams & TransitHmacRequest>()(
  'transit.hmac',
  Data({ hmac: Type.Optional(Type.String()), key_version: Type.Optional(Type.Integer()), ...Batch }),
);
export const TransitRandom = op<TransitRandomRequest>()(
  'transit.random',
  Data({ random_bytes: Type.String() }),
);
export const TransitHash = op<TransitHashRequest>()('transit.hash', Data({ sum: Type.String() }));
