import type * as api from '../api/auth.ts';

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
    login: (req: api.LoginRequest) => call<api.LoginResponse>('POST', '/v1/auth/login', req),
    /** Logs an application in with its client id and secret. Needs no token. */
    appLogin: (req: api.AppLoginRequest) => call<api.LoginResponse>('POST', '/v1/auth/app/login', req),

    /** Creates a user (admin). */
    createUser: (req: api.UserCreateRequest) => call<{ user: api.UserInfo }>('POST', '/v1/auth/users', req),
    listUsers: () => call<{ users: api.UserInfo[] }>('GET', '/v1/auth/users'),
    getUser: (username: string) => call<{ user: api.UserInfo }>('GET', `/v1/auth/users/${seg(username)}`),
    /** Deletes a user and revokes every token they hold. */
    deleteUser: (username: string) =>
      call<{ deleted: string; tokens_revoked: number }>('DELETE', `/v1/auth/users/${seg(username)}`),
    /** Sets a user's password (admin); revokes their tokens and lifts a lockout. */
    setUserPassword: (username: string, password: string) =>
      call<{ user: api.UserInfo; tokens_revoked: number }>(
        'PUT',
        `/v1/auth/users/${seg(username)}/password`,
        { password },
      ),
    /** Replaces a user's roles; when a role is removed, their tokens are revoked. */
    setUserRoles: (username: string, roles: string[]) =>
      call<{ user: api.UserInfo; tokens_revoked: number }>('PUT', `/v1/auth/users/${seg(username)}/roles`, {
        roles,
      }),
    /** Removes a user's TOTP enrolment (a lost device). */
    resetUserMfa: (username: string) =>
      call<{ user: api.UserInfo }>('DELETE', `/v1/auth/users/${seg(username)}/mfa`),

    /** The calling user's own record. */
    userSelf: () => call<{ user: api.UserInfo }>('GET', '/v1/auth/user/self'),
    /** Changes the calling user's password; every token of theirs is revoked (log in again). */
    changeOwnPassword: (current_password: string, new_password: string) =>
      call<{ user: api.UserInfo; tokens_revoked: number }>('POST', '/v1/auth/user/password', {
        current_password,
        new_password,
      }),
    /** Starts TOTP enrolment: a secret and otpauth URI, shown once. */
    enrollTotp: () => call<api.TotpEnrollResponse>('POST', '/v1/auth/mfa/totp/enroll', {}),
    /** Activates TOTP with a current code; returns the recovery codes, shown once. */
    confirmTotp: (code: string) =>
      call<api.TotpConfirmResponse>('POST', '/v1/auth/mfa/totp/confirm', { code }),
    mfaRequiredRoles: () => call<{ roles: string[] }>('GET', '/v1/auth/mfa/required-roles'),
    setMfaRequiredRoles: (roles: string[]) =>
      call<{ roles: string[] }>('PUT', '/v1/auth/mfa/required-roles', { roles }),

    /** Creates an application identity; the client secret is in this answer only. */
    createApp: (req: api.AppCreateRequest) => call<api.AppCredentials>('POST', '/v1/auth/apps', req),
    listApps: () => call<{ apps: api.AppInfo[] }>('GET', '/v1/auth/apps'),
    getApp: (name: string) => call<{ app: api.AppInfo }>('GET', `/v1/auth/apps/${seg(name)}`),
    /** Issues a new secret; the old one stays valid for `grace` (default 0: at once). */
    rotateAppSecret: (name: string, grace?: string | number) =>
      call<api.AppCredentials>(
        'POST',
        `/v1/auth/apps/${seg(name)}/rotate-secret`,
        grace === undefined ? {} : { grace },
      ),
    /** Deletes an app and revokes every token it holds. */
    revokeApp: (name: string) =>
      call<{ deleted: string; client_id: string; tokens_revoked: number }>(
        'DELETE',
        `/v1/auth/apps/${seg(name)}`,
      ),
  };
}

export type AuthClient = ReturnType<typeof authClient>;
