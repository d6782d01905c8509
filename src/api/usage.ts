import { type Static, Type } from 'typebox';
import { op } from './op.ts';

/**
 * Wire contract of the usage analytics API (docs/usage.md): who read which
 * secret, how often and when last. Counts are kept per hour, so `since` and
 * `until` select whole hours (an hour is included when it overlaps the range).
 */
const Strict = { additionalProperties: false } as const;

/** An ISO 8601 time, or a duration before now (`90s`, `15m`, `1h`, `7d`). */
const TimeBound = Type.String({ minLength: 1, maxLength: 40, pattern: '^[0-9A-Za-z:.+-]+$' });

export const USAGE_GROUPINGS = ['secret', 'actor', 'hour'] as const;
export type UsageGrouping = (typeof USAGE_GROUPINGS)[number];

export const UsageQuery = Type.Object(
  {
    since: Type.Optional(TimeBound),
    until: Type.Optional(TimeBound),
    by: Type.Optional(Type.Union(USAGE_GROUPINGS.map((g) => Type.Literal(g)))),
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

/** Who read: the token's owner, `app:<client_id>`, `user:<id>`, `token:<accessor>` or `root:root`. */
export interface UsageActorRef {
  actor: string;
  type: string;
  id: string;
  display_name: string;
}

export interface UsageCount {
  count: number;
  /** The last read within the range (ISO 8601). */
  last_read_at: string;
}

export interface UsageBySecretRow extends UsageCount {
  name: string;
  actors: (UsageActorRef & UsageCount)[];
}

export interface UsageByActorRow extends UsageActorRef, UsageCount {
  secrets: ({ name: string } & UsageCount)[];
}

export interface UsageByHourRow {
  /** Start of the hour (UTC). */
  hour: string;
  count: number;
  actors: (UsageActorRef & { count: number })[];
  secrets: { name: string; count: number }[];
}

export interface UsageResponse {
  project: string;
  env: string;
  /** The one secret asked about, or null for the whole environment. */
  name: string | null;
  /** The hours covered: from the start of the first to the end of the last. */
  since: string;
  until: string;
  by: UsageGrouping;
  /** Whether this server records reads (false when `usage.enabled` is off: stored counts only). */
  recording: boolean;
  /** Reads in the range, over the rows shown. */
  total: number;
  rows: UsageBySecretRow[] | UsageByActorRow[] | UsageByHourRow[];
}

export interface UnusedSecret {
  name: string;
  created_at: string;
  /** The last read ever recorded, or null when it was never read. */
  last_read_at: string | null;
  provider: string | null;
  owner: string | null;
}

export interface UnusedResponse {
  project: string;
  env: string;
  days: number;
  /** Secrets not read since this time (and, if never read, created before it). */
  cutoff: string;
  recording: boolean;
  secrets: UnusedSecret[];
}

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const UsageQueryOp = op()('usage.query');
export const UsageSecret = op()('usage.secret');
export const UsageUnused = op()('usage.unused');
