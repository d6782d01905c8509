import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, IsoOrNull, StringOrNull } from './response-schemas.ts';

/**
 * Wire contract of rotation and expiry hygiene: the stale report
 * (`GET /v1/reports/stale`) and the metrics endpoint (`GET /v1/sys/metrics`,
 * Prometheus text format, no schema here).
 */
const Strict = { additionalProperties: false } as const;
const Slug = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' });
const DurationText = Type.String({ minLength: 1, maxLength: 32, pattern: '^[0-9dhms]+$' });

export const StaleQuery = Type.Object(
  {
    project: Type.Optional(Slug),
    /** Needs `project`. */
    env: Type.Optional(Slug),
    /** Report expiries (and rotations coming due) this far ahead; default 7d. */
    within: Type.Optional(DurationText),
    /** A value older than this with no rotation schedule is `never_rotated`; default 90d. */
    unrotated_after: Type.Optional(DurationText),
  },
  Strict,
);
export type StaleQuery = Static<typeof StaleQuery>;

// ---- responses ----
// Schemas of successful response bodies: the server serializes each body with its schema (a field the
// schema does not name is never sent), /v1/openapi.json documents them, and the SDK's types are theirs.

/**
 * - `rotation_overdue`: last rotation (or creation) + interval is in the past
 * - `rotation_due`: it comes due within the window
 * - `expired` / `expiring`: `expires_at` is past / within the window
 * - `never_rotated`: no rotation schedule and the value is older than `unrotated_after`
 * - `rotation_failed`: the last rotation attempt failed (`last_rotation_error`)
 */
const StaleReasonSchema = Type.Union([
  Type.Literal('rotation_overdue'),
  Type.Literal('rotation_due'),
  Type.Literal('expired'),
  Type.Literal('expiring'),
  Type.Literal('never_rotated'),
  Type.Literal('rotation_failed'),
]);
export type StaleReason = Static<typeof StaleReasonSchema>;

const StaleRowSchema = Type.Object({
  address: Type.String(),
  project: Type.String(),
  env: Type.String(),
  name: Type.String(),
  provider: StringOrNull,
  owner: StringOrNull,
  reasons: Type.Array(StaleReasonSchema),
  /** Like `30d`, or null without a schedule. */
  rotation_interval: StringOrNull,
  last_rotated_at: IsoOrNull,
  /** When the current value was set (a rollback's value dates from the version it copied). */
  value_set_at: Iso,
  rotation_due_at: IsoOrNull,
  expires_at: IsoOrNull,
  /** Whole days past the earliest missed deadline (0 when nothing is past due yet). */
  days_overdue: Type.Integer(),
  last_rotation_error: StringOrNull,
});
export type StaleRow = Static<typeof StaleRowSchema>;

const StaleReportSchema = Type.Object({
  generated_at: Iso,
  /** The window, as a duration (`7d`). */
  within: Type.String(),
  unrotated_after: Type.String(),
  /** Most overdue first. */
  secrets: Type.Array(StaleRowSchema),
});
export type StaleReport = Static<typeof StaleReportSchema>;

// ---- operations ----
// Each operation of this API, by the object routes, engines, the SDK and the CLI name it with (src/api/op.ts).

export const SecretStale = op<StaleQuery>()('secret.stale', StaleReportSchema);
/** Prometheus text (the route sends it as `text/plain`): no response schema. */
/** Answered as Prometheus text, not JSON: no response schema. */
export const SysMetrics = op<Record<string, never>, string>()('sys.metrics');
