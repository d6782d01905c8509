import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyRequest } from 'fastify';
import type { RequestInfo } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { CallDraft } from './call-context.ts';
import { type Endpoint, type ParsedRequest, parseRequest } from './providers.ts';
import type { Session } from './vault-port.ts';

/**
 * Reading a call's request: its ids, then what it asks (the body's model and flags, its data
 * classification) and the upper bounds of what it can use. Nothing here chooses where it goes.
 */

const CLASSIFICATION = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** The request's facts and the call's first draft. */
export function callOf(ep: Endpoint, req: FastifyRequest): { info: RequestInfo; call: CallDraft } {
  const info: RequestInfo = {
    request_id: req.id,
    trace_id: traceIdOf(req.headers) ?? randomUUID().replaceAll('-', ''),
    client_address: req.ip,
  };
  const call: CallDraft = {
    request_id: info.request_id,
    trace_id: info.trace_id!,
    route: ep.route,
    client_address: info.client_address,
  };
  return { info, call };
}

function traceIdOf(headers: IncomingHttpHeaders): string | undefined {
  const tp = headers.traceparent;
  const m = typeof tp === 'string' ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(tp) : null;
  return m && m[1] !== '0'.repeat(32) ? m[1] : undefined;
}

export interface RequestBounds {
  /** Each request body's size in bytes, from the content parser. */
  bodyBytes: WeakMap<object, number>;
  /** Tokens reserved per image or audio block (gateway.reference_tokens). */
  referenceTokens: number;
  /** The output cap of a call that sets none (gateway.default_max_output_tokens). */
  defaultMaxOut: number;
}

/**
 * What the call asks, written into `call` (classification, stream, the bounds of its input and
 * output tokens); throws `invalid_value` for a body that names no model or a bad classification.
 */
export function describeRequest(
  ep: Endpoint,
  req: FastifyRequest,
  who: Session,
  call: CallDraft,
  bounds: RequestBounds,
): ParsedRequest | undefined {
  const body = (req.body ?? {}) as Record<string, unknown>;
  const parsed = ep.method === 'GET' ? undefined : parseRequest(ep, body);
  if (ep.hasModel && !parsed?.model) throw new StrongroomError('invalid_value', 'the request names no model');
  const header = req.headers['x-strongroom-classification'];
  const classification = typeof header === 'string' ? header : (who.caller.classification ?? 'internal');
  if (!CLASSIFICATION.test(classification)) {
    throw new StrongroomError(
      'invalid_value',
      'x-strongroom-classification: lower-case letters, digits, - and _',
    );
  }
  call.classification = classification;
  call.stream = parsed?.stream ?? false;
  // an upper bound of what the call can use (issue 12 item 4): no text token is shorter than a
  // byte, and the output is capped per choice by max_tokens (the gateway's cap when none is set)
  call.estimated_input_tokens =
    (bounds.bodyBytes.get(req.raw) ?? 0) + (parsed?.references ?? 0) * bounds.referenceTokens;
  call.max_output_tokens =
    (parsed?.maxOutputTokens ?? (ep.route === 'embeddings' ? 0 : bounds.defaultMaxOut)) *
    (parsed?.choices ?? 1);
  return parsed;
}
