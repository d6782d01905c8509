import type { FastifyRequest } from 'fastify';
import * as api from '../../../api/auth.ts';
import type { RouteDef } from './routes.ts';

/**
 * Routes of the user and app auth methods. Like every route they only name a
 * core operation; authentication, authorization and audit happen in the core.
 */
type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> }>;
const params = (req: FastifyRequest) => (req as Req).params;
const body = (req: FastifyRequest) => ((req as Req).body ?? {}) as Record<string, unknown>;
const none = () => ({});
const created = () => 201;

export const authRoutes: RouteDef[] = [
  // --- login ---
  {
    method: 'POST',
    url: '/v1/auth/login',
    operation: api.AuthLogin,
    schema: { body: api.LoginRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/auth/app/login',
    operation: api.AuthAppLogin,
    schema: { body: api.AppLoginRequest },
    input: body,
  },

  // --- users ---
  {
    method: 'POST',
    url: '/v1/auth/users',
    operation: api.UserCreate,
    schema: { body: api.UserCreateRequest },
    input: body,
    status: created,
  },
  { method: 'GET', url: '/v1/auth/users', operation: api.UserList, schema: {}, input: none },
  {
    method: 'GET',
    url: '/v1/auth/users/:username',
    operation: api.UserRead,
    schema: { params: api.UserParams },
    input: (r) => ({ username: params(r).username }),
  },
  {
    method: 'DELETE',
    url: '/v1/auth/users/:username',
    operation: api.UserDelete,
    schema: { params: api.UserParams },
    input: (r) => ({ username: params(r).username }),
  },
  {
    method: 'PUT',
    url: '/v1/auth/users/:username/password',
    operation: api.UserSetPassword,
    schema: { params: api.UserParams, body: api.UserPasswordRequest },
    input: (r) => ({ ...body(r), username: params(r).username }),
  },
  {
    method: 'PUT',
    url: '/v1/auth/users/:username/roles',
    operation: api.UserSetRoles,
    schema: { params: api.UserParams, body: api.UserRolesRequest },
    input: (r) => ({ ...body(r), username: params(r).username }),
  },
  {
    method: 'DELETE',
    url: '/v1/auth/users/:username/mfa',
    operation: api.UserResetMfa,
    schema: { params: api.UserParams },
    input: (r) => ({ username: params(r).username }),
  },

  // --- self-service ---
  { method: 'GET', url: '/v1/auth/user/self', operation: api.UserReadSelf, schema: {}, input: none },
  {
    method: 'POST',
    url: '/v1/auth/user/password',
    operation: api.UserChangeOwnPassword,
    schema: { body: api.SelfPasswordRequest },
    input: body,
  },
  { method: 'POST', url: '/v1/auth/mfa/totp/enroll', operation: api.MfaTotpEnroll, schema: {}, input: none },
  {
    method: 'POST',
    url: '/v1/auth/mfa/totp/confirm',
    operation: api.MfaTotpConfirm,
    schema: { body: api.TotpConfirmRequest },
    input: body,
  },
  {
    method: 'GET',
    url: '/v1/auth/mfa/required-roles',
    operation: api.MfaRequiredRolesRead,
    schema: {},
    input: none,
  },
  {
    method: 'PUT',
    url: '/v1/auth/mfa/required-roles',
    operation: api.MfaRequiredRolesWrite,
    schema: { body: api.MfaRequiredRolesRequest },
    input: body,
  },

  // --- apps ---
  {
    method: 'POST',
    url: '/v1/auth/apps',
    operation: api.AppCreate,
    schema: { body: api.AppCreateRequest },
    input: body,
    status: created,
  },
  { method: 'GET', url: '/v1/auth/apps', operation: api.AppList, schema: {}, input: none },
  {
    method: 'GET',
    url: '/v1/auth/apps/:name',
    operation: api.AppRead,
    schema: { params: api.AppParams },
    input: (r) => ({ name: params(r).name }),
  },
  {
    method: 'POST',
    url: '/v1/auth/apps/:name/rotate-secret',
    operation: api.AppRotateSecret,
    schema: { params: api.AppParams, body: api.AppRotateRequest },
    input: (r) => ({ ...body(r), name: params(r).name }),
  },
  {
    method: 'DELETE',
    url: '/v1/auth/apps/:name',
    operation: api.AppDelete,
    schema: { params: api.AppParams },
    input: (r) => ({ name: params(r).name }),
  },
];
