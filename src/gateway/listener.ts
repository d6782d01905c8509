import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/gateway.ts';
import { isStrongroomError, StrongroomError } from '../errors/errors.ts';
import { JsonTooDeepError, parseJsonLimited } from '../lib/json.ts';
import { apiOfUrl, sendError, statusOf } from './error-answers.ts';

/**
 * The gateway's HTTP listener: TLS (and client certificates) as configured, request bodies read as
 * bounded JSON objects, and answers for what no endpoint handles (unknown routes, bodies refused
 * before a handler runs, failures) in the caller's API format. The endpoints are added by the caller.
 */
export function createListener(opts: {
  config: Pick<GatewayConfig, 'max_request_bytes' | 'tls'>;
  requestTimeoutMs: number;
  maxJsonDepth: number;
  /** Told each request body's size in bytes (an upper bound of its input tokens). */
  bodyBytes: WeakMap<object, number>;
  logger: Logger;
}): FastifyInstance {
  const { config, requestTimeoutMs, maxJsonDepth, bodyBytes, logger } = opts;
  const app = Fastify({
    logger: false,
    bodyLimit: config.max_request_bytes ?? 4 * 1024 * 1024,
    // a caller must send its whole request in time (slow bodies do not hold connections open)
    requestTimeout: requestTimeoutMs,
    genReqId: () => randomUUID(),
    ...(config.tls
      ? {
          https: {
            cert: readFileSync(config.tls.cert_file),
            key: readFileSync(config.tls.key_file),
            minVersion: 'TLSv1.2' as const,
            // Node takes these when the server is made (Fastify's own setting comes too late for its
            // checks); it checks every second (its default, 30 s, would let a slow body linger)
            requestTimeout: requestTimeoutMs,
            connectionsCheckingInterval: 1_000,
            ...(config.tls.client_certificates === 'off'
              ? {}
              : { requestCert: true, rejectUnauthorized: false }),
          },
        }
      : { http: { requestTimeout: requestTimeoutMs, connectionsCheckingInterval: 1_000 } }),
  }) as unknown as FastifyInstance;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(/^application\/json(;.*)?$/i, { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer;
    bodyBytes.set(req.raw, bytes.length);
    // invalid UTF-8 would be decoded to U+FFFD and forwarded as a prompt the caller never sent
    // (issue 13 item 8; JSON is UTF-8, RFC 8259 §8.1): refused, with the vault API's code
    if (!isUtf8(bytes)) {
      return done(
        new StrongroomError(
          'invalid_json',
          'the request body is not valid UTF-8 (JSON text must be UTF-8: RFC 8259 §8.1)',
        ),
        undefined,
      );
    }
    try {
      // nesting is bounded before anything walks the body (issue 12 item 11)
      const v = parseJsonLimited(bytes.toString('utf8'), { maxDepth: maxJsonDepth }) as unknown;
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      done(null, v);
    } catch (err) {
      done(
        err instanceof JsonTooDeepError
          ? new StrongroomError('json_too_deep', `${err.message} (gateway.max_json_depth)`)
          : new StrongroomError('invalid_json', 'the request body is not a JSON object'),
        undefined,
      );
    }
  });

  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      apiOfUrl(req.url),
      'route_not_found',
      `no gateway route ${req.method} ${req.url.split('?')[0]}`,
    ),
  );
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const api = apiOfUrl(req.url);
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(reply, api, 'payload_too_large', 'the request body is too large');
    }
    // our own refusals of a body keep their stable code (invalid_json, json_too_deep)
    if (isStrongroomError(err) && statusOf(err.code) < 500)
      return sendError(reply, api, err.code, err.message);
    // Fastify's: a body of another media type (the vault API's code), else bad_request
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return sendError(reply, api, 'unsupported_media_type', 'the request is malformed');
    }
    if (err.statusCode && err.statusCode < 500 && !isStrongroomError(err)) {
      return sendError(reply, api, 'bad_request', 'the request is malformed');
    }
    logger.error({ err: { message: err.message } }, 'gateway error');
    return sendError(reply, api, 'internal', 'internal error');
  });
  return app;
}
