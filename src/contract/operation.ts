/**
 * The shared contract: what an operation is, what it acts on and the
 * transport-free facts of a request. A leaf (imports nothing of ours but
 * other contract files).
 */
import type { Identity, TokenEntry } from './identity.ts';
import type { Resource } from './resource.ts';

export type { Resource } from './resource.ts';

/** Transport-free facts about a request. */
export interface RequestInfo {
  request_id: string;
  client_address: string;
  /** W3C trace id (32 hex) from the caller's `traceparent`, or a new one. */
  trace_id?: string;
  /** The bearer token as presented, if any. Never logged or audited. */
  token?: string | undefined;
  /** The client certificate chain presented over TLS (DER, leaf first), verified by the core, not the adapter. */
  peer_certificates?: readonly Buffer[] | undefined;
  /** Aborted when the client goes away (set for streaming routes): long operations stop and write nothing. */
  signal?: AbortSignal;
  /** Where a long operation reports progress (set for streaming routes; the server streams each event). */
  progress?: (event: Readonly<Record<string, unknown>>) => void;
}

export interface OperationContext {
  identity: Identity | undefined;
  request: RequestInfo;
  /** The caller's token entry, when the operation needs a token. */
  token?: TokenEntry;
}

/**
 * A unit of work the core can perform. Every operation declares its policy
 * action; the core refuses at start-up to register one that does not.
 */
export interface Operation<I = never, O = unknown> {
  /** Unique name, e.g. 'secret.read'. */
  name: string;
  /** The policy action checked before the handler runs. */
  action: string;
  /** 'token': a valid token is required; 'none': public (status, init, unseal). */
  auth: 'token' | 'none';
  /** Whether the operation may run while sealed (only status/init/unseal). */
  whenSealed?: boolean;
  /**
   * 'refusals': only refused calls are audited here, because the caller writes the record of what the
   * call was for (the remote gateway's plumbing: one audit entry per model call, not ten). Default: every call.
   */
  audit?: 'refusals';
  /**
   * false: an allowed call is not counted by the per-principal rate limit (a gateway's plumbing, limited
   * per caller by the gateway); a refused one still is.
   */
  rateLimit?: false;
  /** The resource the action applies to, derived from the input alone. */
  resource(input: I): Resource;
  /** Request context the policy sees beside the resource (`context.operation` of a tool credential). */
  context?(input: I): { operation?: string; tenant?: string };
  handle(ctx: OperationContext, input: I): Promise<O>;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds operations of every input/output type
export type AnyOperation = Operation<any, any>;

/**
 * The wire side of an operation, declared once in `api/` beside its request
 * schemas: its name, the JSON Schema of a successful response (the server
 * serializes the body with it and documents it in /v1/openapi.json) and, as
 * types only, its input and output. Routes, engines, the SDK and the CLI all
 * name the operation by this object, so renaming a field in one place fails
 * the typecheck everywhere it is used.
 */
export interface OpSpec<I = unknown, O = unknown> {
  readonly name: string;
  readonly response?: object | undefined;
  /** Never set: carries the input and output types. */
  readonly types?: { readonly input: I; readonly output: O };
}

// biome-ignore lint/suspicious/noExplicitAny: a route table holds specs of every input/output type
export type AnyOpSpec = OpSpec<any, any>;
export type OutputOf<S> = S extends OpSpec<infer _I, infer O> ? O : never;

/** An operation implementing a spec: it takes the spec's name, and its handler is held to the spec's types. */
export function implement<I, O>(
  spec: OpSpec<I, O>,
  def: NoInfer<Omit<Operation<I, O>, 'name'>>,
): Operation<I, O> {
  return { ...def, name: spec.name };
}
