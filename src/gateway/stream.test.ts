import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WireApi } from './providers.ts';
import { secretRedactor } from './stages/output-filter.ts';
import { createStreamRelay, type SseEvent } from './stream.ts';

/**
 * The stream relay (stream.ts) on its own: events in, events out, with the
 * gateway's always-on key redaction as the filter. The end-to-end properties
 * (through the gateway, with the official clients) are in
 * test/e2e/gateway-streams.test.ts.
 */

// biome-ignore lint/suspicious/noExplicitAny: parsed events, checked field by field
type Ev = Record<string, any>;

const KEY = 'sk-proj-Q7vZ3mK9pL2xR8tW4nB6yH1cF5jD0gSaE2uI3oP7kM2qN9rT4vX8zC6bV1nL5hG0fJ3dK7sA9wE2';
const SECRET = KEY.slice('sk-proj-'.length);

function relay(api: WireApi) {
  const whole = secretRedactor([KEY]);
  const r = createStreamRelay({
    api,
    filter: () => secretRedactor([KEY]),
    clean: (t) => whole.push(t) + whole.end(),
  });
  const out: SseEvent[] = [];
  const terminals: number[] = [];
  return {
    push(event: string | undefined, data: unknown) {
      const step = r.push(event, typeof data === 'string' ? data : JSON.stringify(data));
      out.push(...step.events);
      if (step.terminal) terminals.push(out.length - 1);
      return step;
    },
    end: () => out.push(...r.end()),
    out,
    terminals,
    text: () => r.text(),
    parsed: () => out.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data) as Ev),
  };
}

/** Every 4-character run of the key's secret part that shows in `text`. */
const fragments = (text: string) => {
  const found = new Set<string>();
  for (let i = 0; i + 4 <= SECRET.length; i++)
    if (text.includes(SECRET.slice(i, i + 4))) found.add(SECRET.slice(i, i + 4));
  return [...found];
};

const chunk = (choices: unknown[]) => ({
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'gpt-4o',
  choices,
  usage: null,
});
const delta = (
  index: number,
  d: Record<string, unknown>,
  finish: string | null = null,
  logprobs: unknown = null,
) => ({
  index,
  delta: d,
  logprobs,
  finish_reason: finish,
});

/** What a client concatenates per choice and field from chat chunks (as openai's ChatCompletionStream). */
function accumulateChat(events: readonly Ev[]) {
  const choices: Record<
    number,
    { content: string; refusal: string; args: Record<number, string>; reasoning: string }
  > = {};
  for (const e of events) {
    for (const c of e.choices ?? []) {
      choices[c.index] ??= { content: '', refusal: '', args: {}, reasoning: '' };
      const a = choices[c.index]!;
      a.content += c.delta?.content ?? '';
      a.refusal += c.delta?.refusal ?? '';
      a.reasoning += c.delta?.reasoning_content ?? '';
      for (const t of c.delta?.tool_calls ?? [])
        a.args[t.index] = (a.args[t.index] ?? '') + (t.function?.arguments ?? '');
    }
  }
  return choices;
}

describe('stream relay: Chat Completions', () => {
  test('n = 2 with no secret: each choice text arrives exactly as sent, whatever the interleaving', () => {
    const r = relay('openai');
    const texts = ['Hello from the first choice, word by word.', 'Bonjour depuis la seconde, mot à mot!'];
    const pieces = texts.map((t) => t.match(/\s*\S+/g)!);
    r.push(
      undefined,
      chunk([delta(0, { role: 'assistant', content: '' }), delta(1, { role: 'assistant', content: '' })]),
    );
    for (let i = 0; i < Math.max(...pieces.map((p) => p.length)); i++) {
      for (const c of [0, 1])
        if (pieces[c]![i]) r.push(undefined, chunk([delta(c, { content: pieces[c]![i] })]));
    }
    r.push(undefined, chunk([delta(0, {}, 'stop')]));
    r.push(undefined, chunk([delta(1, {}, 'stop')]));
    r.push(undefined, '[DONE]');
    const acc = accumulateChat(r.parsed());
    assert.equal(acc[0]!.content, texts[0]);
    assert.equal(acc[1]!.content, texts[1]);
    assert.equal(r.text(), texts.join(''), 'the generated text: each choice in index order');
    assert.deepEqual(r.terminals, [r.out.length - 1]);
  });

  test('what a choice held back comes before that choice’s finish chunk, shaped as its own delta', () => {
    const r = relay('openai');
    r.push(undefined, chunk([delta(1, { content: 'tail' })]));
    assert.equal(r.out.length, 1);
    assert.equal(r.parsed()[0]!.choices[0].delta.content, '', '"tail" may start a key: held back');
    r.push(undefined, chunk([delta(1, {}, 'stop')]));
    const [, flushed, finish] = r.parsed();
    assert.deepEqual(flushed!.choices, [
      { index: 1, delta: { content: 'tail' }, logprobs: null, finish_reason: null },
    ]);
    assert.equal(flushed!.id, 'chatcmpl-1');
    assert.equal(finish!.choices[0].finish_reason, 'stop');
  });

  test('a key split across the arguments of interleaved tool calls, of two choices, is redacted in each', () => {
    const r = relay('openai');
    const cuts = [3, 11, 20, 37, 60];
    const pieces = (s: string) => [0, ...cuts].map((c, i) => s.slice(c, cuts[i] ?? s.length));
    const args = [0, 1].map((t) => pieces(`{"note":"${KEY}","t":${t}}`));
    for (const c of [0, 1]) {
      for (const t of [0, 1]) {
        r.push(
          undefined,
          chunk([
            delta(c, {
              tool_calls: [
                { index: t, id: `call_${c}${t}`, type: 'function', function: { name: 'f', arguments: '' } },
              ],
            }),
          ]),
        );
      }
    }
    for (let i = 0; i < args[0]!.length; i++) {
      for (const c of [0, 1])
        for (const t of [1, 0])
          r.push(
            undefined,
            chunk([delta(c, { tool_calls: [{ index: t, function: { arguments: args[t]![i] } }] })]),
          );
    }
    r.push(undefined, chunk([delta(0, {}, 'tool_calls'), delta(1, {}, 'tool_calls')]));
    r.push(undefined, '[DONE]');
    const acc = accumulateChat(r.parsed());
    for (const c of [0, 1]) {
      for (const t of [0, 1]) assert.deepEqual(JSON.parse(acc[c]!.args[t]!), { note: '[REDACTED]', t });
    }
    assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), []);
  });

  test('refusal and reasoning_content are streams of their own: a key split in each is redacted', () => {
    const r = relay('openai');
    for (const field of ['refusal', 'reasoning_content']) {
      for (const p of [' I cannot share ', KEY.slice(0, 9), KEY.slice(9, 40), KEY.slice(40), ' sorry'])
        r.push(undefined, chunk([delta(0, { [field]: p })]));
    }
    r.push(undefined, chunk([delta(0, {}, 'stop')]));
    const acc = accumulateChat(r.parsed())[0]!;
    assert.equal(acc.refusal, ' I cannot share [REDACTED] sorry');
    assert.equal(acc.reasoning, ' I cannot share [REDACTED] sorry');
  });

  test('logprobs are held to the choice’s finish chunk, whole; nulled when their tokens spell a key', () => {
    const lp = (token: string) => ({
      content: [{ token, logprob: -1, bytes: [...Buffer.from(token)], top_logprobs: [] }],
      refusal: null,
    });
    const plain = relay('openai');
    for (const t of ['Hi', ' there']) plain.push(undefined, chunk([delta(0, { content: t }, null, lp(t))]));
    plain.push(undefined, chunk([delta(0, {}, 'stop')]));
    const events = plain.parsed();
    assert.ok(events.slice(0, -1).every((e) => e.choices[0].logprobs === null));
    assert.deepEqual(
      events.at(-1)!.choices[0].logprobs.content.map((l: { token: string }) => l.token),
      ['Hi', ' there'],
    );

    const keyed = relay('openai');
    for (const t of ['key ', KEY.slice(0, 20), KEY.slice(20)])
      keyed.push(undefined, chunk([delta(0, { content: t }, null, lp(t))]));
    keyed.push(undefined, chunk([delta(0, {}, 'stop')]));
    assert.equal(keyed.parsed().at(-1)!.choices[0].logprobs, null);
    assert.deepEqual(fragments(keyed.out.map((e) => e.data).join('\n')), []);
  });

  test('a masked key in a refusal split over chunks is redacted (the run rule across events)', () => {
    const r = relay('openai');
    for (const p of [
      'Your key sk-proj-',
      SECRET.slice(0, 2),
      `${SECRET.slice(2, 4)}***`,
      `*…${SECRET.slice(-4, -1)}`,
      `${SECRET.slice(-1)} is wrong`,
    ])
      r.push(undefined, chunk([delta(0, { refusal: p })]));
    r.push(undefined, '[DONE]');
    assert.equal(
      accumulateChat(r.parsed())[0]!.refusal,
      'Your key sk-proj-[REDACTED]****…[REDACTED] is wrong',
    );
  });

  test('the end of input flushes what is held back', () => {
    const r = relay('openai');
    r.push(undefined, chunk([delta(0, { content: 'ends here' })]));
    r.end();
    assert.equal(accumulateChat(r.parsed())[0]!.content, 'ends here');
  });
});

describe('stream relay: Responses', () => {
  const ev = (type: string, data: Record<string, unknown>, seq: number) => ({
    type,
    ...data,
    sequence_number: seq,
  });
  test('function call argument deltas of two items, interleaved: each redacted, its rest flushed before its .done', () => {
    const r = relay('openai');
    let seq = 0;
    const items = ['fc_a', 'fc_b'];
    const args = items.map((_, k) => `{"note":"${KEY}","k":${k}}`);
    for (let i = 0; i < args[0]!.length; i += 7) {
      for (const [k, id] of items.entries()) {
        r.push(
          'response.function_call_arguments.delta',
          ev(
            'response.function_call_arguments.delta',
            { item_id: id, output_index: k, delta: args[k]!.slice(i, i + 7) },
            seq++,
          ),
        );
      }
    }
    for (const [k, id] of items.entries()) {
      r.push(
        'response.function_call_arguments.done',
        ev(
          'response.function_call_arguments.done',
          { item_id: id, output_index: k, arguments: args[k] },
          seq++,
        ),
      );
    }
    r.push('response.completed', ev('response.completed', { response: { output: [] } }, seq++));
    const events = r.parsed();
    for (const [k, id] of items.entries()) {
      const deltas = events.filter(
        (e) => e.type === 'response.function_call_arguments.delta' && e.item_id === id,
      );
      assert.deepEqual(JSON.parse(deltas.map((e) => e.delta).join('')), { note: '[REDACTED]', k });
      const done = events.findIndex(
        (e) => e.type === 'response.function_call_arguments.done' && e.item_id === id,
      );
      assert.ok(events.indexOf(deltas.at(-1)!) < done, 'the last delta comes before the .done');
      assert.deepEqual(
        JSON.parse(events[done]!.arguments),
        { note: '[REDACTED]', k },
        'the complete text is cleaned whole',
      );
    }
    assert.equal(r.out.at(-1)!.event, 'response.completed');
    assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), []);
  });

  test('output_text deltas: the text for provenance, logprobs on deltas emptied', () => {
    const r = relay('openai');
    const ids = { item_id: 'msg_1', output_index: 0, content_index: 0 };
    r.push(
      'response.output_text.delta',
      ev(
        'response.output_text.delta',
        { ...ids, delta: 'Hello', logprobs: [{ token: 'Hello', logprob: -1 }] },
        0,
      ),
    );
    r.push(
      'response.output_text.delta',
      ev('response.output_text.delta', { ...ids, delta: ' world', logprobs: [] }, 1),
    );
    r.push(
      'response.output_text.done',
      ev('response.output_text.done', { ...ids, text: 'Hello world', logprobs: [] }, 2),
    );
    const events = r.parsed();
    assert.equal(
      events
        .filter((e) => e.type.endsWith('.delta'))
        .map((e) => e.delta)
        .join(''),
      'Hello world',
    );
    assert.ok(events.filter((e) => e.type.endsWith('.delta')).every((e) => e.logprobs.length === 0));
    assert.equal(r.text(), 'Hello world');
    const flushed = events[2]!;
    assert.deepEqual(flushed, {
      type: 'response.output_text.delta',
      ...ids,
      delta: 'world',
      logprobs: [],
      sequence_number: 2,
    });
  });
});

describe('stream relay: Anthropic', () => {
  const delta = (index: number, d: Record<string, unknown>) => ({
    type: 'content_block_delta',
    index,
    delta: d,
  });
  test('input_json_delta and thinking_delta carry a split key: redacted, the rest flushed before content_block_stop', () => {
    const r = relay('anthropic');
    r.push('message_start', {
      type: 'message_start',
      message: { content: [], usage: { input_tokens: 1, output_tokens: 1 } },
    });
    r.push('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'thinking', thinking: '', signature: '' },
    });
    for (const p of ['I saw ', KEY.slice(0, 30), KEY.slice(30), ' in the prompt'])
      r.push('content_block_delta', delta(0, { type: 'thinking_delta', thinking: p }));
    r.push('content_block_delta', delta(0, { type: 'signature_delta', signature: 'EqSig' }));
    r.push('content_block_stop', { type: 'content_block_stop', index: 0 });
    r.push('content_block_start', {
      type: 'content_block_start',
      index: 1,
      content_block: { type: 'tool_use', id: 'toolu_1', name: 't', input: {} },
    });
    const json = `{"note":"${KEY}"}`;
    for (let i = 0; i < json.length; i += 5)
      r.push(
        'content_block_delta',
        delta(1, { type: 'input_json_delta', partial_json: json.slice(i, i + 5) }),
      );
    r.push('content_block_stop', { type: 'content_block_stop', index: 1 });
    r.push('message_stop', { type: 'message_stop' });
    const events = r.parsed();
    const joined = (i: number, f: string) =>
      events
        .filter((e) => e.type === 'content_block_delta' && e.index === i)
        .map((e) => e.delta[f] ?? '')
        .join('');
    assert.equal(joined(0, 'thinking'), 'I saw [REDACTED] in the prompt');
    assert.deepEqual(JSON.parse(joined(1, 'partial_json')), { note: '[REDACTED]' });
    const stop1 = events.findIndex((e) => e.type === 'content_block_stop' && e.index === 1);
    assert.ok(events.slice(stop1 + 1).every((e) => e.type !== 'content_block_delta'));
    assert.deepEqual(r.out.at(-1), { event: 'message_stop', data: '{"type":"message_stop"}' });
    assert.deepEqual(r.terminals, [r.out.length - 1]);
    assert.equal(r.text(), '');
  });

  test('an error event is terminal: what was held back comes before it', () => {
    const r = relay('anthropic');
    r.push('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    });
    r.push('content_block_delta', delta(0, { type: 'text_delta', text: 'partial' }));
    const step = r.push('error', {
      type: 'error',
      error: { type: 'overloaded_error', message: `key ${KEY}` },
    });
    assert.equal(step.terminal, true);
    const events = r.parsed();
    assert.equal(events.at(-2)!.delta.text, 'partial');
    assert.equal(events.at(-1)!.error.message, 'key [REDACTED]');
    assert.equal(r.text(), 'partial');
  });
});
