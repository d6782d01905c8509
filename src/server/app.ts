import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import fastifySwagger from '@fastify/swagger';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchema,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import {
  VAULT_WRAP_TTL_HEADER,
  WRAP_TTL_HEADER,
  WRAP_TTL_MAX,
  WRAP_TTL_MIN,
  WrappingWrap,
} from '../api/wrapping.ts';
import type { ServerConfig } from '../config/config.ts';
import type { Core } from '../core/core.ts';
import { StrongroomError } from '../errors/errors.ts';
import { parseDuration } from '../lib/duration.ts';
import { DEFAULT_MAX_JSON_DEPTH, JsonTooDeepError, parseJsonLimited } from '../lib/json.ts';
import { HTTP_STATUS } from './errors.ts';
import { lazyRequestLogger } from './logger.ts';
import { invokeWithProgress } from './progress.ts';
import { type RouteDef, v1Routes } from './routes/v1/routes.ts';
import { type EventStream, isEventStream, sendEventStream } from './sse.ts';

const NOT_UTF8 = 'the request body is not valid UTF-8 (JSON text must be UTF-8: RFC 8259 §8.1)';

/** The longest a client may take to send a whole request (headers and body). */
const REQUEST_TIMEOUT_MS = 60_000;
/** How often Node checks connections against that limit (its default, 30 s, would let a slow body linger). */
const CHECK_INTERVAL_MS = 1_000;

/**
 * The HTTP adapter: schema-validated routes that turn HTTP into core calls and
 * core errors into `{"error": {code, message, request_id}}` bodies. It holds no
 * business logic, authorizes nothing and audits nothing itself: the core does.
 */
export interface ServerOptions {
  config: Readonly<ServerConfig>;
  core: Core;
  logger: Logger;
  routes?: RouteDef[];
}

function tokenFrom(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
    return m ? m[1] : auth.trim() === '' ? undefined : auth;
  }
  const vault = req.headers['x-vault-token'];
  return typeof vault === 'string' && vault !== '' ? vault : undefined;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The trace id of a W3C `traceparent` header (all-zero ids are invalid), or else the request id's
 * 128 random bits (a v4 UUID, from genReqId) as 32 hex digits: no second random draw per request.
 */
function traceIdFrom(req: FastifyRequest): string {
  const h = req.headers.traceparent;
  const m = typeof h === 'string' ? TRACEPARENT.exec(h.trim()) : null;
  return m && !/^0+$/.test(m[1]!) ? m[1]! : req.id.replaceAll('-', '');
}

/** The package's version, for the OpenAPI document (package.json sits two levels up from src/ and dist/). */
const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

function errorReply(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: { code, message, request_id: reply.request.id } });
}

function validationMessage(err: FastifyError): {
  code: 'unknown_field' | 'validation_failed';
  message: string;
} {
  const first = err.validation?.[0];
  const where = `${err.validationContext ?? 'body'}${first?.instancePath ? first.instancePath.replaceAll('/', '.') : ''}`;
  if (first?.keyword === 'additionalProperties') {
    const extra = (first.params as { additionalProperty?: string }).additionalProperty;
    return { code: 'unknown_field', message: `unknown field ${JSON.stringify(extra)} in ${where}` };
  }
  return { code: 'validation_failed', message: `${where} ${first?.message ?? 'is invalid'}` };
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: Fastify set-up: body parsers, hooks, error mapping and routes must be registered in this order on one instance
export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { config, core, logger } = opts;
  const routes = opts.routes ?? v1Routes;
  for (const r of routes) {
    if (r.variant && !core.operations.has(r.variant.operation.name)) {
      throw new TypeError(`route ${r.method} ${r.url} names unknown operation ${r.variant.operation.name}`);
    }
    if (!core.operations.has(r.operation.name))
      throw new TypeError(`route ${r.method} ${r.url} names unknown operation ${r.operation.name}`);
  }

  const app = Fastify({
    loggerInstance: logger,
    // every request's record is the audit entry; a line per request in the server log costs as much
    // CPU as the rest of a read (issue 15), so it is opt-in (`access_log: true`)
    logController: new LogController({ disableRequestLogging: config.access_log !== true }),
    // and a request's child logger is made only if it logs something
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: config.max_request_bytes,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    return503OnClosing: true,
    // a client must send its whole request within a minute: slow bodies do not hold connections (and
    // file descriptors) open for ever; answers (watch streams) are not limited by it
    requestTimeout: REQUEST_TIMEOUT_MS,
    // secret names may be 128 characters (more once percent-encoded): find-my-way's default of 100 is too short
    routerOptions: { maxParamLength: 2048 },
    // router-level failures (bad percent-encoding, over-long segment) would otherwise get Fastify's own body shape
    frameworkErrors: (err, _req, reply) => {
      reply.header('x-request-id', reply.request.id);
      if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
        return errorReply(reply, 400, 'validation_failed', 'a path segment is longer than 2048 characters');
      }
      return errorReply(reply, 400, 'bad_request', 'the URL is not valid (check its percent-encoding)');
    },
    ...(config.tls
      ? {
          https: {
            cert: readFileSync(config.tls.cert_file),
            key: readFileSync(config.tls.key_file),
            minVersion: config.tls.min_version ?? 'TLSv1.2',
            // Node takes these when the server is made (Fastify's own setting comes too late for its checks)
            requestTimeout: REQUEST_TIMEOUT_MS,
            connectionsCheckingInterval: CHECK_INTERVAL_MS,
            // workloads may authenticate with their X.509-SVID: ask for a client certificate, never
            // require one, and let the core verify it by the SPIFFE rules (a chain to a trusted bundle)
            ...(config.tls.client_certificates === 'off'
              ? {}
              : { requestCert: true, rejectUnauthorized: false }),
          },
        }
      : {
          http: { requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CHECK_INTERVAL_MS },
        }),
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
  }) as unknown as FastifyInstance;

  // only JSON bodies are accepted
  app.removeAllContentTypeParsers();
  // nesting is limited before parsing (issue 12 item 11): no body, however deep, reaches recursive code
  const maxDepth = config.max_json_depth ?? DEFAULT_MAX_JSON_DEPTH;
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    const bytes = body as Buffer;
    if (bytes.length === 0) return done(null, undefined);
    // JSON is UTF-8 (RFC 8259 §8.1). Decoding invalid bytes would turn them into U+FFFD and store a
    // value the client never sent (issue 13 item 8): refuse the body instead. isUtf8 is native (simdutf)
    // and rejects overlong forms, encoded surrogates and truncated sequences.
    if (!isUtf8(bytes)) return done(new StrongroomError('invalid_json', NOT_UTF8), undefined);
    try {
      done(null, parseJsonLimited(bytes.toString('utf8'), { maxDepth }));
    } catch (err) {
      done(
        err instanceof JsonTooDeepError
          ? new StrongroomError('json_too_deep', `${err.message} (max_json_depth)`)
          : new StrongroomError('invalid_json', 'the request body is not valid JSON'),
        undefined,
      );
    }
  });

  // a synchronous hook: it runs for every request, found or not, before any reply
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
    done();
  });

  app.setNotFoundHandler((req, reply) =>
    errorReply(
      reply,
      404,
      'route_not_found',
      `no route for ${req.method} ${req.url.split('?')[0]}; see docs/api.md`,
    ),
  );

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof StrongroomError) {
      const status = HTTP_STATUS[err.code];
      const retry = err.details?.retry_after;
      if (typeof retry === 'number') reply.header('retry-after', String(Math.ceil(retry)));
      // `reason` in the details is for the operator (which rule a certificate broke, why a record failed
      // its integrity check): logged here, never sent to the client, whose message stays generic
      const reason = typeof err.details?.reason === 'string' ? err.details.reason : undefined;
      if (status >= 500 && err.code !== 'sealed' && err.code !== 'not_initialized') {
        req.log.error({ code: err.code, path: err.details?.path, reason }, 'request failed');
      } else if (reason !== undefined) {
        req.log.warn({ code: err.code, reason }, 'request refused');
      }
      // details marked public (e.g. an import's per-entry problems) are for the client
      const pub = (err.details as { public?: unknown } | undefined)?.public;
      if (pub)
        return reply
          .code(status)
          .send({ error: { code: err.code, message: err.message, request_id: req.id, details: pub } });
      return errorReply(reply, status, err.code, err.message);
    }
    if (err.validation) {
      const { code, message } = validationMessage(err);
      return errorReply(reply, 400, code, message);
    }
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return errorReply(
          reply,
          413,
          'payload_too_large',
          `the request body is larger than ${req.routeOptions.bodyLimit ?? config.max_request_bytes} bytes`,
        );
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return errorReply(reply, 415, 'unsupported_media_type', 'send the body as application/json');
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return errorReply(reply, 400, 'invalid_json', 'the request body is not valid JSON');
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return errorReply(reply, err.statusCode, 'bad_request', 'the request is malformed');
    }
    // never echo internals: log the kind of failure, answer generically
    req.log.error({ err: { type: err.name, code: err.code, stack: err.stack } }, 'unexpected error');
    return errorReply(
      reply,
      500,
      'internal',
      'an internal error occurred; the server log has details under this request id',
    );
  });

  // the OpenAPI document, generated from the route table: @fastify/swagger records each route added after it
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Strongroom vault API',
        version: PACKAGE_VERSION,
        description:
          "The vault's HTTP API (docs/api.md). Every route but the public ones takes a bearer token.",
      },
      components: { securitySchemes: { token: { type: 'http', scheme: 'bearer' } } },
      security: [{ token: [] }],
    },
  });
  // public, like the API's documentation: it describes routes and schemas, never data
  app.get('/v1/openapi.json', { schema: { hide: true } as FastifySchema }, async () => app.swagger());

  // open event streams end when the server closes, or close() would wait for them
  const streams = new Set<EventStream>();
  app.addHook('preClose', async () => {
    for (const s of streams) s.close();
  });

  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.url,
      schema: routeSchema(r),
      ...(r.bodyLimit ? { bodyLimit: r.bodyLimit } : {}),
      // no body at all reads as an empty object: its schema then says what is missing (Vault clients
      // send none where every field is optional, e.g. an unwrap with the token as X-Vault-Token)
      ...(r.schema.body
        ? {
            preValidation: async (req: FastifyRequest) => {
              if (req.body === undefined || req.body === null) req.body = {};
            },
          }
        : {}),
      handler: async (req, reply) => {
        const operation = r.variant?.when(req) ? r.variant.operation.name : r.operation.name;
        if (r.progress) {
          const info = {
            request_id: req.id,
            trace_id: traceIdFrom(req),
            client_address: req.ip,
            token: tokenFrom(req),
            peer_certificates: peerChain(req),
          };
          return invokeWithProgress(core, operation, r.input(req), info, r.progress, reply);
        }
        // a malformed wrap TTL is refused before the read runs (and before it takes a lease)
        const wrapTtl = r.wrappable ? wrapTtlOf(req) : undefined;
        const result = await core.invoke(operation, r.input(req), {
          request_id: req.id,
          trace_id: traceIdFrom(req),
          client_address: req.ip,
          token: tokenFrom(req),
          peer_certificates: peerChain(req),
        });
        if (r.stream && isEventStream(result)) return sendEventStream(reply, result, streams);
        if (wrapTtl !== undefined) {
          // the answer as its schema serializes it, sealed under a single-use token (docs/wrapping.md)
          const value = r.operation.response
            ? reply.serializeInput(
                result as Record<string, unknown>,
                r.operation.response as Record<string, unknown>,
              )
            : JSON.stringify(result);
          const wrapped = await core.invoke(
            WrappingWrap.name,
            { value, ttl: wrapTtl, creation_path: req.url.split('?')[0] },
            {
              request_id: req.id,
              trace_id: traceIdFrom(req),
              client_address: req.ip,
              token: tokenFrom(req),
              peer_certificates: peerChain(req),
            },
          );
          return reply.code(200).type('application/json; charset=utf-8').send(JSON.stringify(wrapped));
        }
        if (r.contentType) reply.type(r.contentType);
        return reply.code(r.status ? r.status(result) : 200).send(result);
      },
    });
  }
  return app;
}

/**
 * A route's schemas for Fastify: the request parts it validates, and the
 * operation's response schema for a JSON answer, so the body is serialized by
 * it (fast-json-stringify: a field the schema does not name is never sent) and
 * documented in /v1/openapi.json. A route with a variant answers with either
 * operation's body, so it keeps the first one's schema only if both share it.
 */
function routeSchema(r: RouteDef): FastifySchema {
  const response = r.operation.response;
  const json = !r.stream && !r.contentType && !r.progress;
  const shared = !r.variant || r.variant.operation.response === response;
  return {
    ...r.schema,
    ...(json && response && shared ? { response: { '2xx': response } } : {}),
  };
}

/** The wrapping TTL a request asks for (seconds), or undefined; a malformed one is refused. */
function wrapTtlOf(req: FastifyRequest): number | undefined {
  const raw = req.headers[VAULT_WRAP_TTL_HEADER] ?? req.headers[WRAP_TTL_HEADER];
  if (raw === undefined) return undefined;
  const v = Array.isArray(raw) ? raw[0] : raw;
  let ttl: number;
  try {
    ttl = parseDuration(String(v));
  } catch (err) {
    throw new StrongroomError('invalid_value', `${WRAP_TTL_HEADER}: ${(err as Error).message}`);
  }
  if (ttl < WRAP_TTL_MIN || ttl > WRAP_TTL_MAX) {
    throw new StrongroomError('invalid_value', `${WRAP_TTL_HEADER} must be from 1 s to 24 h`);
  }
  return ttl;
}

const chains = new WeakMap<object, readonly Buffer[] | undefined>();

/**
 * The client certificate chain of a TLS connection (DER, leaf first), read
 * once per connection. Only collected here: the core verifies it (SPIFFE rules).
 */
function peerChain(req: FastifyRequest): readonly Buffer[] | undefined {
  const socket = req.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  if (chains.has(socket)) return chains.get(socket);
  let chain: Buffer[] | undefined;
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (leaf?.raw) {
    chain = [];
    let c: DetailedPeerCertificate | undefined = leaf;
    const seen = new Set<DetailedPeerCertificate>();
    while (c?.raw && !seen.has(c) && chain.length < 8) {
      seen.add(c);
      chain.push(c.raw);
      c = c.issuerCertificate && c.issuerCertificate !== c ? c.issuerCertificate : undefined;
    }
  }
  chains.set(socket, chain);
  return chain;
}
