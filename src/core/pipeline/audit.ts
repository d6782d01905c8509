import type { AuditBroker, AuditEntry } from '../../audit/broker.ts';
import type { Identity, TokenEntry } from '../../contract/identity.ts';
import type { AnyOperation, RequestInfo } from '../../contract/operation.ts';
import type { Clock } from '../../lib/clock.ts';

/** What a pipeline audit record adds to the fixed fields of its request. */
export type AuditFields = Pick<AuditEntry, 'type' | 'decision' | 'status' | 'error_code'>;

/** Writes the records of one request; throws `audit_unavailable` when no sink took one (fail closed). */
export type RequestAudit = (fields: AuditFields) => Promise<void>;

export interface AuditStep {
  /**
   * The writer of one request's records, or undefined when auditing is off
   * (entries are only built when a sink will receive them). The broker
   * replaces secret values, tokens and passwords with HMACs before any sink
   * sees the input.
   */
  forRequest(
    op: AnyOperation,
    input: unknown,
    request: RequestInfo,
    resource: string,
    identity: Identity | undefined,
  ): RequestAudit | undefined;
  /** Records a request refused before authorization (no or bad token, rate limit): request and response. */
  refusal(
    op: AnyOperation,
    input: unknown,
    request: RequestInfo,
    code: string,
    entry: TokenEntry | undefined,
  ): Promise<void>;
}

const actorOf = (who: { accessor: string; display_name: string; owner: Identity['owner'] }) => ({
  accessor: who.accessor,
  display_name: who.display_name,
  type: who.owner.type,
  id: who.owner.id,
});

export function auditStep(broker: AuditBroker, clock: Clock): AuditStep {
  // many entries are written within one millisecond: format each millisecond once
  let lastMs = Number.NaN;
  let lastIso = '';
  const iso = (): string => {
    const ms = clock.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };
  /** The fields every record of one request shares (each record adds its time and its own fields). */
  const fixed = (
    op: AnyOperation,
    input: unknown,
    request: RequestInfo,
    resource: string,
    actor: ReturnType<typeof actorOf> | null,
  ) => ({
    request_id: request.request_id,
    ...(request.trace_id ? { trace_id: request.trace_id } : {}),
    operation: op.name,
    action: op.action,
    resource,
    actor,
    client_address: request.client_address,
    request: input,
  });

  return {
    forRequest(op, input, request, resource, identity) {
      if (!broker.enabled) return undefined;
      const shared = fixed(op, input, request, resource, identity ? actorOf(identity) : null);
      return (fields) => broker.log({ time: iso(), ...shared, ...fields });
    },
    async refusal(op, input, request, code, entry) {
      if (!broker.enabled) return;
      let resource = '-';
      try {
        const r = op.resource(input as never);
        resource = `${r.type}::${r.id}`;
      } catch {}
      const shared = fixed(op, input, request, resource, entry ? actorOf(entry) : null);
      await broker.log({
        time: iso(),
        ...shared,
        type: 'request',
        decision: { allowed: false, reason: code },
      });
      await broker.log({ time: iso(), ...shared, type: 'response', status: 'error', error_code: code });
    },
  };
}
