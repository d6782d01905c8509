import type { Identity } from '../../contract/identity.ts';
import type { RequestInfo } from '../../contract/operation.ts';
import type { Resource } from '../../contract/resource.ts';
import { scopeAllows } from '../../contract/scope.ts';
import type { Clock } from '../../lib/clock.ts';
import type { Authorizer, Decision } from '../../policy/authorize.ts';

export type Authorize = (
  identity: Identity,
  action: string,
  resource: Resource,
  request: RequestInfo,
  /** What the operation adds to the policy's context (Operation.context). */
  extra?: { operation?: string; tenant?: string },
) => Promise<Decision>;

/**
 * The pipeline's authorization step: the token's scope first (it binds every
 * token, root-policy tokens included, except for the actions no scope
 * restricts), then Cedar. Deny by default; an evaluation that throws is a deny.
 */
export function authorizationStep(
  policies: Authorizer,
  clock: Clock,
  unscoped: ReadonlySet<string>,
): Authorize {
  return async (identity, action, resource, request, extra) => {
    if (!unscoped.has(action) && !scopeAllows(identity.scope, resource)) {
      return { allowed: false, reason: "outside the token's scope" };
    }
    try {
      return await policies.authorize(identity, action, resource, {
        client_address: request.client_address,
        now: clock.now(),
        ...(extra?.operation !== undefined ? { operation: extra.operation } : {}),
        ...(extra?.tenant !== undefined ? { tenant: extra.tenant } : {}),
      });
    } catch {
      return { allowed: false, reason: 'policy evaluation failed' };
    }
  };
}
