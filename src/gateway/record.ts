import { SpanStatusCode } from '@opentelemetry/api';
import { tokensOf } from '../api/pricing.ts';
import type { Identity } from '../contract/identity.ts';
import type { ErrorCode } from '../errors/errors.ts';
import type { CallDraft, Forwarding } from './call-context.ts';
import type { EndReason } from './call-guard.ts';
import type { GatewayMetrics } from './call-metrics.ts';
import type { Labeler } from './labels.ts';
import type { CallInfo, Usage } from './types.ts';
import type { GatewayVault, Session, Settlement } from './vault-port.ts';

/**
 * The record of every call: one outcome entry in the vault's audit log (no prompt or completion
 * text: what was called, how much it cost, how long it took), with the settlement of its budget
 * reservation; and, for a forwarded call, its metrics and span.
 */

export interface CallOutcome {
  allowed: boolean;
  reason: string;
  status_code: number;
  error_code?: ErrorCode;
  usage?: Usage;
  cost_usd?: number;
  latency_ms: number;
  upstream?: string;
}

/** How a forwarded call ended, for `finish`. */
export interface Finished {
  status: number;
  usage?: Usage | undefined;
  cost: number;
  upstream: string;
  /** false: what it reserved stays taken (the provider may have billed it). */
  settle: boolean;
  ended?: EndReason;
}

export interface Recorder {
  /** Writes a call's outcome entry (and settles `settlement`, in the same round trip to a remote vault). */
  audit(
    call: CallDraft,
    actor: Identity | undefined,
    clientAddress: string,
    outcome: CallOutcome,
    settlement?: Settlement,
  ): Promise<void>;
  /** A forwarded call's outcome: metrics, span, and its outcome record with the settlement of its reservation. */
  finish(f: Forwarding, o: Finished): Promise<void>;
}

export function createRecorder(deps: {
  vault: Pick<GatewayVault, 'audit'>;
  metrics: GatewayMetrics;
  label: Labeler;
  observe?:
    | ((call: CallInfo, outcome: { status: number; usage?: Usage; denied?: string }) => void)
    | undefined;
}): Recorder {
  const { vault, metrics, label } = deps;

  async function audit(
    call: CallDraft,
    actor: Identity | undefined,
    clientAddress: string,
    outcome: CallOutcome,
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

  async function finish(f: Forwarding, o: Finished) {
    const { call, who, info, span, ms, target } = f;
    const { status, usage, cost, upstream, ended } = o;
    const reservation = o.settle ? f.reservation : undefined;
    const model = label.model(call.model);
    metrics.requests.inc([target.provider, model, String(status)]);
    if (usage) {
      // input counts prompt-cache reads and writes too (what the provider bills as input)
      const input = tokensOf(usage) - usage.output_tokens;
      metrics.tokens.inc([target.provider, model, 'input'], input);
      metrics.tokens.inc([target.provider, model, 'output'], usage.output_tokens);
      span.setAttributes({
        'gen_ai.usage.input_tokens': input,
        'gen_ai.usage.output_tokens': usage.output_tokens,
      });
    }
    if (cost > 0) metrics.spend.inc([label.caller(who.caller, who.identity.owner)], cost);
    metrics.latency.observe([target.provider], ms() / 1000);
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
        ...(ended ? { error_code: ended } : status >= 400 ? { error_code: 'upstream_error' as const } : {}),
        ...(usage ? { usage } : {}),
        cost_usd: cost,
        latency_ms: ms(),
        upstream,
      },
      reservation ? { reservation, ...(usage ? { usage } : {}), costUsd: cost } : undefined,
    );
  }

  return { audit, finish };
}
