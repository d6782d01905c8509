import { StrongroomError } from '../../errors/errors.ts';

/** Secret names are environment-variable style so they can be exported as-is. */
export const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
/** Project and environment names are lower-case slugs. */
const SLUG_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Names the HTTP API uses for environment-wide routes (`GET /v1/secrets/P/E/watch`, …). */
const RESERVED_SECRET_NAMES = new Set(['watch', 'export', 'import']);

export function checkSecretName(name: string): string {
  if (RESERVED_SECRET_NAMES.has(name)) {
    throw new StrongroomError(
      'invalid_name',
      `${JSON.stringify(name)} is reserved for an environment-wide route; choose another name (e.g. ${name.toUpperCase()})`,
    );
  }
  if (!SECRET_NAME_RE.test(name)) {
    throw new StrongroomError(
      'invalid_name',
      `invalid secret name ${JSON.stringify(name.slice(0, 140))}: use letters, digits, '_', '.' and '-', starting with a letter or '_', at most 128 characters (like OPENAI_API_KEY)`,
    );
  }
  return name;
}

export function checkSlug(kind: 'project' | 'environment', name: string): string {
  if (!SLUG_RE.test(name)) {
    throw new StrongroomError(
      'invalid_name',
      `invalid ${kind} name ${JSON.stringify(name.slice(0, 70))}: use lower-case letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters`,
    );
  }
  return name;
}
