import { context as otelContext, propagation, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Forwarding } from './call-context.ts';
import { type CallGuards, END_MESSAGES, type EndReason } from './call-guard.ts';
import type { GatewayMetrics } from './call-metrics.ts';
import { sendError, statusOf } from './error-answers.ts';
import type { Labeler } from './labels.ts';
import type { Provenance } from './provenance.ts';
import { FORWARDED_HEADERS } from './providers.ts';
import type { Recorder } from './record.ts';
import { relayAnswer } from './relay-answer.ts';
import { relayStream } from './relay-stream.ts';
import { callFilters } from './response-filters.ts';
import type { ResponseStage } from './types.ts';
import type { Upstreams } from './upstream.ts';

/**
 * An admitted call to its provider and back: a request built from scratch (fixed path, allow-listed
 * headers, the injected key only), its provenance chain, the upstream call under the call's guard,
 * and the answer relayed through the response filters, complete or streamed; one outcome record.
 */
export type Forward = (f: Forwarding, body: Record<string, unknown>, req: FastifyRequest) => Promise<unknown>;

export function createForwarder(deps: {
  upstreams: Upstreams;
  provenance: Provenance;
  guards: CallGuards;
  recorder: Recorder;
  responseStages: readonly ResponseStage[];
  metrics: Pick<GatewayMetrics, 'requests'>;
  label: Labeler;
  logger: Logger;
}): Forward {
  const { upstreams, provenance, guards, recorder, metrics, label, logger } = deps;

  return async function forward(f, body, req) {
    const { ep, target, call, who, span, info, ms, reply, reservation } = f;
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
    // provenance: remote stages (mTLS, each verifying the chain so far), then the gateway's own link
    const { payload, links } = await provenance.request(
      ep.method === 'GET' ? undefined : JSON.stringify(body),
      body,
      call.trace_id,
    );
    const outputLink = (text: string) => provenance.output(links, call.trace_id, text, payload);

    // the ways this call can end early (the client goes away, max_call_duration, the credential
    // revoked): each aborts the upstream request (issue 12 items 9 and 10)
    const g = guards.guard(reply, who);
    try {
      // upstreams in order, each key of a pool in turn; the next on connection errors, 429 and 5xx
      const sent = await upstreams.send(target, ep, { headers, payload, signal: g.signal });
      const filters = callFilters(deps.responseStages, call, sent.injected);

      /** The call ended early (guard): recorded, and told to the client if it is still there. */
      const endedEarly = async (how: EndReason) => {
        // a request that reached the provider may have been billed: its reservation stays taken
        await recorder.finish(f, {
          status: statusOf(how),
          cost: 0,
          upstream: sent.host,
          settle: !sent.sent,
          ended: how,
        });
        if (how === 'client_closed') return;
        return sendError(reply, ep.api, how, END_MESSAGES[how]);
      };

      const res = sent.res;
      if (!res) {
        if (g.reason) return await endedEarly(g.reason);
        await reservation?.release().catch(() => {});
        logger.warn(
          { provider: target.provider, reason: (sent.lastErr as Error)?.message },
          'upstream unreachable',
        );
        const status = statusOf('upstream_unreachable');
        await recorder.audit(call, who.identity, info.client_address, {
          allowed: true,
          reason: 'upstream_unreachable',
          status_code: status,
          error_code: 'upstream_unreachable',
          latency_ms: ms(),
        });
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream_unreachable' });
        span.end();
        metrics.requests.inc([target.provider, label.model(call.model), String(status)]);
        return sendError(reply, ep.api, 'upstream_unreachable', `${target.provider} could not be reached`);
      }
      const relaying = {
        f,
        res,
        g,
        filters,
        injected: sent.injected,
        upstreamHost: sent.host,
        links,
        outputLink,
        endedEarly,
      };
      // complete answers (errors, and calls that did not stream), else event by event
      const isStream =
        call.stream &&
        res.statusCode < 300 &&
        String(res.headers['content-type'] ?? '').includes('text/event-stream');
      return isStream
        ? await relayStream(relaying, recorder.finish, logger)
        : await relayAnswer(relaying, recorder.finish);
    } finally {
      g.done();
    }
  };
}
