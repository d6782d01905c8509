import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type Anthropic from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import { accumulateResponse } from 'openai/lib/responses/ResponseAccumulator';
import type { EchoField, KeyEcho, UpstreamFake } from '../fakes/openai-upstream.ts';
import { N1_MODES, n1Events } from '../fakes/responses-n1.ts';
import { type GatewaySetup, type Seen, startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Keys and streams (issue 12, items 1–3), end to end: the official `openai`
 * and `@anthropic-ai/sdk` clients through the gateway, in front of fakes that
 * act as a hostile provider (`keyEcho`: the key it received echoed in one
 * text-bearing streamed field, cut at every position or one character a
 * piece, or its masked forms), with keys installed by `useTestKeys`. What a
 * client gets is checked twice: as its
 * SDK accumulates it, and as the raw bytes it received. No run of 4 characters
 * of a key's secret part may show in either, nor in the server log or the
 * audit file; and a stream with no key in it arrives exactly as the provider
 * sent it, each of its `n` choices and tool calls on its own.
 */

/** The secret part of a fake's key: what follows its public prefix. */
function secretPartOf(key: string): string {
  const prefix = /^(sk-ant-api03-|sk-proj-)/.exec(key)?.[1];
  assert.ok(prefix, 'a key of the fakes');
  return key.slice(prefix.length);
}

/** Upper-case letters that are not hex digits, nor the `T`/`Z` of timestamps. */
const NOT_HEX = 'GHIJKLMNOPQRSUVWXY';

/**
 * Fresh keys for the fakes and the vault, random but for one thing: every 4-character run of the
 * secret part holds an upper-case letter of NOT_HEX. So no run of it can show by chance in the
 * hex of the audit hash chain, trace and request ids, in numbers, timestamps or the lower-case
 * names of the JSON around answers: where one shows, the key leaked (or a random id of the
 * fakes, mixed case, holds it: see identifiers).
 */
async function useTestKeys(s: GatewaySetup): Promise<void> {
  const body = (n: number) => {
    const rnd = randomBytes(n).toString('base64url');
    let out = '';
    for (let i = 0; i < n; i++) out += i % 3 === 0 ? NOT_HEX[randomInt(NOT_HEX.length)] : rnd[i];
    return out;
  };
  const keys = [
    [s.openaiFake, `sk-proj-${body(48)}`, 'OPENAI_API_KEY'],
    [s.anthropicFake, `sk-ant-api03-${body(94)}AA`, 'ANTHROPIC_API_KEY'],
  ] as const;
  for (const [fake, key, name] of keys) {
    fake.setKey(key);
    const r = await s.vault('PUT', `/v1/secrets/llm/dev/${name}`, { value: key });
    assert.ok(r.status < 300, `storing ${name}: ${r.status}`);
  }
}

/**
 * Identifiers made up at random (ids, accessors, signatures) and the marker: a run of the key
 * found only inside one of them is a coincidence, not an echo.
 */
function identifiers(text: string): string[] {
  const out = ['[REDACTED]'];
  const named = /"(?:id|[a-z_]*_id|[a-z]+Id|accessor|signature|system_fingerprint)"\s*:\s*"([^"]*)"/g;
  for (const m of text.matchAll(named)) out.push(m[1]!);
  return out;
}

/** No run of 4 characters of the key's secret part is in `text` (but inside identifiers made up at random). */
function assertNoKeyFragments(text: string, key: string, where: string): void {
  const secret = secretPartOf(key);
  const ids = identifiers(text);
  for (let i = 0; i + 4 <= secret.length; i++) {
    const run = secret.slice(i, i + 4);
    if (text.includes(run) && !ids.some((id) => id.includes(run))) {
      const at = text.indexOf(run);
      assert.fail(
        `${where} holds characters ${i}–${i + 3} of the key's secret part: …${text.slice(Math.max(0, at - 30), at + 34)}…`,
      );
    }
  }
}

/** The raw bytes the client received since `from` (SSE comment lines, the provenance chain, left out). */
async function rawSince(seen: Seen[], from: number): Promise<string> {
  await sleep(20);
  return seen
    .slice(from)
    .map((s) => s.body)
    .join('\n')
    .split('\n')
    .filter((l) => !l.startsWith(':'))
    .join('\n');
}

/** The server log and the audit file hold nothing of any key. */
function assertNothingInLogsOrAudit(s: GatewaySetup): void {
  for (const key of s.secrets()) {
    assertNoKeyFragments(s.logs(), key, 'the server log');
    assertNoKeyFragments(JSON.stringify(s.audit()), key, 'the audit file');
  }
}

const messages = [{ role: 'user' as const, content: 'one two three' }];

test('a key split across chat stream events in any text field (content, refusal, reasoning, tool-call and function-call arguments, audio transcript, logprobs; n = 2) reaches the client with no 4 characters of its secret part, in the SDK result or the raw bytes', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const key = s.openaiFake.key;
  s.openaiFake.honorN = true;
  const cases: [EchoField, KeyEcho['split']][] = [
    ['text', 'every'],
    ['text', 'chars'],
    ['refusal', 'every'],
    ['tool_calls', 'every'],
    ['tool_calls', 'chars'],
    ['function_call', 'every'],
    ['audio_transcript', 'every'],
    ['logprobs', 'every'],
  ];
  for (const [field, split] of cases) {
    const where = `chat ${field} (${split})`;
    s.openaiFake.keyEcho = { field, split };
    const from = seen.length;
    const done = await openai.chat.completions
      .stream({ model: 'gpt-4o', n: 2, messages, ...(field === 'logprobs' ? { logprobs: true } : {}) })
      .finalChatCompletion();
    assert.equal(done.choices.length, 2, where);
    const sdk = JSON.stringify(done);
    assertNoKeyFragments(sdk, key, `${where}, as the SDK accumulated it`);
    assertNoKeyFragments(await rawSince(seen, from), key, `${where}, the raw bytes`);
    for (const c of done.choices) {
      const m = c.message;
      const got =
        field === 'text'
          ? m.content
          : field === 'refusal'
            ? m.refusal
            : field === 'tool_calls'
              ? (m.tool_calls ?? [])
                  .map((tc) => (tc.type === 'function' ? tc.function.arguments : ''))
                  .join('')
              : field === 'function_call'
                ? m.function_call?.arguments
                : field === 'audio_transcript'
                  ? m.audio?.transcript
                  : m.content;
      // the echo was there, and was redacted where it was
      assert.match(got ?? '', /\[REDACTED\]/, `${where}: choice ${c.index}`);
      if (field === 'tool_calls') {
        // the arguments are still JSON, one object per tool call
        for (const tc of m.tool_calls ?? [])
          assert.ok(tc.type === 'function' && JSON.parse(tc.function.arguments).note);
      }
      if (field === 'logprobs')
        assert.equal(c.logprobs, null, `${where}: logprobs spelling a key are dropped`);
    }
  }
  // reasoning fields of OpenAI-compatible servers: no SDK helper joins them, a client does
  for (const field of ['reasoning', 'reasoning_content'] as const) {
    for (const split of ['every', 'chars'] as const) {
      s.openaiFake.keyEcho = { field, split };
      const from = seen.length;
      const stream = await openai.chat.completions.create({ model: 'gpt-4o', n: 2, messages, stream: true });
      const joined: Record<number, string> = {};
      for await (const chunk of stream) {
        for (const c of chunk.choices) {
          const v = (c.delta as Record<string, unknown>)[field];
          if (typeof v === 'string') joined[c.index] = (joined[c.index] ?? '') + v;
        }
      }
      const where = `chat ${field} (${split})`;
      assert.deepEqual(Object.keys(joined), ['0', '1'], where);
      for (const text of Object.values(joined)) {
        assert.match(text, /\[REDACTED\]/, where);
        assertNoKeyFragments(text, key, `${where}, joined by the client`);
      }
      assertNoKeyFragments(await rawSince(seen, from), key, `${where}, the raw bytes`);
    }
  }
  assertNothingInLogsOrAudit(s);
});

test('a key split across Responses stream events (output text, refusal, interleaved function-call arguments, reasoning summary and text, logprobs) reaches the client with no 4 characters of its secret part', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const key = s.openaiFake.key;
  for (const field of [
    'text',
    'refusal',
    'function_call_arguments',
    'reasoning_summary',
    'reasoning_text',
    'logprobs',
  ] as const) {
    for (const split of ['every', 'chars'] as const) {
      const where = `responses ${field} (${split})`;
      s.openaiFake.keyEcho = { field, split };
      const from = seen.length;
      const final = await openai.responses
        .stream({ model: 'gpt-4o', input: 'one two three' })
        .finalResponse();
      assertNoKeyFragments(JSON.stringify(final), key, `${where}, as the SDK accumulated it`);
      assertNoKeyFragments(await rawSince(seen, from), key, `${where}, the raw bytes`);
      assert.match(JSON.stringify(final.output), /\[REDACTED\]/, where);
      if (field === 'function_call_arguments') {
        const calls = final.output.filter((o) => o.type === 'function_call');
        assert.deepEqual(
          calls.map((c) => JSON.parse(c.arguments).n),
          [0, 1],
          'each call keeps its own arguments, still JSON',
        );
      }
    }
  }
  assertNothingInLogsOrAudit(s);
});

test('a key split across Anthropic stream events (text_delta, input_json_delta of two tool_use blocks, thinking_delta) reaches the client with no 4 characters of its secret part', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const anthropic = s.anthropic(await s.appToken(), seen);
  const key = s.anthropicFake.key;
  for (const field of ['text', 'input_json', 'thinking'] as const) {
    for (const split of ['every', 'chars'] as const) {
      const where = `messages ${field} (${split})`;
      s.anthropicFake.keyEcho = { field, split };
      const from = seen.length;
      const final = await anthropic.messages
        .stream({ model: 'claude-sonnet-5-5', max_tokens: 4096, messages })
        .finalMessage();
      assertNoKeyFragments(JSON.stringify(final), key, `${where}, as the SDK accumulated it`);
      assertNoKeyFragments(await rawSince(seen, from), key, `${where}, the raw bytes`);
      assert.match(JSON.stringify(final.content), /\[REDACTED\]/, where);
      if (field === 'input_json') {
        const uses = final.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
        assert.deepEqual(
          uses.map((u) => (u.input as { n: number }).n),
          [0, 1],
          'each tool_use block keeps its own input, still JSON',
        );
      }
    }
  }
  assertNothingInLogsOrAudit(s);
});

/** Per choice, the content and tool-call arguments a frame list carries (joined as a client does). */
function accumulate(frames: readonly string[]): { content: string; args: string[] }[] {
  const out: { content: string; args: string[] }[] = [];
  for (const f of frames) {
    const data = f
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6))
      .join('\n');
    if (!data.startsWith('{')) continue;
    for (const c of (JSON.parse(data) as OpenAI.ChatCompletionChunk).choices) {
      out[c.index] ??= { content: '', args: [] };
      const a = out[c.index]!;
      a.content += c.delta.content ?? '';
      for (const tc of c.delta.tool_calls ?? [])
        a.args[tc.index] = (a.args[tc.index] ?? '') + (tc.function?.arguments ?? '');
    }
  }
  return out;
}

test('with no key in it, a stream of n = 2 or n = 3 choices, each with interleaved tool calls, arrives exactly as the provider sent it: each choice’s text and each tool call’s arguments', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  s.openaiFake.honorN = true;
  for (const [n, tools] of [
    [2, 0],
    [2, 3],
    [3, 2],
  ] as const) {
    s.openaiFake.toolCalls = tools;
    const from = seen.length;
    const done = await openai.chat.completions
      .stream({
        model: 'gpt-4o',
        n,
        messages: [{ role: 'user', content: 'Tell me, word by word, about the sea.' }],
      })
      .finalChatCompletion();
    const sent = accumulate(s.openaiFake.sentEvents);
    assert.equal(sent.length, n);
    assert.deepEqual(
      done.choices.map((c) => ({
        content: c.message.content ?? '',
        args: (c.message.tool_calls ?? []).map((tc) => (tc.type === 'function' ? tc.function.arguments : '')),
      })),
      sent,
      `n = ${n}, ${tools} tool calls: what the SDK accumulated is what the fake sent`,
    );
    // and what the client received, joined per choice, is the same (no stray or garbled piece)
    const raw = await rawSince(seen, from);
    assert.deepEqual(accumulate(raw.split('\n\n')), sent);
  }
});

test('masked key forms (sk-proj-abcd****…wxyz and the like, with real key characters) are redacted in provider errors, in-stream error events and answers, plain and streamed', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const token = await s.appToken();
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const fakes: [UpstreamFake, string][] = [
    [s.openaiFake, s.openaiFake.key],
    [s.anthropicFake, s.anthropicFake.key],
  ];
  for (const [f] of fakes) f.keyEcho = { field: 'text', form: 'masked', split: 'whole' };
  const expectError = async (p: Promise<unknown>, status: number, where: string) => {
    const e = (await p.then(
      () => assert.fail(`${where}: expected an error`),
      (err: unknown) => err,
    )) as { status?: number; message: string; error?: unknown };
    assert.equal(e.status, status, where);
    const text = `${e.message} ${JSON.stringify(e.error)}`;
    assert.match(text, /\[REDACTED\]/, `${where}: the masked key was in the message`);
    return text;
  };

  // provider errors quoting the masked key (a one-key pool: nothing to fall back to)
  for (const status of [401, 429, 500]) {
    s.openaiFake.fail = { status, times: 1 };
    const text = await expectError(
      openai.chat.completions.create({ model: 'gpt-4o', messages }),
      status,
      `openai ${status}`,
    );
    assertNoKeyFragments(text, s.openaiFake.key, `openai ${status}`);
  }
  for (const status of [429, 529]) {
    s.anthropicFake.fail = { status, times: 1 };
    const text = await expectError(
      anthropic.messages.create({ model: 'claude-sonnet-5-5', max_tokens: 100, messages }),
      status,
      `anthropic ${status}`,
    );
    assertNoKeyFragments(text, s.anthropicFake.key, `anthropic ${status}`);
  }

  // the same in an error event in the middle of a stream
  s.openaiFake.streamFailure = { afterEvents: 3, mode: 'error' };
  await assert.rejects(async () => {
    for await (const _ of await openai.chat.completions.create({ model: 'gpt-4o', messages, stream: true }));
  }, /\[REDACTED\]/);
  // a Responses stream carries it as an `error` event (the client yields it)
  const events: string[] = [];
  for await (const e of await openai.responses.create({ model: 'gpt-4o', input: 'one', stream: true })) {
    events.push(JSON.stringify(e));
  }
  assert.match(events.at(-1) ?? '', /"type":"error".*\[REDACTED\]/);
  assertNoKeyFragments(events.join('\n'), s.openaiFake.key, 'a Responses error event');
  s.openaiFake.streamFailure = undefined;
  s.anthropicFake.streamFailure = { afterEvents: 4, mode: 'error' };
  await assert.rejects(async () => {
    for await (const _ of await anthropic.messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 100,
      messages,
      stream: true,
    }));
  }, /\[REDACTED\]/);
  s.anthropicFake.streamFailure = undefined;

  // in answers, plain and streamed, whole and cut at every position
  for (const split of ['whole', 'every', 'chars'] as const) {
    for (const [f] of fakes) f.keyEcho = { field: 'text', form: 'masked', split };
    const texts = [
      (await openai.chat.completions.create({ model: 'gpt-4o', messages })).choices[0]?.message.content ?? '',
      (await openai.chat.completions.stream({ model: 'gpt-4o', messages }).finalChatCompletion()).choices[0]
        ?.message.content ?? '',
      (await openai.responses.stream({ model: 'gpt-4o', input: 'one two three' }).finalResponse())
        .output_text,
    ];
    for (const text of texts) {
      assert.match(text, /\[REDACTED\]/, split);
      assertNoKeyFragments(text, s.openaiFake.key, `an OpenAI answer (${split})`);
    }
    const msg = await anthropic.messages
      .stream({ model: 'claude-sonnet-5-5', max_tokens: 4096, messages })
      .finalMessage();
    const text = msg.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    assert.match(text, /ending in \[REDACTED\]/, split);
    assertNoKeyFragments(text, s.anthropicFake.key, `an Anthropic answer (${split})`);
  }

  const raw = await rawSince(seen, 0);
  for (const [, key] of fakes) assertNoKeyFragments(raw, key, 'the raw bytes the clients received');
  assertNothingInLogsOrAudit(s);
});

// ---------------------------------------------------------------------------------------------
// The red team's stream shapes (L1–L4): each payload as it sent it (`rawStream`: the fake writes
// these exact bytes), through the gateway, to the official clients.

/** The key's secret part in 3-character pieces, as the red team streamed it. */
const piecesOf = (key: string): string[] => secretPartOf(key).match(/.{1,3}/g)!;
const chatBase = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o' };
/** An SSE frame: `data:` (and `event:`) lines ended by `eol`, the event by one more. */
const frame = (o: unknown, ev?: string, eol = '\n') =>
  `${ev ? `event: ${ev}${eol}` : ''}data: ${typeof o === 'string' ? o : JSON.stringify(o)}${eol}${eol}`;
const chatChunk = (choices: unknown[], eol = '\n') => frame({ ...chatBase, choices }, undefined, eol);
const anthStart = (eol = '\n') =>
  frame(
    {
      type: 'message_start',
      message: {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: 'claude-x',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 3, output_tokens: 1 },
      },
    },
    'message_start',
    eol,
  );
const anthEv = (o: { type: string } & Record<string, unknown>, eol = '\n') => frame(o, o.type, eol);
const anthEnd = (stop = 'end_turn', eol = '\n') => [
  anthEv(
    {
      type: 'message_delta',
      delta: { stop_reason: stop, stop_sequence: null },
      usage: { output_tokens: 20 },
    },
    eol,
  ),
  anthEv({ type: 'message_stop' }, eol),
];
/** A Responses stream's opening: created, a message item, its output_text part (item `msg_a`). */
const respOpen = () => {
  let seq = 0;
  const ev = (o: { type: string } & Record<string, unknown>) =>
    frame({ ...o, sequence_number: seq++ }, o.type);
  const head = [
    ev({
      type: 'response.created',
      response: {
        id: 'resp_1',
        object: 'response',
        created_at: 1,
        status: 'in_progress',
        model: 'gpt-4o',
        output: [],
        usage: null,
      },
    }),
    ev({
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'msg_a', type: 'message', role: 'assistant', status: 'in_progress', content: [] },
    }),
    ev({
      type: 'response.content_part.added',
      item_id: 'msg_a',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '', annotations: [] },
    }),
  ];
  return { ev, head };
};

/** Runs `f` and returns what it gave, or the error it threw (a refused stream ends with an error event). */
async function settled<T>(f: () => Promise<T>): Promise<T | Error> {
  try {
    return await f();
  } catch (err) {
    return err as Error;
  }
}

test('L1: a provider ending SSE lines with a bare CR (\\r\\r between events) gets no key fragment to the clients; such streams arrive intact, their usage is counted, and their terminal event never comes before the outcome record', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const token = await s.appToken();
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  // the red team's payload (leak2.mjs): the key in 3-character pieces, events ended with \r\r
  s.openaiFake.rawStream = (key) => [
    chatChunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], '\r'),
    ...piecesOf(key).map((p) => chatChunk([{ index: 0, delta: { content: p }, finish_reason: null }], '\r')),
    chatChunk([{ index: 0, delta: {}, finish_reason: 'stop' }], '\r'),
    'data: [DONE]\n\n',
  ];
  s.anthropicFake.rawStream = (key) => [
    anthStart('\r'),
    anthEv({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, '\r'),
    ...piecesOf(key).map((p) =>
      anthEv({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }, '\r'),
    ),
    anthEv({ type: 'content_block_stop', index: 0 }, '\r'),
    ...anthEnd('end_turn', '\r'),
  ];
  let from = seen.length;
  const chat = await openai.chat.completions.stream({ model: 'gpt-4o', messages }).finalChatCompletion();
  assertNoKeyFragments(JSON.stringify(chat), s.openaiFake.key, 'chat, as the SDK accumulated it');
  assert.match(chat.choices[0]?.message.content ?? '', /\[REDACTED\]/);
  const msg = await anthropic.messages
    .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
    .finalMessage();
  assertNoKeyFragments(JSON.stringify(msg), s.anthropicFake.key, 'messages, as the SDK accumulated it');
  assert.match(JSON.stringify(msg.content), /\[REDACTED\]/);
  const raw = await rawSince(seen, from);
  assert.doesNotMatch(raw, /\r/, 'the gateway frames what it sends itself');
  for (const key of [s.openaiFake.key, s.anthropicFake.key]) assertNoKeyFragments(raw, key, 'the raw bytes');
  // the usage the stream reported is in the call's outcome record
  const outcome = s
    .audit()
    .filter((e) => e.type === 'response' && (e.request as { route?: string }).route === 'messages')
    .at(-1)?.request as { input_tokens?: number; output_tokens?: number } | undefined;
  assert.deepEqual([outcome?.input_tokens, outcome?.output_tokens], [3, 20], 'usage counted');

  // no key: n = 2 with a tool call each, framed with CR, CRLF or both, arrives as the provider sent it
  const words = (c: number) => ['The', ' sea', ' is', ` wide ${c}`, ' and', ' deep'];
  for (const eol of ['\r', '\r\n', 'mixed'] as const) {
    let k = 0;
    const e = () => (eol === 'mixed' ? (k++ % 2 ? '\r' : '\r\n') : eol);
    s.openaiFake.rawStream = () => [
      chatChunk(
        [0, 1].map((c) => ({ index: c, delta: { role: 'assistant', content: '' }, finish_reason: null })),
        e(),
      ),
      ...words(0).flatMap((_, i) =>
        [0, 1].map((c) =>
          chatChunk([{ index: c, delta: { content: words(c)[i] }, finish_reason: null }], e()),
        ),
      ),
      ...[0, 1].map((c) =>
        chatChunk(
          [
            {
              index: c,
              delta: {
                tool_calls: [
                  { index: 0, id: `call_${c}`, type: 'function', function: { name: 'f', arguments: '' } },
                ],
              },
              finish_reason: null,
            },
          ],
          e(),
        ),
      ),
      ...['{"city"', ':"Par', 'is"}'].flatMap((a) =>
        [0, 1].map((c) =>
          chatChunk(
            [
              {
                index: c,
                delta: { tool_calls: [{ index: 0, function: { arguments: a } }] },
                finish_reason: null,
              },
            ],
            e(),
          ),
        ),
      ),
      chatChunk(
        [0, 1].map((c) => ({ index: c, delta: {}, finish_reason: 'tool_calls' })),
        e(),
      ),
      `data: [DONE]${e()}${e()}`,
    ];
    const done = await openai.chat.completions
      .stream({ model: 'gpt-4o', n: 2, messages })
      .finalChatCompletion();
    assert.deepEqual(
      done.choices.map((c) => [
        c.message.content,
        c.message.tool_calls?.map((tc) => tc.type === 'function' && tc.function.arguments),
      ]),
      [0, 1].map((c) => [words(c).join(''), ['{"city":"Paris"}']]),
      `framed with ${JSON.stringify(eol)}`,
    );
  }

  // the terminal event comes after the outcome record: with the audit sink failing mid-stream, a
  // CR-framed stream ends with an error event, never a clean [DONE] (red team's y6.mjs, A4)
  s.openaiFake.rawStream = () => [
    ...Array.from({ length: 10 }, (_, i) =>
      chatChunk([{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }], '\r'),
    ),
    chatChunk([{ index: 0, delta: {}, finish_reason: 'stop' }], '\r'),
    'data: [DONE]\r\r\n\n',
  ];
  s.openaiFake.chunkDelayMs = 30;
  from = seen.length;
  const stream = await openai.chat.completions.create({ model: 'gpt-4o', stream: true, messages });
  let n = 0;
  try {
    await assert.rejects(async () => {
      for await (const _ of stream) if (++n === 1) chmodSync(s.auditFile, 0o400);
    }, /could not be audited/);
  } finally {
    chmodSync(s.auditFile, 0o600);
  }
  assert.doesNotMatch(await rawSince(seen, from), /\[DONE\]/);
  assertNothingInLogsOrAudit(s);
});

test('L2: a closing event after every piece (finish_reason on every chunk, content_block_stop after every delta) does not restart the filter: no key fragment reaches the clients, and held text still arrives whole', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const token = await s.appToken();
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const okey = s.openaiFake.key;
  const akey = s.anthropicFake.key;
  const from = seen.length;
  // chat_finish_every_chunk, chat_finish_every_chunk_naive, chat_tool_finish_every_chunk (leak1.mjs)
  s.openaiFake.rawStream = (key) => [
    chatChunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
    ...piecesOf(key).map((p) => chatChunk([{ index: 0, delta: { content: p }, finish_reason: 'stop' }])),
    frame({ ...chatBase, choices: [], usage: { prompt_tokens: 3, completion_tokens: 20, total_tokens: 23 } }),
    'data: [DONE]\n\n',
  ];
  const chat = await openai.chat.completions.stream({ model: 'gpt-4o', messages }).finalChatCompletion();
  assertNoKeyFragments(JSON.stringify(chat), okey, 'chat_finish_every_chunk, as the SDK accumulated it');
  assert.equal(chat.choices[0]?.message.content, '[REDACTED]');
  s.openaiFake.rawStream = (key) => [
    ...piecesOf(key).map((p) => chatChunk([{ index: 0, delta: { content: p }, finish_reason: 'stop' }])),
    'data: [DONE]\n\n',
  ];
  let naive = '';
  for await (const c of await openai.chat.completions.create({ model: 'gpt-4o', messages, stream: true }))
    naive += c.choices[0]?.delta?.content || '';
  assertNoKeyFragments(naive, okey, 'chat_finish_every_chunk_naive, joined as the README does');
  s.openaiFake.rawStream = (key) => [
    chatChunk([
      {
        index: 0,
        delta: {
          role: 'assistant',
          tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }],
        },
        finish_reason: null,
      },
    ]),
    ...piecesOf(key).map((p) =>
      chatChunk([
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, function: { arguments: p } }] },
          finish_reason: 'tool_calls',
        },
      ]),
    ),
    'data: [DONE]\n\n',
  ];
  const tool = await openai.chat.completions.stream({ model: 'gpt-4o', messages }).finalChatCompletion();
  assertNoKeyFragments(JSON.stringify(tool), okey, 'chat_tool_finish_every_chunk, as the SDK accumulated it');
  // anth_stop_every_delta, anth_tool_stop_every_delta
  s.anthropicFake.rawStream = (key) => [
    anthStart(),
    anthEv({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...piecesOf(key).flatMap((p) => [
      anthEv({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }),
      anthEv({ type: 'content_block_stop', index: 0 }),
    ]),
    ...anthEnd(),
  ];
  let onText = '';
  const text = await anthropic.messages
    .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
    .on('text', (d) => {
      onText += d;
    })
    .finalMessage();
  assertNoKeyFragments(JSON.stringify(text), akey, 'anth_stop_every_delta, as the SDK accumulated it');
  assertNoKeyFragments(onText, akey, 'anth_stop_every_delta, the text events joined');
  assert.deepEqual(text.content, [{ type: 'text', text: '[REDACTED]' }]);
  s.anthropicFake.rawStream = (key) => [
    anthStart(),
    anthEv({
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'tool_use', id: 'toolu_1', name: 'f', input: {} },
    }),
    anthEv({
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'input_json_delta', partial_json: '{"k":"' },
    }),
    ...piecesOf(key).flatMap((p) => [
      anthEv({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: p } }),
      anthEv({ type: 'content_block_stop', index: 0 }),
    ]),
    anthEv({
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'input_json_delta', partial_json: '"}' },
    }),
    anthEv({ type: 'content_block_stop', index: 0 }),
    ...anthEnd('tool_use'),
  ];
  const use = await anthropic.messages
    .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
    .finalMessage();
  assertNoKeyFragments(JSON.stringify(use), akey, 'anth_tool_stop_every_delta, as the SDK accumulated it');
  assert.deepEqual((use.content[0] as Anthropic.ToolUseBlock).input, { k: '[REDACTED]' });
  const raw = await rawSince(seen, from);
  assertNoKeyFragments(raw, okey, 'the raw bytes');
  assertNoKeyFragments(raw, akey, 'the raw bytes');

  // no key: what a filter holds across a close (a text ending in a word) still arrives whole, in order,
  // for chat (n = 2) and for several Anthropic blocks
  s.openaiFake.rawStream = () => [
    chatChunk([0, 1].map((c) => ({ index: c, delta: { role: 'assistant' }, finish_reason: null }))),
    ...['Calm', ' seas', ' ahead'].flatMap((w) =>
      [0, 1].map((c) => chatChunk([{ index: c, delta: { content: `${w}${c}` }, finish_reason: null }])),
    ),
    chatChunk([0, 1].map((c) => ({ index: c, delta: {}, finish_reason: 'stop' }))),
    'data: [DONE]\n\n',
  ];
  const two = await openai.chat.completions.stream({ model: 'gpt-4o', n: 2, messages }).finalChatCompletion();
  assert.deepEqual(
    two.choices.map((c) => c.message.content),
    [0, 1].map((c) => `Calm${c} seas${c} ahead${c}`),
  );
  s.anthropicFake.rawStream = () => [
    anthStart(),
    anthEv({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    anthEv({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me look' } }),
    anthEv({ type: 'content_block_stop', index: 0 }),
    anthEv({
      type: 'content_block_start',
      index: 1,
      content_block: { type: 'tool_use', id: 'toolu_1', name: 'f', input: {} },
    }),
    anthEv({
      type: 'content_block_delta',
      index: 1,
      delta: { type: 'input_json_delta', partial_json: '{"q": "tides"}' },
    }),
    anthEv({ type: 'content_block_stop', index: 1 }),
    anthEv({ type: 'content_block_start', index: 2, content_block: { type: 'text', text: '' } }),
    anthEv({ type: 'content_block_delta', index: 2, delta: { type: 'text_delta', text: 'Found it' } }),
    anthEv({ type: 'content_block_stop', index: 2 }),
    ...anthEnd('tool_use'),
  ];
  const blocks = await anthropic.messages
    .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
    .finalMessage();
  assert.deepEqual(
    blocks.content.map((b) => (b.type === 'text' ? b.text : b.type === 'tool_use' ? b.input : b.type)),
    ['Let me look', { q: 'tides' }, 'Found it'],
  );
  assertNothingInLogsOrAudit(s);
});

test('L3: text fields sent as arrays (which the SDKs join as their string form) reach the clients filtered as part of their stream: no key fragment', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const token = await s.appToken();
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const from = seen.length;
  // chat_array_content
  s.openaiFake.rawStream = (key) => [
    chatChunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
    ...piecesOf(key).map((p) => chatChunk([{ index: 0, delta: { content: [p] }, finish_reason: null }])),
    chatChunk([{ index: 0, delta: {}, finish_reason: 'stop' }]),
    'data: [DONE]\n\n',
  ];
  const chat = await openai.chat.completions.stream({ model: 'gpt-4o', messages }).finalChatCompletion();
  assertNoKeyFragments(
    JSON.stringify(chat),
    s.openaiFake.key,
    'chat_array_content, as the SDK accumulated it',
  );
  assert.equal(chat.choices[0]?.message.content, '[REDACTED]');
  // resp_array_delta (the stream ends without response.completed: the SDK keeps what it joined)
  s.openaiFake.rawStream = (key) => {
    const { ev, head } = respOpen();
    return [
      ...head,
      ...piecesOf(key).map((p) =>
        ev({
          type: 'response.output_text.delta',
          item_id: 'msg_a',
          output_index: 0,
          content_index: 0,
          delta: [p],
        }),
      ),
    ];
  };
  const resp = await openai.responses.stream({ model: 'gpt-4o', input: 'one two three' }).finalResponse();
  assertNoKeyFragments(JSON.stringify(resp), s.openaiFake.key, 'resp_array_delta, as the SDK accumulated it');
  assert.equal(resp.output_text, '[REDACTED]');
  // anth_array_text
  s.anthropicFake.rawStream = (key) => [
    anthStart(),
    anthEv({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...piecesOf(key).map((p) =>
      anthEv({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: [p] } }),
    ),
    anthEv({ type: 'content_block_stop', index: 0 }),
    ...anthEnd(),
  ];
  const msg = await anthropic.messages
    .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
    .finalMessage();
  assertNoKeyFragments(
    JSON.stringify(msg),
    s.anthropicFake.key,
    'anth_array_text, as the SDK accumulated it',
  );
  assert.deepEqual(msg.content, [{ type: 'text', text: '[REDACTED]' }]);
  const raw = await rawSince(seen, from);
  assertNoKeyFragments(raw, s.openaiFake.key, 'the raw bytes');
  assertNoKeyFragments(raw, s.anthropicFake.key, 'the raw bytes');
  assertNothingInLogsOrAudit(s);
});

test('L4: Responses streams are read as the endpoint defines and keyed as the SDK keys them (output and part, not item_id; `choices` in an event changes nothing): no key fragment reaches the client', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const key = s.openaiFake.key;
  const from = seen.length;
  const cases: Record<string, (p: string, i: number) => Record<string, unknown>> = {
    // a different item_id on every delta, all to output 0, part 0
    resp_item_id_variance: (p, i) => ({ item_id: `msg_${i}`, delta: p }),
    // chat's `choices` on a Responses event
    resp_extra_choices_field: (p) => ({ item_id: 'msg_a', delta: p, choices: [] }),
  };
  for (const [name, shape] of Object.entries(cases)) {
    s.openaiFake.rawStream = (received) => {
      const { ev, head } = respOpen();
      return [
        ...head,
        ...piecesOf(received).map((p, i) =>
          ev({ type: 'response.output_text.delta', output_index: 0, content_index: 0, ...shape(p, i) }),
        ),
      ];
    };
    let last = '';
    const got = await settled(() =>
      openai.responses
        .stream({ model: 'gpt-4o', input: 'one two three' })
        .on('response.output_text.delta', (e) => {
          last = e.snapshot;
        })
        .finalResponse(),
    );
    assertNoKeyFragments(last, key, `${name}, the SDK's snapshot`);
    assertNoKeyFragments(
      got instanceof Error ? got.message : JSON.stringify(got),
      key,
      `${name}, as the SDK ended`,
    );
  }
  assertNoKeyFragments(await rawSince(seen, from), key, 'the raw bytes');

  // no key: a Responses stream with two output_text parts and a function call arrives as sent
  s.openaiFake.rawStream = () => {
    const { ev, head } = respOpen();
    return [
      ...head,
      ...['Two', ' parts'].map((d) =>
        ev({
          type: 'response.output_text.delta',
          item_id: 'msg_a',
          output_index: 0,
          content_index: 0,
          delta: d,
        }),
      ),
      ev({
        type: 'response.output_text.done',
        item_id: 'msg_a',
        output_index: 0,
        content_index: 0,
        text: 'Two parts',
      }),
      ev({
        type: 'response.content_part.added',
        item_id: 'msg_a',
        output_index: 0,
        content_index: 1,
        part: { type: 'output_text', text: '', annotations: [] },
      }),
      ...[' and', ' more'].map((d) =>
        ev({
          type: 'response.output_text.delta',
          item_id: 'msg_a',
          output_index: 0,
          content_index: 1,
          delta: d,
        }),
      ),
      ev({
        type: 'response.output_item.added',
        output_index: 1,
        item: {
          id: 'fc_1',
          type: 'function_call',
          call_id: 'c1',
          name: 'f',
          arguments: '',
          status: 'in_progress',
        },
      }),
      ...['{"a"', ':1}'].map((d) =>
        ev({ type: 'response.function_call_arguments.delta', item_id: 'fc_1', output_index: 1, delta: d }),
      ),
    ];
  };
  const ok = await openai.responses.stream({ model: 'gpt-4o', input: 'one two three' }).finalResponse();
  assert.equal(ok.output_text, 'Two parts and more');
  assert.deepEqual(
    ok.output.map((o) =>
      o.type === 'function_call'
        ? o.arguments
        : o.type === 'message'
          ? o.content.map((c) => (c.type === 'output_text' ? c.text : ''))
          : '',
    ),
    [['Two parts', ' and more'], '{"a":1}'],
  );
});

/** The N1 events as SSE frames (named by their type). */
const n1Frames = (mode: (typeof N1_MODES)[number], completed: boolean, pieces: readonly string[]) =>
  n1Events(mode, completed, pieces).map((o) => frame(o, o.type));

test('N1: a key in 3-character pieces over the Responses events the openai SDK rebuilds `output_text` from (snapshot items, output_item.done, content_part.done, output_text.done), with or without response.completed, ends the stream with an error: no 4 characters of it in the SDK’s final response, in what it held after any event, or in the raw bytes', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const key = s.openaiFake.key;
  /** The stream through the SDK: its final response (or the error it ended with), and what it held after each event. */
  const run = async () => {
    const held: string[] = [];
    // biome-ignore lint/suspicious/noExplicitAny: the SDK's snapshot, as ResponseStream accumulates it
    let snapshot: any;
    const got = await settled(() =>
      openai.responses
        .stream({ model: 'gpt-4o', input: 'one two three' })
        .on('event', (e) => {
          snapshot = accumulateResponse(e, snapshot);
          held.push(JSON.stringify(snapshot));
        })
        .finalResponse(),
    );
    return { got, held };
  };
  for (const mode of N1_MODES) {
    for (const completed of [false, true]) {
      const where = `${mode}${completed ? ' + response.completed' : ''}`;
      s.openaiFake.rawStream = (received) => n1Frames(mode, completed, piecesOf(received));
      const from = seen.length;
      const { got, held } = await run();
      assert.ok(got instanceof Error, `${where}: the stream ends with an error`);
      assertNoKeyFragments(got.message, key, `${where}, the SDK's error`);
      for (const [i, h] of held.entries())
        assertNoKeyFragments(h, key, `${where}, what the SDK held after event ${i}`);
      const raw = await rawSince(seen, from);
      assertNoKeyFragments(raw, key, `${where}, the raw bytes`);
      assert.match(raw, /event: error\n/, where);
    }
  }
  // the same shapes with no key: each arrives as sent, and the SDK rebuilds the text from them
  const words = ['Once ', 'upon ', 'a ', 'time, ', 'there ', 'was ', 'a ', 'key.'];
  for (const mode of N1_MODES) {
    for (const completed of [false, true]) {
      const where = `${mode}${completed ? ' + response.completed' : ''}, no key`;
      const frames = n1Frames(mode, completed, words);
      s.openaiFake.rawStream = () => frames;
      const from = seen.length;
      const { got } = await run();
      assert.ok(!(got instanceof Error), `${where}: ${got instanceof Error ? got.message : ''}`);
      assert.equal(got.output_text, words.join(''), where);
      // every line of every event as sent (the blank lines between events aside)
      const lines = (text: string) => text.split('\n').filter((l) => l !== '');
      assert.deepEqual(lines(await rawSince(seen, from)), lines(frames.join('')), `${where}: byte for byte`);
    }
  }
  assertNothingInLogsOrAudit(s);
});

// ---------------------------------------------------------------------------------------------
// Keys written with JSON `\u` escapes inside the JSON text clients parse (tool-call arguments,
// function-call arguments, Anthropic input_json): the SDK (or the app) parses that text once more,
// and reads the escapes as the characters they stand for.

/** `c` as a JSON `\uXXXX` escape. */
const uEsc = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
/**
 * How the key is written in the arguments: every character escaped (`full`); every other one (`part`);
 * every one, behind an escaped backslash and after `\\u0073` decoys, which are text (`decoy`).
 */
const ESC_FORMS = ['full', 'part', 'decoy'] as const;
/** A JSON object text (tool-call arguments) holding `key` as `form` writes it (its `k`). */
function escapedArguments(form: (typeof ESC_FORMS)[number], key: string): string {
  const body = [...key].map((c, i) => (form === 'part' && i % 2 === 1 ? c : uEsc(c))).join('');
  // decoy: `"re"` is the text \u0073\u006b; `"k"` is a backslash, then the key
  return form === 'decoy' ? String.raw`{"re":"\\u0073\\u006b","k":"\\${body}"}` : `{"k":"${body}"}`;
}
/**
 * The pieces a stream sends `text` in: 7 characters each (`coarse`), or 1, 2, 3, 4, 5, 1, ... (`fine`:
 * escapes cut at every position of theirs, `\` | `u0073`, `\u` | `0073`, ..., `\u007` | `3`).
 */
function cutArguments(text: string, cut: 'coarse' | 'fine'): string[] {
  const out: string[] = [];
  for (let i = 0, k = 0; i < text.length; k++) {
    const n = cut === 'coarse' ? 7 : (k % 5) + 1;
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}
/** JSON escapes read once (`\\` pairs first): applied twice, what a client reads from raw bytes holding arguments. */
const unescapeJson = (t: string) =>
  t.replace(/\\(u[0-9a-fA-F]{4}|[\s\S])/g, (_, e: string) =>
    e.length === 5
      ? String.fromCharCode(Number.parseInt(e.slice(1), 16))
      : (({ n: '\n', r: '\r', t: '\t', b: '\b', f: '\f' } as Record<string, string>)[e] ?? e),
  );

/** Chat frames of one tool call (or a legacy function call) whose arguments come in `pieces`. */
const chatToolFrames = (pieces: readonly string[], legacy: boolean) => [
  chatChunk([
    {
      index: 0,
      delta: legacy
        ? { role: 'assistant', function_call: { name: 'f', arguments: '' } }
        : {
            role: 'assistant',
            tool_calls: [
              { index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } },
            ],
          },
      finish_reason: null,
    },
  ]),
  ...pieces.map((p) =>
    chatChunk([
      {
        index: 0,
        delta: legacy
          ? { function_call: { arguments: p } }
          : { tool_calls: [{ index: 0, function: { arguments: p } }] },
        finish_reason: null,
      },
    ]),
  ),
  chatChunk([{ index: 0, delta: {}, finish_reason: legacy ? 'function_call' : 'tool_calls' }]),
  'data: [DONE]\n\n',
];
const fnItem = (args: string, status: string) => ({
  id: 'fc_1',
  type: 'function_call',
  call_id: 'call_1',
  name: 'f',
  arguments: args,
  status,
});
const respObject = (output: unknown[], status: string) => ({
  id: 'resp_1',
  object: 'response',
  created_at: 1,
  status,
  model: 'gpt-4o',
  output,
  usage: status === 'completed' ? { input_tokens: 3, output_tokens: 5, total_tokens: 8 } : null,
});
/**
 * Responses frames of one function call: the item starts with the first piece of its arguments, the
 * others are deltas, then `.done`, `output_item.done` and `response.completed` with the whole text.
 */
const respToolFrames = (args: string, pieces: readonly string[]) => {
  let seq = 0;
  const ev = (o: { type: string } & Record<string, unknown>) =>
    frame({ ...o, sequence_number: seq++ }, o.type);
  return [
    ev({ type: 'response.created', response: respObject([], 'in_progress') }),
    ev({ type: 'response.output_item.added', output_index: 0, item: fnItem(pieces[0]!, 'in_progress') }),
    ...pieces
      .slice(1)
      .map((d) =>
        ev({ type: 'response.function_call_arguments.delta', item_id: 'fc_1', output_index: 0, delta: d }),
      ),
    ev({ type: 'response.function_call_arguments.done', item_id: 'fc_1', output_index: 0, arguments: args }),
    ev({ type: 'response.output_item.done', output_index: 0, item: fnItem(args, 'completed') }),
    ev({ type: 'response.completed', response: respObject([fnItem(args, 'completed')], 'completed') }),
  ];
};
/** Anthropic frames of one tool_use block whose input comes as `partial_json` pieces. */
const anthToolFrames = (pieces: readonly string[]) => [
  anthStart(),
  anthEv({
    type: 'content_block_start',
    index: 0,
    content_block: { type: 'tool_use', id: 'toolu_1', name: 'f', input: {} },
  }),
  ...pieces.map((p) =>
    anthEv({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: p } }),
  ),
  anthEv({ type: 'content_block_stop', index: 0 }),
  ...anthEnd('tool_use'),
];
/** Complete answers: a chat message with a tool call and a legacy function call, both with `args`. */
const chatToolAnswer = (args: string) =>
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          refusal: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: args } }],
          function_call: { name: 'g', arguments: args },
        },
        logprobs: null,
        finish_reason: 'tool_calls',
      },
    ],
    usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
  });
const respToolAnswer = (args: string) => JSON.stringify(respObject([fnItem(args, 'completed')], 'completed'));
/** An Anthropic message whose tool_use `input` is the JSON text `input`, written into the answer as it is. */
const anthToolAnswer = (input: string) =>
  `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":${input}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5}}`;

test('a key written with JSON \\u escapes inside tool-call arguments (chat tool calls and function calls, Responses function calls, Anthropic input_json and tool_use; streamed and complete; every character, some, split inside an escape across deltas, behind \\\\u0073 decoys) reaches no client: no 4 characters of its secret part in the arguments the client parses, the raw bytes, the log or the audit file', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const token = await s.appToken();
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const okey = s.openaiFake.key;
  const akey = s.anthropicFake.key;
  /** What the client parsed from the arguments it got, checked (and the decoys kept as text). */
  const checkParsed = (parsed: unknown, form: string, key: string, where: string) => {
    assertNoKeyFragments(JSON.stringify(parsed), key, `${where}, the arguments the client parsed`);
    const p = parsed as { k?: unknown; re?: unknown };
    assert.match(String(p.k), /\[REDACTED\]/, `${where}: the key was redacted where it was`);
    if (form === 'decoy') assert.equal(p.re, String.raw`\u0073\u006b`, `${where}: the decoys are text`);
  };
  const checkRaw = async (from: number, key: string, where: string) => {
    const raw = await rawSince(seen, from);
    assertNoKeyFragments(raw, key, `${where}, the raw bytes`);
    assertNoKeyFragments(
      unescapeJson(unescapeJson(raw)),
      key,
      `${where}, the raw bytes as a client parses them`,
    );
  };
  for (const form of ESC_FORMS) {
    for (const cut of ['coarse', 'fine'] as const) {
      const pieces = (key: string) => cutArguments(escapedArguments(form, key), cut);
      // chat: a tool call, a legacy function call
      for (const legacy of [false, true]) {
        const where = `chat ${legacy ? 'function_call' : 'tool_calls'}, streamed (${form}, ${cut})`;
        s.openaiFake.rawStream = (key) => chatToolFrames(pieces(key), legacy);
        const from = seen.length;
        const done = await openai.chat.completions
          .stream({ model: 'gpt-4o', messages })
          .finalChatCompletion();
        const m = done.choices[0]!.message;
        const args = legacy
          ? m.function_call?.arguments
          : m.tool_calls?.[0]?.type === 'function'
            ? m.tool_calls[0].function.arguments
            : undefined;
        checkParsed(JSON.parse(args ?? ''), form, okey, where);
        assertNoKeyFragments(JSON.stringify(done), okey, `${where}, as the SDK accumulated it`);
        await checkRaw(from, okey, where);
      }
      // Responses: the item's first piece, deltas, .done, output_item.done, response.completed
      {
        const where = `Responses function_call, streamed (${form}, ${cut})`;
        s.openaiFake.rawStream = (key) => respToolFrames(escapedArguments(form, key), pieces(key));
        const from = seen.length;
        const held: string[] = [];
        // biome-ignore lint/suspicious/noExplicitAny: the SDK's snapshot, as ResponseStream accumulates it
        let snapshot: any;
        const done = await openai.responses
          .stream({ model: 'gpt-4o', input: 'one two three' })
          .on('event', (e) => {
            snapshot = accumulateResponse(e, snapshot);
            held.push(JSON.stringify(snapshot));
          })
          .finalResponse();
        const item = done.output[0];
        assert.equal(item?.type, 'function_call', where);
        checkParsed(JSON.parse(item.type === 'function_call' ? item.arguments : ''), form, okey, where);
        for (const [i, h] of held.entries())
          assertNoKeyFragments(
            unescapeJson(unescapeJson(h)),
            okey,
            `${where}, what the SDK held after event ${i}`,
          );
        await checkRaw(from, okey, where);
      }
      // Anthropic: input_json_delta pieces, which the SDK parses into the block's `input`
      {
        const where = `Anthropic input_json, streamed (${form}, ${cut})`;
        s.anthropicFake.rawStream = (key) => anthToolFrames(pieces(key));
        const from = seen.length;
        let partial = '';
        const msg = await anthropic.messages
          .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
          .on('inputJson', (d) => {
            partial += d;
          })
          .finalMessage();
        const block = msg.content[0] as Anthropic.ToolUseBlock;
        checkParsed(block.input, form, akey, where);
        checkParsed(JSON.parse(partial), form, akey, `${where} (the partial JSON joined)`);
        await checkRaw(from, akey, where);
      }
    }
    // complete answers
    {
      const where = `chat, complete (${form})`;
      s.openaiFake.rawAnswer = (key) => chatToolAnswer(escapedArguments(form, key));
      const from = seen.length;
      const done = await openai.chat.completions.create({ model: 'gpt-4o', messages });
      const m = done.choices[0]!.message;
      const tc = m.tool_calls?.[0];
      checkParsed(
        JSON.parse(tc?.type === 'function' ? tc.function.arguments : ''),
        form,
        okey,
        `${where}, tool_calls`,
      );
      checkParsed(JSON.parse(m.function_call?.arguments ?? ''), form, okey, `${where}, function_call`);
      await checkRaw(from, okey, where);
    }
    {
      const where = `Responses, complete (${form})`;
      s.openaiFake.rawAnswer = (key) => respToolAnswer(escapedArguments(form, key));
      const from = seen.length;
      const done = await openai.responses.create({ model: 'gpt-4o', input: 'one two three' });
      const item = done.output[0];
      assert.equal(item?.type, 'function_call', where);
      checkParsed(JSON.parse(item.type === 'function_call' ? item.arguments : ''), form, okey, where);
      await checkRaw(from, okey, where);
    }
    {
      // the input is an object of the answer: its escapes are read when the answer is parsed
      const where = `Anthropic tool_use, complete (${form})`;
      s.anthropicFake.rawAnswer = (key) => anthToolAnswer(escapedArguments(form, key));
      const from = seen.length;
      const msg = await anthropic.messages.create({ model: 'claude-sonnet-5-5', max_tokens: 100, messages });
      checkParsed((msg.content[0] as Anthropic.ToolUseBlock).input, form, akey, where);
      await checkRaw(from, akey, where);
    }
  }
  assertNothingInLogsOrAudit(s);
});

test('tool-call arguments with no printable-ASCII escape (non-ASCII escapes, surrogate pairs, control characters, \\\\u0073 as text) arrive byte for byte, streamed (cut inside escapes) and complete, on every API', async (t) => {
  const s = await startGatewaySetup(t);
  const seen: Seen[] = [];
  const token = await s.appToken();
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const args = String.raw`{"city":"K\u00f8benhavn","note":"\ud83d\ude00 \u0441\u043b\u043e\u0432\u043e \u2028","tab":"a\tb\n","re":"\\u0073 \\\\u0041 \\","q":"\"x\"","n":[1,2.5,-3e2,true,null]}`;
  const pieces = cutArguments(args, 'fine');
  for (const legacy of [false, true]) {
    s.openaiFake.rawStream = () => chatToolFrames(pieces, legacy);
    const done = await openai.chat.completions.stream({ model: 'gpt-4o', messages }).finalChatCompletion();
    const m = done.choices[0]!.message;
    const tc = m.tool_calls?.[0];
    assert.equal(
      legacy ? m.function_call?.arguments : tc?.type === 'function' && tc.function.arguments,
      args,
    );
  }
  s.openaiFake.rawStream = () => respToolFrames(args, pieces);
  const streamed = await openai.responses.stream({ model: 'gpt-4o', input: 'one two three' }).finalResponse();
  const item = streamed.output[0];
  assert.equal(item?.type === 'function_call' && item.arguments, args);
  s.anthropicFake.rawStream = () => anthToolFrames(pieces);
  const got: string[] = [];
  const msg = await anthropic.messages
    .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
    .on('inputJson', (d) => {
      got.push(d);
    })
    .finalMessage();
  assert.equal(got.join(''), args);
  assert.deepEqual((msg.content[0] as Anthropic.ToolUseBlock).input, JSON.parse(args));

  s.openaiFake.rawAnswer = () => chatToolAnswer(args);
  const chat = await openai.chat.completions.create({ model: 'gpt-4o', messages });
  const tc = chat.choices[0]?.message.tool_calls?.[0];
  assert.equal(tc?.type === 'function' && tc.function.arguments, args);
  assert.equal(chat.choices[0]?.message.function_call?.arguments, args);
  s.openaiFake.rawAnswer = () => respToolAnswer(args);
  const resp = await openai.responses.create({ model: 'gpt-4o', input: 'one two three' });
  const respItem = resp.output[0];
  assert.equal(respItem?.type === 'function_call' && respItem.arguments, args);
  s.anthropicFake.rawAnswer = () => anthToolAnswer(args);
  const plain = await anthropic.messages.create({ model: 'claude-sonnet-5-5', max_tokens: 100, messages });
  assert.deepEqual((plain.content[0] as Anthropic.ToolUseBlock).input, JSON.parse(args));
});

test('structured output is JSON the client parses too: a key written with \\u escapes in the generated text of a call asking for JSON (chat response_format, Responses text.format; streamed and complete) reaches no client', async (t) => {
  const s = await startGatewaySetup(t);
  await useTestKeys(s);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const okey = s.openaiFake.key;
  const contentFrames = (pieces: readonly string[]) => [
    chatChunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    ...pieces.map((p) =>
      chatChunk([{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }]),
    ),
    chatChunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
    'data: [DONE]\n\n',
  ];
  const chatAnswer = (content: string) =>
    JSON.stringify({
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content, refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
    });
  const respAnswer = (text: string) =>
    JSON.stringify(
      respObject(
        [
          {
            id: 'msg_1',
            type: 'message',
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
          },
        ],
        'completed',
      ),
    );
  const json = { type: 'json_object' as const };
  for (const form of ESC_FORMS) {
    for (const cut of ['coarse', 'fine'] as const) {
      const where = `chat content, streamed (${form}, ${cut})`;
      s.openaiFake.rawStream = (key) => contentFrames(cutArguments(escapedArguments(form, key), cut));
      const from = seen.length;
      const done = await openai.chat.completions
        .stream({ model: 'gpt-4o', messages, response_format: json })
        .finalChatCompletion();
      const parsed = JSON.parse(done.choices[0]!.message.content ?? '') as unknown;
      assertNoKeyFragments(JSON.stringify(parsed), okey, `${where}, the JSON the client parsed`);
      assertNoKeyFragments(unescapeJson(unescapeJson(await rawSince(seen, from))), okey, `${where}, raw`);
    }
    s.openaiFake.rawStream = undefined;
    s.openaiFake.rawAnswer = (key) => chatAnswer(escapedArguments(form, key));
    const plain = await openai.chat.completions.create({ model: 'gpt-4o', messages, response_format: json });
    assertNoKeyFragments(
      JSON.stringify(JSON.parse(plain.choices[0]!.message.content ?? '')),
      okey,
      `chat content, complete (${form})`,
    );
    s.openaiFake.rawAnswer = (key) => respAnswer(escapedArguments(form, key));
    const resp = await openai.responses.create({
      model: 'gpt-4o',
      input: 'one two three',
      text: { format: json },
    });
    assertNoKeyFragments(
      JSON.stringify(JSON.parse(resp.output_text)),
      okey,
      `Responses output_text, complete (${form})`,
    );
    s.openaiFake.rawAnswer = undefined;
  }
  // without a JSON format the text is prose: an escape is shown as written, never rewritten
  s.openaiFake.rawAnswer = () => chatAnswer(String.raw`write \u0041 for A`);
  const prose = await openai.chat.completions.create({ model: 'gpt-4o', messages });
  assert.equal(prose.choices[0]!.message.content, String.raw`write \u0041 for A`);
  s.openaiFake.rawAnswer = undefined;
  assertNothingInLogsOrAudit(s);
});
