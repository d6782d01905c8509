import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { ERROR_CODES, type ErrorCode, StrongroomError } from '../../errors/errors.ts';
import { HTTP_STATUS } from '../../errors/http-status.ts';
import { createMtlsServer, type MtlsAgent, mtlsAgent, peerOf } from '../../spiffe/mtls.ts';
import type { SvidSource } from '../../spiffe/svid-source.ts';
import {
  type CallInfo,
  type PromptView,
  type ProvenanceLink,
  type RequestStage,
  StageRefusal,
} from '../types.ts';
import { MAX_LINKS, ProvenanceError, parseLinks, type StageKey, signStage, verifyStage } from './signing.ts';

/**
 * Pipeline stages as separate services over mTLS (issue 7, item 7). A stage
 * service receives `{ body, trace_id, provenance }` (body base64), verifies
 * the last link of the provenance chain before doing anything (the link's
 * signature covers the previous link's JWS, so the whole chain is bound),
 * runs the stage, signs its output with its own X.509-SVID and answers
 * `{ body, provenance: [...links, own] }` — or forwards that to the next
 * stage and answers what the next stage answered. A missing or invalid link
 * is refused with 400 `provenance_invalid` and an audit line.
 * See docs/stages.md.
 */

/** A stage that rewrites the body (a redactor, a normaliser). */
export interface BodyTransformer {
  readonly name: string;
  transform(body: Buffer, context: { traceId: string; caller: string }): Buffer | Promise<Buffer>;
}

/** What a stage service takes and gives. */
export interface StageMessage {
  body: Buffer;
  traceId: string;
  provenance: readonly ProvenanceLink[];
}

/** A client of a stage service. */
export interface RemoteStage {
  readonly name: string;
  /** Sends the message; returns the stage's output with the chain extended, verified. Throws StageRefusal / ProvenanceError. */
  process(message: StageMessage): Promise<{ body: Buffer; provenance: ProvenanceLink[] }>;
  close(): Promise<void>;
}

/** One audit-style line: who, what, which trace, the decision and why (never the body). */
export type StageLog = (entry: Record<string, unknown>) => void;

type IdRule = readonly string[] | ((spiffeId: string) => boolean);
const allows = (rule: IdRule) => (id: string) =>
  typeof rule === 'function' ? rule(id) === true : rule.includes(id);

export interface ServeStageOptions {
  stage: RequestStage | BodyTransformer;
  /** Port (and host, default 127.0.0.1); port 0 picks a free one. */
  listen: number | { host?: string; port: number };
  /** This service's SVID (TLS and signing) and the bundles it trusts. */
  source: SvidSource;
  /** Sign with this key instead of the source's current SVID. */
  key?: StageKey & { spiffeId: string };
  /** SPIFFE IDs allowed to call this service (mTLS). */
  authorize: IdRule;
  /** SPIFFE IDs allowed to have signed the link this service receives; default: `authorize`. */
  signers?: IdRule;
  /** Forward the signed output to this stage and answer with its answer. */
  next?: RemoteStage;
  /** Audit and request log (default: JSON lines on stdout). */
  log?: StageLog;
  maxBodyBytes?: number;
  now?: () => number;
}

export interface StageService {
  readonly url: string;
  readonly server: https.Server;
  close(): Promise<void>;
}

const defaultLog: StageLog = (e) => process.stdout.write(`${JSON.stringify(e)}\n`);

/** The texts of a provider request body (OpenAI and Anthropic shapes), or the body itself when it is not JSON. */
export function promptViewOf(body: Buffer): PromptView {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { texts: [body.toString('utf8')] };
  }
  const texts: string[] = [];
  const TEXT_KEYS = new Set(['content', 'text', 'prompt', 'input', 'system', 'instructions']);
  // a string counts when its own key (or its array's key) is a text key: not `type: "text"`, `role`, `model`
  const walk = (v: unknown, depth: number, underText: boolean): void => {
    if (depth > 16) return;
    if (typeof v === 'string') {
      if (underText) texts.push(v);
    } else if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1, underText);
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, depth + 1, TEXT_KEYS.has(k));
    }
  };
  walk(parsed, 0, false);
  return { texts: texts.length ? texts : typeof parsed === 'string' ? [parsed] : [] };
}

function callInfoOf(body: Buffer, traceId: string, caller: string): CallInfo {
  let j: Record<string, unknown> = {};
  try {
    const p = JSON.parse(body.toString('utf8'));
    if (p && typeof p === 'object' && !Array.isArray(p)) j = p;
  } catch {}
  return {
    request_id: randomUUID(),
    trace_id: traceId,
    caller: { kind: 'workload', id: caller, display_name: caller, spiffe_id: caller },
    client_address: '-',
    provider: typeof j.provider === 'string' ? j.provider : 'unknown',
    model: typeof j.model === 'string' ? j.model : 'unknown',
    route: 'chat.completions',
    stream: j.stream === true,
    classification: 'unclassified',
    estimated_input_tokens: Math.ceil(body.length / 4),
    max_output_tokens: typeof j.max_tokens === 'number' ? j.max_tokens : 0,
  };
}

const knownCode = (c: string): ErrorCode | undefined =>
  (ERROR_CODES as readonly string[]).includes(c) ? (c as ErrorCode) : undefined;

/** A request the stage service cannot take (its path, size or shape): answered with the code's status. */
class StageRequestError extends StrongroomError {
  override name = 'StageRequestError';
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > max)
      throw new StageRequestError('payload_too_large', `the request is larger than ${max} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

const TRACE_ID = /^[0-9a-f]{32}$/;

/** Parses and checks a stage message from the wire. */
function parseStageMessage(raw: Buffer): StageMessage {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new StageRequestError('bad_request', 'the request is not JSON');
  }
  if (!j || typeof j !== 'object') throw new StageRequestError('bad_request', 'the request is not an object');
  if (typeof j.body !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(j.body)) {
    throw new StageRequestError('bad_request', '`body` must be base64');
  }
  if (typeof j.trace_id !== 'string' || !TRACE_ID.test(j.trace_id)) {
    throw new StageRequestError(
      'bad_request',
      '`trace_id` must be 32 lowercase hex characters (W3C trace-context)',
    );
  }
  if (j.provenance === undefined || (Array.isArray(j.provenance) && j.provenance.length === 0)) {
    throw new ProvenanceError('provenance', 'missing', 'the request carries no provenance');
  }
  return { body: Buffer.from(j.body, 'base64'), traceId: j.trace_id, provenance: parseLinks(j.provenance) };
}

const wire = (m: { body: Buffer; traceId?: string; provenance: readonly ProvenanceLink[] }) =>
  JSON.stringify({
    body: m.body.toString('base64'),
    ...(m.traceId !== undefined ? { trace_id: m.traceId } : {}),
    provenance: m.provenance,
  });

/** Runs a stage as an mTLS service (see the module comment). Resolves once listening. */
export async function serveStage(options: ServeStageOptions): Promise<StageService> {
  const { stage, source } = options;
  const log = options.log ?? defaultLog;
  const now = options.now ?? Date.now;
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const mayCall = allows(options.authorize);
  const maySign = allows(options.signers ?? options.authorize);
  const isTransformer = (s: RequestStage | BodyTransformer): s is BodyTransformer =>
    typeof (s as BodyTransformer).transform === 'function';

  const audit = (event: string, fields: Record<string, unknown>) =>
    log({ time: new Date(now()).toISOString(), type: 'audit', event, stage: stage.name, ...fields });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const caller = peerOf(req)!.spiffeId;
    let traceId: string | undefined;
    const send = (status: number, payload: string) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
      });
      res.end(payload);
    };
    try {
      if (req.method !== 'POST' || req.url !== '/v1/stage')
        throw new StageRequestError('not_found', 'POST /v1/stage only');
      const msg = parseStageMessage(await readBody(req, maxBody));
      traceId = msg.traceId;
      const links = msg.provenance;
      if (links.length >= MAX_LINKS)
        throw new ProvenanceError('provenance', 'malformed', 'the provenance chain is too long');
      const last = links[links.length - 1]!;
      const { bundles } = source.current();
      // verify before processing: the sender's link must cover exactly this body, trace and chain
      await verifyStage(last, {
        body: msg.body,
        traceId: msg.traceId,
        prev: links.length > 1 ? links[links.length - 2]!.jws : null,
        bundles,
        expectSpiffeId: (id) => maySign(id),
        now: now(),
      });
      let out = msg.body;
      if (isTransformer(stage)) out = await stage.transform(msg.body, { traceId: msg.traceId, caller });
      else await stage.inspect(promptViewOf(msg.body), callInfoOf(msg.body, msg.traceId, caller));
      const svid = source.current();
      const key = options.key ?? { privateKey: svid.privateKey, chain: svid.chain, spiffeId: svid.spiffeId };
      const own = await signStage({
        body: out,
        stage: stage.name,
        spiffeId: key.spiffeId,
        traceId: msg.traceId,
        prev: last.jws,
        key,
        now: now(),
      });
      const chain = [...links, own];
      audit('stage.processed', { decision: 'allow', trace_id: msg.traceId, caller, signer: last.spiffe_id });
      if (options.next) {
        const answer = await options.next.process({ body: out, traceId: msg.traceId, provenance: chain });
        send(200, wire(answer));
      } else {
        send(200, wire({ body: out, provenance: chain }));
      }
    } catch (err) {
      const base = { trace_id: traceId ?? null, caller };
      if (err instanceof ProvenanceError && err.reason === 'rejected_downstream') {
        audit('stage.downstream_rejected', {
          ...base,
          decision: 'deny',
          code: err.code,
          refused_by: err.stage,
        });
        send(400, JSON.stringify({ error: { code: err.code, message: err.message, stage: err.stage } }));
      } else if (err instanceof ProvenanceError) {
        audit('stage.provenance_rejected', {
          ...base,
          decision: 'deny',
          code: err.code,
          reason: err.reason,
          message: err.message,
        });
        send(400, JSON.stringify({ error: { code: err.code, message: err.message, stage: err.stage } }));
      } else if (err instanceof StageRefusal) {
        audit('stage.refused', { ...base, decision: 'deny', code: err.code, refused_by: err.stage });
        send(422, JSON.stringify({ error: { code: err.code, message: err.message, stage: err.stage } }));
      } else if (err instanceof StageRequestError) {
        audit('stage.bad_request', { ...base, decision: 'deny', code: err.code });
        send(HTTP_STATUS[err.code], JSON.stringify({ error: { code: err.code, message: err.message } }));
      } else {
        // never echo internals (DESIGN §4)
        audit('stage.error', { ...base, decision: 'error', code: 'internal' });
        send(500, JSON.stringify({ error: { code: 'internal', message: 'the stage failed' } }));
      }
    }
  };

  const server = createMtlsServer(
    {
      source,
      authorize: (peer) => mayCall(peer.spiffeId),
      now,
      onRefused: (r) =>
        audit('stage.caller_refused', {
          decision: 'deny',
          code: r.reason,
          caller: r.spiffeId ?? null,
          status: r.status,
        }),
    },
    (req, res) => void handle(req, res),
  );
  const listen = typeof options.listen === 'number' ? { port: options.listen } : options.listen;
  const host = listen.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface RemoteStageOptions {
  /** Base URL of the stage service (`https://host:port`). */
  url: string;
  /** The service's SPIFFE ID(s) (mTLS), and by default who may sign what it returns. */
  expectSpiffeId: string | readonly string[];
  /** Who may sign the last link of the answer (a service forwarding to others answers with their link). */
  signers?: IdRule;
  source: SvidSource;
  /** Name for errors (default: the URL). */
  name?: string;
  now?: () => number;
  timeoutMs?: number;
}

/** A client for a stage service: sends over mTLS, verifies the answer extends the chain with a valid link. */
export function remoteStage(options: RemoteStageOptions): RemoteStage {
  const expected =
    typeof options.expectSpiffeId === 'string' ? [options.expectSpiffeId] : options.expectSpiffeId;
  const maySign = allows(options.signers ?? expected);
  const now = options.now ?? Date.now;
  const name = options.name ?? options.url;
  const dispatcher: MtlsAgent = mtlsAgent({ source: options.source, expect: expected, now });
  const endpoint = new URL('/v1/stage', options.url).toString();
  return {
    name,
    async process(message) {
      const res = await request(endpoint, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json' },
        body: wire(message),
        headersTimeout: options.timeoutMs ?? 30_000,
        bodyTimeout: options.timeoutMs ?? 30_000,
      });
      const text = await res.body.text();
      let j: {
        body?: unknown;
        provenance?: unknown;
        error?: { code?: unknown; message?: unknown; stage?: unknown };
      };
      try {
        j = JSON.parse(text);
      } catch {
        throw new Error(`the stage ${name} answered ${res.statusCode} with a body that is not JSON`);
      }
      if (res.statusCode !== 200) {
        const code = typeof j.error?.code === 'string' ? j.error.code : 'stage_failed';
        const msg =
          typeof j.error?.message === 'string' ? j.error.message : `the stage answered ${res.statusCode}`;
        const stage = typeof j.error?.stage === 'string' ? j.error.stage : name;
        if (code === 'provenance_invalid') throw new ProvenanceError(stage, 'rejected_downstream', msg);
        // a code outside the closed union (a stage of another make) is the stage's failure to say why
        if (res.statusCode < 500) throw new StageRefusal(stage, knownCode(code) ?? 'stage_failed', msg);
        throw new Error(`the stage ${name} failed (${res.statusCode} ${code})`);
      }
      if (typeof j.body !== 'string')
        throw new ProvenanceError(name, 'malformed', 'the stage answered without a body');
      const body = Buffer.from(j.body, 'base64');
      const links = parseLinks(j.provenance);
      // the answer must extend exactly the chain we sent
      const sent = message.provenance;
      if (links.length <= sent.length || sent.some((l, i) => links[i]!.jws !== l.jws)) {
        throw new ProvenanceError(
          name,
          'chain_mismatch',
          'the stage answered with a chain that does not extend ours',
        );
      }
      const last = links[links.length - 1]!;
      await verifyStage(last, {
        body,
        traceId: message.traceId,
        prev: links[links.length - 2]!.jws,
        bundles: options.source.current().bundles,
        expectSpiffeId: (id) => maySign(id),
        now: now(),
      });
      return { body, provenance: links };
    },
    close: () => dispatcher.close(),
  };
}
