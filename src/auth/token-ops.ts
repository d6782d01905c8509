import * as api from '../api/v1.ts';
import type { TokenEntry } from '../contract/identity.ts';
import type { VaultModule } from '../contract/module.ts';
import type { Resource } from '../contract/operation.ts';
import { implement } from '../contract/operation.ts';
import { scopeProblem } from '../contract/scope.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { parseDuration } from '../lib/duration.ts';
import type { TokenStore } from './tokens.ts';

/** What the token operations need (the assembler hands over the core, which has them). */
export interface TokenOpsDeps {
  tokens: Pick<TokenStore, 'create' | 'lookupAccessor' | 'renew' | 'revokeAccessor' | 'revokeToken'>;
  clock: Clock;
}

function duration(field: string, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseDuration(v);
  } catch (err) {
    throw new StrongroomError('validation_failed', `${field}: ${(err as Error).message}`);
  }
}

/** What a client may see of a token entry (never the token itself). */
function publicEntry(e: TokenEntry, now: number) {
  return {
    accessor: e.accessor,
    display_name: e.display_name,
    policies: e.policies,
    owner: e.owner,
    scope: e.scope,
    mfa: e.mfa,
    created_at: e.created_at,
    expires_at: e.expires_at,
    max_expires_at: e.max_expires_at,
    ttl: e.expires_at === null ? 0 : Math.max(0, Math.round((Date.parse(e.expires_at) - now) / 1000)),
    renewable: e.renewable,
    num_uses: e.num_uses,
    parent: e.parent,
    meta: e.meta,
  };
}

export function authResponse(token: string, e: TokenEntry, now: number) {
  return {
    auth: {
      client_token: token,
      accessor: e.accessor,
      policies: e.policies,
      ttl: e.expires_at === null ? 0 : Math.max(0, Math.round((Date.parse(e.expires_at) - now) / 1000)),
      renewable: e.renewable,
      expires_at: e.expires_at,
      num_uses: e.num_uses,
      scope: e.scope,
    },
  };
}

const tokenResource = (accessor: string): Resource => ({ type: 'Token', id: accessor });
const SELF: Resource = { type: 'Token', id: 'self' };

/** The token API as a module (the core's token store and clock are its ports). */
export const tokensModule: VaultModule<TokenOpsDeps> = {
  name: 'tokens',
  operations: (deps) => tokenOperations(deps),
};

function tokenOperations(deps: TokenOpsDeps) {
  const caller = (ctx: { token?: TokenEntry }): TokenEntry => {
    if (!ctx.token) throw new TypeError('token operation without a token');
    return ctx.token;
  };

  return [
    implement(api.TokenCreate, {
      action: 'token.create',
      auth: 'token',
      resource: () => ({ type: 'Token', id: 'new' }),
      async handle(ctx, i) {
        const parent = caller(ctx);
        if (i.roles && i.policies)
          throw new StrongroomError('validation_failed', 'give roles or policies, not both');
        const policies = i.roles ?? i.policies ?? parent.policies.filter((p) => p !== 'root');
        if (policies.length === 0 && !parent.policies.includes('root')) {
          throw new StrongroomError('validation_failed', 'a token needs at least one role or policy');
        }
        if (i.scope) {
          const problem = scopeProblem(i.scope);
          if (problem) throw new StrongroomError('validation_failed', problem);
        }
        const ttl = duration('ttl', i.ttl);
        if (ttl === 0)
          throw new StrongroomError(
            'validation_failed',
            'ttl must be at least 1 second (leave it out for the default of 1 hour)',
          );
        // as in Vault, an explicit_max_ttl of 0 means no explicit maximum
        const max = duration('explicit_max_ttl', i.explicit_max_ttl) || undefined;
        // a child inherits its parent's scope unless it narrows it
        const scope = i.scope ?? parent.scope;
        const { token, entry } = await deps.tokens.create({
          policies,
          display_name: i.display_name ?? `child of ${parent.display_name}`,
          // a user's or app's child tokens stay theirs (revoked with them); a root token's children stand alone
          ...(parent.owner.type === 'root' ? {} : { owner: parent.owner }),
          ...(ttl === undefined ? {} : { ttl }),
          ...(max === undefined ? {} : { explicit_max_ttl: max }),
          ...(i.renewable === undefined ? {} : { renewable: i.renewable }),
          ...(i.num_uses === undefined ? {} : { num_uses: i.num_uses }),
          scope,
          ...(i.meta ? { meta: i.meta } : {}),
          parent,
        });
        return authResponse(token, entry, deps.clock.now());
      },
    }),

    implement(api.TokenLookupSelf, {
      action: 'token.self',
      auth: 'token',
      resource: () => SELF,
      handle: async (ctx) => ({ data: publicEntry(caller(ctx), deps.clock.now()) }),
    }),

    implement(api.TokenRenewSelf, {
      action: 'token.self',
      auth: 'token',
      resource: () => SELF,
      async handle(ctx, i) {
        const e = await deps.tokens.renew(caller(ctx).accessor, duration('increment', i.increment));
        return {
          auth: {
            accessor: e.accessor,
            policies: e.policies,
            expires_at: e.expires_at,
            renewable: e.renewable,
            ttl: publicEntry(e, deps.clock.now()).ttl,
          },
        };
      },
    }),

    implement(api.TokenRevokeSelf, {
      action: 'token.self',
      auth: 'token',
      resource: () => SELF,
      async handle(ctx) {
        return { revoked: await deps.tokens.revokeAccessor(caller(ctx).accessor) };
      },
    }),

    implement(api.TokenLookupAccessor, {
      action: 'token.read',
      auth: 'token',
      resource: (i) => tokenResource(i.accessor),
      async handle(_ctx, i) {
        const e = await deps.tokens.lookupAccessor(i.accessor);
        if (!e) throw new StrongroomError('not_found', 'no live token has that accessor');
        return { data: publicEntry(e, deps.clock.now()) };
      },
    }),

    implement(api.TokenRevoke, {
      action: 'token.revoke',
      auth: 'token',
      // the token value is never part of the resource (it would reach the audit log)
      resource: () => ({ type: 'Token', id: 'by-value' }),
      async handle(_ctx, i) {
        return { revoked: await deps.tokens.revokeToken(i.token) };
      },
    }),

    implement(api.TokenRevokeAccessor, {
      action: 'token.revoke',
      auth: 'token',
      resource: (i) => tokenResource(i.accessor),
      async handle(_ctx, i) {
        const n = await deps.tokens.revokeAccessor(i.accessor);
        if (n === 0) throw new StrongroomError('not_found', 'no live token has that accessor');
        return { revoked: n };
      },
    }),
  ];
}
