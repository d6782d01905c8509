import type * as api from '../api/audit.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

/** One audit log line as the API returns it (docs/audit.md). */
export type AuditLogEntry = Out<typeof api.AuditQuery>['entries'][number];

/** The filters of `GET /v1/audit`: actor, action (or `prefix*`), request id, time range and limit. */
export type AuditQueryOptions = api.AuditQueryInput;

/** Matching entries (oldest first), whether more matched than `limit`, whether the scan stopped early. */
export type AuditQueryResponse = Out<typeof api.AuditQuery>;

/**
 * The HMAC (`hmac-sha256:...`) that audit entries carry for `input`, to search
 * the log for a value without writing it there.
 */
export function auditHash(call: Call, input: string): Promise<Out<typeof api.AuditHash>> {
  return call<Out<typeof api.AuditHash>>('POST', '/v1/sys/audit-hash', {
    input,
  } satisfies api.AuditHashInput);
}

/** Searches the server's audit file, newest entries last. */
export function auditQuery(call: Call, q: AuditQueryOptions = {}): Promise<AuditQueryResponse> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return call<AuditQueryResponse>('GET', `/v1/audit${qs ? `?${qs}` : ''}`);
}
