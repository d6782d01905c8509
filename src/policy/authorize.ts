import type { Identity } from '../contract/identity.ts';
import type { Resource } from '../contract/operation.ts';

/** The result of an authorization decision; `reason` is safe to show and to audit. */
export interface Decision {
  allowed: boolean;
  reason: string;
}

/**
 * Decides whether `identity` may perform `action` on `resource`. Deny by
 * default; an implementation that throws is treated as a deny by the core.
 */
export interface Authorizer {
  authorize(
    identity: Identity,
    action: string,
    resource: Resource,
    ctx?: { client_address: string; now: number },
  ): Promise<Decision>;
}
