import type * as api from '../api/v1.ts';
import { type ClientOptions, StrongroomApiError } from './client.ts';

/** One audit log line as the API returns it (docs/audit.md). */
export interface AuditLogEntry {
  seq: number;
  prev: string;
  type: 'request' | 'response';
  time: string;
  request_id: string;
  trace_id?: string;
  operation: string;
  action: string;
  resource: string;
  actor: { type?: string; id?: string; accessor?: string; display_name?: string } | null;
  client_address: string;
  decision?: { allowed: boolean; reason: string };
  request?: unknown;
  status?: 'ok' | 'error';
  status_code?: number;
  error_code?: string;
}

export interface AuditQueryOptions {
  /** A user id, app client id, token accessor or display name. */
  actor?: string;
  /** An action, or a prefix ending in `*` (`secret.*`). */
  action?: string;
  request_id?: string;
  /** An ISO 8601 time, or a duration before now (`15m`, `1h`, `7d`). */
  since?: string;
  until?: string;
  /** At most this many entries, the newest (1 to 1000, default 100). */
  limit?: number;
}

export interface AuditQueryResponse {
  /** Oldest first. */
  entries: AuditLogEntry[];
  /** More entries matched than `limit`. */
  more: boolean;
  /** The server stopped scanning before the start of the file. */
  partial: boolean;
}

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
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
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
 * The HMAC (`hmac-sha256:...`) that audit entries carry for `input`, to search
 * the log for a value without writing it there.
 */
export function auditHash(opts: ClientOptions, input: string): Promise<{ hash: string }> {
  return request(opts, 'POST', '/v1/sys/audit-hash', { input });
}

/** Searches the server's audit file, newest entries last. */
export function auditQuery(opts: ClientOptions, q: AuditQueryOptions = {}): Promise<AuditQueryResponse> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return request(opts, 'GET', `/v1/audit${qs ? `?${qs}` : ''}`);
}
