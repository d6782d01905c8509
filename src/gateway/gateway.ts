import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import {
  context as otelContext,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import type { GatewayConfig } from '../config/gateway.ts';
import type { Identity, RequestInfo, Resource } from '../core/types.ts';
import { costOf, dearestInput, priceOf as priceIn, tokensOf } from '../engines/gateway/budgets.ts';
import { isStrongroomError, StrongroomError } from '../errors/errors.ts';
import { parseDuration } from '../lib/duration.ts';
import { DEFAULT_MAX_JSON_DEPTH, JsonTooDeepError, jsonDepth, parseJsonLimited } from '../lib/json.ts';
import type { Counter, Histogram } from '../lib/metrics.ts';
import type { AnomalyDetector } from './anomaly.ts';
import type { GatewayIdentity } from './identity.ts';
import { createLabeler } from './labels.ts';
import {
  authHeaders,
  ENDPOINTS,
  type Endpoint,
  errorBody,
  FORWARDED_HEADERS,
  parseRequest,
  streamUsageTracker,
  usageOf,
  type WireApi,
  withOutputCap,
} from './providers.ts';
import { secretRedactor } from './stages/output-filter.ts';
import type { RemoteStage } from './stages/remote.ts';
import { encodeProvenanceHeader, PROVENANCE_HEADER, signStage } from './stages/signing.ts';
import {
  createSseParser,
  createStreamRelay,
  joinedTexts,
  jsonCleaner,
  needsWalk,
  type SseEvent,
} from './stream.ts';
import type {
  CallInfo,
  Price,
  ProvenanceLink,
  RequestStage,
  Reservation,
  ResponseFilter,
  ResponseStage,
  Usage,
} from './types.ts';
import { StageRefusal } from './types.ts';
import type { DefaultLimits, GatewayVault, Session, Settlement } from './vault-port.ts';

/**
 * The AI gateway (issue 7; docs/gateway.md). Applications call it as if it
 * were OpenAI or Anthropic, with a short-lived Strongroom credential; every
 * call goes through the same steps, in this order, with no route that skips
 * any of them:
 *
 *   authenticate (token, virtual key, JWT-SVID, X.509-SVID; a key bound to a
 *   SPIFFE ID also needs that SVID) -> parse (model, stream, size) -> route
 *   (config decides the upstream: never the client) -> authorize (Cedar
 *   `gateway.invoke` on Model::"provider/model") -> reserve budget ->
 *   request stages (prompt firewall) -> inject the vault-held key into a
 *   request built from scratch -> stream the answer through the response
 *   stages (output filter, which also redacts the key) -> settle the budget
 *   -> one audit entry (before the last byte reaches the client).
 */
export interface GatewayDeps {
  /** The vault: in this process, or remote over mTLS (vault-port.ts). */
  vault: GatewayVault;
  config: GatewayConfig;
  logger: Logger;
  requestStages?: RequestStage[];
  responseStages?: ResponseStage[];
  /** Called after each call; never throws into the request. */
  observe?: (call: CallInfo, outcome: { status: number; usage?: Usage; denied?: string }) => void;
  /** Anomaly detection: looked at before each call goes upstream. */
  anomaly?: AnomalyDetector;
  /** The gateway's own SVID: signs the provenance chain, authenticates to remote stages. */
  identity?: GatewayIdentity;
  /** Stages running as separate services, reached over mTLS (after the in-process request stages); made once the identity is ready. */
  remoteStages?: () => RemoteStage[];
  /** Where alerts are POSTed (JSON, no secrets and no prompt text). */
  anomalyWebhook?: string;
}

interface Upstream {
  base_url: string;
  keys: string[];
  /** Parsed once: where requests go, and the path prefix before the endpoint's path. */
  origin: string;
  host: string;
  prefix: string;
}

interface RouteTarget {
  provider: string;
  api: WireApi;
  upstreams: Upstream[];
  timeoutMs: number;
  /** The models' context window: the input bound of a request whose input the provider assembles. */
  maxInputTokens: number;
}

function upstreamOf(u: { base_url: string; keys: string[] }): Upstream {
  const url = new URL(u.base_url);
  return {
    base_url: u.base_url,
    keys: u.keys,
    origin: url.origin,
    host: url.host,
    // a base URL ending in /v1 (OpenAI's own) already carries the version the endpoint paths start with
    prefix: url.pathname.replace(/\/+$/, '').replace(/\/v1$/, ''),
  };
}

const CLASSIFICATION = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** Why a call ended before its answer did (issue 12 items 9 and 10), with what the client is told. */
type EndReason = 'client_closed' | 'call_timeout' | 'credential_revoked' | 'vault_unavailable';
const END_REASONS: Record<EndReason, { status: number; message: string }> = {
  // nobody is left to tell; 499 as nginx records it
  client_closed: { status: 499, message: 'the client went away' },
  call_timeout: { status: 504, message: 'the call took longer than the gateway allows (max_call_duration)' },
  credential_revoked: { status: 401, message: 'the credential was revoked or expired during the call' },
  vault_unavailable: {
    status: 503,
    message: 'the gateway could not confirm the credential with its vault during the call',
  },
};
/** How long open calls go on while the vault cannot confirm their credentials. */
const LIVE_GRACE_MS = 5_000;

/** One forwarded call, as everything after admission sees it. */
interface Forwarding {
  ep: Endpoint;
  target: RouteTarget;
  reply: FastifyReply;
  call: CallInfo;
  who: Session;
  info: RequestInfo;
  span: Span;
  /** Milliseconds since the call came in. */
  ms: () => number;
  reservation: Reservation | undefined;
  price: Price | undefined;
  /** The call asked for structured output: its generated text is JSON a client parses. */
  jsonOutput: boolean;
}

interface CallGuard {
  /** Aborts the upstream request when the call ends early. */
  readonly signal: AbortSignal;
  readonly reason: EndReason | undefined;
  done(): void;
}

/** An open call whose credential is checked while it runs. */
interface Watched {
  session: Session;
  end(reason: EndReason): void;
  lastOk: number;
  /** When max_call_duration ends it. */
  until: number;
}
const MAX_STREAM_LINE = 1024 * 1024;
/** Deepest JSON nesting accepted in an upstream answer or event (provider answers nest under 10). */
const ANSWER_MAX_DEPTH = 128;

function globMatch(glob: string, value: string): boolean {
  if (!glob.includes('*')) return glob === value;
  const re = new RegExp(
    `^${glob
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(value);
}

/** The credential a client sent: `Authorization: Bearer X` or `x-api-key: X` (the two SDKs' ways). */
function credentialOf(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S{1,8192})\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const k = headers['x-api-key'];
  return typeof k === 'string' && k.length > 0 && k.length <= 8192 ? k : undefined;
}

function peerChain(req: FastifyRequest): Buffer[] | undefined {
  const socket = req.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!leaf?.raw) return undefined;
  const chain: Buffer[] = [];
  let c: DetailedPeerCertificate | undefined = leaf;
  const seen = new Set<DetailedPeerCertificate>();
  while (c?.raw && !seen.has(c) && chain.length < 8) {
    seen.add(c);
    chain.push(c.raw);
    c = c.issuerCertificate && c.issuerCertificate !== c ? c.issuerCertificate : undefined;
  }
  return chain;
}

function traceIdOf(headers: IncomingHttpHeaders): string | undefined {
  const tp = headers.traceparent;
  const m = typeof tp === 'string' ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(tp) : null;
  return m && m[1] !== '0'.repeat(32) ? m[1] : undefined;
}

export interface Gateway {
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function createGateway(deps: GatewayDeps): Promise<Gateway> {
  const { vault, config, logger } = deps;
  const tracer = trace.getTracer('strongroom-gateway');
  const defaultMaxOut = config.default_max_output_tokens ?? 4096;
  const referenceTokens = config.reference_tokens ?? 2048;
  const maxJsonDepth = config.max_json_depth ?? DEFAULT_MAX_JSON_DEPTH;
  const maxCallMs =
    (config.max_call_duration === undefined ? 600 : parseDuration(config.max_call_duration)) * 1000;
  const revocationMs = config.revocation_check_ms ?? 500;
  const requestTimeoutMs =
    (config.request_timeout === undefined ? 60 : parseDuration(config.request_timeout)) * 1000;
  // a virtual key's own limits come from the vault; these are the rest (per app, workload, user or token)
  const limits: DefaultLimits = config.limits ?? {};
  /** Each request body's size in bytes, from the content parser (an upper bound of its input tokens). */
  const bodyBytes = new WeakMap<object, number>();
  const pools = new Map<string, Pool>();
  const rr = new Map<string, number>();

  const m = vault.metrics;
  // metric labels from a bounded set: configured model names or globs, caller IDs (never client text)
  const label = createLabeler(config);
  const requests: Counter = m.counter(
    'strongroom_gateway_requests_total',
    'Gateway calls by provider, model and HTTP status',
    ['provider', 'model', 'status'],
  );
  const tokens: Counter = m.counter(
    'strongroom_gateway_tokens_total',
    'Tokens by provider, model and direction',
    ['provider', 'model', 'direction'],
  );
  const spend: Counter = m.counter('strongroom_gateway_spend_usd_total', 'Spend in USD by caller', [
    'caller',
  ]);
  const denials: Counter = m.counter(
    'strongroom_gateway_denials_total',
    'Refused calls by caller and reason',
    ['caller', 'reason'],
  );
  const latency: Histogram = m.histogram(
    'strongroom_gateway_request_duration_seconds',
    'Gateway call duration (to the last byte)',
    ['provider'],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );

  const targets: (RouteTarget & { models: string[] })[] = config.routes.map((r) => ({
    provider: r.provider,
    api: r.api ?? (r.provider === 'anthropic' ? 'anthropic' : 'openai'),
    models: r.models,
    upstreams: [{ base_url: r.base_url, keys: r.keys }, ...(r.fallbacks ?? [])].map(upstreamOf),
    timeoutMs: (r.timeout === undefined ? 120 : parseDuration(r.timeout)) * 1000,
    maxInputTokens: r.max_input_tokens ?? config.max_input_tokens ?? 1_000_000,
  }));

  function targetFor(api: WireApi, model: string) {
    return targets.find((t) => t.api === api && t.models.some((g) => globMatch(g, model)));
  }

  // the one price function of the gateway and the budget engine: the exact name, then the most specific glob
  const prices = config.prices ?? {};
  const priceOf = (model: string): Price | undefined => priceIn(model, prices);

  function poolFor(origin: string): Pool {
    let p = pools.get(origin);
    if (!p) {
      p = new Pool(origin, { connections: 128, keepAliveTimeout: 30_000 });
      pools.set(origin, p);
    }
    return p;
  }

  /** Who is calling: the session the vault derived from the caller's credential (vault-port.ts). */
  type Authenticated = Session;

  // ---------------------------------------------------------------- audit

  async function audit(
    call: Partial<CallInfo> & { request_id: string; trace_id: string },
    actor: Identity | undefined,
    clientAddress: string,
    outcome: {
      allowed: boolean;
      reason: string;
      status_code: number;
      error_code?: string;
      usage?: Usage;
      cost_usd?: number;
      latency_ms: number;
      upstream?: string;
    },
    settlement?: Settlement,
  ) {
    await vault.audit(
      {
        type: 'response',
        request_id: call.request_id,
        trace_id: call.trace_id,
        operation: 'gateway.invoke',
        action: 'gateway.invoke',
        resource: `Model::${call.provider ?? '-'}/${call.model ?? '-'}`,
        actor: actor
          ? {
              accessor: actor.accessor,
              display_name: actor.display_name,
              type: actor.owner.type,
              id: actor.owner.id,
            }
          : null,
        client_address: clientAddress,
        decision: { allowed: outcome.allowed, reason: outcome.reason },
        // no prompt or completion text: what was called, how much it cost, how long it took
        request: {
          route: call.route ?? null,
          stream: call.stream ?? false,
          classification: call.classification ?? null,
          input_tokens: outcome.usage?.input_tokens ?? null,
          output_tokens: outcome.usage?.output_tokens ?? null,
          ...(outcome.usage?.cache_read_tokens ? { cache_read_tokens: outcome.usage.cache_read_tokens } : {}),
          ...(outcome.usage?.cache_write_5m_tokens || outcome.usage?.cache_write_1h_tokens
            ? {
                cache_write_tokens:
                  (outcome.usage.cache_write_5m_tokens ?? 0) + (outcome.usage.cache_write_1h_tokens ?? 0),
              }
            : {}),
          cost_usd: outcome.cost_usd ?? null,
          latency_ms: outcome.latency_ms,
          upstream: outcome.upstream ?? null,
        },
        status: outcome.allowed && outcome.status_code < 400 ? 'ok' : 'error',
        status_code: outcome.status_code,
        ...(outcome.error_code ? { error_code: outcome.error_code } : {}),
      },
      {
        ...(settlement ? { settle: settlement } : {}),
        ...(call.session ? { session: call.session as Session } : {}),
      },
    );
  }

  // ---------------------------------------------------------------- the app

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
      const e = new StrongroomError(
        'invalid_json',
        'the request body is not valid UTF-8 (JSON text must be UTF-8: RFC 8259 §8.1)',
      ) as Error & { statusCode?: number };
      e.statusCode = 400;
      return done(e, undefined);
    }
    try {
      // nesting is bounded before anything walks the body (issue 12 item 11)
      const v = parseJsonLimited(bytes.toString('utf8'), { maxDepth: maxJsonDepth }) as unknown;
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      done(null, v);
    } catch (err) {
      const e = (
        err instanceof JsonTooDeepError
          ? new StrongroomError('json_too_deep', `${err.message} (gateway.max_json_depth)`)
          : new StrongroomError('invalid_json', 'the request body is not a JSON object')
      ) as Error & { statusCode?: number };
      e.statusCode = 400;
      done(e, undefined);
    }
  });

  function sendError(
    reply: FastifyReply,
    api: WireApi,
    status: number,
    code: string,
    message: string,
    retryAfter?: number,
  ) {
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    return reply
      .code(status)
      .type('application/json')
      .send(errorBody(api, status, code, message));
  }

  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      req.url.startsWith('/v1/messages') ? 'anthropic' : 'openai',
      404,
      'route_not_found',
      `no gateway route ${req.method} ${req.url.split('?')[0]}`,
    ),
  );
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const api: WireApi = req.url.startsWith('/v1/messages') ? 'anthropic' : 'openai';
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(reply, api, 413, 'payload_too_large', 'the request body is too large');
    }
    if (err.statusCode && err.statusCode < 500) {
      // our own refusals keep their stable code (invalid_json, json_too_deep); Fastify's are bad_request
      const status = err.statusCode;
      if (isStrongroomError(err)) return sendError(reply, api, status, err.code, err.message);
      return sendError(reply, api, err.statusCode, 'bad_request', 'the request is malformed');
    }
    logger.error({ err: { message: err.message } }, 'gateway error');
    return sendError(reply, api, 500, 'internal', 'internal error');
  });

  app.get('/healthz', async (_req, reply) => {
    const status = await vault.health();
    return reply.code(status === 'ok' ? 200 : 503).send({ status });
  });

  for (const ep of ENDPOINTS) {
    app.route({
      method: ep.method,
      url: ep.path,
      handler: (req, reply) => handle(ep, req, reply),
    });
  }

  const STATUS: Record<string, number> = {
    unauthenticated: 401,
    invalid_token: 401,
    invalid_svid: 401,
    permission_denied: 403,
    rate_limited: 429,
    sealed: 503,
    vault_unavailable: 503,
    audit_unavailable: 503,
    secret_not_found: 502,
    invalid_value: 400,
    validation_failed: 400,
  };

  async function handle(ep: Endpoint, req: FastifyRequest, reply: FastifyReply) {
    const started = performance.now();
    const info: RequestInfo = {
      request_id: req.id,
      trace_id: traceIdOf(req.headers) ?? randomUUID().replaceAll('-', ''),
      client_address: req.ip,
    };
    const call: Partial<CallInfo> & { request_id: string; trace_id: string } = {
      request_id: info.request_id,
      trace_id: info.trace_id!,
      route: ep.route,
      client_address: info.client_address,
    };
    const parent = propagation.extract(otelContext.active(), req.headers);
    const span = tracer.startSpan(
      `gateway ${ep.route}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'gen_ai.operation.name': ep.route, 'http.request.method': ep.method },
      },
      parent,
    );
    let who: Authenticated | undefined;
    let reservation: Reservation | undefined;
    const ms = () => Math.round((performance.now() - started) * 10) / 10;

    /** Refuses the call: one audit entry, the metric, and an error in the caller's API format. */
    const refuse = async (status: number, code: string, message: string, retryAfter?: number) => {
      await reservation?.release().catch(() => {});
      denials.inc([label.caller(who?.caller, who?.identity.owner), code]);
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      span.end();
      if (call.caller) deps.observe?.(call as CallInfo, { status, denied: code });
      try {
        await audit(call, who?.identity, info.client_address, {
          allowed: false,
          reason: code,
          status_code: status,
          error_code: code,
          latency_ms: ms(),
        });
      } catch {
        // a vault that is sealed or out of reach cannot take the record either: say why
        if (code === 'sealed' || code === 'vault_unavailable')
          return sendError(reply, ep.api, status, code, message);
        return sendError(
          reply,
          ep.api,
          503,
          'audit_unavailable',
          'the call could not be audited, so it was refused',
        );
      }
      return sendError(reply, ep.api, status, code, message, retryAfter);
    };

    try {
      if (vault.sealed()) return await refuse(503, 'sealed', 'Strongroom is sealed');
      // who is calling, as the vault says (through the core pipeline's own authentication step)
      const credential = credentialOf(req.headers);
      const chain = config.tls?.client_certificates === 'off' ? undefined : peerChain(req);
      who = await vault.authenticate(
        {
          ...(credential ? { credential } : {}),
          ...(chain?.length ? { chain } : {}),
          ...(config.tls?.client_certificates === 'require' ? { requireSvid: true } : {}),
        },
        info,
      );
      call.caller = who.caller;
      call.session = who;

      // --- what is asked (the body's model and flags; nothing here chooses where it goes) ---
      let body = (req.body ?? {}) as Record<string, unknown>;
      const parsed = ep.method === 'GET' ? undefined : parseRequest(ep, body);
      if (ep.hasModel && !parsed?.model)
        return await refuse(400, 'invalid_value', 'the request names no model');
      const header = req.headers['x-strongroom-classification'];
      const classification = typeof header === 'string' ? header : (who.caller.classification ?? 'internal');
      if (!CLASSIFICATION.test(classification)) {
        return await refuse(
          400,
          'invalid_value',
          'x-strongroom-classification: lower-case letters, digits, - and _',
        );
      }
      call.classification = classification;
      call.stream = parsed?.stream ?? false;
      // an upper bound of what the call can use (issue 12 item 4): no text token is shorter than a
      // byte, and the output is capped per choice by max_tokens (the gateway's cap when none is set)
      call.estimated_input_tokens =
        (bodyBytes.get(req.raw) ?? 0) + (parsed?.references ?? 0) * referenceTokens;
      call.max_output_tokens =
        (parsed?.maxOutputTokens ?? (ep.route === 'embeddings' ? 0 : defaultMaxOut)) * (parsed?.choices ?? 1);

      if (ep.route === 'models') return await listModels(ep, who, call, info, reply, span, ms);

      const target = targetFor(ep.api, parsed!.model);
      call.model = parsed!.model;
      call.provider = target?.provider ?? (ep.api === 'anthropic' ? 'anthropic' : 'openai');
      span.setAttributes({ 'gen_ai.system': call.provider, 'gen_ai.request.model': call.model });
      if (!target)
        return await refuse(
          404,
          'model_not_routed',
          `no route serves the model ${JSON.stringify(call.model.slice(0, 100))}`,
        );
      // a request whose input the provider assembles itself (an earlier response, files, server-side
      // tools) is bounded only by the models' context window
      if (parsed!.serverContext)
        call.estimated_input_tokens = Math.max(call.estimated_input_tokens, target.maxInputTokens);

      // --- authorization: a key's own scope, a token's providers, then Cedar (the vault decides all three) ---
      const resource: Resource = {
        type: 'Model',
        id: `${target.provider}/${call.model}`,
        attrs: { provider: target.provider, model: call.model, route: ep.route },
      };
      const [decision] = await authorize(who, [resource], info, call as CallInfo);
      if (!decision?.allowed) {
        return await refuse(
          403,
          'permission_denied',
          `permission denied: gateway.invoke on ${resource.id} (${decision?.reason ?? 'no decision'})`,
        );
      }

      // --- anomalies: a caller narrowed or revoked by an earlier alert, or by this call ---
      const refusal = await checkAnomalies(call as CallInfo, who, info);
      if (refusal) return await refuse(403, refusal.code, refusal.message);

      // --- request stages (the prompt firewall) ---
      for (const stage of deps.requestStages ?? []) await stage.inspect(parsed!.prompt, call as CallInfo);

      // --- admitted: the upper bound reserved, then the record written; nothing is spent before both ---
      const price = priceOf(call.model);
      if (ep.route !== 'messages.count_tokens')
        body = withOutputCap(ep, target.provider, body, defaultMaxOut);
      const bound = { input_tokens: call.estimated_input_tokens, output_tokens: call.max_output_tokens };
      reservation = await vault.admit(
        who,
        {
          type: 'request',
          request_id: call.request_id,
          trace_id: call.trace_id,
          operation: 'gateway.invoke',
          action: 'gateway.invoke',
          resource: `Model::${resource.id}`,
          actor: null,
          client_address: info.client_address,
          decision: { allowed: true, reason: decision.reason },
          request: {
            route: ep.route,
            stream: call.stream,
            classification: call.classification,
            reserved_tokens: bound.input_tokens + bound.output_tokens,
          },
        },
        {
          defaults: limits,
          estimate: {
            tokens: bound.input_tokens + bound.output_tokens,
            // input asked to be cached may be billed as cache writes, dearer than input
            costUsd: costOf(
              bound,
              price && parsed!.promptCache ? { ...price, input: dearestInput(price) } : price,
            ),
            ...(price ? {} : { unpriced: true }),
          },
        },
      );

      return await forward(
        {
          ep,
          target,
          reply,
          call: call as CallInfo,
          who,
          info,
          span,
          ms,
          reservation,
          price,
          jsonOutput: parsed!.jsonOutput,
        },
        body,
        req,
      );
    } catch (err) {
      if (err instanceof StageRefusal) {
        // a vault value the caller could not read: the vault revoked the credential; stop it here at once too
        if (err.signal === 'compromise' && who) compromised(call as CallInfo, who);
        return await refuse(400, err.code, err.message);
      }
      if (isStrongroomError(err)) {
        const status = STATUS[err.code] ?? 400;
        const retry = err.code === 'rate_limited' ? Number(err.details?.retry_after ?? 1) : undefined;
        // a refusal the vault names more precisely than its code (a model with no price, say)
        const code = typeof err.details?.refusal === 'string' ? err.details.refusal : err.code;
        return await refuse(status, code, err.message, retry);
      }
      logger.error({ err: { message: (err as Error).message } }, 'gateway call failed');
      return await refuse(500, 'internal', 'internal error');
    }
  }

  let remotes: RemoteStage[] | undefined;
  const blocked = new Set<string>();
  const narrowed = new Map<string, Set<string>>();
  const anomalies: Counter = m.counter(
    'strongroom_gateway_anomalies_total',
    'Anomaly alerts by kind and action',
    ['kind', 'action'],
  );

  /** A compromise signal from the vault (decision 0010): the caller is refused here from now on, and alerted on. */
  function compromised(call: CallInfo, who: Authenticated) {
    blocked.add(who.caller.id);
    anomalies.inc(['vault_value_outside_scope', 'revoke']);
    logger.warn(
      { anomaly: 'vault_value_outside_scope', action: 'revoke', caller: who.caller.id },
      'a prompt carried a vault value its caller may not read: the credential was revoked',
    );
    if (deps.anomalyWebhook) {
      void fetch(deps.anomalyWebhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          source: 'strongroom-gateway',
          kind: 'vault_value_outside_scope',
          action: 'revoke',
          caller: { kind: who.caller.kind, id: who.caller.id },
          request_id: call.request_id,
        }),
        redirect: 'error',
        signal: AbortSignal.timeout(5_000),
      }).catch(() => {});
    }
  }

  async function checkAnomalies(
    call: CallInfo,
    who: Authenticated,
    info: RequestInfo,
  ): Promise<{ code: string; message: string } | undefined> {
    const id = who.caller.id;
    if (blocked.has(id))
      return { code: 'anomaly_revoked', message: 'this credential was revoked after an anomaly' };
    const narrow = narrowed.get(id);
    if (narrow && !narrow.has(call.model)) {
      return {
        code: 'anomaly_narrowed',
        message: `after an anomaly this caller may only use ${[...narrow].join(', ')}`,
      };
    }
    if (!deps.anomaly) return undefined;
    const before = deps.anomaly.modelsOf(id);
    const alerts = deps.anomaly.observe(call);
    let result: { code: string; message: string } | undefined;
    for (const a of alerts) {
      anomalies.inc([a.kind, a.action]);
      logger.warn({ anomaly: a.kind, action: a.action, caller: a.caller.display_name }, 'gateway anomaly');
      await vault.audit(
        {
          type: 'response',
          request_id: call.request_id,
          trace_id: call.trace_id,
          operation: 'gateway.anomaly',
          action: 'gateway.invoke',
          resource: `Model::${call.provider}/${call.model}`,
          actor: null,
          client_address: info.client_address,
          decision: { allowed: a.action === 'alert', reason: `anomaly:${a.kind}` },
          request: { kind: a.kind, action: a.action, detail: a.detail },
          status: a.action === 'alert' ? 'ok' : 'error',
        },
        { session: who },
      );
      if (deps.anomalyWebhook) {
        void fetch(deps.anomalyWebhook, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ source: 'strongroom-gateway', ...a }),
          redirect: 'error',
          signal: AbortSignal.timeout(5_000),
        }).catch(() => {});
      }
      if (a.action === 'revoke') {
        blocked.add(id);
        await vault.revoke(who, `anomaly:${a.kind}`).catch(() => {});
        result = { code: 'anomaly_revoked', message: `revoked after an anomaly (${a.kind})` };
      } else if (a.action === 'narrow' && !result) {
        narrowed.set(id, new Set(before));
        if (!before.includes(call.model)) {
          result = {
            code: 'anomaly_narrowed',
            message: `narrowed after an anomaly (${a.kind}) to the models used so far`,
          };
        }
      }
    }
    return result;
  }

  async function authorize(
    who: Authenticated,
    resources: readonly Resource[],
    info: RequestInfo,
    call: CallInfo,
  ): Promise<{ allowed: boolean; reason: string }[]> {
    if (!resources.length) return [];
    try {
      return await vault.authorize(who, resources, {
        client_address: info.client_address,
        classification: call.classification,
        estimated_tokens: call.estimated_input_tokens + call.max_output_tokens,
      });
    } catch (err) {
      // the vault could not answer: no decision is a deny (sealed and unreachable are told apart)
      if (
        isStrongroomError(err) &&
        (err.code === 'sealed' || err.code === 'vault_unavailable' || err.code === 'invalid_token')
      )
        throw err;
      return resources.map(() => ({ allowed: false, reason: 'policy evaluation failed' }));
    }
  }

  async function listModels(
    ep: Endpoint,
    who: Authenticated,
    call: Partial<CallInfo> & { request_id: string; trace_id: string },
    info: RequestInfo,
    reply: FastifyReply,
    span: Span,
    ms: () => number,
  ) {
    // the models this caller may call, from the routes (no upstream call: nothing leaks, nothing to pay)
    const data: { id: string; object: 'model'; created: number; owned_by: string }[] = [];
    const candidates: Resource[] = [];
    for (const t of targets.filter((x) => x.api === ep.api)) {
      for (const g of t.models) {
        if (g.includes('*')) continue;
        candidates.push({
          type: 'Model',
          id: `${t.provider}/${g}`,
          attrs: { provider: t.provider, model: g, route: 'models' },
        });
      }
    }
    // one question for the whole list (one round trip to a remote vault); a key's scope is the vault's to apply
    const decisions = await authorize(who, candidates, info, call as CallInfo);
    candidates.forEach((r, i) => {
      if (decisions[i]?.allowed)
        data.push({
          id: r.attrs!.model as string,
          object: 'model',
          created: 0,
          owned_by: r.attrs!.provider as string,
        });
    });
    await audit(call, who.identity, info.client_address, {
      allowed: true,
      reason: 'listed',
      status_code: 200,
      latency_ms: ms(),
    });
    span.end();
    return reply.code(200).send({ object: 'list', data });
  }

  async function forward(f: Forwarding, body: Record<string, unknown>, req: FastifyRequest) {
    const { ep, target, call, who, span } = f;
    // the request is built from scratch: fixed path, allow-listed headers, the injected key only
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: call.stream ? 'text/event-stream' : 'application/json',
    };
    for (const h of FORWARDED_HEADERS[target.api]) {
      const v = req.headers[h];
      if (typeof v === 'string' && v.length <= 256 && /^[\x20-\x7e]*$/.test(v)) headers[h] = v;
    }
    if (target.api === 'anthropic') headers['anthropic-version'] ??= '2023-06-01';
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(otelContext.active(), span), carrier);
    if (carrier.traceparent) headers.traceparent = carrier.traceparent;
    // a streamed chat reports its usage only when asked: the budget is settled from it
    if (ep.route === 'chat.completions' && call.stream) {
      const so = body.stream_options && typeof body.stream_options === 'object' ? body.stream_options : {};
      body = { ...body, stream_options: { ...so, include_usage: true } };
    }
    let payload = ep.method === 'GET' ? undefined : JSON.stringify(body);

    // --- provenance: remote stages (mTLS, each verifying the chain so far), then the gateway's own link ---
    let links: ProvenanceLink[] = [];
    if (payload !== undefined && deps.identity) {
      await deps.identity.ready();
      remotes ??= deps.remoteStages?.() ?? [];
      let buf: Buffer = Buffer.from(payload);
      for (const remote of remotes) {
        const r = await remote.process({ body: buf, traceId: call.trace_id, provenance: links });
        buf = r.body;
        links = r.provenance;
      }
      if (remotes.length) {
        // a transforming stage may rewrite the text, never what the call is (it was authorized as such)
        let again: Record<string, unknown>;
        try {
          again = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
        } catch {
          throw new StageRefusal(
            'gateway',
            'stage_output_invalid',
            'a stage returned a body that is not JSON',
          );
        }
        if (again.model !== body.model || Boolean(again.stream) !== Boolean(body.stream)) {
          throw new StageRefusal(
            'gateway',
            'stage_output_invalid',
            'a stage changed the model or the stream flag',
          );
        }
        payload = buf.toString('utf8');
      }
      links.push(
        await signStage({
          body: payload,
          stage: 'gateway',
          spiffeId: deps.identity.spiffeId,
          traceId: call.trace_id,
          prev: links.at(-1)?.jws ?? null,
          key: deps.identity.key(),
        }),
      );
    }
    /** The output's link, over what the client receives, chained to the request side. */
    const outputLink = async (text: string) =>
      deps.identity
        ? encodeProvenanceHeader([
            ...links,
            await signStage({
              body: text,
              stage: 'output-filter',
              spiffeId: deps.identity.spiffeId,
              traceId: call.trace_id,
              prev: links.at(-1)?.jws ?? null,
              key: deps.identity.key(),
            }),
          ])
        : undefined;

    // the ways this call can end early (the client goes away, max_call_duration, the credential
    // revoked): each aborts the upstream request (issue 12 items 9 and 10)
    const g = guard(f.reply, who);
    try {
      return await relayAnswer(f, { headers, payload, outputLink, links }, g);
    } finally {
      g.done();
    }
  }

  /** The upstream call and its answer, through the filters, to the client; one outcome record. */
  async function relayAnswer(
    f: Forwarding,
    request: {
      headers: Record<string, string>;
      payload: string | undefined;
      /** The output's provenance link over `text`, chained to the request side. */
      outputLink: (text: string) => Promise<string | undefined>;
      links: ProvenanceLink[];
    },
    g: CallGuard,
  ) {
    const { ep, target, reply, call, who, info, span, ms, reservation, price } = f;
    const { headers, payload, outputLink, links } = request;
    // upstreams in order, each key of a pool in turn; the next on connection errors, 429 and 5xx
    const attempts: { upstream: Upstream; keyPath: string }[] = [];
    for (const u of target.upstreams) {
      const start = (rr.get(u.base_url) ?? 0) % u.keys.length;
      rr.set(u.base_url, start + 1);
      for (let i = 0; i < u.keys.length; i++)
        attempts.push({ upstream: u, keyPath: u.keys[(start + i) % u.keys.length]! });
    }
    const injected: string[] = [];
    let res: Awaited<ReturnType<Pool['request']>> | undefined;
    let used: (typeof attempts)[number] | undefined;
    let lastErr: unknown;
    let sent = false;
    for (const a of attempts) {
      if (g.signal.aborted) break;
      const key = await vault.keys.get(a.keyPath);
      injected.push(key);
      try {
        sent = true;
        const r = await poolFor(a.upstream.origin).request({
          method: ep.method,
          path: a.upstream.prefix + ep.path,
          headers: { ...headers, ...authHeaders(target.api, key) },
          ...(payload === undefined ? {} : { body: payload }),
          headersTimeout: target.timeoutMs,
          bodyTimeout: target.timeoutMs,
          signal: g.signal,
        });
        const retryable = r.statusCode === 429 || r.statusCode >= 500;
        if (retryable && a !== attempts[attempts.length - 1]) {
          await r.body.dump().catch(() => {});
          lastErr = new Error(`upstream answered ${r.statusCode}`);
          continue;
        }
        res = r;
        used = a;
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    const responseStages = deps.responseStages ?? [];
    // the key redactor (the injected keys, their encodings, partial and masked forms) runs last,
    // whatever the configured stages did
    const filterFactory = () => {
      const filters = [...responseStages.map((s) => s.open(call, injected)), secretRedactor(injected)];
      return {
        push: (t: string) => filters.reduce((acc, f) => f.push(acc), t),
        end: () => {
          let out = '';
          for (let i = 0; i < filters.length; i++) {
            let tail = filters[i]!.end();
            for (let j = i + 1; j < filters.length; j++) tail = filters[j]!.push(tail);
            out += tail;
          }
          return out;
        },
      } satisfies ResponseFilter;
    };
    // one filter for complete texts (strings of an answer, whole events), reused: end() resets it
    const whole = filterFactory();
    const clean = (text: string) => whole.push(text) + whole.end();
    const upstreamHost = (used ?? attempts[0])?.upstream.host ?? '-';

    /** The call ended early (guard): recorded, and told to the client if it is still there. */
    const endedEarly = async (how: EndReason) => {
      const end = END_REASONS[how];
      // a request that reached the provider may have been billed: its reservation stays taken
      await finish(f, {
        status: end.status,
        cost: 0,
        upstream: upstreamHost,
        settle: !sent,
        ended: how,
      });
      if (how === 'client_closed') return;
      return sendError(reply, ep.api, end.status, how, end.message);
    };

    if (!res || !used) {
      if (g.reason) return endedEarly(g.reason);
      await reservation?.release().catch(() => {});
      logger.warn({ provider: target.provider, reason: (lastErr as Error)?.message }, 'upstream unreachable');
      await audit(call, who.identity, info.client_address, {
        allowed: true,
        reason: 'upstream_unreachable',
        status_code: 502,
        error_code: 'upstream_unreachable',
        latency_ms: ms(),
      });
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream_unreachable' });
      span.end();
      requests.inc([target.provider, label.model(call.model), '502']);
      return sendError(reply, ep.api, 502, 'upstream_unreachable', `${target.provider} could not be reached`);
    }
    const status = res.statusCode;

    // --- complete answers (errors, and non-streamed calls) ---
    const isStream =
      call.stream && status < 300 && String(res.headers['content-type'] ?? '').includes('text/event-stream');
    if (!isStream) {
      let raw: string;
      try {
        raw = await res.body.text();
      } catch (err) {
        if (g.reason) return endedEarly(g.reason);
        throw err;
      }
      // A provider that echoes the key (in an error message, say) never gets it past here. The JSON
      // is parsed first, so a key written with escapes (\u0073k-…, \/) is seen as the client will see
      // it, and so are the strings clients parse once more (tool-call arguments: their escapes of
      // printable ASCII normalised, stream.ts); every string is filtered (logprobs checked joined),
      // then the text sent is filtered whole once more.
      const answer = jsonCleaner(clean, ep.route, f.jsonOutput);
      let json: unknown;
      try {
        json = parseJsonLimited(raw, { maxDepth: ANSWER_MAX_DEPTH });
      } catch {
        // not JSON, or nested deeper than any answer should be: the client gets an error of ours
        json = undefined;
      }
      // with no escapes and no logprobs, one pass over the text sent sees every string as the client will
      let text =
        json === undefined ? clean(raw) : needsWalk(raw) ? undefined : answer.trySerialize(json, false);
      if (text === undefined) {
        json = answer.value(json);
        text = answer.serialize(json);
      }
      const usage = status < 300 ? usageOf(target.api, ep.route, json) : undefined;
      const cost = usage ? costOf(usage, price) : 0;
      // strings a client joins (Responses output_text, Anthropic text blocks) are each clean; a key
      // split across two of them would show only joined: such an answer is withheld
      const withheld =
        status < 300 &&
        json !== undefined &&
        joinedTexts(ep.route, json).length > 0 &&
        joinedTexts(ep.route, JSON.parse(text)).some((g) => {
          const joined = g.join('');
          return clean(joined) !== joined;
        });
      // the record (and the settlement) is written while the answer's link is signed; both before a byte is sent
      // an answer that reports no usage keeps what was reserved (fail closed: it was served, and may be
      // billed); an error answer gives the reservation back
      const finishing = finish(f, {
        status: withheld ? 502 : status,
        usage,
        cost,
        upstream: upstreamHost,
        settle: usage !== undefined || status >= 300,
      });
      finishing.catch(() => {});
      const provenance = status < 300 && !withheld ? await outputLink(text) : undefined;
      await finishing;
      if (withheld) {
        return sendError(
          reply,
          ep.api,
          502,
          'upstream_error',
          `${target.provider}'s answer was withheld: its parts, joined, hold a credential`,
        );
      }
      if (status >= 300 && status < 400) {
        // a redirect is never followed, nor passed on
        return sendError(
          reply,
          ep.api,
          502,
          'upstream_redirect',
          `${target.provider} answered with a redirect`,
        );
      }
      // an answer that is not JSON (or is nested absurdly deep) is not passed on: the client gets our error
      reply.code(json === undefined && status < 400 ? 502 : status).type('application/json');
      if (provenance && json !== undefined) reply.header(PROVENANCE_HEADER, provenance);
      const retry = res.headers['retry-after'];
      if (status === 429 && typeof retry === 'string' && /^\d{1,6}$/.test(retry))
        reply.header('retry-after', retry);
      if (json === undefined) {
        return reply.send(
          errorBody(
            ep.api,
            status >= 400 ? status : 502,
            'upstream_error',
            `${target.provider} answered HTTP ${status}`,
          ),
        );
      }
      // the bytes signed are the bytes sent
      return reply.send(text);
    }

    // --- streams: event by event through the relay (stream.ts): every text field through its own
    // cross-event filter, everything else cleaned whole; usage followed ---
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': call.request_id,
      // the request side of the chain; the full chain ends the stream (a comment line before the last event)
      ...(links.length ? { [PROVENANCE_HEADER]: encodeProvenanceHeader(links) } : {}),
    });
    const tracker = streamUsageTracker(target.api);
    const relay = createStreamRelay({
      api: target.api,
      // events are read as the endpoint called defines them, never by their shape
      route: ep.route,
      filter: filterFactory,
      clean,
      secrets: injected,
      jsonOutput: f.jsonOutput,
      observe: (ev, data) => tracker.observe(ev, data),
    });
    // SSE as the clients parse it (CRLF, LF or CR line ends): stream.ts
    const sse = createSseParser({ maxEventSize: MAX_STREAM_LINE });
    /** The outcome record: attempted once; `recorded` only once a sink took it. */
    let recording: Promise<void> | undefined;
    let provenanceSent = false;

    const emit = (ev: string | undefined, data: string) => {
      const lines = data.includes('\n') ? data.split('\n').join('\ndata: ') : data;
      out.write(`${ev ? `event: ${ev}\n` : ''}data: ${lines}\n\n`);
    };
    const write = (e: SseEvent) => emit(e.event, e.data);
    /** An error event in the caller's API format: the stream did not end cleanly. */
    const fail = (status: number, code: string, message: string) =>
      emit('error', JSON.stringify(errorBody(target.api, status, code, message)));
    const record = (how?: EndReason) => {
      recording ??= (() => {
        const usage = tracker.result();
        const cost = usage ? costOf(usage, price) : 0;
        // ended early with no usage reported: what the provider may have billed stays reserved
        return finish(f, {
          status: how ? END_REASONS[how].status : 200,
          usage,
          cost,
          upstream: upstreamHost,
          // a stream that reported no usage (ended early, or a provider that does not say) keeps its reservation
          settle: usage !== undefined,
          ...(how ? { ended: how } : {}),
        });
      })();
      return recording;
    };

    const dispatch = async (ev: string | undefined, raw: string) => {
      // no provider nests an event this deep: a hostile one ends the stream (nothing walks it)
      if (jsonDepth(raw, ANSWER_MAX_DEPTH) > ANSWER_MAX_DEPTH)
        throw new Error('an upstream event is nested too deeply');
      const step = relay.push(ev, raw);
      if (!step.terminal) {
        for (const e of step.events) write(e);
        return;
      }
      // a terminal event comes last, after everything the filters held back
      const last = step.events.length - 1;
      for (let i = 0; i < last; i++) write(step.events[i]!);
      // the outcome record is written before the last event reaches the client (fail closed: a record
      // that no sink took ends the stream with an error event instead)
      await record();
      if (!provenanceSent) {
        provenanceSent = true;
        const provenance = await outputLink(relay.text());
        if (provenance) out.write(`: ${PROVENANCE_HEADER} ${provenance}\n\n`);
      }
      write(step.events[last]!);
    };

    try {
      upstream: for await (const chunk of res.body) {
        for (const e of sse.push(chunk as Buffer)) {
          await dispatch(e.event, e.data);
          // after its terminal event the relay passes nothing on: stop reading
          if (relay.ended) break upstream;
        }
        if (g.reason) break;
      }
      if (g.reason) throw new Error(g.reason);
      // an event the input ended in the middle of is dropped, as clients drop it
      // the input ended without a terminal event: the record first, then what the filters held back
      const rest = relay.end();
      await record();
      for (const e of rest) write(e);
    } catch (err) {
      const how = g.reason;
      if (how) {
        if (how !== 'client_closed') fail(END_REASONS[how].status, how, END_REASONS[how].message);
        await record(how).catch(() => {});
      } else if (recording) {
        // the record could not be written: the client must not take the stream as complete
        await recording.catch(() => {});
        fail(503, 'audit_unavailable', 'the call could not be audited');
      } else {
        logger.warn(
          { provider: target.provider, reason: (err as Error).message },
          'stream ended with an error',
        );
        try {
          await record();
          fail(502, 'upstream_error', `${target.provider} ended the stream with an error`);
        } catch {
          fail(503, 'audit_unavailable', 'the call could not be audited');
        }
      }
    } finally {
      out.end();
    }
  }

  /**
   * The call's outcome: metrics, span, and its outcome record with the settlement of its reservation
   * (`settle` false: what it reserved stays taken, the provider may have billed it).
   */
  async function finish(
    f: Forwarding,
    o: {
      status: number;
      usage?: Usage | undefined;
      cost: number;
      upstream: string;
      settle: boolean;
      ended?: EndReason;
    },
  ) {
    const { call, who, info, span, ms, target } = f;
    const { status, usage, cost, upstream, ended } = o;
    const reservation = o.settle ? f.reservation : undefined;
    const model = label.model(call.model);
    requests.inc([target.provider, model, String(status)]);
    if (usage) {
      // input counts prompt-cache reads and writes too (what the provider bills as input)
      const input = tokensOf(usage) - usage.output_tokens;
      tokens.inc([target.provider, model, 'input'], input);
      tokens.inc([target.provider, model, 'output'], usage.output_tokens);
      span.setAttributes({
        'gen_ai.usage.input_tokens': input,
        'gen_ai.usage.output_tokens': usage.output_tokens,
      });
    }
    if (cost > 0) spend.inc([label.caller(who.caller, who.identity.owner)], cost);
    latency.observe([target.provider], ms() / 1000);
    span.setAttribute('http.response.status_code', status);
    if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR, ...(ended ? { message: ended } : {}) });
    span.end();
    deps.observe?.(call, { status, ...(usage ? { usage } : {}) });
    await audit(
      call,
      who.identity,
      info.client_address,
      {
        allowed: true,
        reason: 'permitted',
        status_code: status,
        ...(ended ? { error_code: ended } : status >= 400 ? { error_code: 'upstream_error' } : {}),
        ...(usage ? { usage } : {}),
        cost_usd: cost,
        latency_ms: ms(),
        upstream,
      },
      reservation ? { reservation, ...(usage ? { usage } : {}), costUsd: cost } : undefined,
    );
  }

  // ---------------------------------------------------------------- calls that end early

  /**
   * One forwarded call's ways to end early: the client goes away, the call runs past
   * max_call_duration, or the credential stops being valid (checked for every open call every
   * revocation_check_ms, in one question to the vault). Each aborts the upstream request.
   */
  function guard(reply: FastifyReply, who: Authenticated): CallGuard {
    const controller = new AbortController();
    let reason: EndReason | undefined;
    const end = (r: EndReason) => {
      if (reason) return;
      reason = r;
      controller.abort();
    };
    const onClose = () => {
      if (!reply.raw.writableFinished) end('client_closed');
    };
    reply.raw.on('close', onClose);
    const now = Date.now();
    const watched: Watched = { session: who, end, lastOk: now, until: now + maxCallMs };
    watch(watched);
    return {
      signal: controller.signal,
      get reason() {
        return reason;
      },
      done() {
        reply.raw.off('close', onClose);
        open.delete(watched);
      },
    };
  }

  const open = new Set<Watched>();
  let monitor: NodeJS.Timeout | undefined;
  let checking = false;
  function watch(w: Watched) {
    open.add(w);
    if (monitor) return;
    monitor = setInterval(() => {
      if (open.size) {
        // one clock for every open call (no timer per call): max_call_duration to within a tick
        const now = Date.now();
        for (const w of open) if (now >= w.until) w.end('call_timeout');
        void checkOpen();
      } else {
        clearInterval(monitor);
        monitor = undefined;
      }
    }, revocationMs);
    monitor.unref();
  }
  /** Every open call's credential, in one question: a revoked one ends its call. */
  async function checkOpen() {
    if (checking) return;
    checking = true;
    const list = [...open];
    try {
      const live = await vault.live(list.map((w) => w.session));
      const now = Date.now();
      list.forEach((w, i) => {
        if (live[i]) w.lastOk = now;
        else w.end('credential_revoked');
      });
    } catch {
      // the vault cannot say: calls go on for a short grace, then end (fail closed)
      const now = Date.now();
      for (const w of list) if (now - w.lastOk > LIVE_GRACE_MS) w.end('vault_unavailable');
    } finally {
      checking = false;
    }
  }

  return {
    app,
    async close() {
      await app.close();
      await Promise.all([...pools.values()].map((p) => p.close()));
      await Promise.all((remotes ?? []).map((r) => r.close().catch(() => {})));
      if (monitor) clearInterval(monitor);
      deps.identity?.close();
    },
  };
}
