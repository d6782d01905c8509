import { type Static, Type } from 'typebox';

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

export interface SealStatusResponse {
  type: 'shamir' | 'static';
  initialized: boolean;
  sealed: boolean;
  t: number;
  n: number;
  progress: number;
}

export interface InitResponse {
  keys: string[];
  keys_base64: string[];
  root_token: string;
}

export interface KeyStatusResponse {
  term: number;
  terms: number;
  installed_at: string;
}

export interface Project {
  name: string;
  created_at: string;
  environments: string[];
}

export interface SecretWriteResponse {
  version: number;
  created_at: string;
}

export interface SecretFieldsResponse {
  provider: string | null;
  owner: string | null;
  expires_at: string | null;
  rotation: { interval: number; grace: number; adapter?: string; options?: Record<string, string> } | null;
  tags: string[];
  last_rotated_at: string | null;
  /** Why the last rotation failed (sanitised); present only while rotation is failing (docs/rotation.md). */
  last_rotation_error?: string | null;
  /** When a failed rotation is retried. */
  next_rotation_attempt_at?: string | null;
}

export interface SecretReadResponse extends SecretFieldsResponse {
  name: string;
  value: string;
  version: number;
  current_version: number;
  metadata: SecretMetadata;
  created_at: string;
}

export interface SecretListResponse {
  project: string;
  env: string;
  secrets: {
    name: string;
    version: number;
    updated_at: string;
    deleted: boolean;
    provider: string | null;
    tags: string[];
    expires_at: string | null;
  }[];
}

export interface SecretVersionsResponse extends SecretFieldsResponse {
  name: string;
  current_version: number;
  deleted_at: string | null;
  metadata: SecretMetadata;
  versions: {
    version: number;
    created_at: string;
    source: 'write' | 'rollback' | 'rotation';
    rolled_back_from?: number;
    destroyed: boolean;
  }[];
}

export interface AuthResponse {
  auth: {
    client_token: string;
    accessor: string;
    policies: string[];
    ttl: number;
    renewable: boolean;
    expires_at: string | null;
    num_uses: number;
    scope: Scope | null;
  };
}

export interface TokenInfo {
  accessor: string;
  display_name: string;
  policies: string[];
  owner: { type: 'root' | 'user' | 'app' | 'token'; id: string; name: string };
  scope: Scope | null;
  mfa: boolean;
  created_at: string;
  expires_at: string | null;
  max_expires_at: string | null;
  ttl: number;
  renewable: boolean;
  num_uses: number;
  parent: string | null;
  meta: Record<string, string>;
}

export interface PolicyTestResponse {
  decision: 'allow' | 'deny';
  reason: string;
  policies: string[];
  errors: string[];
}

export interface ErrorBody {
  error: { code: string; message: string; request_id: string };
}
