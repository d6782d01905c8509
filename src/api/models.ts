import { type Static, Type } from 'typebox';
import { ModelSignatureBundle } from './model-signing.ts';
import { op } from './op.ts';
import { Iso, Strings } from './response-schemas.ts';

/**
 * Wire contract of the models engine (docs/models.md): a policy per model says which transit key
 * encrypts its files, who may sign it and which formats it may hold; a release hands out the files'
 * data keys, under a lease, only once the vault has checked the signature, every digest and the
 * formats. The data keys are wrapped by the transit key with the file's path and SHA-256 as associated
 * data (`modelKeyBinding`), so a key opens only for the file it was made for.
 */
const Strict = { additionalProperties: false } as const;
const Name = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_-]*$' });
const Pem = Type.String({ minLength: 1, maxLength: 8192, pattern: '-----BEGIN PUBLIC KEY-----' });

/**
 * The associated data a file's data key is wrapped with (transit encrypt): the model's signed name, the
 * file's path, its plaintext SHA-256 and its encrypted file's SHA-256, so a key opens only for that file
 * of that model, as it was encrypted (the client hashes the encrypted file it holds before it asks).
 */
export const modelKeyBinding = (model: string, path: string, sha256: string, encSha256: string): Buffer =>
  Buffer.from(`strongroom-model-file/v3\n${JSON.stringify([model, path, sha256, encSha256])}`);

export const ModelPolicyParams = Type.Object({ name: Name }, Strict);
export type ModelPolicyParams = Static<typeof ModelPolicyParams>;

/** PUT /v1/models/{name} */
export const ModelPolicyRequest = Type.Object(
  {
    /** The transit key (aes256-gcm96) that wraps the files' data keys: the customer-managed key. */
    key: Name,
    /** The model's name as its signature gives it (the statement's subject); default the policy's name. */
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** Public keys (PEM) allowed to have signed the model (key-signed bundles). */
    signers: Type.Optional(Type.Array(Pem, { maxItems: 16 })),
    /** CA certificates (PEM; a SPIFFE trust bundle) for models signed with a workload's X.509-SVID. */
    trust_bundle: Type.Optional(
      Type.String({ minLength: 1, maxLength: 65_536, pattern: '-----BEGIN CERTIFICATE-----' }),
    ),
    /** With trust_bundle: the SPIFFE IDs allowed to sign (a trailing `*` matches a prefix). */
    spiffe_ids: Type.Optional(
      Type.Array(Type.String({ minLength: 10, maxLength: 2048, pattern: '^spiffe://' }), {
        minItems: 1,
        maxItems: 64,
      }),
    ),
    /** Pickle-based files (.pkl, .pt, .pth, .bin, .ckpt, …) can run code when loaded: refused unless true. */
    allow_pickle: Type.Optional(Type.Boolean()),
    /** How long a release's lease lasts, in seconds (default 3600; at most a day). */
    lease_ttl: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400 })),
    /**
     * The SBOM gate: the model must hold a signed CycloneDX SBOM (`file`, default sbom.cdx.json) and no
     * component of it may be affected by a loaded advisory at or above `fail_on`.
     */
    sbom: Type.Optional(
      Type.Object(
        {
          file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
          fail_on: Type.Union([
            Type.Literal('low'),
            Type.Literal('medium'),
            Type.Literal('high'),
            Type.Literal('critical'),
          ]),
        },
        Strict,
      ),
    ),
  },
  Strict,
);
export type ModelPolicyRequest = Static<typeof ModelPolicyRequest>;

export const ModelFile = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 4096 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    /** The SHA-256 of the encrypted file (FILE.enc): in a release, as the client found it. */
    enc_sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 0 }),
    /** The data key wrapped by the policy's transit key (vault:vN:…), bound to path and sha256. */
    wrapped_key: Type.String({ minLength: 1, maxLength: 512 }),
  },
  Strict,
);
export type ModelFile = Static<typeof ModelFile>;

/** POST /v1/models/{name}/release */
export const ModelReleaseRequest = Type.Object(
  {
    signature: ModelSignatureBundle,
    /** Every file of the encrypted model (its manifest's `files`). */
    files: Type.Array(ModelFile, { minItems: 1, maxItems: 10_000 }),
    /** The SBOM file's plaintext, for a policy with an SBOM gate (its digest must be the signed one). */
    sbom: Type.Optional(Type.String({ maxLength: 8 * 1024 * 1024 })),
  },
  Strict,
);

/** POST /v1/models/advisories: OSV advisories the SBOM gate checks against (docs/sbom.md). */
export const ModelAdvisoriesRequest = Type.Object(
  {
    advisories: Type.Array(
      Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: true }),
      { minItems: 1, maxItems: 2000 },
    ),
  },
  Strict,
);
export type ModelAdvisoriesRequest = Static<typeof ModelAdvisoriesRequest>;
export type ModelReleaseRequest = Static<typeof ModelReleaseRequest>;

const PolicySchema = Type.Object({
  name: Type.String(),
  model: Type.String(),
  key: Type.String(),
  signers: Strings,
  trust_bundle: Type.Optional(Type.String()),
  spiffe_ids: Type.Optional(Strings),
  allow_pickle: Type.Boolean(),
  lease_ttl: Type.Integer(),
  sbom: Type.Optional(Type.Object({ file: Type.String(), fail_on: Type.String() })),
  updated_at: Iso,
});
export type ModelPolicy = Static<typeof PolicySchema>;

export const ModelPolicyWrite = op<ModelPolicyParams & ModelPolicyRequest>()(
  'model.policy.write',
  PolicySchema,
);
export const ModelPolicyRead = op<ModelPolicyParams>()('model.policy.read', PolicySchema);
export const ModelPolicyList = op()('model.policy.list', Type.Object({ names: Strings }));
export const ModelPolicyDelete = op<ModelPolicyParams>()(
  'model.policy.delete',
  Type.Object({ deleted: Type.Boolean() }),
);
export const ModelAdvisoriesLoad = op<ModelAdvisoriesRequest>()(
  'model.advisories.load',
  Type.Object({ stored: Type.Integer(), packages: Type.Integer() }),
);
export const ModelRelease = op<ModelPolicyParams & ModelReleaseRequest>()(
  'model.release',
  Type.Object({
    model: Type.String(),
    lease_id: Type.String(),
    lease_duration: Type.Integer(),
    /** Each file's data key (base64): keep it in memory, never write it. */
    keys: Type.Array(Type.Object({ path: Type.String(), data_key: Type.String() })),
  }),
);
