import * as api from '../api/auth.ts';
import type { BarrierStore } from '../barrier/barrier.ts';
import type { VaultModule } from '../contract/module.ts';
import { type AnyOperation, implement, type OperationContext, type Resource } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { type AppOpsDeps, appOperations, loginResponse } from './app-ops.ts';
import {
  type AddressLimiter,
  createAddressLimiter,
  DEFAULT_APP_LOGIN_LIMITS,
  DEFAULT_LOCKOUT,
  DEFAULT_USER_LOGIN_LIMITS,
  type LockoutPolicy,
  type LoginLimits,
} from './ratelimit.ts';
import type { TokenStore } from './tokens.ts';
import { TOTP_DIGITS, TOTP_PERIOD } from './totp.ts';
import { checkGrantable, createUserStore, normalizeUsername, publicUser, type UserStore } from './users.ts';

/** What the user operations need: their barrier view, the token store and the clock. */
export interface UserOpsDeps {
  tokens: Pick<TokenStore, 'create' | 'revokeOwner'>;
  clock: Clock;
}

/**
 * The user auth method: login with username, password and TOTP, user
 * administration, self-service (password, TOTP enrolment) and the roles that
 * require MFA. Register with `createCore({ modules: [authMethods()] })`,
 * which also brings the app (machine identity) method.
 */
export interface AuthMethodOptions {
  /** Per-address limit on user logins (default 10 a minute, burst 10). */
  user_login?: LoginLimits;
  /** Per-address limit on app logins (default 120 a minute, burst 60). */
  app_login?: LoginLimits;
  /** Account lockout (default: 5 failures lock for 15 min, doubling, at most 24 h). */
  lockout?: LockoutPolicy;
  /** TTL of a user's login token in seconds (default 1 h). */
  user_token_ttl?: number;
  /** No renewal of a user's login token past this many seconds (default 12 h). */
  user_token_max_ttl?: number;
}

/** All auth methods of this module (users and apps), sharing one clock and settings. */
export function authMethods(
  opts: AuthMethodOptions = {},
): VaultModule<UserOpsDeps & AppOpsDeps, BarrierStore> {
  return {
    name: 'auth',
    // users under users/, apps under apps/
    mount: 'sys/auth/',
    operations: (deps, store) => [
      ...userOperations(deps, store.view('users/'), opts),
      ...appOperations(
        deps,
        store.view('apps/'),
        createAddressLimiter(opts.app_login ?? DEFAULT_APP_LOGIN_LIMITS, deps.clock),
      ),
    ],
  };
}

const ENROLLMENT_TTL = 10 * 60;
const SELF: Resource = { type: 'User', id: 'self' };
const USERS: Resource = { type: 'System', id: 'users' };
const MFA_SETTINGS: Resource = { type: 'System', id: 'auth-mfa' };

function userResource(raw: string): Resource {
  const name = normalizeUsername(raw);
  return { type: 'User', id: name, attrs: { name } };
}

/** The id of the user the calling token belongs to; refuses tokens of apps, root or standalone tokens. */
function callerUserId(ctx: OperationContext): string {
  const owner = ctx.identity?.owner;
  if (owner?.type !== 'user')
    throw new StrongroomError(
      'bad_request',
      'this works with a token from a user login (`strongroom login`), not a root, app or standalone token',
    );
  return owner.id;
}

function userOperations(
  deps: UserOpsDeps,
  store: BarrierStore,
  opts: AuthMethodOptions = {},
): AnyOperation[] {
  const users: UserStore = createUserStore(store, deps.clock, opts.lockout ?? DEFAULT_LOCKOUT);
  const limiter: AddressLimiter = createAddressLimiter(
    opts.user_login ?? DEFAULT_USER_LOGIN_LIMITS,
    deps.clock,
  );
  const ttl = opts.user_token_ttl ?? 3600;
  const maxTtl = opts.user_token_max_ttl ?? 12 * 3600;

  return [
    implement(api.AuthLogin, {
      action: 'auth.login',
      auth: 'none',
      resource(i) {
        try {
          return userResource(i.username);
        } catch {
          return { type: 'User', id: '(invalid name)' };
        }
      },
      async handle(ctx, i) {
        limiter.take(ctx.request.client_address);
        const r = await users.authenticate(i);
        const enrol = r.enrollment_only;
        const { token, entry } = await deps.tokens.create({
          // an enrolment-only token has no role: it can manage itself and enrol MFA, nothing else
          policies: enrol ? [] : r.user.roles,
          display_name: `user:${r.user.name}`,
          owner: { type: 'user', id: r.user.id, name: r.user.name },
          ttl: enrol ? ENROLLMENT_TTL : ttl,
          explicit_max_ttl: enrol ? ENROLLMENT_TTL : maxTtl,
          renewable: !enrol,
          mfa: r.mfa,
          meta: { auth_method: 'password', ...(enrol ? { purpose: 'mfa-enrollment' } : {}) },
        });
        return loginResponse(token, entry, deps.clock.now());
      },
    }),

    implement(api.UserCreate, {
      action: 'user.create',
      auth: 'token',
      resource: (i) => userResource(i.username),
      async handle(ctx, i) {
        checkGrantable(ctx, i.roles);
        return { user: publicUser(await users.create(i.username, i.password, i.roles)) };
      },
    }),

    implement(api.UserList, {
      action: 'user.read',
      auth: 'token',
      resource: () => USERS,
      handle: async () => ({ users: (await users.list()).map(publicUser) }),
    }),

    implement(api.UserRead, {
      action: 'user.read',
      auth: 'token',
      resource: (i) => userResource(i.username),
      async handle(_ctx, i) {
        const u = await users.get(i.username);
        if (!u)
          throw new StrongroomError(
            'not_found',
            `no user named ${JSON.stringify(normalizeUsername(i.username))}`,
          );
        return { user: publicUser(u) };
      },
    }),

    implement(api.UserDelete, {
      action: 'user.delete',
      auth: 'token',
      resource: (i) => userResource(i.username),
      async handle(_ctx, i) {
        const u = await users.delete(i.username);
        // the user's live tokens die with the account, on their very next request
        const revoked = await deps.tokens.revokeOwner('user', u.id);
        return { deleted: u.name, tokens_revoked: revoked };
      },
    }),

    implement(api.UserSetPassword, {
      action: 'user.update',
      auth: 'token',
      resource: (i) => userResource(i.username),
      async handle(_ctx, i) {
        const u = await users.setPassword(i.username, i.password);
        // whoever knew the old password keeps no session
        const revoked = await deps.tokens.revokeOwner('user', u.id);
        return { user: publicUser(u), tokens_revoked: revoked };
      },
    }),

    implement(api.UserSetRoles, {
      action: 'user.update',
      auth: 'token',
      resource: (i) => userResource(i.username),
      async handle(ctx, i) {
        checkGrantable(ctx, i.roles);
        const { user, removed } = await users.setRoles(i.username, i.roles);
        // tokens carry the roles they were issued with: a removed role must not outlive the change
        const revoked = removed.length ? await deps.tokens.revokeOwner('user', user.id) : 0;
        return { user: publicUser(user), tokens_revoked: revoked };
      },
    }),

    implement(api.UserResetMfa, {
      action: 'user.update',
      auth: 'token',
      resource: (i) => userResource(i.username),
      async handle(_ctx, i) {
        return { user: publicUser(await users.resetMfa(i.username)) };
      },
    }),

    implement(api.UserChangeOwnPassword, {
      action: 'user.self',
      auth: 'token',
      resource: () => SELF,
      async handle(ctx, i) {
        const u = await users.changeOwnPassword(callerUserId(ctx), i.current_password, i.new_password);
        const revoked = await deps.tokens.revokeOwner('user', u.id);
        return { user: publicUser(u), tokens_revoked: revoked };
      },
    }),

    implement(api.UserReadSelf, {
      action: 'user.self',
      auth: 'token',
      resource: () => SELF,
      async handle(ctx) {
        const u = await users.getById(callerUserId(ctx));
        if (!u) throw new StrongroomError('not_found', 'the user no longer exists');
        return { user: publicUser(u) };
      },
    }),

    implement(api.MfaTotpEnroll, {
      action: 'user.self',
      auth: 'token',
      resource: () => SELF,
      async handle(ctx) {
        const r = await users.enrollTotp(callerUserId(ctx));
        return { ...r, algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD };
      },
    }),

    implement(api.MfaTotpConfirm, {
      action: 'user.self',
      auth: 'token',
      resource: () => SELF,
      async handle(ctx, i) {
        return { recovery_codes: await users.confirmTotp(callerUserId(ctx), i.code) };
      },
    }),

    implement(api.MfaRequiredRolesRead, {
      action: 'policy.read',
      auth: 'token',
      resource: () => MFA_SETTINGS,
      handle: async () => ({ roles: await users.requiredMfaRoles() }),
    }),

    implement(api.MfaRequiredRolesWrite, {
      // which roles need MFA is an authorization rule, so it is guarded like the policies
      action: 'policy.write',
      auth: 'token',
      resource: () => MFA_SETTINGS,
      handle: async (_ctx, i) => ({ roles: await users.setRequiredMfaRoles(i.roles) }),
    }),
  ];
}
