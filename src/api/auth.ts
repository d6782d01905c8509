import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { type AuthResponse, Scope } from './v1.ts';

/**
 * Wire contract of the user and app auth methods: login, user and app
 * administration, self-service and MFA. Every string has a size limit and
 * unknown fields are refused.
 */
const Strict = { additionalProperties: false } as const;

/** A username as typed; the server normalises it (NFKC, trim, collapsed spaces, lower case) to at most 64 characters. */
const Username = Type.String({ minLength: 1, maxLength: 256 });
/** A password being checked (login, current password): any length up to the limit. */
const PasswordIn = Type.String({ minLength: 1, maxLength: 1024 });
/** A new password: 12 to 1024 characters (checked again after Unicode normalisation). */
const NewPassword = Type.String({ minLength: 12, maxLength: 1024 });
const TotpCode = Type.String({ pattern: '^[0-9]{6}$' });
const RecoveryCode = Type.String({ minLength: 1, maxLength: 64 });
const RoleName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' });
const Roles = Type.Array(RoleName, { minItems: 1, maxItems: 50 });
const Duration = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 0, maximum: 315360000 }),
]);
const AppName = Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,62}$' });

// ---- login ----

export const LoginRequest = Type.Object(
  {
    username: Username,
    password: PasswordIn,
    /** The current 6-digit TOTP code, when the account has one enrolled. */
    totp: Type.Optional(TotpCode),
    /** A recovery code instead of a TOTP code (each works once). */
    recovery_code: Type.Optional(RecoveryCode),
    /** When a role requires MFA and none is enrolled: get a 10-minute token that can only enrol. */
    mfa_enrollment: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type LoginRequest = Static<typeof LoginRequest>;

export const AppLoginRequest = Type.Object(
  {
    client_id: Type.String({ minLength: 1, maxLength: 64 }),
    client_secret: Type.String({ minLength: 1, maxLength: 128 }),
  },
  Strict,
);
export type AppLoginRequest = Static<typeof AppLoginRequest>;

// ---- users ----

export const UserCreateRequest = Type.Object(
  { username: Username, password: NewPassword, roles: Roles },
  Strict,
);
export type UserCreateRequest = Static<typeof UserCreateRequest>;

export const UserParams = Type.Object({ username: Username }, Strict);
export const UserPasswordRequest = Type.Object({ password: NewPassword }, Strict);
export const UserRolesRequest = Type.Object({ roles: Roles }, Strict);
export const SelfPasswordRequest = Type.Object(
  { current_password: PasswordIn, new_password: NewPassword },
  Strict,
);
export type SelfPasswordRequest = Static<typeof SelfPasswordRequest>;

// ---- MFA ----

export const TotpConfirmRequest = Type.Object({ code: TotpCode }, Strict);
export const MfaRequiredRolesRequest = Type.Object({ roles: Type.Array(RoleName, { maxItems: 50 }) }, Strict);

// ---- apps ----

export const AppCreateRequest = Type.Object(
  {
    name: AppName,
    roles: Roles,
    scope: Scope,
    allowed_cidrs: Type.Optional(
      Type.Array(Type.String({ minLength: 2, maxLength: 49 }), { minItems: 1, maxItems: 50 }),
    ),
    token_ttl: Type.Optional(Duration),
  },
  Strict,
);
export type AppCreateRequest = Static<typeof AppCreateRequest>;

export const AppParams = Type.Object({ name: AppName }, Strict);
export const AppRotateRequest = Type.Object({ grace: Type.Optional(Duration) }, Strict);

// ---- responses ----

/** A login's answer: the token, who it names (`user:NAME` or `app:NAME`) and whether a second factor was verified. */
export interface LoginResponse {
  auth: AuthResponse['auth'] & { display_name: string; mfa: boolean };
}

export interface UserInfo {
  id: string;
  /** The normalised username. */
  name: string;
  roles: string[];
  created_at: string;
  updated_at: string;
  password_changed_at: string;
  mfa: { totp: boolean; enrolled_at: string | null; recovery_codes_left: number };
}

export interface TotpEnrollResponse {
  /** The base32 shared secret (shown once): type it into an authenticator app, or use the URI. */
  secret: string;
  otpauth_uri: string;
  /** Confirm before this time, or enrol again. */
  expires_at: string;
  algorithm: 'SHA1';
  digits: 6;
  period: 30;
}

export interface TotpConfirmResponse {
  /** One-time recovery codes (shown once): each works once instead of a TOTP code. */
  recovery_codes: string[];
}

export interface AppInfo {
  client_id: string;
  name: string;
  roles: string[];
  scope: Scope;
  allowed_cidrs: string[];
  /** seconds */
  token_ttl: number;
  created_at: string;
  updated_at: string;
  secret_created_at: string;
  previous_secrets: { created_at: string; expires_at: string }[];
}

/** The answer to app creation and secret rotation: the secret is shown this once. */
export interface AppCredentials extends AppInfo {
  client_id: string;
  client_secret: string;
}

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const AppCreate = op()('app.create');
export const AppDelete = op()('app.delete');
export const AppList = op()('app.list');
export const AppRead = op()('app.read');
export const AppRotateSecret = op()('app.rotate-secret');
export const AuthAppLogin = op()('auth.app-login');
export const AuthLogin = op()('auth.login');
export const MfaRequiredRolesRead = op()('mfa.required-roles.read');
export const MfaRequiredRolesWrite = op()('mfa.required-roles.write');
export const MfaTotpConfirm = op()('mfa.totp-confirm');
export const MfaTotpEnroll = op()('mfa.totp-enroll');
export const UserChangeOwnPassword = op()('user.change-own-password');
export const UserCreate = op()('user.create');
export const UserDelete = op()('user.delete');
export const UserList = op()('user.list');
export const UserRead = op()('user.read');
export const UserReadSelf = op()('user.read-self');
export const UserResetMfa = op()('user.reset-mfa');
export const UserSetPassword = op()('user.set-password');
export const UserSetRoles = op()('user.set-roles');
