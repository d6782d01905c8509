import type { Span } from '@opentelemetry/api';
import type { FastifyReply } from 'fastify';
import type { Dispatcher } from 'undici';
import type { RequestInfo } from '../contract/operation.ts';
import type { CallGuard, EndReason } from './call-guard.ts';
import type { Endpoint } from './providers.ts';
import type { CallFilters } from './response-filters.ts';
import type { RouteTarget } from './routing.ts';
import type { CallInfo, Price, ProvenanceLink, Reservation } from './types.ts';
import type { Session } from './vault-port.ts';

/** A call as its steps fill it in: its ids from the start, the rest as each step learns it. */
export type CallDraft = Partial<CallInfo> & { request_id: string; trace_id: string };

/** One forwarded call, as everything after admission sees it. */
export interface Forwarding {
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

/** An upstream answer on its way to the client (relay-answer.ts, relay-stream.ts). */
export interface Relaying {
  f: Forwarding;
  res: Dispatcher.ResponseData;
  /** How the call could end early; `g.reason` says whether it did. */
  g: CallGuard;
  filters: CallFilters;
  /** Every key injected upstream: never passed on. */
  injected: readonly string[];
  /** The host that answered, for the record. */
  upstreamHost: string;
  /** The request side of the provenance chain. */
  links: ProvenanceLink[];
  /** The output's provenance link over `text`, chained to the request side. */
  outputLink: (text: string) => Promise<string | undefined>;
  /** The call ended early (the guard): recorded, and told to the client if it is still there. */
  endedEarly: (how: EndReason) => Promise<unknown>;
}
