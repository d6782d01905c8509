import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, Nullable } from './response-schemas.ts';
import type { EnvParams, SecretParams } from './v1.ts';

/**
 * Wire contract of the usage analytics API (docs/usage.md): who read which
 * secret, how often and when last. Counts are kept per hour, so `since` and
 * `until` select whole hours (an hour is included when it overlaps the range).
 */
const Strict = { additionalProperties: false } as const;

/** An ISO 8601 time, or a duration before now (`90s`, `15m`, `1h`, `7d`). */
const TimeBound = Type.String({ minLength: 1, maxLength: 40, pattern: '^[0-9A-Za-z:.+-]+$' });

// the literals written out: a union built by mapping an array has the static type `never`
const Grouping = Type.Union([Type.Literal('secret'), Type.Literal('actor'), Type.Literal('hour')]);
export type UsageGrouping = Static<typeof Grouping>;
export const USAGE_GROUPINGS: readonly UsageGrouping[] = ['secret', 'actor', 'hour'];

export const UsageQuery = Type.Object(
  {
    since: Type.Optional(TimeBound),
    until: Type.Optional(TimeBound),
    by: Type.Optional(Grouping),
    /** One secret, for a secret whose name is a word the URL reserves (`unused`). */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  Strict,
);
export type UsageQuery = Static<typeof UsageQuery>;

export const MAX_UNUSED_DAYS = 3650;

export const UnusedQuery = Type.Object(
  { days: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })) },
  Strict,
);

// ---- responses ----
// Schemas of successful response bodies: the server serializes each body with its schema (a field the
// schema does not name is never sent), /v1/openapi.json documents them, and the SDK's types are theirs.

/** Who read: the token's owner, `app:<client_id>`, `user:<id>`, `token:<accessor>` or `root:root`. */
const ActorRefFields = {
  actor: Type.String(),
  type: Type.String(),
  id: Type.String(),
  display_name: Type.String(),
};
const ActorRefSchema = Type.Object(ActorRefFields);
export type UsageActorRef = Static<typeof ActorRefSchema>;

const CountFields = {
  count: Type.Integer(),
  /** The last read within the range (ISO 8601). */
  last_read_at: Iso,
};

const UsageBySecretRowSchema = Type.Object({
  name: Type.String(),
  ...CountFields,
  actors: Type.Array(Type.Object({ ...ActorRefFields, ...CountFields })),
});
export type UsageBySecretRow = Static<typeof UsageBySecretRowSchema>;

const UsageByActorRowSchema = Type.Object({
  ...ActorRefFields,
  ...CountFields,
  secrets: Type.Array(Type.Object({ name: Type.String(), ...CountFields })),
});
export type UsageByActorRow = Static<typeof UsageByActorRowSchema>;

const UsageByHourRowSchema = Type.Object({
  /** Start of the hour (UTC). */
  hour: Iso,
  count: Type.Integer(),
  actors: Type.Array(Type.Object({ ...ActorRefFields, count: Type.Integer() })),
  secrets: Type.Array(Type.Object({ name: Type.String(), count: Type.Integer() })),
});
export type UsageByHourRow = Static<typeof UsageByHourRowSchema>;

const UsageResponseSchema = Type.Object({
  project: Type.String(),
  env: Type.String(),
  /** The one secret asked about, or null for the whole environment. */
  name: Nullable(Type.String()),
  /** The hours covered: from the start of the first to the end of the last. */
  since: Iso,
  until: Iso,
  by: Grouping,
  /** Whether this server records reads (false when `usage.enabled` is off: stored counts only). */
  recording: Type.Boolean(),
  /** Reads in the range, over the rows shown. */
  total: Type.Integer(),
  /** One kind of row, as `by` says. */
  rows: Type.Union([
    Type.Array(UsageBySecretRowSchema),
    Type.Array(UsageByActorRowSchema),
    Type.Array(UsageByHourRowSchema),
  ]),
});
export type UsageResponse = Static<typeof UsageResponseSchema>;

const UnusedSecretSchema = Type.Object({
  name: Type.String(),
  created_at: Iso,
  /** The last read ever recorded, or null when it was never read. */
  last_read_at: Nullable(Iso),
  provider: Nullable(Type.String()),
  owner: Nullable(Type.String()),
});
export type UnusedSecret = Static<typeof UnusedSecretSchema>;

const UnusedResponseSchema = Type.Object({
  project: Type.String(),
  env: Type.String(),
  days: Type.Integer(),
  /** Secrets not read since this time (and, if never read, created before it). */
  cutoff: Iso,
  recording: Type.Boolean(),
  secrets: Type.Array(UnusedSecretSchema),
});
export type UnusedResponse = Static<typeof UnusedResponseSchema>;

// ---- operations ----
// Each operation of this API, by the object routes, engines, the SDK and the CLI name it with (src/api/op.ts).

type EnvAddress = Static<typeof EnvParams>;
type SecretAddress = Static<typeof SecretParams>;

/** What the usage queries take: the route joins the path's parameters and the query. */
export type UsageQueryInput = EnvAddress & UsageQuery;

/** An environment's usage (`name` in the query: one secret whose name is a word the URL reserves). */
export const UsageQueryOp = op<UsageQueryInput>()('usage.query', UsageResponseSchema);
/** One secret's usage. */
export const UsageSecret = op<SecretAddress & UsageQuery>()('usage.secret', UsageResponseSchema);
export const UsageUnused = op<EnvAddress & { days?: number }>()('usage.unused', UnusedResponseSchema);
