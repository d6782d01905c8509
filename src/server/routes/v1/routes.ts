import type { FastifyRequest } from 'fastify';
import type { TSchema } from 'typebox';
import * as gr from '../../../api/generate-root.ts';
import * as api from '../../../api/v1.ts';
import type { AnyOpSpec } from '../../../contract/operation.ts';
import type { ProgressStreamDef } from '../../progress.ts';

/**
 * The v1 route table. Each route names the core operation it invokes (which
 * carries the policy action); the server refuses to start if a route names an
 * operation that does not exist. Routes never authorize or audit by themselves.
 */
export interface RouteDef {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  /** The operation the route invokes, by its spec in api/ (its name, response schema and types). */
  operation: AnyOpSpec;
  /** Another operation this route invokes instead when `when(req)` holds (e.g. DELETE ?destroy=true). */
  variant?: { operation: AnyOpSpec; when(req: FastifyRequest): boolean };
  schema: { params?: TSchema; querystring?: TSchema; body?: TSchema };
  /** Builds the operation input; path parameters always win over body fields. */
  input(req: FastifyRequest): unknown;
  /** HTTP status for a successful result (default 200). */
  status?(result: unknown): number;
  /** The operation returns a stream (src/server/sse.ts): answer with server-sent events. */
  stream?: boolean;
  /** Send the (string) result with this content type instead of JSON. */
  contentType?: string;
  /** Largest request body accepted, in bytes (default: the server's max_request_bytes). */
  bodyLimit?: number;
  /** The operation reports progress (src/server/progress.ts): stream it when the client asks. */
  progress?: ProgressStreamDef;
  /**
   * A read whose answer may be wrapped (docs/wrapping.md): with `X-Strongroom-Wrap-TTL` (or Vault's
   * `X-Vault-Wrap-TTL`) the caller gets a single-use wrapping token instead of the answer.
   */
  wrappable?: boolean;
}

type Req = FastifyRequest<{
  Params: Record<string, string>;
  Querystring: Record<string, string>;
  Body: Record<string, unknown>;
}>;
const params = (req: FastifyRequest) => (req as Req).params;
const query = (req: FastifyRequest) => (req as Req).query;
const body = (req: FastifyRequest) => ((req as Req).body ?? {}) as Record<string, unknown>;
const none = () => ({});

export const v1Routes: RouteDef[] = [
  // --- sys ---
  { method: 'GET', url: '/v1/sys/seal-status', operation: api.SysSealStatus, schema: {}, input: none },
  {
    method: 'GET',
    url: '/v1/sys/health',
    operation: api.SysSealStatus,
    schema: {},
    input: none,
    status: (r) => {
      const s = r as api.SealStatusResponse;
      return !s.initialized ? 501 : s.sealed ? 503 : 200;
    },
  },
  {
    method: 'POST',
    url: '/v1/sys/init',
    operation: api.SysInit,
    schema: { body: api.InitRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/sys/unseal',
    operation: api.SysUnseal,
    schema: { body: api.UnsealRequest },
    input: body,
  },
  { method: 'POST', url: '/v1/sys/seal', operation: api.SysSeal, schema: {}, input: none },
  // a new root token from a quorum of key holders (docs/seal.md), on Vault's paths
  {
    method: 'GET',
    url: '/v1/sys/generate-root/attempt',
    operation: gr.GenerateRootRead,
    schema: {},
    input: none,
  },
  ...(['POST', 'PUT'] as const).map(
    (method): RouteDef => ({
      method,
      url: '/v1/sys/generate-root/attempt',
      operation: gr.GenerateRootStart,
      schema: { body: gr.GenerateRootStartRequest },
      input: body,
    }),
  ),
  {
    method: 'DELETE',
    url: '/v1/sys/generate-root/attempt',
    operation: gr.GenerateRootCancel,
    schema: {},
    input: none,
  },
  ...(['POST', 'PUT'] as const).map(
    (method): RouteDef => ({
      method,
      url: '/v1/sys/generate-root/update',
      operation: gr.GenerateRootUpdate,
      schema: { body: gr.GenerateRootUpdateRequest },
      input: body,
    }),
  ),
  { method: 'POST', url: '/v1/sys/rotate', operation: api.SysRotate, schema: {}, input: none },
  { method: 'GET', url: '/v1/sys/key-status', operation: api.SysKeyStatus, schema: {}, input: none },

  // --- projects and environments ---
  {
    method: 'POST',
    url: '/v1/projects',
    operation: api.ProjectCreate,
    schema: { body: api.ProjectCreateRequest },
    input: body,
    status: () => 201,
  },
  { method: 'GET', url: '/v1/projects', operation: api.ProjectList, schema: {}, input: none },
  {
    method: 'GET',
    url: '/v1/projects/:project',
    operation: api.ProjectRead,
    schema: { params: api.ProjectParams },
    input: (r) => ({ project: params(r).project }),
  },
  {
    method: 'POST',
    url: '/v1/projects/:project/environments',
    operation: api.EnvironmentCreate,
    schema: { params: api.ProjectParams, body: api.EnvironmentCreateRequest },
    input: (r) => ({ ...body(r), project: params(r).project }),
    status: () => 201,
  },

  // --- secrets ---
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env',
    operation: api.SecretList,
    schema: { params: api.EnvParams },
    input: (r) => ({ project: params(r).project, env: params(r).env }),
  },
  {
    method: 'PUT',
    url: '/v1/secrets/:project/:env/:name',
    operation: api.SecretWrite,
    schema: { params: api.SecretParams, body: api.SecretPutRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env/:name',
    operation: api.SecretRead,
    schema: { params: api.SecretParams, querystring: api.VersionQuery },
    input: (r) => {
      const v = query(r).version;
      return { ...params(r), ...(v === undefined ? {} : { version: Number(v) }) };
    },
    wrappable: true,
  },
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env/:name/versions',
    operation: api.SecretVersions,
    schema: { params: api.SecretParams },
    input: (r) => ({ ...params(r) }),
  },
  {
    method: 'POST',
    url: '/v1/secrets/:project/:env/:name/rollback',
    operation: api.SecretRollback,
    schema: { params: api.SecretParams, body: api.SecretRollbackRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'DELETE',
    url: '/v1/secrets/:project/:env/:name',
    operation: api.SecretDelete,
    variant: { operation: api.SecretDestroy, when: (r) => query(r).destroy === 'true' },
    schema: { params: api.SecretParams, querystring: api.DeleteQuery },
    input: (r) => ({ ...params(r) }),
  },
  {
    method: 'POST',
    url: '/v1/secrets/:project/:env/:name/restore',
    operation: api.SecretRestore,
    schema: { params: api.SecretParams },
    input: (r) => ({ ...params(r) }),
  },

  // --- tokens ---
  {
    method: 'POST',
    url: '/v1/auth/token/create',
    operation: api.TokenCreate,
    schema: { body: api.TokenCreateRequest },
    input: body,
  },
  {
    method: 'GET',
    url: '/v1/auth/token/lookup-self',
    operation: api.TokenLookupSelf,
    schema: {},
    input: none,
  },
  {
    method: 'POST',
    url: '/v1/auth/token/renew-self',
    operation: api.TokenRenewSelf,
    schema: { body: api.TokenRenewRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/auth/token/revoke-self',
    operation: api.TokenRevokeSelf,
    schema: {},
    input: none,
  },
  {
    method: 'POST',
    url: '/v1/auth/token/revoke',
    operation: api.TokenRevoke,
    schema: { body: api.TokenValueRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/auth/token/revoke-accessor',
    operation: api.TokenRevokeAccessor,
    schema: { body: api.AccessorRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/auth/token/lookup-accessor',
    operation: api.TokenLookupAccessor,
    schema: { body: api.AccessorRequest },
    input: body,
  },

  // --- policies ---
  { method: 'GET', url: '/v1/sys/policies', operation: api.PolicyList, schema: {}, input: none },
  {
    method: 'PUT',
    url: '/v1/sys/policies/:name',
    operation: api.PolicyPut,
    schema: { params: api.PolicyParams, body: api.PolicyPutRequest },
    input: (r) => ({ ...body(r), name: params(r).name }),
  },
  {
    method: 'GET',
    url: '/v1/sys/policies/:name',
    operation: api.PolicyGet,
    schema: { params: api.PolicyParams },
    input: (r) => ({ name: params(r).name }),
  },
  {
    method: 'DELETE',
    url: '/v1/sys/policies/:name',
    operation: api.PolicyDelete,
    schema: { params: api.PolicyParams },
    input: (r) => ({ name: params(r).name }),
  },
  {
    method: 'POST',
    url: '/v1/sys/policy-test',
    operation: api.PolicyTest,
    schema: { body: api.PolicyTestRequest },
    input: body,
  },
];
