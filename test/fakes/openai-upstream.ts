import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A fake OpenAI API, written from the OpenAI API reference
 * (platform.openai.com/docs/api-reference) and checked against the official
 * `openai` client in node_modules (test/fakes/upstream.test.ts):
 *
 *   POST /v1/chat/completions  -> chat.completion, or `chat.completion.chunk` SSE ending `data: [DONE]`
 *                                 (with `stream_options.include_usage`: every chunk carries `usage: null`
 *                                 and a last chunk has `choices: []` and the usage)
 *   POST /v1/responses         -> response object, or the semantic SSE events (`event:` lines)
 *                                 response.created ... response.output_text.delta ... response.completed
 *   POST /v1/embeddings        -> {object: 'list', data: [{object: 'embedding', index, embedding}], usage}
 *                                 (`encoding_format: 'base64'` = little-endian float32, as the client asks by default)
 *   GET  /v1/models[/{id}]     -> {object: 'list', data: [{id, object: 'model', created, owned_by}]}
 *
 * Credentials: `Authorization: Bearer <key>`, and only the one key set with
 * `setKey`; anything else gets 401 `{error: {message, type, param, code: 'invalid_api_key'}}`.
 *
 * The reply is deterministic: `You said N words.` where N is the word count of
 * the last user message, streamed word by word; the knobs (see UpstreamKnobs)
 * change that, inject failures, redirects and delays, and make the reply echo
 * the key it received (to test the gateway's redaction).
 *
 * This file also holds what the OpenAI and Anthropic fakes share (the server,
 * recording, knobs, SSE pacing, reply building); anthropic-upstream.ts imports it.
 */

// ---------------------------------------------------------------------------
// Shared by both fakes
// ---------------------------------------------------------------------------

export interface RecordedRequest {
  method: string;
  /** The raw request target as received (path and query, not normalised). */
  path: string;
  /** The path without the query string. */
  pathname: string;
  /** Node's lower-cased headers (authorization, x-api-key, host, ...). */
  headers: Record<string, string | string[] | undefined>;
  /** Header names and values exactly as received, in order (duplicates kept). */
  rawHeaders: string[];
  /** The body parsed as JSON, the raw text if it is not JSON, undefined if empty. */
  body: unknown;
  rawBody: string;
  /** Date.now() when the request was fully received. */
  receivedAt: number;
  /** Date.now() when the client (the gateway) closed the connection before the answer ended. */
  abortedAt?: number;
}

/**
 * How the reply text contains the credential the fake received:
 * 'whole' in one piece (one SSE chunk), 'split' across two consecutive SSE
 * chunks (the halves meet mid-key), 'base64' base64-encoded.
 */
export type EchoKeyMode = 'none' | 'whole' | 'split' | 'base64';

/**
 * Text-bearing streamed fields a hostile provider can echo the key in (`keyEcho`):
 *
 * - every API: `text` (chat `delta.content`, Responses `output_text`, Anthropic `text_delta`; in
 *   plain answers too), `refusal` (chat `delta.refusal`, a Responses refusal part), `logprobs`
 *   (the text's tokens and bytes: chat `choices[].logprobs`, Responses `output_text.delta.logprobs`);
 * - chat: `reasoning`, `reasoning_content` (OpenAI-compatible servers), `tool_calls` (several
 *   tool calls, their argument pieces interleaved by `index`), `function_call` (legacy),
 *   `audio_transcript`;
 * - Responses: `function_call_arguments` (two function calls, interleaved), `reasoning_summary`,
 *   `reasoning_text`;
 * - Anthropic: `input_json` (two tool_use blocks), `thinking`.
 */
export type EchoField =
  | 'text'
  | 'refusal'
  | 'logprobs'
  | 'reasoning'
  | 'reasoning_content'
  | 'tool_calls'
  | 'function_call'
  | 'audio_transcript'
  | 'function_call_arguments'
  | 'reasoning_summary'
  | 'reasoning_text'
  | 'input_json'
  | 'thinking';

export interface KeyEcho {
  field: EchoField;
  /**
   * How the echoed text is cut into streamed pieces: `every` (default: one copy per split position,
   * the two halves in consecutive pieces of the field), `chars` (one character a piece), `whole`.
   */
  split?: 'every' | 'chars' | 'whole';
  /**
   * What is echoed: the key received (default) or its masked forms (`maskedKeyForms`: 4 real
   * characters after the prefix, a mask, the last 4). With `masked`, the `fail` and
   * `streamFailure` error messages quote the masked forms instead of the key.
   */
  form?: 'key' | 'masked';
}

export interface UpstreamKnobs {
  echoKey: EchoKeyMode;
  /**
   * Answer the next `times` requests (any route, before the key is checked)
   * with `status` and the provider's error shape, whose message echoes the
   * credential that was sent, as a careless provider might. Cleared when used
   * up. `retryAfter` (seconds) adds a `retry-after` header.
   */
  fail: { status: number; times: number; retryAfter?: number } | undefined;
  /** Answer every request with 307 and `location: redirectTo` (a gateway must not follow it). */
  redirectTo: string | undefined;
  /** Wait this long before answering (after recording the request). */
  delayMs: number;
  /** Wait this long between SSE events. */
  chunkDelayMs: number;
  /** Token counts to report instead of the computed ones (in every usage field that carries them). */
  usage: { input?: number; output?: number } | undefined;
  /** Reply text to use instead of `You said N words.` (the key echo, if on, is still appended). */
  reply: string | undefined;
  /**
   * Break streams after `afterEvents` SSE events: 'reset' drops the
   * connection, 'error' sends the provider's in-stream error event (whose
   * message echoes the key) and ends the response.
   */
  streamFailure: { afterEvents: number; mode: 'reset' | 'error' } | undefined;
  /** A hostile provider: echo the key received in a text-bearing streamed field (see KeyEcho). */
  keyEcho: KeyEcho | undefined;
  /** Chat: answer with the `n` choices the request asks for (at most 8; off: one choice, as before). */
  honorN: boolean;
  /** Chat streams: each choice calls this many tools, their argument pieces interleaved (0: none). */
  toolCalls: number;
  /**
   * A hostile provider's exact bytes: every streamed answer (chat, Responses, Messages) is these
   * frames, written as they are (any line endings, any shape), made from the key received and the
   * path called. Off (undefined): the provider's own stream.
   */
  rawStream: ((received: string, path: string) => string[]) | undefined;
  /**
   * A hostile provider's exact body for every complete (not streamed) answer (chat, Responses,
   * Messages): this text, sent with status 200 as `application/json`, made from the key received and
   * the path called. Off (undefined): the provider's own answer.
   */
  rawAnswer: ((received: string, path: string) => string) | undefined;
}

export interface UpstreamFake extends UpstreamKnobs {
  /** http://127.0.0.1:<port> (no trailing slash, no /v1). */
  readonly url: string;
  readonly port: number;
  /** The only credential the fake accepts. */
  readonly key: string;
  /** Every request received, oldest first (including rejected and redirected ones). */
  readonly requests: RecordedRequest[];
  setKey(key: string): void;
  lastRequest(): RecordedRequest | undefined;
  /** The SSE frames of the last streamed answer, as written (to compare with what a client got). */
  sentEvents: string[];
  /** Forget the recorded requests and put every knob back to its default. */
  reset(): void;
  close(): Promise<void>;
}

export interface UpstreamFakeOptions extends Partial<UpstreamKnobs> {
  /** Defaults to a random key in the provider's format (read it back from `fake.key`). */
  key?: string;
}

export const defaultKnobs = (): UpstreamKnobs => ({
  echoKey: 'none',
  fail: undefined,
  redirectTo: undefined,
  delayMs: 0,
  chunkDelayMs: 0,
  usage: undefined,
  reply: undefined,
  streamFailure: undefined,
  keyEcho: undefined,
  honorN: false,
  toolCalls: 0,
  rawStream: undefined,
  rawAnswer: undefined,
});

export type UpstreamHandler = (
  req: RecordedRequest,
  res: ServerResponse,
  fake: UpstreamFake,
) => Promise<void>;

/**
 * Starts the server on 127.0.0.1:0: records each request, then applies the
 * `redirectTo` and `delayMs` knobs, then hands over to the provider's handler.
 */
export async function startUpstream(
  opts: UpstreamFakeOptions,
  handle: UpstreamHandler,
): Promise<UpstreamFake> {
  const { key: initialKey, ...knobs } = opts;
  let key = initialKey ?? '';
  const requests: RecordedRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = rawBody ? JSON.parse(rawBody) : undefined;
      } catch {
        body = rawBody;
      }
      const path = req.url ?? '/';
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path,
        pathname: path.split('?')[0]!,
        headers: { ...req.headers },
        rawHeaders: [...req.rawHeaders],
        body,
        rawBody,
        receivedAt: Date.now(),
      };
      requests.push(rec);
      res.on('close', () => {
        if (!res.writableFinished) rec.abortedAt = Date.now();
      });
      void (async () => {
        if (fake.redirectTo !== undefined) {
          res.writeHead(307, { location: fake.redirectTo, 'content-type': 'text/plain' });
          res.end(`Temporary Redirect to ${fake.redirectTo}`);
          return;
        }
        if (fake.delayMs > 0) await sleep(fake.delayMs);
        if (res.destroyed) return;
        await handle(rec, res, fake);
      })().catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`fake upstream crashed: ${String(err)}`);
        } else res.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const fake: UpstreamFake = {
    ...defaultKnobs(),
    ...knobs,
    url: `http://127.0.0.1:${port}`,
    port,
    get key() {
      return key;
    },
    requests,
    sentEvents: [],
    setKey(k: string) {
      key = k;
    },
    lastRequest: () => requests.at(-1),
    reset() {
      requests.length = 0;
      fake.sentEvents = [];
      Object.assign(fake, defaultKnobs());
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return fake;
}

/** Consumes `fake.fail` if set: returns the failure to answer with, decrementing `times`. */
export function takeFailure(fake: UpstreamFake): { status: number; retryAfter?: number } | undefined {
  const f = fake.fail;
  if (!f || f.times <= 0) return undefined;
  f.times -= 1;
  if (f.times <= 0) fake.fail = undefined;
  return f.retryAfter === undefined ? { status: f.status } : { status: f.status, retryAfter: f.retryAfter };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function startSse(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...headers,
  });
  res.flushHeaders();
}

/**
 * Writes SSE events one by one, `chunkDelayMs` apart, honouring
 * `streamFailure`; stops quietly if the client went away.
 */
export async function emitSse(
  res: ServerResponse,
  fake: UpstreamFake,
  events: string[],
  errorEvent: () => string,
): Promise<void> {
  const sent: string[] = [];
  fake.sentEvents = sent;
  for (let i = 0; i < events.length; i++) {
    if (i > 0 && fake.chunkDelayMs > 0) await sleep(fake.chunkDelayMs);
    if (res.destroyed || res.writableEnded) return;
    const failure = fake.streamFailure;
    if (failure && i === failure.afterEvents) {
      if (failure.mode === 'reset') {
        res.destroy();
        return;
      }
      const e = errorEvent();
      sent.push(e);
      res.end(e);
      return;
    }
    sent.push(events[i]!);
    res.write(events[i]);
  }
  if (!res.destroyed && !res.writableEnded) res.end();
}

/** Sends `fake.rawAnswer`'s body when it is set (true: the answer was sent). */
export function answerRaw(
  res: ServerResponse,
  fake: UpstreamFake,
  received: string,
  path: string,
  headers: Record<string, string>,
): boolean {
  if (!fake.rawAnswer) return false;
  const text = fake.rawAnswer(received, path);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
  return true;
}

/** Streams `fake.rawStream`'s frames when it is set (true: the answer was sent). */
export async function streamRaw(
  res: ServerResponse,
  fake: UpstreamFake,
  received: string,
  path: string,
  headers: Record<string, string>,
): Promise<boolean> {
  if (!fake.rawStream) return false;
  startSse(res, headers);
  await emitSse(res, fake, fake.rawStream(received, path), () => '');
  return true;
}

export const countWords = (s: string): number => (s.match(/\S+/g) ?? []).length;

/** Text of a message `content`: a string, or an array of parts with `text` (text, input_text, ...). */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === 'object' && typeof p.text === 'string' ? (p.text as string) : ''))
      .filter((t) => t !== '')
      .join(' ');
  }
  return '';
}

/**
 * How providers and logs show a key partly: its public prefix, its first 4 secret characters, a
 * mask, its last 4 (as OpenAI's `sk-proj-abcd****…wxyz`), and the variants careless messages use.
 */
export function maskedKeyForms(key: string): string[] {
  const prefix = /^(sk-ant-api03-|sk-proj-|sk-)/.exec(key)?.[1] ?? '';
  const body = key.slice(prefix.length);
  const head = body.slice(0, 4);
  const tail = body.slice(-4);
  return [
    `${prefix}${head}****…${tail}`,
    `${prefix}${head}...${tail}`,
    `…${tail}`,
    `key ending in ${tail}`,
    `${prefix}${head}${'x'.repeat(8)}${tail}`,
    `${head}${'X'.repeat(8)}${tail}`,
  ];
}

/** What a message about the key quotes: the key, or its masked forms when `keyEcho.form` is `masked`. */
export function quotedKey(fake: UpstreamFake, received: string): string {
  return fake.keyEcho?.form === 'masked' ? maskedKeyForms(received).join(', ') : received;
}

/**
 * The pieces a hostile provider streams in `fake.keyEcho.field` (see KeyEcho): every piece plain
 * JSON-safe text (a label, then the key or its masked forms, cut as `split` says).
 */
export function echoPieces(fake: UpstreamFake, received: string): string[] {
  const echo = fake.keyEcho;
  if (!echo) return [];
  const texts = echo.form === 'masked' ? maskedKeyForms(received) : [received];
  const out: string[] = [];
  for (const t of texts) {
    const split = echo.split ?? 'every';
    if (split === 'whole') out.push(` key: ${t}`);
    else if (split === 'chars') out.push(' key: ', ...t);
    else for (let p = 1; p < t.length; p++) out.push(` ${p}: ${t.slice(0, p)}`, t.slice(p));
  }
  return out;
}

/** A JSON object text, as argument pieces: `{"note":"` + the echo pieces + `","n":<n>}`. */
export function argumentPieces(pieces: readonly string[], n: number): string[] {
  return ['{"note":"', ...pieces.map((p) => JSON.stringify(p).slice(1, -1)), `","n":${n}}`];
}

/** Plain argument pieces (no key): a JSON object cut every 3 characters. */
export function plainArgumentPieces(label: string): string[] {
  const text = JSON.stringify({ city: 'Paris', unit: 'celsius', who: label });
  return text.match(/[\s\S]{1,3}/g) ?? [text];
}

/** Round-robin over lists: the first of each, then the second of each, ... (interleaved streams). */
export function interleave<T>(lists: readonly (readonly T[])[]): T[] {
  const out: T[] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++)
    for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

/**
 * The reply as the pieces a stream sends (one word each, with its leading
 * space), honouring `reply`, `echoKey` and `keyEcho` (field `text`). `received`
 * is the credential the request carried.
 */
export function replyPieces(fake: UpstreamFake, lastUserText: string, received: string): string[] {
  const base = fake.reply ?? `You said ${countWords(lastUserText)} words.`;
  const pieces = base.match(/\s*\S+\s*$|\s*\S+/g) ?? [base];
  if (fake.keyEcho?.field === 'text') pieces.push(...echoPieces(fake, received));
  if (fake.echoKey === 'none') return pieces;
  pieces.push(' Your', ' key', ' is');
  if (fake.echoKey === 'whole') pieces.push(` ${received}`);
  else if (fake.echoKey === 'base64') pieces.push(` ${Buffer.from(received, 'utf8').toString('base64')}`);
  else {
    const half = Math.max(1, Math.floor(received.length / 2));
    pieces.push(` ${received.slice(0, half)}`, received.slice(half));
  }
  return pieces;
}

/** Input tokens: the word count of every text given (at least 1), unless overridden. */
export function inputTokens(fake: UpstreamFake, texts: string[]): number {
  return (
    fake.usage?.input ??
    Math.max(
      1,
      texts.reduce((n, t) => n + countWords(t), 0),
    )
  );
}

/** Output tokens: one per streamed piece, unless overridden. */
export function outputTokens(fake: UpstreamFake, pieces: string[]): number {
  return fake.usage?.output ?? pieces.length;
}

export const randomId = (prefix: string, bytes = 12): string =>
  `${prefix}${randomBytes(bytes).toString('base64url').replace(/[-_]/g, 'x')}`;

const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// OpenAI
// ---------------------------------------------------------------------------

export const openAiKey = (): string => `sk-proj-${randomBytes(36).toString('base64url')}`;

export interface OpenAiFakeOptions extends UpstreamFakeOptions {
  /** What GET /v1/models lists. */
  models?: string[];
  /** Reject (404 model_not_found) models not in `models`; off by default so any model name works. */
  strictModels?: boolean;
}

export const defaultOpenAiModels = [
  'gpt-5.4',
  'gpt-5.4-mini',
  'gpt-4o',
  'gpt-4o-mini',
  'gpt-4.1',
  'gpt-4.1-mini',
  'text-embedding-3-small',
];

type OpenAiErrorBody = {
  error: { message: string; type: string; param: string | null; code: string | null };
};

export function openAiError(
  message: string,
  type: string,
  param: string | null = null,
  code: string | null = null,
): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

/** The careless provider's error for `fail`: the message echoes the credential sent. */
function openAiFailure(status: number, authorization: string): OpenAiErrorBody {
  if (status === 429) {
    return openAiError(
      `Rate limit reached for requests made with ${authorization}: Limit 3, Used 3, Requested 1. Please try again in 20s.`,
      'requests',
      null,
      'rate_limit_exceeded',
    );
  }
  if (status === 401) {
    return openAiError(
      `Incorrect API key provided: ${authorization}.`,
      'invalid_request_error',
      null,
      'invalid_api_key',
    );
  }
  if (status >= 500) {
    return openAiError(
      `The server had an error while processing your request (authorization: ${authorization}). Sorry about that!`,
      'server_error',
    );
  }
  return openAiError(`Request failed (authorization: ${authorization}).`, 'invalid_request_error');
}

/** How OpenAI shows a wrong key in its 401: the ends only. */
const maskKey = (k: string) => (k.length > 8 ? `${k.slice(0, 3)}${'*'.repeat(10)}${k.slice(-4)}` : '****');

function lastUserText(items: unknown): string {
  if (typeof items === 'string') return items;
  if (!Array.isArray(items)) return '';
  for (let i = items.length - 1; i >= 0; i--) {
    const m = items[i] as { role?: unknown; content?: unknown } | null;
    if (m && m.role === 'user') return textOf(m.content);
  }
  return '';
}

function allTexts(...parts: unknown[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (typeof p === 'string') out.push(p);
    else if (Array.isArray(p)) {
      for (const m of p)
        out.push(typeof m === 'string' ? m : textOf((m as { content?: unknown } | null)?.content));
    }
  }
  return out;
}

/** Deterministic unit vector for an input. */
function embed(input: unknown, dims: number): number[] {
  const v: number[] = [];
  let block = Buffer.alloc(0);
  for (let i = 0; v.length < dims; i++) {
    if (i % 8 === 0) {
      block = createHash('sha256')
        .update(`${JSON.stringify(input)}:${i}`)
        .digest();
    }
    v.push(block.readInt32BE((i % 8) * 4) / 2 ** 31);
  }
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => Math.fround(x / norm));
}

/** A chat logprobs entry for a piece of text (its token, bytes and itself as the only alternative). */
const logprob = (token: string) => {
  const bytes = [...Buffer.from(token, 'utf8')];
  return { token, logprob: -0.01, bytes, top_logprobs: [{ token, logprob: -0.01, bytes }] };
};

/**
 * A chat stream from the hostile knobs (`keyEcho`, `honorN`, `toolCalls`): each choice (the `n`
 * the request asks for, with `honorN`) streams its own text (`[i] ` before it when n > 1), the
 * field `keyEcho` names carries the echo pieces, and tool calls' argument pieces are interleaved
 * by index; the choices' chunks are interleaved too, each choice then gets its own finish chunk.
 */
function hostileChatEvents(
  fake: UpstreamFake,
  body: Record<string, unknown>,
  pieces: readonly string[],
  received: string,
  finish: 'stop' | 'length',
  chunk: (choices: unknown[]) => string,
): string[] {
  const n = fake.honorN && typeof body.n === 'number' ? Math.min(8, Math.max(1, Math.floor(body.n))) : 1;
  const field = fake.keyEcho?.field;
  const echo = echoPieces(fake, received);
  const tools = fake.toolCalls > 0 ? fake.toolCalls : field === 'tool_calls' ? 3 : 0;
  type Delta = { delta: Record<string, unknown>; logprobs?: unknown };
  const perChoice: Delta[][] = [];
  for (let i = 0; i < n; i++) {
    const text = n > 1 ? [`[${i}]`, ...pieces] : [...pieces];
    const list: Delta[] = [{ delta: { role: 'assistant', content: '', refusal: null } }];
    if (field === 'reasoning' || field === 'reasoning_content')
      for (const p of echo) list.push({ delta: { [field]: p } });
    if (field === 'audio_transcript') {
      for (const p of echo) list.push({ delta: { audio: { id: `audio_${i}`, transcript: p } } });
    }
    const content = field === 'logprobs' ? [...text, ...echo] : text;
    for (const p of content) {
      list.push(
        field === 'logprobs'
          ? { delta: { content: p }, logprobs: { content: [logprob(p)], refusal: null } }
          : { delta: { content: p } },
      );
    }
    if (field === 'refusal') for (const p of echo) list.push({ delta: { refusal: p } });
    if (field === 'function_call') {
      list.push({ delta: { function_call: { name: 'lookup', arguments: '' } } });
      for (const p of argumentPieces(echo, i)) list.push({ delta: { function_call: { arguments: p } } });
    }
    if (tools > 0) {
      for (let t = 0; t < tools; t++) {
        list.push({
          delta: {
            tool_calls: [
              {
                index: t,
                id: `call_${i}_${t}`,
                type: 'function',
                function: { name: `tool_${t}`, arguments: '' },
              },
            ],
          },
        });
      }
      const args = Array.from({ length: tools }, (_, t) =>
        (field === 'tool_calls' ? argumentPieces(echo, t) : plainArgumentPieces(`${i}/${t}`)).map((a) => ({
          delta: { tool_calls: [{ index: t, function: { arguments: a } }] },
        })),
      );
      list.push(...interleave(args));
    }
    perChoice.push(list);
  }
  const reason = tools > 0 ? 'tool_calls' : field === 'function_call' ? 'function_call' : finish;
  const events: string[] = [];
  const ordered = interleave(perChoice.map((l, i) => l.map((d) => ({ i, d }))));
  for (const { i, d } of ordered) {
    events.push(chunk([{ index: i, delta: d.delta, logprobs: d.logprobs ?? null, finish_reason: null }]));
  }
  for (let i = 0; i < n; i++)
    events.push(chunk([{ index: i, delta: {}, logprobs: null, finish_reason: reason }]));
  return events;
}

/**
 * A Responses stream from `keyEcho` (fields other than `text`): a reasoning item first
 * (`reasoning_summary`, `reasoning_text`), then the message (its `output_text` part; with
 * `logprobs` the echo is in the text and every delta carries its logprob; with `refusal` a
 * refusal part follows), then two function calls whose argument deltas are interleaved
 * (`function_call_arguments`), each with its `.done` events, then `response.completed`.
 */
function hostileResponseEvents(
  field: EchoField,
  echo: readonly string[],
  pieces: readonly string[],
  r: {
    ev: (type: string, data: Record<string, unknown>) => string;
    item: (status: 'in_progress' | 'completed', content: unknown[]) => Record<string, unknown>;
    itemId: string;
    created: () => unknown;
    completed: (output: unknown[]) => unknown;
  },
): string[] {
  const { ev, item, itemId } = r;
  const events = [
    ev('response.created', { response: r.created() }),
    ev('response.in_progress', { response: r.created() }),
  ];
  const output: unknown[] = [];
  let oi = 0;
  const full = echo.join('');
  if (field === 'reasoning_summary' || field === 'reasoning_text') {
    const id = randomId('rs_', 24);
    const added = {
      id,
      type: 'reasoning',
      summary: [],
      ...(field === 'reasoning_text' ? { content: [] } : {}),
    };
    events.push(ev('response.output_item.added', { output_index: oi, item: added }));
    let done: Record<string, unknown>;
    if (field === 'reasoning_summary') {
      const sids = { item_id: id, output_index: oi, summary_index: 0 };
      events.push(
        ev('response.reasoning_summary_part.added', { ...sids, part: { type: 'summary_text', text: '' } }),
      );
      for (const p of echo) events.push(ev('response.reasoning_summary_text.delta', { ...sids, delta: p }));
      events.push(ev('response.reasoning_summary_text.done', { ...sids, text: full }));
      events.push(
        ev('response.reasoning_summary_part.done', { ...sids, part: { type: 'summary_text', text: full } }),
      );
      done = { id, type: 'reasoning', summary: [{ type: 'summary_text', text: full }] };
    } else {
      const cids = { item_id: id, output_index: oi, content_index: 0 };
      events.push(ev('response.content_part.added', { ...cids, part: { type: 'reasoning_text', text: '' } }));
      for (const p of echo) events.push(ev('response.reasoning_text.delta', { ...cids, delta: p }));
      events.push(ev('response.reasoning_text.done', { ...cids, text: full }));
      events.push(
        ev('response.content_part.done', { ...cids, part: { type: 'reasoning_text', text: full } }),
      );
      done = { id, type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: full }] };
    }
    events.push(ev('response.output_item.done', { output_index: oi, item: done }));
    output.push(done);
    oi++;
  }
  const withLogprobs = field === 'logprobs';
  const textPieces = withLogprobs ? [...pieces, ...echo] : [...pieces];
  const text = textPieces.join('');
  const lps = textPieces.map((p) => ({
    token: p,
    logprob: -0.01,
    bytes: [...Buffer.from(p, 'utf8')],
    top_logprobs: [],
  }));
  const textPart = (t: string, l: unknown[]) => ({
    type: 'output_text',
    text: t,
    annotations: [],
    logprobs: l,
  });
  const mids = { item_id: itemId, output_index: oi, content_index: 0 };
  events.push(ev('response.output_item.added', { output_index: oi, item: item('in_progress', []) }));
  events.push(ev('response.content_part.added', { ...mids, part: textPart('', []) }));
  textPieces.forEach((p, k) => {
    events.push(
      ev('response.output_text.delta', { ...mids, delta: p, logprobs: withLogprobs ? [lps[k]] : [] }),
    );
  });
  events.push(ev('response.output_text.done', { ...mids, text, logprobs: withLogprobs ? lps : [] }));
  events.push(ev('response.content_part.done', { ...mids, part: textPart(text, withLogprobs ? lps : []) }));
  const content: unknown[] = [textPart(text, withLogprobs ? lps : [])];
  if (field === 'refusal') {
    const rids = { item_id: itemId, output_index: oi, content_index: 1 };
    events.push(ev('response.content_part.added', { ...rids, part: { type: 'refusal', refusal: '' } }));
    for (const p of echo) events.push(ev('response.refusal.delta', { ...rids, delta: p }));
    events.push(ev('response.refusal.done', { ...rids, refusal: full }));
    events.push(ev('response.content_part.done', { ...rids, part: { type: 'refusal', refusal: full } }));
    content.push({ type: 'refusal', refusal: full });
  }
  events.push(ev('response.output_item.done', { output_index: oi, item: item('completed', content) }));
  output.push(item('completed', content));
  oi++;
  if (field === 'function_call_arguments') {
    const calls = [0, 1].map((k) => ({
      id: randomId('fc_', 24),
      call_id: `call_${k}`,
      name: `tool_${k}`,
      output_index: oi + k,
      args: argumentPieces(echo, k),
    }));
    const fcItem = (c: (typeof calls)[number], status: string, args: string) => ({
      id: c.id,
      type: 'function_call',
      status,
      call_id: c.call_id,
      name: c.name,
      arguments: args,
    });
    for (const c of calls) {
      events.push(
        ev('response.output_item.added', {
          output_index: c.output_index,
          item: fcItem(c, 'in_progress', ''),
        }),
      );
    }
    for (const { c, a } of interleave(calls.map((c) => c.args.map((a) => ({ c, a }))))) {
      events.push(
        ev('response.function_call_arguments.delta', {
          item_id: c.id,
          output_index: c.output_index,
          delta: a,
        }),
      );
    }
    for (const c of calls) {
      const args = c.args.join('');
      events.push(
        ev('response.function_call_arguments.done', {
          item_id: c.id,
          output_index: c.output_index,
          name: c.name,
          arguments: args,
        }),
      );
      events.push(
        ev('response.output_item.done', { output_index: c.output_index, item: fcItem(c, 'completed', args) }),
      );
      output.push(fcItem(c, 'completed', args));
    }
  }
  events.push(ev('response.completed', { response: r.completed(output) }));
  return events;
}

export async function startOpenAiFake(opts: OpenAiFakeOptions = {}): Promise<UpstreamFake> {
  const { models = defaultOpenAiModels, strictModels = false, ...rest } = opts;
  return startUpstream({ ...rest, key: rest.key ?? openAiKey() }, async (req, res, fake) => {
    const requestId = randomId('req_', 16);
    const headers = {
      'x-request-id': requestId,
      'openai-processing-ms': '1',
      'openai-version': '2020-10-01',
    };
    const json = (status: number, body: unknown, extra: Record<string, string> = {}) =>
      sendJson(res, status, body, { ...headers, ...extra });
    const authorization = typeof req.headers.authorization === 'string' ? req.headers.authorization : '';

    const failure = takeFailure(fake);
    if (failure) {
      const bearer = /^Bearer (.+)$/i.exec(authorization)?.[1];
      json(
        failure.status,
        openAiFailure(
          failure.status,
          bearer && fake.keyEcho?.form === 'masked'
            ? `Bearer ${quotedKey(fake, bearer)}`
            : authorization || '(none)',
        ),
        failure.retryAfter === undefined ? {} : { 'retry-after': String(failure.retryAfter) },
      );
      return;
    }

    const m = /^Bearer (.+)$/i.exec(authorization);
    if (!m) {
      json(
        401,
        openAiError(
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
          'invalid_request_error',
        ),
      );
      return;
    }
    const received = m[1]!;
    if (received !== fake.key) {
      json(
        401,
        openAiError(
          `Incorrect API key provided: ${maskKey(received)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          'invalid_request_error',
          null,
          'invalid_api_key',
        ),
      );
      return;
    }

    const route = `${req.method} ${req.pathname}`;
    if (req.method === 'POST' && typeof req.body !== 'object') {
      json(
        400,
        openAiError(
          "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
          'invalid_request_error',
        ),
      );
      return;
    }
    const body = (req.body ?? {}) as Record<string, unknown>;
    const checkModel = (): string | undefined => {
      if (typeof body.model !== 'string' || body.model === '') {
        json(400, openAiError('you must provide a model parameter', 'invalid_request_error', 'model'));
        return undefined;
      }
      if (strictModels && !models.includes(body.model)) {
        json(
          404,
          openAiError(
            `The model \`${body.model}\` does not exist or you do not have access to it.`,
            'invalid_request_error',
            null,
            'model_not_found',
          ),
        );
        return undefined;
      }
      return body.model;
    };

    if (route === 'POST /v1/chat/completions') {
      const model = checkModel();
      if (!model) return;
      if (!Array.isArray(body.messages) || body.messages.length === 0) {
        json(
          400,
          openAiError(
            "Missing required parameter: 'messages'.",
            'invalid_request_error',
            'messages',
            'missing_required_parameter',
          ),
        );
        return;
      }
      let pieces = replyPieces(fake, lastUserText(body.messages), received);
      const limit = (body.max_completion_tokens ?? body.max_tokens) as number | undefined;
      let finish: 'stop' | 'length' = 'stop';
      if (typeof limit === 'number' && limit < pieces.length) {
        pieces = pieces.slice(0, limit);
        finish = 'length';
      }
      const promptTokens = inputTokens(fake, allTexts(body.messages));
      const completionTokens = outputTokens(fake, pieces);
      const usage = {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: {
          reasoning_tokens: 0,
          audio_tokens: 0,
          accepted_prediction_tokens: 0,
          rejected_prediction_tokens: 0,
        },
      };
      const base = {
        id: randomId('chatcmpl-', 18),
        created: nowSeconds(),
        model,
        service_tier: 'default',
        system_fingerprint: 'fp_fake0001',
      };
      if (body.stream !== true) {
        if (answerRaw(res, fake, received, req.pathname, headers)) return;
        json(200, {
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: pieces.join(''), refusal: null, annotations: [] },
              logprobs: null,
              finish_reason: finish,
            },
          ],
          usage,
        });
        return;
      }
      if (await streamRaw(res, fake, received, req.pathname, headers)) return;
      const includeUsage =
        (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
      const chunk = (choices: unknown[], u?: unknown) =>
        `data: ${JSON.stringify({
          ...base,
          object: 'chat.completion.chunk',
          choices,
          ...(includeUsage ? { usage: u ?? null } : {}),
        })}\n\n`;
      const choice = (delta: unknown, finishReason: string | null = null) => ({
        index: 0,
        delta,
        logprobs: null,
        finish_reason: finishReason,
      });
      const hostile = fake.keyEcho !== undefined || fake.honorN || fake.toolCalls > 0;
      const events = hostile
        ? hostileChatEvents(fake, body, pieces, received, finish, chunk)
        : [
            chunk([choice({ role: 'assistant', content: '', refusal: null })]),
            ...pieces.map((p) => chunk([choice({ content: p })])),
            chunk([choice({}, finish)]),
          ];
      if (includeUsage) events.push(chunk([], usage));
      events.push('data: [DONE]\n\n');
      startSse(res, headers);
      await emitSse(
        res,
        fake,
        events,
        () =>
          `data: ${JSON.stringify(openAiError(`The server had an error while streaming (authorization: Bearer ${quotedKey(fake, received)}).`, 'server_error'))}\n\n`,
      );
      return;
    }

    if (route === 'POST /v1/responses') {
      const model = checkModel();
      if (!model) return;
      if (body.input === undefined) {
        json(
          400,
          openAiError(
            "Missing required parameter: 'input'.",
            'invalid_request_error',
            'input',
            'missing_required_parameter',
          ),
        );
        return;
      }
      const pieces = replyPieces(fake, lastUserText(body.input), received);
      const text = pieces.join('');
      const inTokens = inputTokens(fake, allTexts(body.instructions, body.input));
      const outTokens = outputTokens(fake, pieces);
      const usage = {
        input_tokens: inTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: outTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: inTokens + outTokens,
      };
      const responseId = randomId('resp_', 24);
      const itemId = randomId('msg_', 24);
      const createdAt = nowSeconds();
      const response = (status: 'in_progress' | 'completed', output: unknown[], u: unknown) => ({
        id: responseId,
        object: 'response',
        created_at: createdAt,
        status,
        background: false,
        error: null,
        incomplete_details: null,
        instructions: typeof body.instructions === 'string' ? body.instructions : null,
        max_output_tokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
        model,
        output,
        parallel_tool_calls: true,
        previous_response_id: null,
        reasoning: { effort: null, summary: null },
        service_tier: 'default',
        store: body.store !== false,
        temperature: typeof body.temperature === 'number' ? body.temperature : 1,
        text: { format: { type: 'text' } },
        tool_choice: 'auto',
        tools: [],
        top_p: typeof body.top_p === 'number' ? body.top_p : 1,
        truncation: 'disabled',
        usage: u,
        user: null,
        metadata: (body.metadata as object | undefined) ?? {},
      });
      const part = (t: string) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] });
      const item = (status: 'in_progress' | 'completed', content: unknown[]) => ({
        id: itemId,
        type: 'message',
        status,
        role: 'assistant',
        content,
      });
      if (body.stream !== true) {
        if (answerRaw(res, fake, received, req.pathname, headers)) return;
        json(200, response('completed', [item('completed', [part(text)])], usage));
        return;
      }
      if (await streamRaw(res, fake, received, req.pathname, headers)) return;
      let seq = 0;
      const ev = (type: string, data: Record<string, unknown>) =>
        `event: ${type}\ndata: ${JSON.stringify({ type, ...data, sequence_number: seq++ })}\n\n`;
      const ids = { item_id: itemId, output_index: 0, content_index: 0 };
      const field = fake.keyEcho?.field;
      const events =
        field !== undefined && field !== 'text'
          ? hostileResponseEvents(field, echoPieces(fake, received), pieces, {
              ev,
              item,
              itemId,
              created: () => response('in_progress', [], null),
              completed: (output) => response('completed', output, usage),
            })
          : [
              ev('response.created', { response: response('in_progress', [], null) }),
              ev('response.in_progress', { response: response('in_progress', [], null) }),
              ev('response.output_item.added', { output_index: 0, item: item('in_progress', []) }),
              ev('response.content_part.added', { ...ids, part: part('') }),
              ...pieces.map((p) => ev('response.output_text.delta', { ...ids, delta: p, logprobs: [] })),
              ev('response.output_text.done', { ...ids, text, logprobs: [] }),
              ev('response.content_part.done', { ...ids, part: part(text) }),
              ev('response.output_item.done', { output_index: 0, item: item('completed', [part(text)]) }),
              ev('response.completed', {
                response: response('completed', [item('completed', [part(text)])], usage),
              }),
            ];
      startSse(res, headers);
      await emitSse(res, fake, events, () =>
        ev('error', {
          code: 'server_error',
          message: `The server had an error while streaming (authorization: Bearer ${quotedKey(fake, received)}).`,
          param: null,
        }),
      );
      return;
    }

    if (route === 'POST /v1/embeddings') {
      const model = checkModel();
      if (!model) return;
      const input = body.input;
      let inputs: unknown[];
      if (typeof input === 'string') inputs = [input];
      else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'number'))
        inputs = [input];
      else if (Array.isArray(input) && input.length > 0) inputs = input;
      else {
        json(
          400,
          openAiError(
            "'input' is a required property",
            'invalid_request_error',
            'input',
            'missing_required_parameter',
          ),
        );
        return;
      }
      const format = body.encoding_format ?? 'float';
      if (format !== 'float' && format !== 'base64') {
        json(
          400,
          openAiError(
            `Invalid value for 'encoding_format': '${String(format)}'. Supported values are: 'float' and 'base64'.`,
            'invalid_request_error',
            'encoding_format',
            'invalid_value',
          ),
        );
        return;
      }
      const dims = typeof body.dimensions === 'number' && body.dimensions > 0 ? body.dimensions : 8;
      const data = inputs.map((x, index) => {
        const v = embed(x, dims);
        const embedding =
          format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : (v as unknown);
        return { object: 'embedding', index, embedding };
      });
      const tokens =
        fake.usage?.input ??
        Math.max(
          1,
          inputs.reduce<number>(
            (n, x) => n + (typeof x === 'string' ? countWords(x) : Array.isArray(x) ? x.length : 1),
            0,
          ),
        );
      json(200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
      return;
    }

    const modelObject = (id: string) => ({
      id,
      object: 'model',
      created: 1_715_367_049,
      owned_by: id.startsWith('text-') ? 'openai-internal' : 'system',
    });
    if (route === 'GET /v1/models') {
      json(200, { object: 'list', data: models.map(modelObject) });
      return;
    }
    const one = /^\/v1\/models\/([^/]+)$/.exec(req.pathname);
    if (req.method === 'GET' && one) {
      const id = decodeURIComponent(one[1]!);
      if (models.includes(id)) json(200, modelObject(id));
      else
        json(
          404,
          openAiError(
            `The model '${id}' does not exist`,
            'invalid_request_error',
            'model',
            'model_not_found',
          ),
        );
      return;
    }

    json(404, openAiError(`Invalid URL (${req.method} ${req.pathname})`, 'invalid_request_error'));
  });
}
