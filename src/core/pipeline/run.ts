import type { Identity } from '../../contract/identity.ts';
import type { AnyOperation, OperationContext } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Decision } from '../../policy/authorize.ts';
import type { RequestAudit } from './audit.ts';

/** Told after each successful operation, once its response was audited: synchronous, cheap, never throws. */
export type SuccessObserver = (
  operation: string,
  identity: Identity | undefined,
  input: unknown,
  output: unknown,
) => void;

/**
 * The pipeline's last steps, once the request was allowed: audit the request,
 * run the handler, audit the response (an operation that only audits its
 * refusals leaves both records to its caller). A response record that cannot
 * be written fails the request with `audit_unavailable`, saying the work was
 * done; a failure of the handler is recorded with its code.
 */
export async function runOperation(
  op: AnyOperation,
  ctx: OperationContext,
  input: unknown,
  decision: Decision,
  audit: RequestAudit | undefined,
  observers: readonly SuccessObserver[] | undefined,
): Promise<unknown> {
  if (op.audit === 'refusals') {
    const out = await op.handle(ctx, input as never);
    if (observers) for (const f of observers) f(op.name, ctx.identity, input, out);
    return out;
  }
  if (audit) await audit({ type: 'request', decision });
  try {
    const out = await op.handle(ctx, input as never);
    if (audit) {
      try {
        await audit({ type: 'response', status: 'ok' });
      } catch (err) {
        if (err instanceof StrongroomError && err.code === 'audit_unavailable') {
          throw new StrongroomError(
            'audit_unavailable',
            'the operation was performed, but its audit record could not be written; check the audit sinks',
          );
        }
        throw err;
      }
    }
    if (observers) for (const f of observers) f(op.name, ctx.identity, input, out);
    return out;
  } catch (err) {
    const code = err instanceof StrongroomError ? err.code : 'internal';
    if (audit && code !== 'audit_unavailable')
      await audit({ type: 'response', status: 'error', error_code: code });
    throw err;
  }
}
