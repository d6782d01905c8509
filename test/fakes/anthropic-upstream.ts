import { randomBytes } from 'node:crypto';
import {
  answerRaw,
  argumentPieces,
  echoPieces,
  emitSse,
  inputTokens,
  outputTokens,
  quotedKey,
  randomId,
  replyPieces,
  sendJson,
  startSse,
  startUpstream,
  streamRaw,
  takeFailure,
  textOf,
  type UpstreamFake,
  type UpstreamFakeOptions,
} from './openai-upstream.ts';

/**
 * A fake Anthropic API, written from the Claude API reference
 * (docs.anthropic.com/en/api/messages, /messages-streaming, /errors,
 * /versioning) and checked against the official `@anthropic-ai/sdk` client in
 * node_modules (test/fakes/upstream.test.ts):
 *
 *   POST /v1/messages               -> message object with `usage`, or with `stream: true` the SSE
 *                                      sequence (each with an `event:` line): message_start,
 *                                      content_block_start, ping, content_block_delta (text_delta)...,
 *                                      content_block_stop, message_delta (stop_reason, cumulative usage),
 *                                      message_stop
 *   POST /v1/messages/count_tokens  -> {input_tokens}
 *   GET  /v1/models                 -> {data: [{type: 'model', id, display_name, created_at}], has_more, first_id, last_id}
 *
 * Credentials: the key set with `setKey`, as `x-api-key: <key>` (what the API
 * reference documents) or `Authorization: Bearer <key>` (what the official
 * SDK sends from API version 2026-10-21 on: @anthropic-ai/sdk >= 1.0 puts
 * `apiKey` there); every credential presented must be that key, anything else
 * gets 401 `{type: 'error', error: {type: 'authentication_error', message}, request_id}`.
 * Every request needs an `anthropic-version` header (400 invalid_request_error
 * otherwise); from 2026-10-21 on, `temperature`, `top_p` and `top_k` are
 * rejected with 400, as the migration guide documents. Errors use the documented types per status (400
 * invalid_request_error, 401 authentication_error, 403 permission_error, 404
 * not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error,
 * 529 overloaded_error) and carry a `request-id` header.
 *
 * Same knobs and reply as the OpenAI fake (see UpstreamKnobs in openai-upstream.ts);
 * `keyEcho` fields `thinking` (a thinking block first: thinking_delta pieces, then a
 * signature_delta) and `input_json` (two tool_use blocks after the text, input_json_delta pieces)
 * add blocks, `text` echoes in the text block.
 */

export const anthropicKey = (): string => `sk-ant-api03-${randomBytes(70).toString('base64url')}AA`;

export interface AnthropicFakeOptions extends UpstreamFakeOptions {
  /** What GET /v1/models lists. */
  models?: string[];
}

export const defaultAnthropicModels = ['claude-sonnet-5-5', 'claude-haiku-5-5', 'claude-opus-5-5'];

export const anthropicErrorTypes: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

const errorTypeFor = (status: number) =>
  anthropicErrorTypes[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');

export function anthropicError(type: string, message: string, requestId?: string) {
  return {
    type: 'error',
    error: { type, message },
    ...(requestId === undefined ? {} : { request_id: requestId }),
  };
}

export async function startAnthropicFake(opts: AnthropicFakeOptions = {}): Promise<UpstreamFake> {
  const { models = defaultAnthropicModels, ...rest } = opts;
  return startUpstream({ ...rest, key: rest.key ?? anthropicKey() }, async (req, res, fake) => {
    const requestId = randomId('req_011', 16);
    const headers = { 'request-id': requestId };
    const error = (status: number, message: string, extra: Record<string, string> = {}) =>
      sendJson(res, status, anthropicError(errorTypeFor(status), message, requestId), {
        ...headers,
        ...extra,
      });
    const apiKeyHeader = req.headers['x-api-key'];
    const authorization = typeof req.headers.authorization === 'string' ? req.headers.authorization : '';
    const bearer = /^Bearer (.+)$/i.exec(authorization)?.[1];
    const presented = [
      ...(typeof apiKeyHeader === 'string' ? [apiKeyHeader] : []),
      ...(bearer ? [bearer] : []),
    ];
    const received = presented[0] ?? '';

    const failure = takeFailure(fake);
    if (failure) {
      const type = errorTypeFor(failure.status);
      const shownKey = received ? quotedKey(fake, received) : '';
      const message =
        type === 'overloaded_error'
          ? `Overloaded (request authenticated with x-api-key ${shownKey || '(none)'})`
          : type === 'rate_limit_error'
            ? `This request would exceed the rate limit for your organization (key ${shownKey || '(none)'}) of 50 requests per minute.`
            : `Internal server error while handling key ${shownKey || '(none)'}`;
      error(
        failure.status,
        message,
        failure.retryAfter === undefined ? {} : { 'retry-after': String(failure.retryAfter) },
      );
      return;
    }

    if (presented.length === 0) {
      error(401, 'x-api-key header is required');
      return;
    }
    if (presented.some((k) => k !== fake.key)) {
      error(401, 'invalid x-api-key');
      return;
    }
    const version = req.headers['anthropic-version'];
    if (typeof version !== 'string' || version === '') {
      error(400, 'anthropic-version: header is required');
      return;
    }

    const route = `${req.method} ${req.pathname}`;
    if (req.method === 'POST' && (typeof req.body !== 'object' || req.body === null)) {
      error(400, 'There was an issue with the format or content of your request: invalid JSON body');
      return;
    }
    const body = (req.body ?? {}) as Record<string, unknown>;
    const isMessages = route === 'POST /v1/messages';
    const isCount = route === 'POST /v1/messages/count_tokens';

    if (isMessages || isCount) {
      if (typeof body.model !== 'string' || body.model === '') {
        error(400, 'model: Field required');
        return;
      }
      if (!Array.isArray(body.messages) || body.messages.length === 0) {
        error(400, 'messages: Field required');
        return;
      }
      if (version >= '2026-10-21') {
        const removed = ['temperature', 'top_p', 'top_k'].find((p) => p in body);
        if (removed) {
          error(400, `${removed}: Extra inputs are not permitted (removed in API version 2026-10-21)`);
          return;
        }
      }
      const systemText = typeof body.system === 'string' ? body.system : textOf(body.system);
      const texts = [
        systemText,
        ...body.messages.map((m) => textOf((m as { content?: unknown } | null)?.content)),
      ];
      const inTokens = inputTokens(fake, texts);
      if (isCount) {
        sendJson(res, 200, { input_tokens: inTokens }, headers);
        return;
      }
      if (typeof body.max_tokens !== 'number' || body.max_tokens < 1) {
        error(400, 'max_tokens: Field required');
        return;
      }
      let lastUser = '';
      for (const m of body.messages as Array<{ role?: unknown; content?: unknown } | null>) {
        if (m?.role === 'user') lastUser = textOf(m.content);
      }
      let pieces = replyPieces(fake, lastUser, received);
      let stopReason: 'end_turn' | 'max_tokens' = 'end_turn';
      if (body.max_tokens < pieces.length) {
        pieces = pieces.slice(0, body.max_tokens);
        stopReason = 'max_tokens';
      }
      const text = pieces.join('');
      const outTokens = outputTokens(fake, pieces);
      const usage = (output: number) => ({
        input_tokens: inTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
        output_tokens: output,
        service_tier: 'standard',
      });
      const message = (content: unknown[], stop: string | null, u: unknown) => ({
        id: randomId('msg_01', 16),
        type: 'message',
        role: 'assistant',
        model: body.model,
        content,
        stop_reason: stop,
        stop_sequence: null,
        stop_details: null,
        container: null,
        usage: u,
      });
      if (body.stream !== true) {
        if (answerRaw(res, fake, received, req.pathname, headers)) return;
        sendJson(
          res,
          200,
          message([{ type: 'text', text, citations: null }], stopReason, usage(outTokens)),
          headers,
        );
        return;
      }
      if (await streamRaw(res, fake, received, req.pathname, headers)) return;
      const ev = (type: string, data: Record<string, unknown> = {}) =>
        `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
      const field = fake.keyEcho?.field;
      const echo = echoPieces(fake, received);
      // a thinking block first, the text block, tool_use blocks after it (blocks come one at a time)
      const blocks: string[] = [];
      let bi = 0;
      if (field === 'thinking') {
        blocks.push(
          ev('content_block_start', {
            index: bi,
            content_block: { type: 'thinking', thinking: '', signature: '' },
          }),
          ...echo.map((p) =>
            ev('content_block_delta', { index: bi, delta: { type: 'thinking_delta', thinking: p } }),
          ),
          ev('content_block_delta', {
            index: bi,
            delta: { type: 'signature_delta', signature: `Eq${randomBytes(24).toString('base64')}` },
          }),
          ev('content_block_stop', { index: bi }),
        );
        bi++;
      }
      const textIndex = bi++;
      blocks.push(
        ev('content_block_start', {
          index: textIndex,
          content_block: { type: 'text', text: '', citations: null },
        }),
        ev('ping'),
        ...pieces.map((p) =>
          ev('content_block_delta', { index: textIndex, delta: { type: 'text_delta', text: p } }),
        ),
        ev('content_block_stop', { index: textIndex }),
      );
      if (field === 'input_json') {
        for (let k = 0; k < 2; k++, bi++) {
          blocks.push(
            ev('content_block_start', {
              index: bi,
              content_block: { type: 'tool_use', id: randomId('toolu_01', 16), name: `tool_${k}`, input: {} },
            }),
            ...argumentPieces(echo, k).map((p) =>
              ev('content_block_delta', { index: bi, delta: { type: 'input_json_delta', partial_json: p } }),
            ),
            ev('content_block_stop', { index: bi }),
          );
        }
      }
      const events = [
        ev('message_start', { message: message([], null, usage(1)) }),
        ...blocks,
        ev('message_delta', {
          delta: {
            stop_reason: field === 'input_json' ? 'tool_use' : stopReason,
            stop_sequence: null,
            stop_details: null,
            container: null,
          },
          usage: {
            input_tokens: inTokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: outTokens,
          },
        }),
        ev('message_stop'),
      ];
      startSse(res, headers);
      await emitSse(res, fake, events, () =>
        ev('error', {
          error: {
            type: 'overloaded_error',
            message: `Overloaded (request authenticated with x-api-key ${quotedKey(fake, received)})`,
          },
        }),
      );
      return;
    }

    if (route === 'GET /v1/models') {
      const data = models.map((id) => ({
        type: 'model',
        id,
        display_name: id,
        created_at: '2025-09-29T00:00:00Z',
      }));
      sendJson(
        res,
        200,
        { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null },
        headers,
      );
      return;
    }

    error(404, 'Not found');
  });
}
