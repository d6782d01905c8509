import { StrongroomError } from '../errors/errors.ts';
import { parseDuration } from '../lib/duration.ts';

/** A query's time bound: an ISO time, or a duration before `now` (`15m`, `7d`), as epoch milliseconds. */
export function parseTimeBound(name: string, v: string, now: number): number {
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  } else {
    try {
      return now - parseDuration(v) * 1000;
    } catch {}
  }
  throw new StrongroomError(
    'validation_failed',
    `${name} must be an ISO 8601 time (2026-01-31T12:00:00Z) or a duration before now (15m, 1h, 7d)`,
  );
}
