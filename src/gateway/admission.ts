import { costOf, dearestInput } from '../api/pricing.ts';
import type { RequestInfo, Resource } from '../contract/operation.ts';
import type { Endpoint, ParsedRequest } from './providers.ts';
import type { CallInfo, Price, Reservation } from './types.ts';
import type { Decision, DefaultLimits, GatewayVault, Session } from './vault-port.ts';

/**
 * Admits an authorized call before anything is spent: its upper bound (input bound + output cap)
 * reserved from every budget of the caller, then its request record written (vault-port.ts
 * `admit`). Throws `rate_limited` (no room), `model_not_priced` (as `permission_denied` with that
 * refusal: a spend limit applies and the model has no price) or `audit_unavailable`.
 */
export function admitCall(
  vault: Pick<GatewayVault, 'admit'>,
  limits: DefaultLimits,
  c: {
    ep: Endpoint;
    who: Session;
    call: CallInfo;
    info: RequestInfo;
    resource: Resource;
    decision: Decision;
    parsed: ParsedRequest;
    price: Price | undefined;
  },
): Promise<Reservation | undefined> {
  const { ep, who, call, info, resource, decision, parsed, price } = c;
  const bound = { input_tokens: call.estimated_input_tokens, output_tokens: call.max_output_tokens };
  return vault.admit(
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
          price && parsed.promptCache ? { ...price, input: dearestInput(price) } : price,
        ),
        ...(price ? {} : { unpriced: true }),
      },
    },
  );
}
