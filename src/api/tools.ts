import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, Strings } from './response-schemas.ts';

/** Wire contract of the tool registry and per-tool credentials (docs/tools.md). */
const Strict = { additionalProperties: false } as const;

const Name = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_-]*$' });
const Operation = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_.-]*$' });

export const ToolParams = Type.Object({ tool: Name }, Strict);
export type ToolParams = Static<typeof ToolParams>;

/** POST /v1/tools/{tool} */
export const ToolRequest = Type.Object(
  {
    /** What each operation of the tool gets: a role of a credential engine. */
    operations: Type.Record(
      Operation,
      Type.Object(
        {
          engine: Type.Union([Type.Literal('database'), Type.Literal('provider-keys')]),
          role: Name,
        },
        Strict,
      ),
      { minProperties: 1, maxProperties: 64 },
    ),
    /** How long a credential lives, in seconds (default 300; at most 3600): minutes, not hours. */
    ttl: Type.Optional(Type.Integer({ minimum: 60, maximum: 3600 })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  Strict,
);
export type ToolRequest = Static<typeof ToolRequest>;

/** POST /v1/tools/{tool}/credentials */
export const ToolCredentialRequest = Type.Object(
  {
    operation: Operation,
    /** For a database role with a tenant setting. */
    tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9_]+$' })),
  },
  Strict,
);
export type ToolCredentialRequest = Static<typeof ToolCredentialRequest>;

const ToolSchema = Type.Object({
  name: Type.String(),
  operations: Type.Record(Type.String(), Type.Object({ engine: Type.String(), role: Type.String() })),
  ttl: Type.Integer(),
  description: Type.String(),
  updated_at: Iso,
});

const ToolCredentialSchema = Type.Object({
  tool: Type.String(),
  operation: Type.String(),
  lease_id: Type.String(),
  lease_duration: Type.Integer(),
  renewable: Type.Boolean(),
  /** The engine's credential: {username, password} of a database role, {provider, api_key, key_id} of a provider key. */
  data: Type.Object({}, { additionalProperties: Type.String() }),
});

export const ToolWrite = op<ToolParams & ToolRequest>()('tool.write', ToolSchema);
export const ToolRead = op<ToolParams>()('tool.read', ToolSchema);
export const ToolList = op()('tool.list', Type.Object({ names: Strings }));
export const ToolDelete = op<ToolParams>()('tool.delete', Type.Object({ deleted: Type.Boolean() }));
export const ToolCredential = op<ToolParams & ToolCredentialRequest>()(
  'tool.credential',
  ToolCredentialSchema,
);
