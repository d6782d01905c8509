import type { FastifyReply } from 'fastify';
import { ERROR_CODES, type ErrorCode, type StrongroomError } from '../errors/errors.ts';
import { HTTP_STATUS } from '../errors/http-status.ts';
import { errorBody, type WireApi } from './providers.ts';

/**
 * The gateway's errors as its callers see them: a code from the closed union (src/errors/errors.ts),
 * its status from the one map (src/errors/http-status.ts), in the caller's API format (OpenAI's or
 * Anthropic's error body, providers.ts `errorBody`).
 */

/**
 * Every code the gateway answers with of its own (besides the codes of the vault's errors it passes
 * on, which come from the same union): its refusals, its stages' and the ends of a call.
 */
export const GATEWAY_ERROR_CODES = [
  'bad_request',
  'invalid_json',
  'json_too_deep',
  'invalid_value',
  'payload_too_large',
  'unsupported_media_type',
  'route_not_found',
  // what the stage service answers a request it cannot take (a gateway passes a stage's refusal on)
  'not_found',
  'sealed',
  'vault_unavailable',
  'audit_unavailable',
  'permission_denied',
  'rate_limited',
  'model_not_routed',
  'model_not_priced',
  'anomaly_revoked',
  'anomaly_narrowed',
  'prompt_injection',
  'blocked_topic',
  'credential_detected',
  'pii_detected',
  'provenance_invalid',
  'stage_output_invalid',
  'stage_failed',
  'provider_key_missing',
  'upstream_unreachable',
  'upstream_error',
  'upstream_redirect',
  'client_closed',
  'call_timeout',
  'credential_revoked',
  'internal',
] as const satisfies readonly ErrorCode[];

/** The HTTP status of a code: the one map, for the vault and the gateway alike. */
export const statusOf = (code: ErrorCode): number => HTTP_STATUS[code];

/** Which API's error format a request gets when no endpoint matched it (by its path). */
export const apiOfUrl = (url: string): WireApi => (url.startsWith('/v1/messages') ? 'anthropic' : 'openai');

/** Sends an error in the caller's API format, with the code's status (and `retry-after` when given). */
export function sendError(
  reply: FastifyReply,
  api: WireApi,
  code: ErrorCode,
  message: string,
  retryAfter?: number,
) {
  const status = statusOf(code);
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
  return reply
    .code(status)
    .type('application/json')
    .send(errorBody(api, status, code, message));
}

/**
 * The code a vault's error is answered with: a refusal the vault names more precisely than its code
 * (`details.refusal`, e.g. `model_not_priced` on a `permission_denied`) when the union holds it.
 */
export function refusalCode(err: StrongroomError): ErrorCode {
  const refusal = err.details?.refusal;
  return typeof refusal === 'string' && (ERROR_CODES as readonly string[]).includes(refusal)
    ? (refusal as ErrorCode)
    : err.code;
}
