import * as api from '../api/auth.ts';
import type { BarrierStore } from '../barrier/barrier.ts';
import type { TokenEntry } from '../contract/identity.ts';
import { type AnyOperation, implement, type Resource } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { parseDuration } from '../lib/duration.ts';
import { createAppStore, publicApp } from './apps.ts';
import type { AddressLimiter } from './ratelimit.ts';
import { authResponse } from './token-ops.ts';
import type { TokenStore } from './tokens.ts';
import { checkGrantable } from './users.ts';

/** What the app operations need: their barrier view, the token store and the clock. */
export interface AppOpsDeps {
  tokens: Pick<TokenStore, 'create' | 'revokeOwner'>;
  clock: Clock;
}

/**
 * The app auth method: applications log in with a client id and secret and
 * get a short-lived, non-renewable token holding the app's roles and scope.
 */
const APP_TOKEN_TTL = { default: 3600, min: 60, max: 24 * 3600 } as const;

/** The `auth` block of a login answer: the token, who it names, and whether a second factor was verified. */
export function loginResponse(token: string, entry: TokenEntry, now: number) {
  return {
    auth: { ...authResponse(token, entry, now).auth, display_name: entry.display_name, mfa: entry.mfa },
  };
}

const APPS: Resource = { type: 'System', id: 'apps' };
const appResource = (name: string): Resource => ({ type: 'App', id: name, attrs: { name } });

function seconds(
  field: string,
  v: string | number | undefined,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  let s: number;
  try {
    s = parseDuration(v);
  } catch (err) {
    throw new StrongroomError('validation_failed', `${field}: ${(err as Error).message}`);
  }
  if (s < min || s > max)
    throw new StrongroomError(
      'validation_failed',
      `${field} must be between ${min} s and ${max} s, not ${s} s`,
    );
  return s;
}

export function appOperations(
  deps: AppOpsDeps,
  store: BarrierStore,
  limiter: AddressLimiter,
): AnyOperation[] {
  const apps = createAppStore(store, deps.clock);

  return [
    implement(api.AuthAppLogin, {
      action: 'auth.login',
      auth: 'none',
      resource: (i) => ({
        type: 'App',
        id: /^app_[0-9a-f]{24}$/.test(i.client_id) ? i.client_id : '(invalid id)',
      }),
      async handle(ctx, i) {
        limiter.take(ctx.request.client_address);
        const app = await apps.authenticate(i.client_id, i.client_secret, ctx.request.client_address);
        const { token, entry } = await deps.tokens.create({
          policies: app.roles,
          display_name: `app:${app.name}`,
          owner: { type: 'app', id: app.client_id, name: app.name },
          ttl: app.token_ttl,
          explicit_max_ttl: app.token_ttl,
          // short-lived by design: an app logs in again with its secret rather than renewing
          renewable: false,
          scope: app.scope,
          mfa: false,
          meta: { auth_method: 'app' },
        });
        return loginResponse(token, entry, deps.clock.now());
      },
    }),

    implement(api.AppCreate, {
      action: 'app.create',
      auth: 'token',
      resource: (i) => appResource(i.name),
      async handle(ctx, i) {
        checkGrantable(ctx, i.roles);
        const ttl = seconds(
          'token_ttl',
          i.token_ttl,
          APP_TOKEN_TTL.default,
          APP_TOKEN_TTL.min,
          APP_TOKEN_TTL.max,
        );
        const { app, client_secret } = await apps.create({
          name: i.name,
          roles: i.roles,
          scope: i.scope,
          ...(i.allowed_cidrs ? { allowed_cidrs: i.allowed_cidrs } : {}),
          token_ttl: ttl,
        });
        // the only time the secret is ever shown
        const { client_id, ...rest } = publicApp(app, deps.clock.now());
        return { client_id, client_secret, ...rest };
      },
    }),

    implement(api.AppList, {
      action: 'app.read',
      auth: 'token',
      resource: () => APPS,
      handle: async () => ({ apps: (await apps.list()).map((a) => publicApp(a, deps.clock.now())) }),
    }),

    implement(api.AppRead, {
      action: 'app.read',
      auth: 'token',
      resource: (i) => appResource(i.name),
      async handle(_ctx, i) {
        const a = await apps.get(i.name);
        if (!a)
          throw new StrongroomError(
            'not_found',
            `no app named ${JSON.stringify(i.name)}: see \`strongroom app list\``,
          );
        return { app: publicApp(a, deps.clock.now()) };
      },
    }),

    implement(api.AppRotateSecret, {
      action: 'app.update',
      auth: 'token',
      resource: (i) => appResource(i.name),
      async handle(_ctx, i) {
        const grace = seconds('grace', i.grace, 0, 0, 7 * 86400);
        const { app, client_secret } = await apps.rotateSecret(i.name, grace);
        const { client_id, ...rest } = publicApp(app, deps.clock.now());
        return { client_id, client_secret, ...rest };
      },
    }),

    implement(api.AppDelete, {
      action: 'app.delete',
      auth: 'token',
      resource: (i) => appResource(i.name),
      async handle(_ctx, i) {
        const a = await apps.delete(i.name);
        // live tokens of the app stop working on their next request
        const revoked = await deps.tokens.revokeOwner('app', a.client_id);
        return { deleted: a.name, client_id: a.client_id, tokens_revoked: revoked };
      },
    }),
  ];
}
