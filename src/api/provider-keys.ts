import { type Static, Type } from 'typebox';
import { BudgetLimits, KeyScope } from './gateway.ts';
import { op } from './op.ts';
import { Iso, Strings } from './response-schemas.ts';

/** Wire contract of per-lease LLM provider keys (docs/provider-keys.md). */
const Strict = { additionalProperties: false } as const;

const Name = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_-]*$' });
const Duration = Type.Union([
  Type.Integer({ minimum: 60, maximum: 315_360_000 }),
  Type.String({ minLength: 1, maxLength: 32 }),
]);

export const ProviderRoleParams = Type.Object({ role: Name }, Strict);
export type ProviderRoleParams = Static<typeof ProviderRoleParams>;

/** POST /v1/provider-keys/roles/{role} */
export const ProviderRoleRequest = Type.Object(
  {
    /** The provider whose management API mints a key per lease. */
    provider: Type.Union([Type.Literal('openai'), Type.Literal('openrouter'), Type.Literal('gateway')]),
    /** The vault secret holding the admin / provisioning key: PROJECT/ENV/NAME. */
    admin_secret: Type.Optional(
      Type.String({
        minLength: 5,
        maxLength: 256,
        pattern: '^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*/[A-Za-z_][A-Za-z0-9_.-]*$',
      }),
    ),
    /**
     * `gateway` (a gateway virtual key per lease, for providers with no key-minting API: Anthropic and
     * others; the gateway injects the real key, the lease holds only the virtual one): what each
     * lease's key may call (providers, models) and its budgets.
     */
    key_scope: Type.Optional(KeyScope),
    key_limits: Type.Optional(BudgetLimits),
    /** OpenAI: the project (proj_…) whose service account each lease gets. */
    project_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' })),
    /** OpenRouter: the credit limit (USD) of each lease's key. */
    limit: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 })),
    default_ttl: Type.Optional(Duration),
    max_ttl: Type.Optional(Duration),
  },
  Strict,
);
export type ProviderRoleRequest = Static<typeof ProviderRoleRequest>;

/** POST /v1/provider-keys/creds/{role} */
export const ProviderCredsRequest = Type.Object({ ttl: Type.Optional(Duration) }, Strict);
export type ProviderCredsRequest = Static<typeof ProviderCredsRequest>;

const RoleSchema = Type.Object({
  name: Type.String(),
  provider: Type.String(),
  admin_secret: Type.Union([Type.String(), Type.Null()]),
  key_scope: Type.Union([KeyScope, Type.Null()]),
  key_limits: Type.Union([BudgetLimits, Type.Null()]),
  project_id: Type.Union([Type.String(), Type.Null()]),
  limit: Type.Union([Type.Number(), Type.Null()]),
  default_ttl: Type.Integer(),
  max_ttl: Type.Integer(),
  updated_at: Iso,
});

const CredsSchema = Type.Object({
  lease_id: Type.String(),
  lease_duration: Type.Integer(),
  /** OpenRouter keys carry their expiry at the provider: they are not renewed. */
  renewable: Type.Boolean(),
  data: Type.Object({
    provider: Type.String(),
    api_key: Type.String(),
    /** The provider's id of the key (service account id, key hash): not a secret. */
    key_id: Type.String(),
  }),
});

export const ProviderRoleWrite = op<ProviderRoleParams & ProviderRoleRequest>()(
  'provider-key.role.write',
  RoleSchema,
);
export const ProviderRoleRead = op<ProviderRoleParams>()('provider-key.role.read', RoleSchema);
export const ProviderRoleList = op()('provider-key.role.list', Type.Object({ names: Strings }));
export const ProviderRoleDelete = op<ProviderRoleParams>()(
  'provider-key.role.delete',
  Type.Object({ deleted: Type.Boolean() }),
);
export const ProviderCreds = op<ProviderRoleParams & ProviderCredsRequest>()(
  'provider-key.creds',
  CredsSchema,
);
