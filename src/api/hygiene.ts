import { type Static, Type } from 'typebox';
import { op } from './op.ts';

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

/**
 * - `rotation_overdue`: last rotation (or creation) + interval is in the past
 * - `rotation_due`: it comes due within the window
 * - `expired` / `expiring`: `expires_at` is past / within the window
 * - `never_rotated`: no rotation schedule and the value is older than `unrotated_after`
 * - `rotation_failed`: the last rotation attempt failed (`last_rotation_error`)
 */
export type StaleReason =
  | 'rotation_overdue'
  | 'rotation_due'
  | 'expired'
  | 'expiring'
  | 'never_rotated'
  | 'rotation_failed';

export interface StaleRow {
  address: string;
  project: string;
  env: string;
  name: string;
  provider: string | null;
  owner: string | null;
  reasons: StaleReason[];
  /** Like `30d`, or null without a schedule. */
  rotation_interval: string | null;
  last_rotated_at: string | null;
  /** When the current value was set (a rollback's value dates from the version it copied). */
  value_set_at: string;
  rotation_due_at: string | null;
  expires_at: string | null;
  /** Whole days past the earliest missed deadline (0 when nothing is past due yet). */
  days_overdue: number;
  last_rotation_error: string | null;
}

export interface StaleReport {
  generated_at: string;
  within: string;
  unrotated_after: string;
  /** Most overdue first. */
  secrets: StaleRow[];
}

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const SecretStale = op()('secret.stale');
export const SysMetrics = op()('sys.metrics');
