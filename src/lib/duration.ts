/**
 * Durations accept a number of seconds or a string such as `90s`, `15m`,
 * `1h`, `1h30m`, `7d`. Returns whole seconds; throws TypeError when malformed.
 */
const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const RE = /^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$/;

export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isInteger(input) || input < 0 || input > 10 * 365 * 86400)
      throw new TypeError('a duration in seconds must be a whole number from 0 to 10 years');
    return input;
  }
  const s = input.trim();
  if (/^\d{1,10}$/.test(s)) return parseDuration(Number(s));
  const m = RE.exec(s);
  if (!m || s === '')
    throw new TypeError(
      `invalid duration ${JSON.stringify(input.slice(0, 40))}: use seconds or a form like 90s, 15m, 1h, 1h30m, 7d`,
    );
  const total =
    Number(m[1] ?? 0) * UNIT.d! +
    Number(m[2] ?? 0) * UNIT.h! +
    Number(m[3] ?? 0) * UNIT.m! +
    Number(m[4] ?? 0);
  return parseDuration(total);
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0 && seconds > 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0 && seconds > 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0 && seconds > 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
