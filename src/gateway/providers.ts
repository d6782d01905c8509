import { StrongroomError } from '../errors/errors.ts';
import type { GatewayRoute, PromptView, Usage } from './types.ts';

/**
 * The two wire formats the gateway speaks (OpenAI and Anthropic): which
 * endpoints exist, how the caller's request is read (model, streaming, the
 * text to inspect, the most output it may produce), how the upstream request
 * is authenticated, and where usage and text are in answers and stream events.
 * Written from the providers' API references (OpenAI: Chat Completions,
 * Responses, Embeddings, Models; Anthropic: Messages, count_tokens, streaming).
 */
export type WireApi = 'openai' | 'anthropic';

export interface Endpoint {
  api: WireApi;
  route: GatewayRoute;
  method: 'GET' | 'POST';
  /** The path on the gateway and, unchanged, on the upstream (relative to its base URL). */
  path: string;
  /** Whether the body names a model (GET /v1/models does not). */
  hasModel: boolean;
}

export const ENDPOINTS: readonly Endpoint[] = [
  { api: 'openai', route: 'chat.completions', method: 'POST', path: '/v1/chat/completions', hasModel: true },
  { api: 'openai', route: 'responses', method: 'POST', path: '/v1/responses', hasModel: true },
  { api: 'openai', route: 'embeddings', method: 'POST', path: '/v1/embeddings', hasModel: true },
  { api: 'openai', route: 'models', method: 'GET', path: '/v1/models', hasModel: false },
  { api: 'anthropic', route: 'messages', method: 'POST', path: '/v1/messages', hasModel: true },
  {
    api: 'anthropic',
    route: 'messages.count_tokens',
    method: 'POST',
    path: '/v1/messages/count_tokens',
    hasModel: true,
  },
];

/** Request headers passed to the upstream, by API; everything else (Host, Connection, lengths, cookies, base-URL hints) is dropped. */
export const FORWARDED_HEADERS: Record<WireApi, readonly string[]> = {
  openai: ['openai-beta'],
  anthropic: ['anthropic-version', 'anthropic-beta'],
};

/** The upstream's authentication header for an injected key. */
export function authHeaders(api: WireApi, key: string): Record<string, string> {
  return api === 'anthropic' ? { 'x-api-key': key } : { authorization: `Bearer ${key}` };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Text pieces of a message `content` (a string, or content blocks with `text`). */
function contentTexts(content: unknown, out: string[], depth = 0): void {
  if (typeof content === 'string') out.push(content);
  else if (Array.isArray(content) && depth < 8) {
    for (const b of content) {
      if (b && typeof b === 'object') {
        const t = str((b as { text?: unknown }).text) ?? str((b as { input_text?: unknown }).input_text);
        if (t !== undefined) out.push(t);
        // tool results carry text too
        const inner = (b as { content?: unknown }).content;
        if (inner !== undefined) contentTexts(inner, out, depth + 1);
      }
    }
  }
}

/** Content block types whose tokens depend on the medium, not on the bytes that carry it. */
const MEDIA_TYPE = /image|audio|video/;
/** Tools the provider runs itself, whose results enter the model's input (search, files, MCP, code). */
const CLIENT_TOOL_TYPES = new Set([
  'function',
  'custom',
  'local_shell',
  'computer_use_preview',
  'computer_use',
]);
const ANTHROPIC_SERVER_TOOL = /^(web_search|web_fetch|code_execution)/;

/**
 * What a request makes the provider read beyond its own bytes: `media` blocks (images, audio), each
 * reserved as a configured allowance, and `serverContext` — an earlier response or conversation, a
 * stored prompt, a file by id or URL, a document, a server-side tool or MCP server — whose input
 * only the model's context window bounds. Walks the whole body (any depth the parser admitted), so a
 * block inside a tool result counts too.
 */
function extraInput(
  api: WireApi,
  body: Record<string, unknown>,
): { media: number; serverContext: boolean; promptCache: boolean } {
  let media = 0;
  let promptCache = false;
  let serverContext =
    body.previous_response_id != null ||
    body.conversation != null ||
    (body.prompt !== null && typeof body.prompt === 'object') ||
    body.mcp_servers != null ||
    body.container != null ||
    body.web_search_options != null;
  for (const t of Array.isArray(body.tools) ? body.tools : []) {
    const type = t && typeof t === 'object' ? (t as { type?: unknown }).type : undefined;
    if (typeof type !== 'string') continue;
    if (api === 'anthropic' ? ANTHROPIC_SERVER_TOOL.test(type) : !CLIENT_TOOL_TYPES.has(type))
      serverContext = true;
  }
  const stack: unknown[] = [body];
  while (stack.length) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const x of v) if (x && typeof x === 'object') stack.push(x);
      continue;
    }
    if (!v || typeof v !== 'object') continue;
    const o = v as Record<string, unknown>;
    const type = typeof o.type === 'string' ? o.type : '';
    if (MEDIA_TYPE.test(type)) media++;
    if (o.cache_control != null) promptCache = true;
    // an earlier answer's audio, by id: the provider reads it back
    if (o.audio && typeof o.audio === 'object' && typeof (o.audio as { id?: unknown }).id === 'string')
      serverContext = true;
    if (
      type === 'item_reference' ||
      type.includes('file') ||
      type === 'document' ||
      typeof o.file_id === 'string' ||
      typeof o.file_url === 'string'
    )
      serverContext = true;
    for (const k in o) {
      const x = o[k];
      if (x && typeof x === 'object') stack.push(x);
    }
  }
  return { media, serverContext, promptCache };
}

/** What the gateway needs from a request body. */
export interface ParsedRequest {
  model: string;
  stream: boolean;
  prompt: PromptView;
  /** The caller's cap on output tokens (per choice), if it set one. */
  maxOutputTokens: number | undefined;
  /** How many answers the call asks for (chat `n`; 1 elsewhere): each may use the output cap. */
  choices: number;
  /** Images and audio the request carries or links: their tokens are not bounded by its bytes. */
  references: number;
  /** The request makes the provider read content it holds or fetches (see `extraInput`). */
  serverContext: boolean;
  /** The request asks for prompt caching (`cache_control`): its input may be billed as cache writes. */
  promptCache: boolean;
  /**
   * The request asks for structured output (a JSON `response_format`, Responses `text.format`): the
   * generated text is JSON a client parses (the SDKs' `parse()` helpers).
   */
  jsonOutput: boolean;
}

/** The most choices a chat call may ask for (OpenAI's own limit). */
const MAX_CHOICES = 128;

const bad = (message: string) => new StrongroomError('invalid_value', message);

/** A count the caller set: absent, or a whole number in range (anything else is refused, never guessed). */
function countField(
  body: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw bad(`${name}: a whole number from ${min} to ${max}`);
  return v;
}

/** Whether a request asks for JSON output (chat `response_format`, Responses `text.format`). */
function jsonOutputOf(body: Record<string, unknown>): boolean {
  const json = (f: unknown) =>
    f !== null && typeof f === 'object' && /^json/.test(String((f as { type?: unknown }).type ?? ''));
  const text = body.text;
  return (
    json(body.response_format) ||
    (text !== null && typeof text === 'object' && json((text as { format?: unknown }).format))
  );
}

/** Reads the parts of a request body the gateway acts on; an empty model means the body names none. */
export function parseRequest(ep: Endpoint, body: Record<string, unknown>): ParsedRequest {
  const texts: string[] = [];
  let maxOut: number | undefined;
  let choices = 1;
  const messages = (list: unknown) => {
    for (const m of Array.isArray(list) ? list : []) {
      if (m && typeof m === 'object') contentTexts((m as { content?: unknown }).content, texts);
    }
  };
  if (ep.route === 'chat.completions') {
    messages(body.messages);
    const a = countField(body, 'max_completion_tokens', 1, 10_000_000);
    const b = countField(body, 'max_tokens', 1, 10_000_000);
    // both set: whichever the provider honours, the larger bounds it
    maxOut = a === undefined ? b : b === undefined ? a : Math.max(a, b);
    choices = countField(body, 'n', 1, MAX_CHOICES) ?? 1;
  } else if (ep.route === 'responses') {
    if (typeof body.instructions === 'string') texts.push(body.instructions);
    const input = body.input;
    if (typeof input === 'string') texts.push(input);
    else messages(input);
    maxOut = countField(body, 'max_output_tokens', 1, 10_000_000);
    // a background response is only followed by polling, which the gateway does not route: its
    // answer, and its usage, would never come back through the gateway
    if (body.background === true)
      throw bad(
        'background: responses in the background cannot be followed through the gateway; call without it',
      );
  } else if (ep.route === 'embeddings') {
    const input = body.input;
    if (typeof input === 'string') texts.push(input);
    else if (Array.isArray(input)) for (const x of input) if (typeof x === 'string') texts.push(x);
    maxOut = 0;
  } else if (ep.route === 'messages' || ep.route === 'messages.count_tokens') {
    const system = body.system;
    if (typeof system === 'string') texts.push(system);
    else contentTexts(system, texts);
    messages(body.messages);
    maxOut = ep.route === 'messages.count_tokens' ? 0 : countField(body, 'max_tokens', 1, 10_000_000);
  }
  const extra = extraInput(ep.api, body);
  return {
    model: str(body.model) ?? '',
    stream: body.stream === true,
    prompt: { texts },
    maxOutputTokens: maxOut,
    choices,
    references: extra.media,
    serverContext: extra.serverContext,
    promptCache: extra.promptCache,
    jsonOutput: jsonOutputOf(body),
  };
}

/**
 * The request as sent upstream when the caller set no output cap: the gateway's `cap` in the field
 * the endpoint uses, so the provider itself bounds what the call can cost (issue 12 item 4). OpenAI's
 * own chat API takes `max_completion_tokens` (reasoning models refuse `max_tokens`); other
 * OpenAI-compatible providers take `max_tokens`.
 */
export function withOutputCap(
  ep: Endpoint,
  provider: string,
  body: Record<string, unknown>,
  cap: number,
): Record<string, unknown> {
  switch (ep.route) {
    case 'chat.completions':
      if (body.max_completion_tokens != null || body.max_tokens != null) return body;
      return provider === 'openai' || provider === 'azure-openai'
        ? { ...body, max_completion_tokens: cap }
        : { ...body, max_tokens: cap };
    case 'responses':
      return body.max_output_tokens != null ? body : { ...body, max_output_tokens: cap };
    case 'messages':
      return body.max_tokens != null ? body : { ...body, max_tokens: cap };
    default:
      return body;
  }
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/**
 * Anthropic's prompt-cache tokens, which its `input_tokens` leaves out: reads, and writes by how long
 * they are kept (`cache_creation`); a total with no split counts as the dearer, hour-long write.
 */
function anthropicCache(u: Record<string, unknown>, into: Usage): void {
  const read = num(u.cache_read_input_tokens);
  const created = num(u.cache_creation_input_tokens);
  const split = u.cache_creation as Record<string, unknown> | undefined;
  const m5 = split && typeof split === 'object' ? num(split.ephemeral_5m_input_tokens) : 0;
  const h1 = split && typeof split === 'object' ? num(split.ephemeral_1h_input_tokens) : 0;
  if (read) into.cache_read_tokens = read;
  if (m5 || h1) {
    if (m5) into.cache_write_5m_tokens = m5;
    // what the split leaves out of the total counts as an hour-long write
    const rest = Math.max(0, created - m5 - h1);
    if (h1 + rest) into.cache_write_1h_tokens = h1 + rest;
  } else if (created) into.cache_write_1h_tokens = created;
}

/** Usage in a complete (non-streamed) answer. */
export function usageOf(api: WireApi, route: GatewayRoute, body: unknown): Usage | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const u = (body as { usage?: Record<string, unknown> }).usage;
  if (route === 'messages.count_tokens') {
    return { input_tokens: num((body as { input_tokens?: unknown }).input_tokens), output_tokens: 0 };
  }
  if (!u || typeof u !== 'object') return undefined;
  if (api === 'anthropic') {
    const usage: Usage = { input_tokens: num(u.input_tokens), output_tokens: num(u.output_tokens) };
    anthropicCache(u, usage);
    return usage;
  }
  // chat: prompt/completion; responses: input/output; embeddings: prompt only
  return {
    input_tokens: num(u.prompt_tokens ?? u.input_tokens),
    output_tokens: num(u.completion_tokens ?? u.output_tokens),
  };
}

/**
 * Follows usage through a stream, event by event: OpenAI's final chunk
 * (`stream_options.include_usage`) or `response.completed`; Anthropic's
 * `message_start` (input) and `message_delta` (output, cumulative).
 */
export function streamUsageTracker(api: WireApi) {
  const usage: Usage = { input_tokens: 0, output_tokens: 0 };
  let seen = false;
  return {
    observe(event: string | undefined, data: Record<string, unknown>) {
      if (api === 'anthropic') {
        if (data.type === 'message_start') {
          const u = (data.message as { usage?: Record<string, unknown> } | undefined)?.usage;
          if (u) {
            usage.input_tokens = num(u.input_tokens);
            usage.output_tokens = num(u.output_tokens);
            anthropicCache(u, usage);
            seen = true;
          }
        } else if (data.type === 'message_delta') {
          const u = data.usage as Record<string, unknown> | undefined;
          if (u) {
            usage.output_tokens = num(u.output_tokens);
            if (u.input_tokens !== undefined) usage.input_tokens = num(u.input_tokens);
            // cumulative counts: a later report replaces an earlier one
            if (u.cache_read_input_tokens !== undefined || u.cache_creation_input_tokens !== undefined)
              anthropicCache(u, usage);
            seen = true;
          }
        }
        return;
      }
      const u =
        (data.usage as Record<string, unknown> | undefined) ??
        (event === 'response.completed' || data.type === 'response.completed'
          ? ((data.response as { usage?: Record<string, unknown> } | undefined)?.usage ?? undefined)
          : undefined);
      if (u && typeof u === 'object') {
        usage.input_tokens = num(u.prompt_tokens ?? u.input_tokens);
        usage.output_tokens = num(u.completion_tokens ?? u.output_tokens);
        seen = true;
      }
    },
    result: (): Usage | undefined => (seen ? { ...usage } : undefined),
  };
}

/** An error body in the caller's API format. */
export function errorBody(
  api: WireApi,
  status: number,
  code: string,
  message: string,
): Record<string, unknown> {
  if (api === 'anthropic') {
    const type =
      status === 401
        ? 'authentication_error'
        : status === 403
          ? 'permission_error'
          : status === 404
            ? 'not_found_error'
            : status === 429
              ? 'rate_limit_error'
              : status >= 500
                ? 'api_error'
                : 'invalid_request_error';
    return { type: 'error', error: { type, message: `${message} (${code})` } };
  }
  const type =
    status === 401
      ? 'invalid_request_error'
      : status === 429
        ? 'rate_limit_exceeded'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error';
  return { error: { message, type, param: null, code } };
}
