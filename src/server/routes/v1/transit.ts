import type { FastifyRequest } from 'fastify';
import * as t from '../../../api/transit.ts';
import type { RouteDef } from './routes.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> }>;
const params = (req: FastifyRequest) => (req as Req).params;
const body = (req: FastifyRequest) => ((req as Req).body ?? {}) as Record<string, unknown>;
/** Body fields, then the path's (the path always wins). */
const merged = (r: FastifyRequest) => ({ ...body(r), ...params(r) });
/** A transit request may carry a few MiB of data (12 MiB of base64 per item, as with Vault's 32 MiB). */
const DATA_BODY = 16 * 1024 * 1024;

/** Vault takes both PUT and POST for writes. */
const both = (r: Omit<RouteDef, 'method'>): RouteDef[] => [
  { ...r, method: 'POST' },
  { ...r, method: 'PUT' },
];

/** A data route with an optional hash algorithm in the path (`sign/{name}/{hash_algorithm}`), as Vault has. */
function withHash(
  path: string,
  operation: RouteDef['operation'],
  schema: RouteDef['schema']['body'],
): RouteDef[] {
  return [
    ...both({
      url: `/v1/transit/${path}/:name`,
      operation,
      schema: { params: t.TransitKeyParams, ...(schema ? { body: schema } : {}) },
      input: merged,
      bodyLimit: DATA_BODY,
    }),
    ...both({
      url: `/v1/transit/${path}/:name/:hash_algorithm`,
      operation,
      schema: { params: t.TransitHashParams, ...(schema ? { body: schema } : {}) },
      input: (r) => {
        const { name, hash_algorithm } = params(r);
        return { ...body(r), name, hash_algorithm };
      },
      bodyLimit: DATA_BODY,
    }),
  ];
}

/** The transit engine (docs/transit.md) on Vault's paths. Listing is `GET …/keys` (Node cannot parse LIST). */
export const transitRoutes: RouteDef[] = [
  ...both({
    url: '/v1/transit/keys/:name',
    operation: t.TransitKeyCreate,
    schema: { params: t.TransitKeyParams, body: t.TransitKeyCreateRequest },
    input: merged,
  }),
  {
    method: 'GET',
    url: '/v1/transit/keys/:name',
    operation: t.TransitKeyRead,
    schema: { params: t.TransitKeyParams },
    input: params,
  },
  {
    method: 'GET',
    url: '/v1/transit/keys',
    operation: t.TransitKeyList,
    schema: { querystring: t.TransitListQuery },
    input: () => ({}),
  },
  {
    method: 'DELETE',
    url: '/v1/transit/keys/:name',
    operation: t.TransitKeyDelete,
    schema: { params: t.TransitKeyParams },
    input: params,
  },
  ...both({
    url: '/v1/transit/keys/:name/config',
    operation: t.TransitKeyConfig,
    schema: { params: t.TransitKeyParams, body: t.TransitKeyConfigRequest },
    input: merged,
  }),
  ...both({
    url: '/v1/transit/keys/:name/rotate',
    operation: t.TransitKeyRotate,
    schema: { params: t.TransitKeyParams },
    input: params,
  }),
  ...both({
    url: '/v1/transit/keys/:name/trim',
    operation: t.TransitKeyTrim,
    schema: { params: t.TransitKeyParams, body: t.TransitTrimRequest },
    input: merged,
  }),
  {
    method: 'GET',
    url: '/v1/transit/export/:key_type/:name',
    operation: t.TransitKeyExport,
    schema: { params: t.TransitExportParams },
    input: params,
  },
  {
    method: 'GET',
    url: '/v1/transit/export/:key_type/:name/:version',
    operation: t.TransitKeyExport,
    schema: { params: t.TransitExportParams },
    input: params,
  },
  ...both({
    url: '/v1/transit/encrypt/:name',
    operation: t.TransitEncrypt,
    schema: { params: t.TransitKeyParams, body: t.TransitEncryptRequest },
    input: merged,
    bodyLimit: DATA_BODY,
  }),
  ...both({
    url: '/v1/transit/decrypt/:name',
    operation: t.TransitDecrypt,
    schema: { params: t.TransitKeyParams, body: t.TransitDecryptRequest },
    input: merged,
    bodyLimit: DATA_BODY,
  }),
  ...both({
    url: '/v1/transit/rewrap/:name',
    operation: t.TransitRewrap,
    schema: { params: t.TransitKeyParams, body: t.TransitDecryptRequest },
    input: merged,
    bodyLimit: DATA_BODY,
  }),
  ...both({
    url: '/v1/transit/datakey/:kind/:name',
    operation: t.TransitDatakey,
    schema: { params: t.TransitDatakeyParams, body: t.TransitDatakeyRequest },
    input: merged,
  }),
  ...withHash('sign', t.TransitSign, t.TransitSignRequest),
  ...withHash('verify', t.TransitVerify, t.TransitVerifyRequest),
  ...withHash('hmac', t.TransitHmac, t.TransitHmacRequest),
  ...both({
    url: '/v1/transit/random',
    operation: t.TransitRandom,
    schema: { body: t.TransitRandomRequest },
    input: body,
  }),
  ...both({
    url: '/v1/transit/random/:bytes',
    operation: t.TransitRandom,
    schema: { params: t.TransitRandomParams, body: t.TransitRandomRequest },
    input: (r) => ({ ...body(r), bytes: Number(params(r).bytes) }),
  }),
  ...both({
    url: '/v1/transit/hash',
    operation: t.TransitHash,
    schema: { body: t.TransitHashRequest },
    input: body,
    bodyLimit: DATA_BODY,
  }),
];
