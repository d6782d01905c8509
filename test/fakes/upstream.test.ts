import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startAnthropicFake } from './anthropic-upstream.ts';
import { maskedKeyForms, startOpenAiFake, type UpstreamFake } from './openai-upstream.ts';

/**
 * Contract tests: the official clients, unmodified, against the fakes. If these
 * pass, the fakes are faithful enough for the gateway to be tested with the
 * official clients through it.
 */

const question = 'What is the capital of France?'; // 6 words
const expected = 'You said 6 words.';

/** How many times `needle` occurs in `text`. */
const count = (text: string, needle: string) => text.split(needle).length - 1;

/** Raw SSE frames of a response, for asserting the wire format itself. */
async function sseFrames(res: Response): Promise<string[]> {
  const text = await res.text();
  return text.split('\n\n').filter((f) => f !== '');
}

describe('OpenAI fake with the official openai client', () => {
  let fake: UpstreamFake;
  let client: OpenAI;
  before(async () => {
    fake = await startOpenAiFake();
    client = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: fake.key, maxRetries: 0 });
  });
  beforeEach(() => fake.reset());
  after(() => fake.close());

  it('chat.completions.create: a full chat.completion with usage; the fake records the key, host and path', async () => {
    const c = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: question },
      ],
    });
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.choices[0]?.message.content, expected);
    assert.equal(c.choices[0]?.finish_reason, 'stop');
    assert.deepEqual(
      [c.usage?.prompt_tokens, c.usage?.completion_tokens, c.usage?.total_tokens],
      [8, 4, 12], // 2 + 6 prompt words; 4 reply words
    );
    const r = fake.lastRequest()!;
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/v1/chat/completions');
    assert.equal(r.headers.authorization, `Bearer ${fake.key}`);
    assert.equal(r.headers.host, `127.0.0.1:${fake.port}`);
    assert.equal((r.body as { model: string }).model, 'gpt-4o-mini');
  });

  it('chat stream: chunks word by word, a usage chunk with empty choices when include_usage, then [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: question }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: string[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice?.delta.content) deltas.push(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) {
        assert.deepEqual(chunk.choices, []);
        usage = chunk.usage;
      } else assert.equal(chunk.usage, null);
    }
    assert.deepEqual(deltas, ['You', ' said', ' 6', ' words.']);
    assert.equal(finish, 'stop');
    assert.equal(chunks, 1 + 4 + 1 + 1);
    assert.equal(usage?.prompt_tokens, 6);
    assert.equal(usage?.completion_tokens, 4);

    // The wire format, exactly: data-only frames ending with [DONE]; no usage key without include_usage.
    const res = await fetch(`${fake.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fake.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const frames = await sseFrames(res);
    assert.equal(frames.at(-1), 'data: [DONE]');
    for (const f of frames.slice(0, -1)) {
      assert.match(f, /^data: \{/);
      assert.equal('usage' in JSON.parse(f.slice(6)), false);
    }
  });

  it('chat.completions.stream helper accumulates the final completion', async () => {
    const stream = client.chat.completions.stream({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: question }],
      stream_options: { include_usage: true },
    });
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0]?.message.content, expected);
    assert.equal(final.usage?.total_tokens, 10);
  });

  it('responses.create: a response object with output, output_text and usage', async () => {
    const r = await client.responses.create({ model: 'gpt-4.1', instructions: 'Be brief.', input: question });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, expected);
    assert.equal(r.output[0]?.type, 'message');
    assert.deepEqual([r.usage?.input_tokens, r.usage?.output_tokens, r.usage?.total_tokens], [8, 4, 12]);
    assert.equal(fake.lastRequest()?.path, '/v1/responses');
  });

  it('responses stream: the documented events in order, accumulated by responses.stream()', async () => {
    const raw = await client.responses.create({
      model: 'gpt-4.1',
      input: [{ role: 'user', content: [{ type: 'input_text', text: question }] }],
      stream: true,
    });
    const types: string[] = [];
    const seqs: number[] = [];
    let text = '';
    for await (const e of raw) {
      types.push(e.type);
      seqs.push(e.sequence_number);
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed') assert.equal(e.response.usage?.output_tokens, 4);
    }
    assert.equal(text, expected);
    assert.deepEqual(
      types.filter((t, i) => t !== types[i - 1]),
      [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
        'response.output_text.delta',
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
        'response.completed',
      ],
    );
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i),
    );

    const stream = client.responses.stream({ model: 'gpt-4.1', input: question });
    const deltas: string[] = [];
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    assert.equal(final.output_text, expected);
    assert.equal(final.usage?.input_tokens, 6);
    assert.equal(deltas.length, 4);
  });

  it('embeddings: the client default (base64) decodes to floats, and float works too', async () => {
    const a = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: ['hello world', 'bye'],
    });
    assert.equal(a.data.length, 2);
    assert.equal(a.data[0]?.embedding.length, 8);
    assert.equal(a.usage.prompt_tokens, 3);
    assert.equal((fake.lastRequest()!.body as { encoding_format: string }).encoding_format, 'base64');
    const b = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: 'hello world',
      encoding_format: 'float',
      dimensions: 16,
    });
    assert.equal(b.data[0]?.embedding.length, 16);
    const c = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: 'hello world',
      encoding_format: 'float',
    });
    assert.deepEqual(
      c.data[0]?.embedding.map((x) => x.toFixed(5)),
      a.data[0]?.embedding.map((x) => x.toFixed(5)),
      'deterministic, and base64 decodes to the same floats',
    );
  });

  it('models.list and models.retrieve', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('gpt-4o'));
    assert.equal((await client.models.retrieve('gpt-4o')).object, 'model');
    await assert.rejects(client.models.retrieve('nope'), OpenAI.NotFoundError);
  });

  it('a wrong or missing key gets AuthenticationError with the documented error object (key masked)', async () => {
    const bad = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: 'sk-wrong-0123456789', maxRetries: 0 });
    await assert.rejects(
      bad.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.AuthenticationError);
        assert.equal(err.status, 401);
        assert.equal(err.code, 'invalid_api_key');
        assert.equal(err.type, 'invalid_request_error');
        assert.equal(err.param, null);
        assert.ok(!err.message.includes('sk-wrong-0123456789'));
        assert.ok(err.requestID?.startsWith('req_'));
        return true;
      },
    );
    const res = await fetch(`${fake.url}/v1/models`);
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  });

  it('setKey changes the only accepted key', async () => {
    const old = fake.key;
    fake.setKey('sk-proj-rotated');
    try {
      await assert.rejects(client.models.list(), OpenAI.AuthenticationError);
      const c2 = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: 'sk-proj-rotated', maxRetries: 0 });
      await c2.models.list();
    } finally {
      fake.setKey(old);
    }
  });

  it('fail knob: typed errors, the key echoed in the message, for `times` requests only', async () => {
    fake.fail = { status: 429, times: 2, retryAfter: 7 };
    for (let i = 0; i < 2; i++) {
      await assert.rejects(client.models.list(), (err: unknown) => {
        assert.ok(err instanceof OpenAI.RateLimitError);
        assert.equal(err.code, 'rate_limit_exceeded');
        assert.ok(err.message.includes(fake.key), 'a careless provider echoes the key');
        assert.equal(err.headers?.get('retry-after'), '7');
        return true;
      });
    }
    await client.models.list();
    assert.equal(fake.fail, undefined);
    fake.fail = { status: 500, times: 1 };
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
      OpenAI.InternalServerError,
    );
  });

  it('echoKey: whole, split across two chunks, base64', async () => {
    const key = fake.key;
    fake.echoKey = 'whole';
    const whole = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.ok(whole.choices[0]?.message.content?.includes(key));

    fake.echoKey = 'split';
    const deltas: string[] = [];
    const s = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    for await (const c of s) if (c.choices[0]?.delta.content) deltas.push(c.choices[0].delta.content);
    assert.ok(deltas.join('').includes(key));
    assert.ok(
      deltas.every((d) => !d.includes(key)),
      'no single chunk holds the whole key',
    );
    const i = deltas.findIndex((d) => d.endsWith(key.slice(0, key.length >> 1)));
    assert.equal(deltas[i + 1], key.slice(key.length >> 1));

    fake.echoKey = 'base64';
    const r = await client.responses.create({ model: 'gpt-4o', input: 'hi' });
    assert.ok(r.output_text.includes(Buffer.from(key).toString('base64')));
    assert.ok(!r.output_text.includes(key));
  });

  it('reply and usage overrides; max_tokens truncates with finish_reason length', async () => {
    fake.reply = 'one two three four five';
    fake.usage = { input: 100, output: 200 };
    const c = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(c.choices[0]?.message.content, 'one two three four five');
    assert.deepEqual(
      [c.usage?.prompt_tokens, c.usage?.completion_tokens, c.usage?.total_tokens],
      [100, 200, 300],
    );
    fake.usage = undefined;
    const t = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'x' }],
      max_completion_tokens: 2,
    });
    assert.equal(t.choices[0]?.message.content, 'one two');
    assert.equal(t.choices[0]?.finish_reason, 'length');
  });

  it('redirectTo answers 307 with Location; delayMs and chunkDelayMs pace the answer', async () => {
    fake.redirectTo = 'http://127.0.0.1:1/elsewhere';
    const res = await fetch(`${fake.url}/v1/models`, {
      headers: { authorization: `Bearer ${fake.key}` },
      redirect: 'manual',
    });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), 'http://127.0.0.1:1/elsewhere');
    fake.redirectTo = undefined;

    fake.delayMs = 80;
    let t0 = Date.now();
    await client.models.list();
    assert.ok(Date.now() - t0 >= 70);
    fake.delayMs = 0;

    fake.chunkDelayMs = 25;
    t0 = Date.now();
    const times: number[] = [];
    const s = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    for await (const _ of s) times.push(Date.now() - t0);
    assert.ok(times.at(-1)! - times[0]! >= 100, 'events arrive spread out, not in one piece');
  });

  it('streamFailure: an in-stream error event surfaces as an APIError; reset drops the connection', async () => {
    fake.streamFailure = { afterEvents: 2, mode: 'error' };
    const s = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _ of s);
    }, OpenAI.APIError);
    fake.streamFailure = { afterEvents: 2, mode: 'reset' };
    const s2 = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _ of s2);
    });
  });

  it('keyEcho in chat streams: content, refusal, tool calls interleaved by index, function_call, audio transcript and logprobs accumulate to the echoed key in the official stream helper, for each of n choices', async () => {
    const key = fake.key;
    const copies = key.length - 1; // `every`: one copy of the key per split position
    fake.honorN = true;
    for (const field of [
      'text',
      'refusal',
      'tool_calls',
      'function_call',
      'audio_transcript',
      'logprobs',
    ] as const) {
      fake.keyEcho = { field };
      const done = await client.chat.completions
        .stream({ model: 'gpt-4o', n: 2, messages: [{ role: 'user', content: question }] })
        .finalChatCompletion();
      assert.equal(done.choices.length, 2, field);
      for (const c of done.choices) {
        const m = c.message;
        const got =
          field === 'text'
            ? (m.content ?? '')
            : field === 'refusal'
              ? (m.refusal ?? '')
              : field === 'tool_calls'
                ? (m.tool_calls ?? [])
                    .map((t) => (t.type === 'function' ? t.function.arguments : ''))
                    .join('')
                : field === 'function_call'
                  ? (m.function_call?.arguments ?? '')
                  : field === 'audio_transcript'
                    ? (m.audio?.transcript ?? '')
                    : (c.logprobs?.content ?? []).map((l) => l.token).join('');
        assert.equal(
          count(got, key),
          field === 'tool_calls' ? 3 * copies : copies,
          `${field} of choice ${c.index}`,
        );
        if (field === 'tool_calls') {
          assert.equal(m.tool_calls?.length, 3);
          for (const t of m.tool_calls ?? []) {
            assert.ok(t.type === 'function');
            assert.equal(JSON.parse(t.function.arguments).note.split(key).length - 1, copies);
          }
        }
        if (field === 'function_call') assert.equal(JSON.parse(m.function_call?.arguments ?? '').n, c.index);
        if (field === 'logprobs') {
          const bytes = (c.logprobs?.content ?? []).flatMap((l) => l.bytes ?? []);
          assert.equal(count(Buffer.from(bytes).toString('utf8'), key), copies);
        }
      }
      // the key is split: no single event holds it whole
      assert.ok(
        fake.sentEvents.every((f) => !f.includes(key)),
        field,
      );
    }
  });

  it('keyEcho in reasoning fields of OpenAI-compatible servers (reasoning, reasoning_content), one character a chunk', async () => {
    const key = fake.key;
    for (const field of ['reasoning', 'reasoning_content'] as const) {
      fake.keyEcho = { field, split: 'chars' };
      const stream = await client.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: question }],
        stream: true,
      });
      let joined = '';
      for await (const chunk of stream) {
        const d = chunk.choices[0]?.delta as Record<string, unknown> | undefined;
        if (typeof d?.[field] === 'string') joined += d[field];
      }
      assert.equal(joined, ` key: ${key}`);
    }
  });

  it('honorN and toolCalls with no key: each choice streams its own text and tool calls, interleaved; sentEvents holds the frames', async () => {
    fake.honorN = true;
    fake.toolCalls = 2;
    const done = await client.chat.completions
      .stream({ model: 'gpt-4o', n: 3, messages: [{ role: 'user', content: question }] })
      .finalChatCompletion();
    assert.deepEqual(
      done.choices.map((c) => c.message.content),
      [0, 1, 2].map((i) => `[${i}]${expected}`),
    );
    for (const c of done.choices) {
      assert.equal(c.finish_reason, 'tool_calls');
      assert.deepEqual(
        (c.message.tool_calls ?? []).map((t) =>
          t.type === 'function' ? JSON.parse(t.function.arguments) : null,
        ),
        [0, 1].map((t) => ({ city: 'Paris', unit: 'celsius', who: `${c.index}/${t}` })),
      );
    }
    const indexes = fake.sentEvents
      .filter((f) => f.startsWith('data: {'))
      .map((f) => JSON.parse(f.slice(6)).choices[0]?.index)
      .filter((i) => i !== undefined);
    assert.deepEqual(indexes.slice(0, 3), [0, 1, 2], 'the choices are interleaved');
  });

  it('keyEcho in Responses streams: function call arguments (interleaved), refusal, reasoning summary and text, logprobs accumulate in responses.stream()', async () => {
    const key = fake.key;
    const copies = key.length - 1;
    for (const field of [
      'function_call_arguments',
      'refusal',
      'reasoning_summary',
      'reasoning_text',
      'logprobs',
    ] as const) {
      fake.keyEcho = { field };
      const final = await client.responses.stream({ model: 'gpt-4o', input: question }).finalResponse();
      const json = JSON.stringify(final.output);
      if (field === 'function_call_arguments') {
        const calls = final.output.filter((o) => o.type === 'function_call');
        assert.equal(calls.length, 2);
        for (const c of calls) assert.equal(count(JSON.parse(c.arguments).note, key), copies);
      } else if (field === 'logprobs') {
        assert.equal(count(final.output_text, key), copies);
        const msg = final.output.find((o) => o.type === 'message');
        const part = msg?.type === 'message' ? msg.content[0] : undefined;
        assert.ok(part?.type === 'output_text');
        assert.equal(count((part.logprobs ?? []).map((l) => l.token).join(''), key), copies);
      } else assert.equal(count(json, key), copies, field);
      assert.ok(
        fake.sentEvents.filter((f) => f.includes('.delta')).every((f) => !f.includes(key)),
        field,
      );
    }
  });

  it('keyEcho masked: the masked forms in the answer text, a failure message and an in-stream error event', async () => {
    const key = fake.key;
    const masked = maskedKeyForms(key);
    assert.ok(
      masked[0]!.startsWith(`sk-proj-${key.slice(8, 12)}****…`) && masked[0]!.endsWith(key.slice(-4)),
    );
    fake.keyEcho = { field: 'text', form: 'masked', split: 'whole' };
    const c = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
    });
    for (const m of masked) assert.ok(c.choices[0]?.message.content?.includes(m), m);
    fake.fail = { status: 401, times: 1 };
    const err = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => assert.fail('expected a 401'),
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
    assert.ok(err.message.includes(masked[0]!) && !err.message.includes(key), err.message);
    fake.streamFailure = { afterEvents: 2, mode: 'error' };
    const s = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    await assert.rejects(
      async () => {
        for await (const _ of s);
      },
      (e: unknown) => e instanceof OpenAI.APIError && e.message.includes(masked[0]!),
    );
  });

  it('validation errors use the documented shape with param', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o', messages: [] }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'messages',
    );
    const res = await fetch(`${fake.url}/v1/nowhere`, { headers: { authorization: `Bearer ${fake.key}` } });
    assert.equal(res.status, 404);
  });
});

describe('Anthropic fake with the official @anthropic-ai/sdk client', () => {
  let fake: UpstreamFake;
  let client: Anthropic;
  before(async () => {
    fake = await startAnthropicFake();
    client = new Anthropic({ baseURL: fake.url, apiKey: fake.key, maxRetries: 0 });
  });
  beforeEach(() => fake.reset());
  after(() => fake.close());

  it('messages.create: a message with usage; the fake records the key and anthropic-version', async () => {
    const m = await client.messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 256,
      system: 'Be brief.',
      messages: [{ role: 'user', content: question }],
    });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.stop_reason, 'end_turn');
    const block = m.content[0];
    assert.equal(block?.type, 'text');
    assert.equal(block?.type === 'text' ? block.text : '', expected);
    assert.deepEqual([m.usage.input_tokens, m.usage.output_tokens], [8, 4]);
    const r = fake.lastRequest()!;
    assert.equal(r.path, '/v1/messages');
    // @anthropic-ai/sdk >= 1.0 (API version 2026-10-21) sends apiKey as a bearer token, not x-api-key.
    assert.equal(r.headers.authorization, `Bearer ${fake.key}`);
    assert.equal(r.headers['x-api-key'], undefined);
    assert.equal(r.headers['anthropic-version'], '2026-10-21');
    assert.equal(r.headers.host, `127.0.0.1:${fake.port}`);
  });

  it('stream: true gives the documented event sequence, each with its event: line', async () => {
    const stream = await client.messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    const types: string[] = [];
    let text = '';
    let outputTokens = 0;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
      if (e.type === 'message_start') assert.equal(e.message.usage.input_tokens, 6);
      if (e.type === 'message_delta') {
        outputTokens = e.usage.output_tokens;
        assert.equal(e.delta.stop_reason, 'end_turn');
      }
    }
    assert.equal(text, expected);
    assert.equal(outputTokens, 4);
    assert.deepEqual(types, [
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]); // ping is swallowed by the client

    const res = await fetch(`${fake.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': fake.key,
        'anthropic-version': '2023-06-01',
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        model: 'm',
        max_tokens: 10,
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    const frames = await sseFrames(res);
    for (const f of frames) {
      const [ev, data] = f.split('\n');
      const type = ev!.replace(/^event: /, '');
      assert.equal(JSON.parse(data!.replace(/^data: /, '')).type, type);
    }
    assert.ok(frames.some((f) => f.startsWith('event: ping\n')));
  });

  it('messages.stream accumulates the final message with usage', async () => {
    const stream = client.messages.stream({
      model: 'claude-sonnet-5-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: question }],
    });
    const pieces: string[] = [];
    stream.on('text', (t) => pieces.push(t));
    const final = await stream.finalMessage();
    assert.equal(pieces.join(''), expected);
    assert.equal(final.usage.output_tokens, 4);
    assert.equal(final.usage.input_tokens, 6);
    assert.equal(await stream.finalText(), expected);
  });

  it('countTokens', async () => {
    const c = await client.messages.countTokens({
      model: 'claude-sonnet-5-5',
      messages: [{ role: 'user', content: [{ type: 'text', text: question }] }],
    });
    assert.equal(c.input_tokens, 6);
    assert.equal(fake.lastRequest()?.path, '/v1/messages/count_tokens');
  });

  it('models.list', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('claude-sonnet-5-5'));
  });

  it('a wrong key gets AuthenticationError with {type: error, error: {type, message}}', async () => {
    const bad = new Anthropic({ baseURL: fake.url, apiKey: 'sk-ant-wrong', maxRetries: 0 });
    await assert.rejects(
      bad.messages.create({
        model: 'claude-sonnet-5-5',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'hi' }],
      }),
      (err: unknown) => {
        assert.ok(err instanceof Anthropic.AuthenticationError);
        assert.equal(err.status, 401);
        assert.equal(err.type, 'authentication_error');
        assert.ok(err.requestID?.startsWith('req_'));
        assert.deepEqual(err.error, {
          type: 'error',
          error: { type: 'authentication_error', message: 'invalid x-api-key' },
          request_id: err.requestID,
        });
        return true;
      },
    );
  });

  it('anthropic-version is required; x-api-key works too; every credential presented must be the key', async () => {
    const noVersion = await fetch(`${fake.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'x-api-key': fake.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(noVersion.status, 400);
    assert.equal(
      ((await noVersion.json()) as { error: { type: string } }).error.type,
      'invalid_request_error',
    );
    const count = (headers: Record<string, string>) =>
      fetch(`${fake.url}/v1/messages/count_tokens`, {
        method: 'POST',
        headers: { 'anthropic-version': '2023-06-01', ...headers },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi there' }] }),
      });
    const viaHeader = await count({ 'x-api-key': fake.key });
    assert.equal(viaHeader.status, 200);
    assert.deepEqual(await viaHeader.json(), { input_tokens: 2 });
    assert.equal((await count({ 'x-api-key': fake.key, authorization: 'Bearer other' })).status, 401);
    assert.equal((await count({})).status, 401);
  });

  it('fail knob: 529 OverloadedError and 429 RateLimitError echoing the key', async () => {
    fake.fail = { status: 529, times: 1 };
    await assert.rejects(
      client.messages.create({
        model: 'claude-sonnet-5-5',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
      }),
      (err: unknown) => {
        assert.ok(err instanceof Anthropic.OverloadedError);
        assert.equal(err.type, 'overloaded_error');
        assert.ok(err.message.includes(fake.key));
        return true;
      },
    );
    fake.fail = { status: 429, times: 1, retryAfter: 3 };
    await assert.rejects(
      client.messages.countTokens({ model: 'claude-sonnet-5-5', messages: [{ role: 'user', content: 'x' }] }),
      Anthropic.RateLimitError,
    );
    const ok = await client.messages.countTokens({
      model: 'claude-sonnet-5-5',
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(ok.input_tokens, 1);
  });

  it('echoKey split across two deltas, and the in-stream error event', async () => {
    const key = fake.key;
    fake.echoKey = 'split';
    const deltas: string[] = [];
    const stream = client.messages.stream({
      model: 'claude-sonnet-5-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: 'hi' }],
    });
    stream.on('text', (t) => deltas.push(t));
    const final = await stream.finalText();
    assert.ok(final.includes(key));
    assert.ok(deltas.every((d) => !d.includes(key)));

    fake.echoKey = 'base64';
    const m = await client.messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: 'hi' }],
    });
    const b = m.content[0];
    assert.ok(b?.type === 'text' && b.text.includes(Buffer.from(key).toString('base64')));

    fake.echoKey = 'none';
    fake.streamFailure = { afterEvents: 3, mode: 'error' };
    const s = await client.messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    await assert.rejects(
      async () => {
        for await (const _ of s);
      },
      (err: unknown) => err instanceof Anthropic.APIError && err.type === 'overloaded_error',
    );
  });

  it('keyEcho in thinking and tool input: messages.stream() accumulates the thinking text and the tool_use input from split deltas', async () => {
    const key = fake.key;
    const copies = key.length - 1;
    fake.keyEcho = { field: 'thinking' };
    const thought = await client.messages
      .stream({ model: 'claude-sonnet-5-5', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage();
    const t = thought.content[0];
    assert.ok(t?.type === 'thinking');
    assert.equal(count(t.thinking, key), copies);
    assert.ok(t.signature.length > 0);
    assert.equal(thought.content[1]?.type, 'text');

    fake.keyEcho = { field: 'input_json', split: 'chars' };
    const tools = await client.messages
      .stream({ model: 'claude-sonnet-5-5', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage();
    assert.equal(tools.stop_reason, 'tool_use');
    const uses = tools.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 2);
    for (const [k, u] of uses.entries()) assert.deepEqual(u.input, { note: ` key: ${key}`, n: k });
    assert.ok(fake.sentEvents.every((f) => !f.includes(key)));
  });

  it('keyEcho masked: the masked forms in a failure message and in the in-stream error event', async () => {
    const masked = maskedKeyForms(fake.key);
    assert.ok(masked[0]!.startsWith(`sk-ant-api03-${fake.key.slice(13, 17)}****…`));
    fake.keyEcho = { field: 'text', form: 'masked', split: 'whole' };
    fake.fail = { status: 529, times: 1 };
    const err = await client.messages
      .create({ model: 'claude-sonnet-5-5', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => assert.fail('expected a 529'),
        (e: unknown) => e as InstanceType<typeof Anthropic.APIError>,
      );
    assert.ok(err.message.includes(masked[0]!) && !err.message.includes(fake.key), err.message);
  });

  it('2026-10-21 rejects temperature/top_p/top_k; 2023-06-01 accepts them', async () => {
    const send = (version: string) =>
      fetch(`${fake.url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': fake.key, 'anthropic-version': version },
        body: JSON.stringify({
          model: 'm',
          max_tokens: 9,
          temperature: 1,
          messages: [{ role: 'user', content: 'x' }],
        }),
      });
    const rejected = await send('2026-10-21');
    assert.equal(rejected.status, 400);
    assert.equal(
      ((await rejected.json()) as { error: { type: string } }).error.type,
      'invalid_request_error',
    );
    assert.equal((await send('2023-06-01')).status, 200);
  });

  it('max_tokens truncates with stop_reason max_tokens; missing max_tokens is a 400', async () => {
    const m = await client.messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 2,
      messages: [{ role: 'user', content: question }],
    });
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.usage.output_tokens, 2);
    const res = await fetch(`${fake.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': fake.key, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('request-id')?.startsWith('req_'), true);
  });
});
