import type { RotationStatusResponse, SecretRotateRequest, SecretRotateResponse } from '../api/rotation.ts';
import type * as api from '../api/v1.ts';
import { type ClientOptions, StrongroomApiError } from './client.ts';

const seg = (s: string) => encodeURIComponent(s);

async function request<T>(opts: ClientOptions, method: string, path: string, body?: unknown): Promise<T> {
  const base = opts.addr.replace(/\/+$/, '');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
      redirect: 'error',
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new StrongroomApiError(
      0,
      'unreachable',
      `cannot reach Strongroom at ${base} (${cause}): is the server running, and is STRONGROOM_ADDR right?`,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.ok) return json as T;
  const e = (json as api.ErrorBody | undefined)?.error;
  throw new StrongroomApiError(
    res.status,
    e?.code ?? 'http_error',
    e?.message ?? `HTTP ${res.status} from ${base}`,
    e?.request_id,
  );
}

/**
 * Rotates a secret: with `value`, the operator's new key becomes current; without, the
 * secret's provider adapter mints one. The previous key stays valid through the grace period.
 */
export function rotateSecret(
  opts: ClientOptions,
  project: string,
  env: string,
  name: string,
  body: SecretRotateRequest = {},
): Promise<SecretRotateResponse> {
  return request(opts, 'POST', `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}/rotate`, body);
}

/** Rotation schedule, failures, and old keys waiting for the end of their grace period. */
export function rotationStatus(
  opts: ClientOptions,
  project: string,
  env: string,
  name: string,
): Promise<RotationStatusResponse> {
  return request(opts, 'GET', `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}/rotation`);
}
