import type { Call } from './auth.ts';

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

/**
 * The HMAC (`hmac-sha256:...`) that audit entries carry for `input`, to search
 * the log for a value without writing it there.
 */
export function auditHash(call: Call, input: string): Promise<{ hash: string }> {
  return call('POST', '/v1/sys/audit-hash', { input });
}

/** Searches the server's audit file, newest entries last. */
export function auditQuery(call: Call, q: AuditQueryOptions = {}): Promise<AuditQueryResponse> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return call('GET', `/v1/audit${qs ? `?${qs}` : ''}`);
}
