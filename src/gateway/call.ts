import {
  context as otelContext,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
} from '@opentelemetry/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/gateway.ts';
import type { RequestInfo, Resource } from '../contract/operation.ts';
import { type ErrorCode, isStrongroomError } from '../errors/errors.ts';
import { admitCall } from './admission.ts';
import type { AnomalyActions } from './anomaly-actions.ts';
import { authenticateCaller } from './authenticate.ts';
import { authorizeCall } from './authorize.ts';
import type { CallDraft } from './call-context.ts';
import type { GatewayMetrics } from './call-metrics.ts';
import { refusalCode, sendError, statusOf } from './error-answers.ts';
import type { Forward } from './forward.ts';
import type { Labeler } from './labels.ts';
import { listModels } from './models.ts';
import { type Endpoint, withOutputCap } from './providers.ts';
import type { Recorder } from './record.ts';
import { callOf, describeRequest, type RequestBounds } from './request.ts';
import type { Routes } from './routing.ts';
import { type CallInfo, type RequestStage, type Reservation, StageRefusal, type Usage } from './types.ts';
import type { DefaultLimits, GatewayVault, Session } from './vault-port.ts';

/**
 * One call through the gateway's steps, in this order, with no route that skips any of them:
 * authenticate -> read the request (model, stream, size) -> route (config decides the upstream,
 * never the client) -> authorize (`gateway.invoke` on Model::"provider/model") -> anomalies ->
 * request stages (the prompt firewall) -> admit (reserve the upper bound, write the request record)
 * -> forward (forward.ts). A refusal at any step is one audit entry, a metric, and an error in the
 * caller's API format.
 */
export interface CallSteps {
  vault: GatewayVault;
  tls: GatewayConfig['tls'];
  bounds: RequestBounds;
  limits: DefaultLimits;
  routes: Routes;
  requestStages: readonly RequestStage[];
  anomalies: AnomalyActions;
  recorder: Recorder;
  forward: Forward;
  metrics: Pick<GatewayMetrics, 'denials'>;
  label: Labeler;
  tracer: Tracer;
  logger: Logger;
  observe: (call: CallInfo, outcome: { status: number; usage?: Usage; denied?: string }) => void;
}

export type CallHandler = (ep: Endpoint, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** What a refusal needs to know of the call so far. */
interface Refusing {
  ep: Endpoint;
  reply: FastifyReply;
  info: RequestInfo;
  call: CallDraft;
  span: Span;
  ms: () => number;
  who?: Session | undefined;
  reservation?: Reservation | undefined;
}

export function createCallHandler(s: CallSteps): CallHandler {
  const { vault, routes, recorder } = s;

  /** Refuses the call: one audit entry, the metric, and an error in the caller's API format. */
  async function refuse(r: Refusing, code: ErrorCode, message: string, retryAfter?: number) {
    const { ep, reply, info, call, span, who } = r;
    const status = statusOf(code);
    await r.reservation?.release().catch(() => {});
    s.metrics.denials.inc([s.label.caller(who?.caller, who?.identity.owner), code]);
    span.setStatus({ code: SpanStatusCode.ERROR, message: code });
    span.end();
    if (call.caller) s.observe(call as CallInfo, { status, denied: code });
    try {
      await recorder.audit(call, who?.identity, info.client_address, {
        allowed: false,
        reason: code,
        status_code: status,
        error_code: code,
        latency_ms: r.ms(),
      });
    } catch {
      // a vault that is sealed or out of reach cannot take the record either: say why
      if (code === 'sealed' || code === 'vault_unavailable') return sendError(reply, ep.api, code, message);
      return sendError(
        reply,
        ep.api,
        'audit_unavailable',
        'the call could not be audited, so it was refused',
      );
    }
    return sendError(reply, ep.api, code, message, retryAfter);
  }

  /** A step threw: a stage's refusal, the vault's (with its code), or a failure of ours (`internal`). */
  function refusalOf(r: Refusing, err: unknown) {
    if (err instanceof StageRefusal) {
      // a vault value the caller could not read: the vault revoked the credential; stop it here at once too
      if (err.signal === 'compromise' && r.who) s.anomalies.compromised(r.call as CallInfo, r.who);
      return refuse(r, err.code, err.message);
    }
    if (isStrongroomError(err)) {
      const retry = err.code === 'rate_limited' ? Number(err.details?.retry_after ?? 1) : undefined;
      return refuse(r, refusalCode(err), err.message, retry);
    }
    s.logger.error({ err: { message: (err as Error).message } }, 'gateway call failed');
    return refuse(r, 'internal', 'internal error');
  }

  return async function handle(ep, req, reply) {
    const started = performance.now();
    const { info, call } = callOf(ep, req);
    const parent = propagation.extract(otelContext.active(), req.headers);
    const span = s.tracer.startSpan(
      `gateway ${ep.route}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'gen_ai.operation.name': ep.route, 'http.request.method': ep.method },
      },
      parent,
    );
    const ms = () => Math.round((performance.now() - started) * 10) / 10;
    const r: Refusing = { ep, reply, info, call, span, ms };

    try {
      if (vault.sealed()) return await refuse(r, 'sealed', 'Strongroom is sealed');
      // who is calling, as the vault says (through the core pipeline's own authentication step)
      const who = await authenticateCaller(vault, s.tls, req, info);
      r.who = who;
      call.caller = who.caller;
      call.session = who;

      // what is asked (the body's model and flags; nothing here chooses where it goes)
      const parsed = describeRequest(ep, req, who, call, s.bounds);
      if (ep.route === 'models') return await listModels(s, { ep, who, call, info, reply, span, ms });

      const target = routes.targetFor(ep.api, parsed!.model);
      call.model = parsed!.model;
      call.provider = target?.provider ?? (ep.api === 'anthropic' ? 'anthropic' : 'openai');
      span.setAttributes({ 'gen_ai.system': call.provider, 'gen_ai.request.model': call.model });
      if (!target)
        return await refuse(
          r,
          'model_not_routed',
          `no route serves the model ${JSON.stringify(call.model.slice(0, 100))}`,
        );
      // a request whose input the provider assembles itself (an earlier response, files, server-side
      // tools) is bounded only by the models' context window
      if (parsed!.serverContext)
        call.estimated_input_tokens = Math.max(call.estimated_input_tokens!, target.maxInputTokens);

      // authorization: a key's own scope, a token's providers, then Cedar (the vault decides all three)
      const resource: Resource = {
        type: 'Model',
        id: `${target.provider}/${call.model}`,
        attrs: { provider: target.provider, model: call.model, route: ep.route },
      };
      const [decision] = await authorizeCall(vault, who, [resource], info, call as CallInfo);
      if (!decision?.allowed) {
        return await refuse(
          r,
          'permission_denied',
          `permission denied: gateway.invoke on ${resource.id} (${decision?.reason ?? 'no decision'})`,
        );
      }

      // anomalies: a caller narrowed or revoked by an earlier alert, or by this call
      const refusal = await s.anomalies.check(call as CallInfo, who, info);
      if (refusal) return await refuse(r, refusal.code, refusal.message);

      // request stages (the prompt firewall)
      for (const stage of s.requestStages) await stage.inspect(parsed!.prompt, call as CallInfo);

      // admitted: the upper bound reserved, then the record written; nothing is spent before both
      const price = routes.priceOf(call.model);
      let body = (req.body ?? {}) as Record<string, unknown>;
      if (ep.route !== 'messages.count_tokens')
        body = withOutputCap(ep, target.provider, body, s.bounds.defaultMaxOut);
      const admitted = { ep, who, call: call as CallInfo, info, resource, decision, parsed: parsed!, price };
      r.reservation = await admitCall(vault, s.limits, admitted);

      const f = { ep, target, reply, call: call as CallInfo, who, info, span, ms, price };
      return await s.forward({ ...f, reservation: r.reservation, jsonOutput: parsed!.jsonOutput }, body, req);
    } catch (err) {
      return await refusalOf(r, err);
    }
  };
}
