import { StrongroomError } from '../errors/errors.ts';

/** One audit record. Never contains secret values, tokens or passwords. */
export interface AuditEntry {
  type: 'request' | 'response';
  time: string;
  request_id: string;
  operation: string;
  action: string;
  resource: string;
  actor: { accessor?: string; display_name?: string; type?: string; id?: string } | null;
  client_address: string;
  decision?: { allowed: boolean; reason: string };
  status?: 'ok' | 'error';
  error_code?: string;
}

/** A destination for audit entries. `write` resolves only once the entry is durable in the sink. */
export interface AuditSink {
  readonly name: string;
  write(entry: AuditEntry): Promise<void>;
}

export interface AuditBroker {
  readonly enabled: boolean;
  /** Writes to every sink; throws `audit_unavailable` when none accepted the entry (fail closed). */
  log(entry: AuditEntry): Promise<void>;
}

export function createAuditBroker(sinks: readonly AuditSink[]): AuditBroker {
  return {
    enabled: sinks.length > 0,
    async log(entry) {
      if (sinks.length === 0) return;
      const results = await Promise.allSettled(sinks.map((s) => s.write(entry)));
      if (!results.some((r) => r.status === 'fulfilled')) {
        throw new StrongroomError(
          'audit_unavailable',
          'no audit sink accepted the entry; the request was not performed',
        );
      }
    },
  };
}
