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

export const EnvironmentCreateRequest = Type.Object({ name: Name }, Strict);

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

export const SecretPutRequest = Type.Object(
  {
    value: Type.String({ maxLength: MAX_SECRET_VALUE_BYTES }),
    metadata: Type.Optional(SecretMetadata),
    cas: Type.Optional(Type.Integer({ minimum: 0 })),
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

export interface SecretReadResponse {
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
  secrets: { name: string; version: number; updated_at: string; deleted: boolean }[];
}

export interface SecretVersionsResponse {
  name: string;
  current_version: number;
  deleted_at: string | null;
  metadata: SecretMetadata;
  versions: {
    version: number;
    created_at: string;
    source: 'write' | 'rollback';
    rolled_back_from?: number;
    destroyed: boolean;
  }[];
}

export interface ErrorBody {
  error: { code: string; message: string; request_id: string };
}
