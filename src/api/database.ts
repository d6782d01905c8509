import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, IsoOrNull, Nullable, Strings } from './response-schemas.ts';

/** Wire contract of the database engine (docs/database.md): dynamic PostgreSQL roles under leases. */
const Strict = { additionalProperties: false } as const;

const Name = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_-]*$' });
const Duration = Type.Union([
  Type.Integer({ minimum: 1, maximum: 315_360_000 }),
  Type.String({ minLength: 1, maxLength: 32 }),
]);
const Statement = Type.String({ minLength: 1, maxLength: 8192 });

export const DatabaseParams = Type.Object({ name: Name }, Strict);
export type DatabaseParams = Static<typeof DatabaseParams>;
export const RoleParams = Type.Object({ role: Name }, Strict);
export type RoleParams = Static<typeof RoleParams>;

/** POST /v1/database/config/{name} */
export const DatabaseConfigRequest = Type.Object(
  {
    plugin: Type.Literal('postgresql'),
    /** postgres://host:port/db?sslmode=…, without a password (given apart, and kept in the barrier). */
    connection_url: Type.String({ minLength: 1, maxLength: 2048 }),
    /** The admin role that creates and drops leased roles (needs CREATEROLE). */
    username: Type.String({ minLength: 1, maxLength: 63 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    /** Roles of this engine that may use the connection; ["*"] for all. */
    allowed_roles: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 256 }),
    /** Connect once before saving (default true). */
    verify_connection: Type.Optional(Type.Boolean()),
    max_open_connections: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  },
  Strict,
);
export type DatabaseConfigRequest = Static<typeof DatabaseConfigRequest>;

/** POST /v1/database/roles/{role} */
export const DatabaseRoleRequest = Type.Object(
  {
    /** The connection (`config/{name}`) the role's credentials are made on. */
    db_name: Name,
    /**
     * SQL run in one transaction to make the role. Placeholders: {{name}} (the role, an identifier),
     * {{password}}, {{expiration}} (literals), {{tenant}} (a literal, with `tenant`); inside quotes
     * ('{{password}}', "{{name}}") they are put in as they are (generated values are quote-free).
     */
    creation_statements: Type.Array(Statement, { minItems: 1, maxItems: 32 }),
    /** SQL that ends the role (default: NOLOGIN, end its sessions, drop what it owns, drop it). */
    revocation_statements: Type.Optional(Type.Array(Statement, { maxItems: 32 })),
    /** SQL run on renewal (default: ALTER ROLE {{name}} VALID UNTIL {{expiration}}). */
    renew_statements: Type.Optional(Type.Array(Statement, { maxItems: 32 })),
    default_ttl: Type.Optional(Duration),
    max_ttl: Type.Optional(Duration),
    /**
     * Per-session tenant: credentials then need `tenant`; the role gets `ALTER ROLE … SET <setting> =
     * '<tenant>'` and {{tenant}} in the statements (docs/database.md: grant a tenant role for RLS).
     */
    tenant: Type.Optional(
      Type.Object(
        { setting: Type.String({ pattern: '^[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*$', maxLength: 63 }) },
        Strict,
      ),
    ),
  },
  Strict,
);
export type DatabaseRoleRequest = Static<typeof DatabaseRoleRequest>;

/** POST /v1/database/creds/{role} */
export const DatabaseCredsRequest = Type.Object(
  {
    tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9_]+$' })),
    /** Shorter than the role's default TTL, if wanted. */
    ttl: Type.Optional(Duration),
  },
  Strict,
);
export type DatabaseCredsRequest = Static<typeof DatabaseCredsRequest>;

// ---- responses ----

const ConfigSchema = Type.Object({
  name: Type.String(),
  plugin: Type.String(),
  connection_url: Type.String(),
  username: Type.String(),
  allowed_roles: Strings,
  max_open_connections: Type.Integer(),
  updated_at: Iso,
  root_rotated_at: IsoOrNull,
  /** The leased roles of this connection are named `<role_prefix><lease key>`. */
  role_prefix: Type.String(),
});

const RoleSchema = Type.Object({
  name: Type.String(),
  db_name: Type.String(),
  creation_statements: Strings,
  revocation_statements: Strings,
  renew_statements: Strings,
  default_ttl: Type.Integer(),
  max_ttl: Type.Integer(),
  tenant: Nullable(Type.Object({ setting: Type.String() })),
  updated_at: Iso,
});

/** Vault's shape, so Vault clients read it unchanged. */
const CredsSchema = Type.Object({
  lease_id: Type.String(),
  lease_duration: Type.Integer(),
  renewable: Type.Boolean(),
  data: Type.Object({ username: Type.String(), password: Type.String() }),
});

export type DatabaseCredsResult = Static<typeof CredsSchema>;

const NamesSchema = Type.Object({ names: Strings });
const DeletedSchema = Type.Object({ deleted: Type.Boolean() });
const RotatedSchema = Type.Object({ name: Type.String(), root_rotated_at: Iso });

// ---- operations ----

export const DatabaseConfigWrite = op<DatabaseParams & DatabaseConfigRequest>()(
  'database.config.write',
  ConfigSchema,
);
export const DatabaseConfigRead = op<DatabaseParams>()('database.config.read', ConfigSchema);
export const DatabaseConfigList = op()('database.config.list', NamesSchema);
export const DatabaseConfigDelete = op<DatabaseParams>()('database.config.delete', DeletedSchema);
export const DatabaseRotateRoot = op<DatabaseParams>()('database.rotate-root', RotatedSchema);
export const DatabaseRoleWrite = op<RoleParams & DatabaseRoleRequest>()('database.role.write', RoleSchema);
export const DatabaseRoleRead = op<RoleParams>()('database.role.read', RoleSchema);
export const DatabaseRoleList = op()('database.role.list', NamesSchema);
export const DatabaseRoleDelete = op<RoleParams>()('database.role.delete', DeletedSchema);
export const DatabaseCredsIssue = op<RoleParams & DatabaseCredsRequest>()('database.creds', CredsSchema);
