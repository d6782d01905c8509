import type { Static } from 'typebox';
import type * as api from '../api/auth.ts';
import type { OutputOf as Out } from '../contract/operation.ts';

/**
 * Typed calls for the user and app auth methods, built on a client's
 * low-level `request`.
 *
 * @example
 * const sr = createClient({ addr });
 * const auth = authClient(sr.request);
 * const { auth: login } = await auth.login({ username: 'alice', password });
 */
export type Call = <T>(method: string, path: string, body?: unknown, accept?: number[]) => Promise<T>;

const seg = (s: string) => encodeURIComponent(s);

export function authClient(call: Call) {
  return {
    /** Logs a user in; with TOTP enrolled, pass `totp` (or `recovery_code`). Needs no token. */
    login: (req: api.LoginRequest) => call<Out<typeof api.AuthLogin>>('POST', '/v1/auth/login', req),
    /** Logs an application in with its client id and secret. Needs no token. */
    appLogin: (req: api.AppLoginRequest) =>
      call<Out<typeof api.AuthAppLogin>>('POST', '/v1/auth/app/login', req),

    /** Creates a user (admin). */
    createUser: (req: api.UserCreateRequest) =>
      call<Out<typeof api.UserCreate>>('POST', '/v1/auth/users', req),
    listUsers: () => call<Out<typeof api.UserList>>('GET', '/v1/auth/users'),
    getUser: (username: string) => call<Out<typeof api.UserRead>>('GET', `/v1/auth/users/${seg(username)}`),
    /** Deletes a user and revokes every token they hold. */
    deleteUser: (username: string) =>
      call<Out<typeof api.UserDelete>>('DELETE', `/v1/auth/users/${seg(username)}`),
    /** Sets a user's password (admin); revokes their tokens and lifts a lockout. */
    setUserPassword: (username: string, password: string) =>
      call<Out<typeof api.UserSetPassword>>('PUT', `/v1/auth/users/${seg(username)}/password`, {
        password,
      } satisfies Static<typeof api.UserPasswordRequest>),
    /** Replaces a user's roles; when a role is removed, their tokens are revoked. */
    setUserRoles: (username: string, roles: string[]) =>
      call<Out<typeof api.UserSetRoles>>('PUT', `/v1/auth/users/${seg(username)}/roles`, {
        roles,
      } satisfies Static<typeof api.UserRolesRequest>),
    /** Removes a user's TOTP enrolment (a lost device). */
    resetUserMfa: (username: string) =>
      call<Out<typeof api.UserResetMfa>>('DELETE', `/v1/auth/users/${seg(username)}/mfa`),

    /** The calling user's own record. */
    userSelf: () => call<Out<typeof api.UserReadSelf>>('GET', '/v1/auth/user/self'),
    /** Changes the calling user's password; every token of theirs is revoked (log in again). */
    changeOwnPassword: (current_password: string, new_password: string) =>
      call<Out<typeof api.UserChangeOwnPassword>>('POST', '/v1/auth/user/password', {
        current_password,
        new_password,
      } satisfies api.SelfPasswordRequest),
    /** Starts TOTP enrolment: a secret and otpauth URI, shown once. */
    enrollTotp: () => call<Out<typeof api.MfaTotpEnroll>>('POST', '/v1/auth/mfa/totp/enroll', {}),
    /** Activates TOTP with a current code; returns the recovery codes, shown once. */
    confirmTotp: (code: string) =>
      call<Out<typeof api.MfaTotpConfirm>>('POST', '/v1/auth/mfa/totp/confirm', {
        code,
      } satisfies Static<typeof api.TotpConfirmRequest>),
    mfaRequiredRoles: () => call<Out<typeof api.MfaRequiredRolesRead>>('GET', '/v1/auth/mfa/required-roles'),
    setMfaRequiredRoles: (roles: string[]) =>
      call<Out<typeof api.MfaRequiredRolesWrite>>('PUT', '/v1/auth/mfa/required-roles', {
        roles,
      } satisfies Static<typeof api.MfaRequiredRolesRequest>),

    /** Creates an application identity; the client secret is in this answer only. */
    createApp: (req: api.AppCreateRequest) => call<Out<typeof api.AppCreate>>('POST', '/v1/auth/apps', req),
    listApps: () => call<Out<typeof api.AppList>>('GET', '/v1/auth/apps'),
    getApp: (name: string) => call<Out<typeof api.AppRead>>('GET', `/v1/auth/apps/${seg(name)}`),
    /** Issues a new secret; the old one stays valid for `grace` (default 0: at once). */
    rotateAppSecret: (name: string, grace?: string | number) =>
      call<Out<typeof api.AppRotateSecret>>(
        'POST',
        `/v1/auth/apps/${seg(name)}/rotate-secret`,
        grace === undefined ? {} : { grace },
      ),
    /** Deletes an app and revokes every token it holds. */
    revokeApp: (name: string) => call<Out<typeof api.AppDelete>>('DELETE', `/v1/auth/apps/${seg(name)}`),
  };
}

export type AuthClient = ReturnType<typeof authClient>;
