import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, IsoOrNull, Nullable, Strings } from './response-schemas.ts';

/**
 * The wire contract of the v1 HTTP API: request schemas (validated by the
 * server, with unknown fields refused) and the response shapes the SDK and CLI
 * rely on. Imported by server, sdk and cli alike.
 */
const Strict = { additionalProperties: false } as const;

export const MAX_SECRET_VALUE_BYTES = 64 * 1024;

export const Name = Type.String({ minLength: 1, maxLength: 200 });

export const InitRequest = Type.Object(
  {
    secret_shares: Type.Optional(Type.Integer({ minimum: 1, maximum: 255 })),
    secret_threshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 255 })),
    /** An HSM (pkcs11) seal: how many recovery keys, and how many make a quorum (default 5 and 3). */
    recovery_shares: Type.Optional(Type.Integer({ minimum: 1, maximum: 255 })),
    recovery_threshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 255 })),
  },
  Strict,
);
export type InitRequest = Static<typeof InitRequest>;

export const UnsealRequest = Type.Object(
  { key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })), reset: Type.Optional(Type.Boolean()) },
  Strict,
);
export type UnsealRequest = Static<typeof UnsealRequest>;

export const ProjectCreateRequest = Type.Object(
  { name: Name, environments: Type.Optional(Type.Array(Name, { minItems: 1, maxItems: 50 })) },
  Strict,
);
export type ProjectCreateRequest = Static<typeof ProjectCreateRequest>;

export const EnvironmentCreateRequest = Type.Object(
  { name: Name, production: Type.Optional(Type.Boolean()) },
  Strict,
);

// additionalProperties: without it a key outside the pattern escapes validation (and its value may be any type)
export const SecretMetadata = Type.Record(
  Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
  Type.String({ maxLength: 1024 }),
  {
    maxProperties: 64,
    additionalProperties: false,
  },
);
export type SecretMetadata = Static<typeof SecretMetadata>;

const Slug = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' });
const DurationIn = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 0, maximum: 315360000 }),
]);

const RotationSettings = Type.Object(
  {
    interval: DurationIn,
    grace: Type.Optional(DurationIn),
    adapter: Type.Optional(Type.Union([Type.Literal('openai'), Type.Literal('openrouter')])),
    options: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z_]{1,32}$' }), Type.String({ maxLength: 300 }), {
        maxProperties: 16,
        additionalProperties: false,
      }),
    ),
  },
  Strict,
);

/** Fields describing a secret besides its value: absent keeps the current setting, null clears it. */
export const SecretFields = {
  provider: Type.Optional(Type.Union([Slug, Type.Null()])),
  owner: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Null()])),
  expires_at: Type.Optional(Type.Union([Type.String({ minLength: 10, maxLength: 40 }), Type.Null()])),
  rotation: Type.Optional(Type.Union([RotationSettings, Type.Null()])),
  tags: Type.Optional(Type.Union([Type.Array(Slug, { maxItems: 32 }), Type.Null()])),
};

export const SecretPutRequest = Type.Object(
  {
    value: Type.String({ maxLength: MAX_SECRET_VALUE_BYTES }),
    metadata: Type.Optional(SecretMetadata),
    cas: Type.Optional(Type.Integer({ minimum: 0 })),
    ...SecretFields,
    force: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type SecretPutRequest = Static<typeof SecretPutRequest>;

export const SecretRollbackRequest = Type.Object({ version: Type.Integer({ minimum: 1 }) }, Strict);

export const VersionQuery = Type.Object(
  { version: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,9}$' })) },
  Strict,
);
export const DeleteQuery = Type.Object(
  { destroy: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) },
  Strict,
);

export const ProjectParams = Type.Object({ project: Name }, Strict);
export const EnvParams = Type.Object({ project: Name, env: Name }, Strict);
export const SecretParams = Type.Object({ project: Name, env: Name, name: Name }, Strict);

// ---- tokens ----

const Duration = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 0, maximum: 315360000 }),
]);
const RoleName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' });

export const Scope = Type.Object(
  {
    paths: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { minItems: 1, maxItems: 100 }),
    ),
    providers: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 50 }),
    ),
    /**
     * Dynamic credentials a scoped token may ask for: `database/creds/ROLE`, `provider-keys/creds/ROLE`,
     * `tools/TOOL` (a name may end in `*`). A scoped token without it asks for none.
     */
    credentials: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100 }),
    ),
  },
  Strict,
);
export type Scope = Static<typeof Scope>;

export const TokenCreateRequest = Type.Object(
  {
    roles: Type.Optional(Type.Array(RoleName, { maxItems: 50 })),
    policies: Type.Optional(Type.Array(RoleName, { maxItems: 50 })),
    ttl: Type.Optional(Duration),
    explicit_max_ttl: Type.Optional(Duration),
    renewable: Type.Optional(Type.Boolean()),
    num_uses: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    scope: Type.Optional(Scope),
    meta: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }), Type.String({ maxLength: 512 }), {
        maxProperties: 32,
        additionalProperties: false,
      }),
    ),
    display_name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  Strict,
);
export type TokenCreateRequest = Static<typeof TokenCreateRequest>;

export const TokenRenewRequest = Type.Object({ increment: Type.Optional(Duration) }, Strict);
export const TokenValueRequest = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 256 }) },
  Strict,
);
export const AccessorRequest = Type.Object(
  { accessor: Type.String({ minLength: 1, maxLength: 64 }) },
  Strict,
);

// ---- policies ----

export const PolicyPutRequest = Type.Object(
  { policy: Type.String({ minLength: 1, maxLength: 65536 }) },
  Strict,
);
export const PolicyParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }, Strict);
export const PolicyTestRequest = Type.Object(
  {
    accessor: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    principal: Type.Optional(
      Type.Object(
        {
          roles: Type.Array(RoleName, { maxItems: 50 }),
          user: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
          app: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
          mfa: Type.Optional(Type.Boolean()),
        },
        Strict,
      ),
    ),
    action: Type.String({ minLength: 1, maxLength: 64 }),
    resource: Type.String({ minLength: 1, maxLength: 400 }),
    resource_attrs: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[a-z_]{1,32}$' }),
        Type.Union([
          Type.String({ maxLength: 256 }),
          Type.Boolean(),
          Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 }),
        ]),
        { maxProperties: 16, additionalProperties: false },
      ),
    ),
    client_address: Type.Optional(Type.String({ minLength: 2, maxLength: 45 })),
  },
  Strict,
);
export type PolicyTestRequest = Static<typeof PolicyTestRequest>;

// ---- responses ----
// Schemas of successful response bodies: the server serializes each body with its schema (a field the
// schema does not name is never sent), /v1/openapi.json documents them, and the SDK's types are theirs.

const StringMap = Type.Record(Type.String(), Type.String());

export const SealStatusResponse = Type.Object({
  type: Type.Union([Type.Literal('shamir'), Type.Literal('static'), Type.Literal('pkcs11')]),
  initialized: Type.Boolean(),
  sealed: Type.Boolean(),
  t: Type.Integer(),
  n: Type.Integer(),
  progress: Type.Integer(),
  /** An HSM seal: people hold recovery keys, which never unseal (Vault's field). */
  recovery_seal: Type.Boolean(),
});
export type SealStatusResponse = Static<typeof SealStatusResponse>;

export const InitResponse = Type.Object({
  keys: Strings,
  keys_base64: Strings,
  /** An HSM (pkcs11) seal: Shamir shares of the recovery key (empty otherwise). */
  recovery_keys: Strings,
  recovery_keys_base64: Strings,
  root_token: Type.String(),
});
export type InitResponse = Static<typeof InitResponse>;

const KeyRotateResponse = Type.Object({ term: Type.Integer(), installed_at: Iso });

export const KeyStatusResponse = Type.Object({
  term: Type.Integer(),
  terms: Type.Integer(),
  installed_at: Iso,
});
export type KeyStatusResponse = Static<typeof KeyStatusResponse>;

export const Project = Type.Object({ name: Type.String(), created_at: Iso, environments: Strings });
export type Project = Static<typeof Project>;
const ProjectListResponse = Type.Object({ projects: Type.Array(Project) });
const EnvironmentResponse = Type.Object({
  project: Type.String(),
  name: Type.String(),
  production: Type.Boolean(),
  created_at: Iso,
});

export const SecretWriteResponse = Type.Object({
  version: Type.Integer(),
  created_at: Iso,
  /** A hint about the value (e.g. which provider it looks like), never the value. */
  hint: Type.Optional(Type.String()),
});
export type SecretWriteResponse = Static<typeof SecretWriteResponse>;
const SecretRollbackResponse = Type.Object({
  version: Type.Integer(),
  created_at: Iso,
  rolled_back_from: Type.Integer(),
});
const SecretDeleteResponse = Type.Object({
  name: Type.String(),
  deleted_at: Iso,
  destroyed: Type.Boolean(),
});
const SecretRestoreResponse = Type.Object({ name: Type.String(), version: Type.Integer() });

/** A secret's rotation settings as stored: seconds, and the adapter and its options when set. */
export const RotationSettingsOut = Type.Object({
  interval: Type.Integer(),
  grace: Type.Integer(),
  adapter: Type.Optional(Type.String()),
  options: Type.Optional(StringMap),
});
/** The fields of a secret besides its value and versions. */
const SecretFieldsOut = {
  provider: Nullable(Type.String()),
  owner: Nullable(Type.String()),
  expires_at: IsoOrNull,
  rotation: Nullable(RotationSettingsOut),
  tags: Strings,
  last_rotated_at: IsoOrNull,
  /** Why the last rotation failed (sanitised); present only while rotation is failing (docs/rotation.md). */
  last_rotation_error: Type.Optional(Nullable(Type.String())),
  /** When a failed rotation is retried. */
  next_rotation_attempt_at: Type.Optional(IsoOrNull),
};
const SecretFieldsResponse = Type.Object(SecretFieldsOut);
export type SecretFieldsResponse = Static<typeof SecretFieldsResponse>;
const MetadataOut = Type.Record(Type.String(), Type.String());

export const SecretReadResponse = Type.Object({
  name: Type.String(),
  value: Type.String(),
  version: Type.Integer(),
  current_version: Type.Integer(),
  metadata: MetadataOut,
  ...SecretFieldsOut,
  created_at: Iso,
});
export type SecretReadResponse = Static<typeof SecretReadResponse>;

export const SecretListResponse = Type.Object({
  project: Type.String(),
  env: Type.String(),
  secrets: Type.Array(
    Type.Object({
      name: Type.String(),
      version: Type.Integer(),
      updated_at: Iso,
      deleted: Type.Boolean(),
      provider: Nullable(Type.String()),
      tags: Strings,
      expires_at: IsoOrNull,
    }),
  ),
});
export type SecretListResponse = Static<typeof SecretListResponse>;

export const SecretVersionsResponse = Type.Object({
  name: Type.String(),
  current_version: Type.Integer(),
  deleted_at: IsoOrNull,
  metadata: MetadataOut,
  ...SecretFieldsOut,
  versions: Type.Array(
    Type.Object({
      version: Type.Integer(),
      created_at: Iso,
      source: Type.Union([Type.Literal('write'), Type.Literal('rollback'), Type.Literal('rotation')]),
      rolled_back_from: Type.Optional(Type.Integer()),
      destroyed: Type.Boolean(),
    }),
  ),
});
export type SecretVersionsResponse = Static<typeof SecretVersionsResponse>;

const ScopeOut = Nullable(
  Type.Object({
    paths: Type.Optional(Strings),
    providers: Type.Optional(Strings),
    credentials: Type.Optional(Strings),
  }),
);

export const AuthResponse = Type.Object({
  auth: Type.Object({
    client_token: Type.String(),
    accessor: Type.String(),
    policies: Strings,
    ttl: Type.Integer(),
    renewable: Type.Boolean(),
    expires_at: IsoOrNull,
    num_uses: Type.Integer(),
    scope: ScopeOut,
  }),
});
export type AuthResponse = Static<typeof AuthResponse>;

const TokenRenewResponse = Type.Object({
  auth: Type.Object({
    accessor: Type.String(),
    policies: Strings,
    expires_at: IsoOrNull,
    renewable: Type.Boolean(),
    ttl: Type.Integer(),
  }),
});

export const TokenInfo = Type.Object({
  accessor: Type.String(),
  display_name: Type.String(),
  policies: Strings,
  owner: Type.Object({
    type: Type.Union([
      Type.Literal('root'),
      Type.Literal('user'),
      Type.Literal('app'),
      Type.Literal('token'),
      Type.Literal('workload'),
    ]),
    id: Type.String(),
    name: Type.String(),
  }),
  scope: ScopeOut,
  mfa: Type.Boolean(),
  created_at: Iso,
  expires_at: IsoOrNull,
  max_expires_at: IsoOrNull,
  ttl: Type.Integer(),
  renewable: Type.Boolean(),
  num_uses: Type.Integer(),
  parent: Nullable(Type.String()),
  meta: StringMap,
});
export type TokenInfo = Static<typeof TokenInfo>;
const TokenInfoResponse = Type.Object({ data: TokenInfo });
const RevokedResponse = Type.Object({ revoked: Type.Integer() });

const PolicyPutResponse = Type.Object({ name: Type.String(), policies: Type.Integer() });
const PolicyResponse = Type.Object({ name: Type.String(), policy: Type.String() });
const PolicyListResponse = Type.Object({ policies: Strings });
const PolicyDeleteResponse = Type.Object({ deleted: Type.String() });
export const PolicyTestResponse = Type.Object({
  decision: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
  reason: Type.String(),
  policies: Strings,
  errors: Strings,
});
export type PolicyTestResponse = Static<typeof PolicyTestResponse>;

export interface ErrorBody {
  error: { code: string; message: string; request_id: string };
}

// ---- operations ----
// Each operation of the core API, by the object routes, engines, the SDK and the CLI name it with.

type Empty = Record<string, never>;
type SecretAddress = Static<typeof SecretParams>;

export const SysSealStatus = op<Empty>()('sys.seal-status', SealStatusResponse);
export const SysInit = op<InitRequest>()('sys.init', InitResponse);
export const SysUnseal = op<UnsealRequest>()('sys.unseal', SealStatusResponse);
export const SysSeal = op<Empty>()('sys.seal', SealStatusResponse);
export const SysRotate = op<Empty>()('sys.rotate', KeyRotateResponse);
export const SysKeyStatus = op<Empty>()('sys.key-status', KeyStatusResponse);

export const ProjectCreate = op<ProjectCreateRequest>()('project.create', Project);
export const ProjectList = op<Empty>()('project.list', ProjectListResponse);
export const ProjectRead = op<Static<typeof ProjectParams>>()('project.read', Project);
export const EnvironmentCreate = op<Static<typeof ProjectParams> & Static<typeof EnvironmentCreateRequest>>()(
  'environment.create',
  EnvironmentResponse,
);

export const SecretList = op<Static<typeof EnvParams>>()('secret.list', SecretListResponse);
export const SecretWrite = op<SecretAddress & SecretPutRequest>()('secret.write', SecretWriteResponse);
export const SecretRead = op<SecretAddress & { version?: number }>()('secret.read', SecretReadResponse);
export const SecretVersions = op<SecretAddress>()('secret.versions', SecretVersionsResponse);
export const SecretRollback = op<SecretAddress & Static<typeof SecretRollbackRequest>>()(
  'secret.rollback',
  SecretRollbackResponse,
);
export const SecretDelete = op<SecretAddress>()('secret.delete', SecretDeleteResponse);
export const SecretDestroy = op<SecretAddress>()('secret.destroy', SecretDeleteResponse);
export const SecretRestore = op<SecretAddress>()('secret.restore', SecretRestoreResponse);

export const TokenCreate = op<TokenCreateRequest>()('token.create', AuthResponse);
export const TokenLookupSelf = op<Empty>()('token.lookup-self', TokenInfoResponse);
export const TokenRenewSelf = op<Static<typeof TokenRenewRequest>>()('token.renew-self', TokenRenewResponse);
export const TokenRevokeSelf = op<Empty>()('token.revoke-self', RevokedResponse);
export const TokenRevoke = op<Static<typeof TokenValueRequest>>()('token.revoke', RevokedResponse);
export const TokenRevokeAccessor = op<Static<typeof AccessorRequest>>()(
  'token.revoke-accessor',
  RevokedResponse,
);
export const TokenLookupAccessor = op<Static<typeof AccessorRequest>>()(
  'token.lookup-accessor',
  TokenInfoResponse,
);

export const PolicyList = op<Empty>()('policy.list', PolicyListResponse);
export const PolicyPut = op<Static<typeof PolicyParams> & Static<typeof PolicyPutRequest>>()(
  'policy.put',
  PolicyPutResponse,
);
export const PolicyGet = op<Static<typeof PolicyParams>>()('policy.get', PolicyResponse);
export const PolicyDelete = op<Static<typeof PolicyParams>>()('policy.delete', PolicyDeleteResponse);
export const PolicyTest = op<PolicyTestRequest>()('policy.test', PolicyTestResponse);
