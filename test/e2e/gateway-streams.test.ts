import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type Anthropic from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import type { EchoField, KeyEcho, UpstreamFake } from '../fakes/openai-upstream.ts';
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
