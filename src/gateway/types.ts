/**
 * Shared contracts of the AI gateway (issue 7; docs/gateway.md). The gateway
 * (src/gateway/gateway.ts) authenticates the caller, authorizes the call with
 * Cedar, reserves budget, runs the request stages (prompt firewall), injects
 * the provider key from the vault, streams the upstream answer through the
 * response stages (output filter), settles the budget and writes one audit
 * entry per call.
 */

import { type ErrorCode, StrongroomError } from '../errors/errors.ts';

// the price function's and the budgets' shapes are shared with the budgets engine: one definition each
export type { Price, Usage } from '../api/pricing.ts';
export type { BudgetLimits, Budgets, Reservation } from '../contract/budgets.ts';

/** The gateway endpoints, as Cedar sees them (`resource.route`). */
export type GatewayRoute =
  | 'chat.completions'
  | 'responses'
  | 'embeddings'
  | 'models'
  | 'messages'
  | 'messages.count_tokens';

/** Who is calling, once authenticated. */
export interface Caller {
  kind: 'token' | 'virtual_key' | 'workload';
  /** Stable id: token accessor, virtual key id, or SPIFFE ID. */
  id: string;
  display_name: string;
  /** The SPIFFE ID proven by the caller's mTLS certificate or JWT-SVID, if any. */
  spiffe_id?: string;
  /** Default data classification of the key (overridden by `x-strongroom-classification`). */
  classification?: string;
}

/**
 * The vault's handle on an authenticated caller (src/gateway/vault-port.ts `Session`): opaque here,
 * passed back with every question the gateway asks the vault about the call.
 */
export interface SessionRef {
  readonly caller: Caller;
}

/** What one call is about (known after the body is parsed). */
export interface CallInfo {
  request_id: string;
  trace_id: string;
  caller: Caller;
  /** Who the vault says is calling (for stages that ask the vault about the caller); absent in a stage service. */
  session?: SessionRef;
  /** The address the call came from. */
  client_address: string;
  provider: string;
  model: string;
  route: GatewayRoute;
  stream: boolean;
  classification: string;
  /** Input tokens estimated from the request (for reservations and the policy context). */
  estimated_input_tokens: number;
  /** The most output tokens the call may produce (max_tokens, or a default), for the reservation. */
  max_output_tokens: number;
}

// ---------------------------------------------------------------- budgets

// ---------------------------------------------------------------- stages

/**
 * Why a stage refused a request: a code from the closed union (its status from the one map,
 * src/errors/http-status.ts) and a message safe to show the caller.
 */
export class StageRefusal extends StrongroomError {
  readonly stage: string;
  /** `compromise`: what was refused also means the caller's credential leaked or was misused (it was revoked). */
  readonly signal: 'compromise' | undefined;
  constructor(stage: string, code: ErrorCode, message: string, signal?: 'compromise') {
    super(code, message);
    this.name = 'StageRefusal';
    this.stage = stage;
    this.signal = signal;
  }
}

/** The text a request sends to the model, extracted per provider format, for inspection. */
export interface PromptView {
  /** Every piece of user/system/tool text in the request, in order. */
  texts: readonly string[];
}

/** A request stage (e.g. the prompt firewall): may refuse, never rewrites silently. */
export interface RequestStage {
  readonly name: string;
  inspect(prompt: PromptView, call: CallInfo): Promise<void>;
}

/**
 * A response stage (e.g. the output filter) for one call: text goes through
 * `push` chunk by chunk (it may hold back a tail that could be the start of a
 * pattern split across chunks) and `end` flushes what is left and resets the
 * filter, so the same filter can take another text after it.
 */
export interface ResponseFilter {
  push(text: string): string;
  end(): string;
}

export interface ResponseStage {
  readonly name: string;
  /** `secrets` are values that must never reach the client (the injected provider key). */
  open(call: CallInfo, secrets: readonly string[]): ResponseFilter;
}

/** One link of the provenance chain: a detached JWS by a stage over what it passed on. */
export interface ProvenanceLink {
  stage: string;
  spiffe_id: string;
  /** Compact JWS with a detached payload (RFC 7515 Appendix F). */
  jws: string;
}
