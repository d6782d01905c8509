import type { Identity, Resource } from '../core/types.ts';

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
  authorize(identity: Identity, action: string, resource: Resource): Promise<Decision>;
}

/**
 * The authorizer until policies exist: the root token may do everything,
 * nobody else anything. (The access issue replaces it with Cedar.)
 */
export const rootOnlyAuthorizer: Authorizer = {
  async authorize(identity) {
    if (identity.policies.includes('root')) return { allowed: true, reason: 'root token' };
    return { allowed: false, reason: 'no policy grants this action' };
  },
};
