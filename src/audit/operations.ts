import * as api from '../api/audit.ts';
import { parseTimeBound } from '../api/time-bound.ts';
import { implement, type Resource } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import type { AuditKeys } from './keys.ts';
import { MAX_QUERY_LIMIT, queryAuditFile } from './query.ts';

const AUDIT: Resource = { type: 'System', id: 'audit' };
const DEFAULT_QUERY_LIMIT = 100;

export interface AuditOperationDeps {
  keys: AuditKeys;
  clock: Clock;
  /** The file `audit.query` searches (the first file sink); undefined when there is none. */
  file: string | undefined;
}

/** `audit.hash` (compute the HMAC an audit entry carries for a value) and `audit.query` (search the file sink). */
export function auditOperations(deps: AuditOperationDeps) {
  return [
    implement(api.AuditHash, {
      action: 'audit.hash',
      auth: 'token',
      resource: () => AUDIT,
      async handle(_ctx, i) {
        const hasher = deps.keys.hasher;
        if (!hasher) throw new StrongroomError('sealed', 'Strongroom is sealed');
        return { hash: hasher.hmacField(i.input) };
      },
    }),

    implement(api.AuditQuery, {
      action: 'audit.read',
      auth: 'token',
      resource: () => AUDIT,
      async handle(_ctx, i) {
        if (deps.file === undefined) {
          throw new StrongroomError(
            'not_found',
            'no audit file is configured: searching needs a `file` sink in the `audit` list',
          );
        }
        const limit = i.limit ?? DEFAULT_QUERY_LIMIT;
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT)
          throw new StrongroomError('validation_failed', `limit must be from 1 to ${MAX_QUERY_LIMIT}`);
        const now = deps.clock.now();
        const since = i.since === undefined ? undefined : parseTimeBound('since', i.since, now);
        const until = i.until === undefined ? undefined : parseTimeBound('until', i.until, now);
        try {
          return await queryAuditFile(deps.file, {
            limit,
            ...(i.actor === undefined ? {} : { actor: i.actor }),
            ...(i.action === undefined ? {} : { action: i.action }),
            ...(i.request_id === undefined ? {} : { request_id: i.request_id }),
            ...(since === undefined ? {} : { since }),
            ...(until === undefined ? {} : { until }),
          });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            return { entries: [], more: false, partial: false };
          throw new StrongroomError('audit_unavailable', 'the audit file cannot be read', { cause: err });
        }
      },
    }),
  ];
}
