import type { TokenStore } from '../../auth/tokens.ts';
import { type Identity, identityOf, type TokenEntry } from '../../contract/identity.ts';
import type { RequestInfo } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { RateLimitStep } from './rate-limit.ts';

/** Who a request is, as the authentication step found. */
export interface Authenticated {
  identity: Identity;
  /** The token's entry (absent for a workload authenticated by SVID). */
  token?: TokenEntry;
  /** This request spent the limited-use token's last use: it is revoked now. */
  exhausted?: true;
}

export interface AuthenticationDeps {
  tokens: Pick<TokenStore, 'lookup' | 'use'>;
  /** SVID authentication (a client certificate chain, or a JWT-SVID as the token), once the identity engine set it. */
  workloadAuth(): ((request: RequestInfo) => Promise<Identity | undefined>) | undefined;
  rateLimit: RateLimitStep | undefined;
}

export interface AuthenticationStep {
  /**
   * An SVID through `workloadAuth`, else the token looked up; then, unless
   * `rateLimit` is false, the per-owner rate limit (root-policy tokens
   * exempt); then, for a limited-use token, one use counted (only once the
   * rate limit passed; the last use revokes it). Writes no audit entry.
   */
  authenticate(request: RequestInfo, rateLimit: boolean): Promise<Authenticated>;
  /** The token entry a refusal came after (rate limited, used up meanwhile): the actor of its audit record. */
  refusedAfter(err: unknown): TokenEntry | undefined;
}

const isSvidRequest = (request: RequestInfo): boolean =>
  request.token === undefined
    ? (request.peer_certificates?.length ?? 0) > 0
    : request.token.startsWith('eyJ');

export function authenticationStep(deps: AuthenticationDeps): AuthenticationStep {
  const after = new WeakMap<object, TokenEntry>();
  const remember = (err: unknown, entry: TokenEntry) => {
    if (typeof err === 'object' && err !== null) after.set(err, entry);
  };

  return {
    refusedAfter: (err) => (typeof err === 'object' && err !== null ? after.get(err) : undefined),
    async authenticate(request, rateLimit) {
      const workloadAuth = deps.workloadAuth();
      if (workloadAuth !== undefined && isSvidRequest(request)) {
        const identity = await workloadAuth(request);
        if (!identity) throw new StrongroomError('unauthenticated', 'this request needs a token or an SVID');
        if (rateLimit) deps.rateLimit?.take(identity.owner);
        return { identity };
      }
      if (!request.token) {
        throw new StrongroomError(
          'unauthenticated',
          'this request needs a token: set STRONGROOM_TOKEN or send `Authorization: Bearer <token>`',
        );
      }
      let entry = await deps.tokens.lookup(request.token);
      if (rateLimit && !entry.policies.includes('root')) {
        try {
          deps.rateLimit?.take(entry.owner);
        } catch (err) {
          remember(err, entry);
          throw err;
        }
      }
      // a limited-use token is counted only once it passed the rate limit
      if (entry.num_uses > 0) {
        try {
          entry = await deps.tokens.use(request.token);
        } catch (err) {
          remember(err, entry);
          throw err;
        }
        if (entry.num_uses === 0) return { identity: identityOf(entry), token: entry, exhausted: true };
      }
      return { identity: identityOf(entry), token: entry };
    },
  };
}
