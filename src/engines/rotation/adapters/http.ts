import { StrongroomError } from '../../../errors/errors.ts';

/**
 * What every rotation adapter shares: base-URL checks, one bounded HTTP call
 * to a provider's management API, and error messages that never carry a key.
 */

/** A key minted by a provider, with the provider-side id needed to delete it later. */
export interface MintedKey {
  value: string;
  /** The provider's id for what must be deleted to revoke the key (service account id, key hash). */
  id: string;
}

export interface AdapterContext {
  /** The admin / provisioning key, read from the vault for this call only. */
  adminKey: string;
  /** rotation.options of the secret (never secret values). */
  options: Readonly<Record<string, string>>;
  /** A readable name for the key at the provider. */
  label: string;
  /** When the provider itself should end the key (providers that support it: OpenRouter). */
  expiresAt?: Date;
}

/** A provider adapter mints keys through the provider's API and deletes them after the grace period. */
export interface RotationAdapter {
  readonly id: string;
  /** The provider (src/engines/provider-catalog.ts) whose keys the adapter mints. */
  readonly provider: string;
  /** A message saying what is wrong with `options`, or undefined when they are usable. */
  checkOptions(options: Readonly<Record<string, string>>): string | undefined;
  /** Mints a new key. */
  create(ctx: AdapterContext): Promise<MintedKey>;
  /** Deletes a key minted earlier; a key the provider no longer knows counts as deleted. */
  revoke(ctx: AdapterContext, id: string): Promise<void>;
  /** The ids of keys named `ctx.label` (a key a crash minted before its id was recorded). */
  findByLabel?(ctx: AdapterContext): Promise<string[]>;
}

export interface AdapterSettings {
  /** Base URL of the provider's API (default: the real one). Plain http only for loopback addresses. */
  base_url?: string;
  /** Per-call timeout (default 15 s). */
  timeout_ms?: number;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Checks and normalises a base URL: https, or http to a loopback address (tests, local proxies). */
export function checkBaseUrl(url: string, what: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`${what}: base URL ${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK.has(u.hostname))) {
    throw new TypeError(
      `${what}: base URL must use https (plain http is allowed only for loopback addresses)`,
    );
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new TypeError(`${what}: base URL must not carry credentials, a query or a fragment`);
  }
  return u.href.replace(/\/+$/, '');
}

// things that look like keys or tokens: known prefixes, bearer values, long opaque runs
const KEYLIKE = [
  /\b(?:sk|gsk|xai|pplx|hf|tgp|AIza|ABSK|key|svcacct|admin)[-_][A-Za-z0-9_\-.]{6,}/g,
  /Bearer\s+\S+/gi,
  /[A-Za-z0-9_\-+/=]{24,}/g,
];

/**
 * Makes upstream text safe for errors, logs and the audit log: providers echo
 * keys in error bodies (e.g. "Incorrect API key provided: sk-..."), so anything
 * key-like is replaced, the given secrets are removed verbatim, control
 * characters go, and the text is kept short.
 */
export function sanitizeUpstream(text: string, secrets: readonly string[] = [], max = 200): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
  for (const re of KEYLIKE) out = out.replace(re, '[redacted]');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  out = out.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

export interface CallOptions {
  provider: string;
  base: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  adminKey: string;
  body?: unknown;
  settings: AdapterSettings;
  /** Statuses that are not errors besides 2xx (e.g. 404 on delete). */
  accept?: number[];
}

/** One call to a provider's management API; every failure is a sanitised `provider_error`. */
export async function providerCall(o: CallOptions): Promise<{ status: number; json: unknown }> {
  const fail = (message: string, details?: Record<string, unknown>): never => {
    throw new StrongroomError('provider_error', sanitizeUpstream(message, [o.adminKey], 300), {
      ...(details ? { details } : {}),
    });
  };
  let res: Response;
  try {
    res = await (o.settings.fetch ?? fetch)(`${o.base}${o.path}`, {
      method: o.method,
      headers: {
        authorization: `Bearer ${o.adminKey}`,
        accept: 'application/json',
        ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
      signal: AbortSignal.timeout(o.settings.timeout_ms ?? 15_000),
      redirect: 'error',
    });
  } catch (err) {
    const e = err as { name?: string; cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.name ?? 'network error');
    return fail(`${o.provider} API is unreachable (${why})`);
  }
  let text = '';
  try {
    text = await res.text();
  } catch {
    return fail(`${o.provider} API closed the connection mid-answer (HTTP ${res.status})`);
  }
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.ok || o.accept?.includes(res.status)) return { status: res.status, json };
  const upstream = (json as { error?: { message?: unknown; code?: unknown } } | undefined)?.error;
  const detail =
    typeof upstream?.message === 'string'
      ? `: ${upstream.message}`
      : typeof upstream === 'string'
        ? `: ${upstream}`
        : '';
  if (res.status === 401 || res.status === 403) {
    return fail(
      `${o.provider} refused the admin key (HTTP ${res.status})${detail}; check the secret named by rotation.options.admin_secret`,
      { status: res.status },
    );
  }
  return fail(`${o.provider} API answered HTTP ${res.status}${detail}`, { status: res.status });
}

export function requireString(provider: string, v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new StrongroomError('provider_error', `${provider} API answered without ${what}`);
  }
  return v;
}
