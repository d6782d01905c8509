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
    operation: 'auth.login',
    schema: { body: api.LoginRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/auth/app/login',
    operation: 'auth.app-login',
    schema: { body: api.AppLoginRequest },
    input: body,
  },

  // --- users ---
  {
    method: 'POST',
    url: '/v1/auth/users',
    operation: 'user.create',
    schema: { body: api.UserCreateRequest },
    input: body,
    status: created,
  },
  { method: 'GET', url: '/v1/auth/users', operation: 'user.list', schema: {}, input: none },
  {
    method: 'GET',
    url: '/v1/auth/users/:username',
    operation: 'user.read',
    schema: { params: api.UserParams },
    input: (r) => ({ username: params(r).username }),
  },
  {
    method: 'DELETE',
    url: '/v1/auth/users/:username',
    operation: 'user.delete',
    schema: { params: api.UserParams },
    input: (r) => ({ username: params(r).username }),
  },
  {
    method: 'PUT',
    url: '/v1/auth/users/:username/password',
    operation: 'user.set-password',
    schema: { params: api.UserParams, body: api.UserPasswordRequest },
    input: (r) => ({ ...body(r), username: params(r).username }),
  },
  {
    method: 'PUT',
    url: '/v1/auth/users/:username/roles',
    operation: 'user.set-roles',
    schema: { params: api.UserParams, body: api.UserRolesRequest },
    input: (r) => ({ ...body(r), username: params(r).username }),
  },
  {
    method: 'DELETE',
    url: '/v1/auth/users/:username/mfa',
    operation: 'user.reset-mfa',
    schema: { params: api.UserParams },
    input: (r) => ({ username: params(r).username }),
  },

  // --- self-service ---
  { method: 'GET', url: '/v1/auth/user/self', operation: 'user.read-self', schema: {}, input: none },
  {
    method: 'POST',
    url: '/v1/auth/user/password',
    operation: 'user.change-own-password',
    schema: { body: api.SelfPasswordRequest },
    input: body,
  },
  { method: 'POST', url: '/v1/auth/mfa/totp/enroll', operation: 'mfa.totp-enroll', schema: {}, input: none },
  {
    method: 'POST',
    url: '/v1/auth/mfa/totp/confirm',
    operation: 'mfa.totp-confirm',
    schema: { body: api.TotpConfirmRequest },
    input: body,
  },
  {
    method: 'GET',
    url: '/v1/auth/mfa/required-roles',
    operation: 'mfa.required-roles.read',
    schema: {},
    input: none,
  },
  {
    method: 'PUT',
    url: '/v1/auth/mfa/required-roles',
    operation: 'mfa.required-roles.write',
    schema: { body: api.MfaRequiredRolesRequest },
    input: body,
  },

  // --- apps ---
  {
    method: 'POST',
    url: '/v1/auth/apps',
    operation: 'app.create',
    schema: { body: api.AppCreateRequest },
    input: body,
    status: created,
  },
  { method: 'GET', url: '/v1/auth/apps', operation: 'app.list', schema: {}, input: none },
  {
    method: 'GET',
    url: '/v1/auth/apps/:name',
    operation: 'app.read',
    schema: { params: api.AppParams },
    input: (r) => ({ name: params(r).name }),
  },
  {
    method: 'POST',
    url: '/v1/auth/apps/:name/rotate-secret',
    operation: 'app.rotate-secret',
    schema: { params: api.AppParams, body: api.AppRotateRequest },
    input: (r) => ({ ...body(r), name: params(r).name }),
  },
  {
    method: 'DELETE',
    url: '/v1/auth/apps/:name',
    operation: 'app.delete',
    schema: { params: api.AppParams },
    input: (r) => ({ name: params(r).name }),
  },
];
