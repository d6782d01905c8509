import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, Nullable, Strings } from './response-schemas.ts';
import { AuthResponse as AuthResponseSchema, Scope } from './v1.ts';

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
// Schemas of successful response bodies (serialized with them: a field they do not name is never sent).

/** A login's answer: the token, who it names (`user:NAME` or `app:NAME`) and whether a second factor was verified. */
const LoginResponseSchema = Type.Object({
  auth: Type.Object({
    ...AuthResponseSchema.properties.auth.properties,
    display_name: Type.String(),
    mfa: Type.Boolean(),
  }),
});
export type LoginResponse = Static<typeof LoginResponseSchema>;

const UserInfoSchema = Type.Object({
  id: Type.String(),
  /** The normalised username. */
  name: Type.String(),
  roles: Strings,
  created_at: Iso,
  updated_at: Iso,
  password_changed_at: Iso,
  mfa: Type.Object({
    totp: Type.Boolean(),
    enrolled_at: Nullable(Iso),
    recovery_codes_left: Type.Integer(),
  }),
});
export type UserInfo = Static<typeof UserInfoSchema>;
const UserResponse = Type.Object({ user: UserInfoSchema });
const UserChangedResponse = Type.Object({ user: UserInfoSchema, tokens_revoked: Type.Integer() });
const UserListResponse = Type.Object({ users: Type.Array(UserInfoSchema) });
const UserDeleteResponse = Type.Object({ deleted: Type.String(), tokens_revoked: Type.Integer() });

const TotpEnrollResponseSchema = Type.Object({
  /** The base32 shared secret (shown once): type it into an authenticator app, or use the URI. */
  secret: Type.String(),
  otpauth_uri: Type.String(),
  /** Confirm before this time, or enrol again. */
  expires_at: Iso,
  algorithm: Type.Literal('SHA1'),
  digits: Type.Literal(6),
  period: Type.Literal(30),
});
export type TotpEnrollResponse = Static<typeof TotpEnrollResponseSchema>;
const TotpConfirmResponseSchema = Type.Object({
  /** One-time recovery codes (shown once): each works once instead of a TOTP code. */
  recovery_codes: Strings,
});
export type TotpConfirmResponse = Static<typeof TotpConfirmResponseSchema>;
const RolesResponse = Type.Object({ roles: Strings });

const AppFields = {
  name: Type.String(),
  roles: Strings,
  scope: Type.Object({
    paths: Type.Optional(Strings),
    providers: Type.Optional(Strings),
    credentials: Type.Optional(Strings),
  }),
  allowed_cidrs: Strings,
  /** seconds */
  token_ttl: Type.Integer(),
  created_at: Iso,
  updated_at: Iso,
  secret_created_at: Iso,
  previous_secrets: Type.Array(Type.Object({ created_at: Iso, expires_at: Iso })),
};
const AppInfoSchema = Type.Object({ client_id: Type.String(), ...AppFields });
export type AppInfo = Static<typeof AppInfoSchema>;
/** The answer to app creation and secret rotation: the secret is shown this once. */
const AppCredentialsSchema = Type.Object({
  client_id: Type.String(),
  client_secret: Type.String(),
  ...AppFields,
});
export type AppCredentials = Static<typeof AppCredentialsSchema>;
const AppResponse = Type.Object({ app: AppInfoSchema });
const AppListResponse = Type.Object({ apps: Type.Array(AppInfoSchema) });
const AppDeleteResponse = Type.Object({
  deleted: Type.String(),
  client_id: Type.String(),
  tokens_revoked: Type.Integer(),
});

// ---- operations ----
// Each operation of this API, by the object routes, engines, the SDK and the CLI name it with (src/api/op.ts).

type Empty = Record<string, never>;
type Username = { username: string };

export const AuthLogin = op<LoginRequest>()('auth.login', LoginResponseSchema);
export const AuthAppLogin = op<AppLoginRequest>()('auth.app-login', LoginResponseSchema);
export const UserCreate = op<UserCreateRequest>()('user.create', UserResponse);
export const UserList = op<Empty>()('user.list', UserListResponse);
export const UserRead = op<Username>()('user.read', UserResponse);
export const UserDelete = op<Username>()('user.delete', UserDeleteResponse);
export const UserSetPassword = op<Username & Static<typeof UserPasswordRequest>>()(
  'user.set-password',
  UserChangedResponse,
);
export const UserSetRoles = op<Username & Static<typeof UserRolesRequest>>()(
  'user.set-roles',
  UserChangedResponse,
);
export const UserResetMfa = op<Username>()('user.reset-mfa', UserResponse);
export const UserChangeOwnPassword = op<SelfPasswordRequest>()(
  'user.change-own-password',
  UserChangedResponse,
);
export const UserReadSelf = op<Empty>()('user.read-self', UserResponse);
export const MfaTotpEnroll = op<Empty>()('mfa.totp-enroll', TotpEnrollResponseSchema);
export const MfaTotpConfirm = op<Static<typeof TotpConfirmRequest>>()(
  'mfa.totp-confirm',
  TotpConfirmResponseSchema,
);
export const MfaRequiredRolesRead = op<Empty>()('mfa.required-roles.read', RolesResponse);
export const MfaRequiredRolesWrite = op<Static<typeof MfaRequiredRolesRequest>>()(
  'mfa.required-roles.write',
  RolesResponse,
);
export const AppCreate = op<AppCreateRequest>()('app.create', AppCredentialsSchema);
export const AppList = op<Empty>()('app.list', AppListResponse);
export const AppRead = op<Static<typeof AppParams>>()('app.read', AppResponse);
export const AppRotateSecret = op<Static<typeof AppParams> & Static<typeof AppRotateRequest>>()(
  'app.rotate-secret',
  AppCredentialsSchema,
);
export const AppDelete = op<Static<typeof AppParams>>()('app.delete', AppDeleteResponse);
