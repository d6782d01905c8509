import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { accumulateResponse } from 'openai/lib/responses/ResponseAccumulator';
import { N1_MODES, n1Events as n1EventsOf } from '../../test/fakes/responses-n1.ts';
import { secretRedactor } from './stages/output-filter.ts';
import {
  createSseParser,
  createStreamRelay,
  jsonCleaner,
  jsonTextNormalizer,
  normalizeJsonText,
  type SseEvent,
  StreamRefused,
} from './stream.ts';
import type { GatewayRoute } from './types.ts';

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

type Route = Extract<GatewayRoute, 'chat.completions' | 'responses' | 'messages'>;
function relay(route: Route, o: { maxStreams?: number } = {}) {
  const whole = secretRedactor([KEY]);
  const r = createStreamRelay({
    api: route === 'messages' ? 'anthropic' : 'openai',
    route,
    filter: () => secretRedactor([KEY]),
    clean: (t) => whole.push(t) + whole.end(),
    secrets: [KEY],
    ...o,
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
    get ended() {
      return r.ended;
    },
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
    const r = relay('chat.completions');
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

  test('what a choice held back is held across its finish chunk (clients go on appending) and comes before [DONE], shaped as its own delta', () => {
    const r = relay('chat.completions');
    r.push(undefined, chunk([delta(1, { content: 'tail' })]));
    assert.equal(r.out.length, 1);
    assert.equal(r.parsed()[0]!.choices[0].delta.content, '', '"tail" may start a key: held back');
    r.push(undefined, chunk([delta(1, {}, 'stop')]));
    assert.equal(r.out.length, 2, 'a finish_reason flushes nothing');
    r.push(undefined, '[DONE]');
    const [, finish, flushed] = r.parsed();
    assert.equal(finish!.choices[0].finish_reason, 'stop');
    assert.deepEqual(flushed!.choices, [
      { index: 1, delta: { content: 'tail' }, logprobs: null, finish_reason: null },
    ]);
    assert.equal(flushed!.id, 'chatcmpl-1');
    assert.deepEqual(r.out.at(-1), { event: undefined, data: '[DONE]' });
  });

  test('a key split across the arguments of interleaved tool calls, of two choices, is redacted in each', () => {
    const r = relay('chat.completions');
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
    const r = relay('chat.completions');
    for (const field of ['refusal', 'reasoning_content']) {
      for (const p of [' I cannot share ', KEY.slice(0, 9), KEY.slice(9, 40), KEY.slice(40), ' sorry'])
        r.push(undefined, chunk([delta(0, { [field]: p })]));
    }
    r.push(undefined, chunk([delta(0, {}, 'stop')]));
    r.push(undefined, '[DONE]');
    const acc = accumulateChat(r.parsed())[0]!;
    assert.equal(acc.refusal, ' I cannot share [REDACTED] sorry');
    assert.equal(acc.reasoning, ' I cannot share [REDACTED] sorry');
  });

  test('logprobs are held to the terminal event, whole; nulled when their tokens spell a key', () => {
    const lp = (token: string) => ({
      content: [{ token, logprob: -1, bytes: [...Buffer.from(token)], top_logprobs: [] }],
      refusal: null,
    });
    const plain = relay('chat.completions');
    for (const t of ['Hi', ' there']) plain.push(undefined, chunk([delta(0, { content: t }, null, lp(t))]));
    plain.push(undefined, chunk([delta(0, {}, 'stop')]));
    plain.push(undefined, '[DONE]');
    const events = plain.parsed();
    assert.ok(events.slice(0, -1).every((e) => e.choices[0].logprobs === null));
    assert.deepEqual(
      events.at(-1)!.choices[0].logprobs.content.map((l: { token: string }) => l.token),
      ['Hi', ' there'],
    );

    const keyed = relay('chat.completions');
    for (const t of ['key ', KEY.slice(0, 20), KEY.slice(20)])
      keyed.push(undefined, chunk([delta(0, { content: t }, null, lp(t))]));
    keyed.push(undefined, chunk([delta(0, {}, 'stop')]));
    keyed.end();
    assert.equal(keyed.parsed().at(-1)!.choices[0].logprobs, null);
    assert.deepEqual(fragments(keyed.out.map((e) => e.data).join('\n')), []);
  });

  test('audio data and transcript are streams of their own: each piece passes its filter once, a split key is redacted', () => {
    const r = relay('chat.completions');
    for (const p of [' key: ', KEY.slice(0, 21), KEY.slice(21), ' done'])
      r.push(undefined, chunk([delta(0, { audio: { id: 'audio_0', transcript: p, data: p } })]));
    r.push(undefined, chunk([delta(0, {}, 'stop')]));
    r.push(undefined, '[DONE]');
    for (const f of ['transcript', 'data'])
      assert.equal(
        r
          .parsed()
          .map((e) => e.choices[0]?.delta?.audio?.[f] ?? '')
          .join(''),
        ' key: [REDACTED] done',
      );
  });

  test('a masked key in a refusal split over chunks is redacted (the run rule across events)', () => {
    const r = relay('chat.completions');
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
    const r = relay('chat.completions');
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
    const r = relay('responses');
    let seq = 0;
    const items = ['fc_a', 'fc_b'];
    for (const [k, id] of items.entries())
      r.push(
        'response.output_item.added',
        ev(
          'response.output_item.added',
          { output_index: k, item: { id, type: 'function_call', arguments: '', name: 'f' } },
          seq++,
        ),
      );
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
    const r = relay('responses');
    const ids = { item_id: 'msg_1', output_index: 0, content_index: 0 };
    r.push(
      'response.output_item.added',
      ev(
        'response.output_item.added',
        { output_index: 0, item: { id: 'msg_1', type: 'message', content: [] } },
        0,
      ),
    );
    r.push(
      'response.content_part.added',
      ev('response.content_part.added', { ...ids, part: { type: 'output_text', text: '' } }, 0),
    );
    const before = r.out.length;
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
    const events = r.parsed().slice(before);
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
  test('input_json_delta and thinking_delta carry a split key: redacted, the rest held across content_block_stop to message_stop', () => {
    const r = relay('messages');
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
    assert.ok(
      events.slice(stop1 + 1, -1).every((e) => e.type === 'content_block_delta'),
      'what was held comes after the stops, as deltas of its block, before message_stop',
    );
    assert.deepEqual(r.out.at(-1), { event: 'message_stop', data: '{"type":"message_stop"}' });
    assert.deepEqual(r.terminals, [r.out.length - 1]);
    assert.equal(r.text(), '');
  });

  test('an error event is terminal: what was held back comes before it', () => {
    const r = relay('messages');
    r.push('message_start', { type: 'message_start', message: { content: [] } });
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

describe('SSE parsing (WHATWG HTML §9.2.6), as the clients parse it', () => {
  /** A stream exercising every rule; `eol` ends each line (a function: mixed endings). */
  const LINES = [
    ': a comment line',
    'data: {"n":1}',
    '',
    'event: message_start',
    'data:{"n":2}',
    '',
    'event: a name with no data dispatches nothing',
    '',
    'id: 7',
    'retry: 100',
    'data:  two spaces, one dropped',
    'data',
    'data: é€😀 (multi-byte)',
    'unknown: field',
    'Data: case matters',
    '',
    'event:',
    'data: [DONE]',
    '',
    'data: dropped: the input ends before its blank line',
  ];
  const EXPECTED: SseEvent[] = [
    { event: undefined, data: '{"n":1}' },
    { event: 'message_start', data: '{"n":2}' },
    { event: undefined, data: ' two spaces, one dropped\n\né€😀 (multi-byte)' },
    { event: undefined, data: '[DONE]' },
  ];
  const ENDINGS: Record<string, (i: number) => string> = {
    LF: () => '\n',
    CRLF: () => '\r\n',
    CR: () => '\r',
    // a CR is never followed by an LF that ends the next line (that would be one CRLF)
    mixed: (i) => ['\r\n', '\n', '\r'][i % 3]!,
  };
  const streamOf = (eol: (i: number) => string) =>
    `\uFEFF${LINES.map((l, i) => (i < LINES.length - 1 ? l + eol(i) : l)).join('')}`;
  const parse = (chunks: readonly (Uint8Array | string)[]) => {
    const p = createSseParser({ maxEventSize: 1 << 20 });
    return chunks.flatMap((c) => p.push(c));
  };

  for (const [name, eol] of Object.entries(ENDINGS)) {
    test(`lines ending in ${name}, the bytes split in two at every position and one byte at a time, give the same events`, () => {
      const bytes = Buffer.from(streamOf(eol), 'utf8');
      assert.deepEqual(parse([bytes]), EXPECTED, 'whole');
      for (let i = 0; i <= bytes.length; i++)
        assert.deepEqual(parse([bytes.subarray(0, i), bytes.subarray(i)]), EXPECTED, `split at byte ${i}`);
      assert.deepEqual(parse([...bytes].map((b) => Uint8Array.of(b))), EXPECTED, 'one byte at a time');
      const text = streamOf(eol);
      for (let i = 0; i <= text.length; i++)
        assert.deepEqual(parse([text.slice(0, i), text.slice(i)]), EXPECTED, `text split at ${i}`);
    });
  }

  test('a CR at the end of a chunk ends its line: an LF first in the next chunk is the rest of that CRLF, anything else starts a line', () => {
    assert.deepEqual(parse(['data: a\r', '\n\r', '\n']), [{ event: undefined, data: 'a' }]);
    assert.deepEqual(parse(['data: a\r', '\r']), [{ event: undefined, data: 'a' }]);
    assert.deepEqual(parse(['data: a\r', 'data: b\r\r']), [{ event: undefined, data: 'a\nb' }]);
    // an LF after a CR that ended a chunk is not skipped twice
    assert.deepEqual(parse(['data: a\r', '', '\n', '\n']), [{ event: undefined, data: 'a' }]);
  });

  test('only one leading BOM is dropped; a line with no colon is a field with an empty value', () => {
    assert.deepEqual(parse(['\uFEFF\uFEFFdata: x\n\n']), []);
    assert.deepEqual(parse(['data\n\n']), [{ event: undefined, data: '' }]);
    assert.deepEqual(parse(['data:\n\n']), [{ event: undefined, data: '' }]);
    assert.deepEqual(parse(['event: x \ndata: 1\n\n']), [{ event: 'x ', data: '1' }], 'no trimming');
  });

  test('an event larger than maxEventSize throws, whether in one line or many', () => {
    const p = createSseParser({ maxEventSize: 100 });
    assert.throws(() => p.push(`data: ${'x'.repeat(200)}`), /too large/);
    const q = createSseParser({ maxEventSize: 100 });
    assert.throws(() => {
      for (let i = 0; i < 20; i++) q.push('data: 0123456789\n');
    }, /too large/);
  });
});

/** What a client joins per string (as the SDKs do, `+=` of what they are sent). */
function joinedByClient(route: Route, events: readonly Ev[]): Map<string, string> {
  const m = new Map<string, string>();
  const add = (k: string, v: unknown) => m.set(k, (m.get(k) ?? '') + String(v));
  for (const e of events) {
    if (route === 'chat.completions') {
      for (const c of e.choices ?? []) {
        if (c.delta?.content) add(`c${c.index}`, c.delta.content);
        for (const t of c.delta?.tool_calls ?? [])
          if (t.function?.arguments) add(`c${c.index}.t${t.index}`, t.function.arguments);
      }
    } else if (route === 'responses') {
      if (typeof e.type === 'string' && e.type.endsWith('.delta'))
        add(`o${e.output_index}.${e.content_index ?? e.summary_index ?? ''}`, e.delta);
    } else if (e.type === 'content_block_delta') {
      const d = e.delta;
      add(`b${e.index}`, d.text ?? d.partial_json ?? d.thinking ?? '');
    }
  }
  return m;
}

/** The key's secret part in 3-character pieces (as the red team sent it). */
const PIECES = SECRET.match(/.{1,3}/g)!;

describe('stream relay: what the red team broke (L2–L4) and shapes of the same kind', () => {
  const noFragments = (r: ReturnType<typeof relay>, route: Route) => {
    assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), [], 'in the events sent');
    for (const [k, text] of joinedByClient(route, r.parsed()))
      assert.deepEqual(fragments(text), [], `in what a client joins for ${k}`);
  };

  test('L2: a finish_reason on every chunk (content or tool-call arguments) does not restart the filter', () => {
    for (const tool of [false, true]) {
      const r = relay('chat.completions');
      for (const p of PIECES) {
        const d = tool ? { tool_calls: [{ index: 0, function: { arguments: p } }] } : { content: p };
        r.push(undefined, chunk([delta(0, d, tool ? 'tool_calls' : 'stop')]));
      }
      r.push(undefined, '[DONE]');
      noFragments(r, 'chat.completions');
      const joined = joinedByClient('chat.completions', r.parsed());
      assert.equal(joined.get(tool ? 'c0.t0' : 'c0'), '[REDACTED]');
    }
  });

  test('L2: content_block_stop after every delta does not restart the filter; the rest comes before message_stop', () => {
    for (const [type, field] of [
      ['text_delta', 'text'],
      ['input_json_delta', 'partial_json'],
    ] as const) {
      const r = relay('messages');
      r.push('message_start', { type: 'message_start', message: { content: [] } });
      r.push('content_block_start', {
        type: 'content_block_start',
        index: 0,
        content_block: field === 'text' ? { type: 'text', text: '' } : { type: 'tool_use', input: {} },
      });
      for (const p of PIECES) {
        r.push('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type, [field]: p } });
        r.push('content_block_stop', { type: 'content_block_stop', index: 0 });
      }
      r.push('message_stop', { type: 'message_stop' });
      noFragments(r, 'messages');
      assert.equal(joinedByClient('messages', r.parsed()).get('b0'), '[REDACTED]');
      assert.equal(r.parsed().at(-2)!.type, 'content_block_delta');
    }
  });

  test('L3: text sent as arrays (or numbers) is joined as its string form: filtered as such, sent as a string', () => {
    const c = relay('chat.completions');
    for (const p of PIECES) c.push(undefined, chunk([delta(0, { content: [p] })]));
    c.push(undefined, '[DONE]');
    noFragments(c, 'chat.completions');
    assert.ok(
      c.parsed().every((e) => e.choices.every((x: Ev) => typeof (x.delta.content ?? '') === 'string')),
    );

    const a = relay('messages');
    a.push('message_start', { type: 'message_start', message: { content: [] } });
    a.push('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    });
    for (const p of PIECES)
      a.push('content_block_delta', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'text_delta', text: [p] },
      });
    a.push('message_stop', { type: 'message_stop' });
    noFragments(a, 'messages');

    const o = relay('responses');
    o.push('', {
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'm', type: 'message', content: [] },
    });
    o.push('', {
      type: 'response.content_part.added',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '' },
    });
    for (const p of PIECES)
      o.push('', {
        type: 'response.output_text.delta',
        item_id: 'm',
        output_index: 0,
        content_index: 0,
        delta: [p],
      });
    o.end();
    noFragments(o, 'responses');
    assert.equal(joinedByClient('responses', o.parsed()).get('o0.0'), '[REDACTED]');

    // a number is appended as its digits; a falsy one is not appended by the chat client
    const n = relay('chat.completions');
    n.push(undefined, chunk([delta(0, { content: 12 })]));
    n.push(undefined, chunk([delta(0, { content: 0 })]));
    n.push(undefined, '[DONE]');
    assert.equal(joinedByClient('chat.completions', n.parsed()).get('c0'), '12');
  });

  test('L4: Responses deltas are keyed by output and part (one filter whatever their item_id), and an item_id not the item’s is refused', () => {
    const r = relay('responses');
    r.push('', {
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'msg_a', type: 'message', content: [] },
    });
    r.push('', {
      type: 'response.content_part.added',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '' },
    });
    for (const p of PIECES)
      r.push('', { type: 'response.output_text.delta', output_index: 0, content_index: 0, delta: p });
    r.end();
    assert.equal(joinedByClient('responses', r.parsed()).get('o0.0'), '[REDACTED]');
    assert.throws(
      () =>
        r.push('', {
          type: 'response.output_text.delta',
          item_id: 'msg_b',
          output_index: 0,
          content_index: 0,
          delta: 'x',
        }),
      StreamRefused,
    );
  });

  test('L4: a Responses event with `choices` is still read as a Responses event (the route decides, not the shape)', () => {
    const r = relay('responses');
    r.push('', {
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'm', type: 'message', content: [] },
    });
    r.push('', {
      type: 'response.content_part.added',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '' },
    });
    for (const p of PIECES)
      r.push('', {
        type: 'response.output_text.delta',
        item_id: 'm',
        output_index: 0,
        content_index: 0,
        delta: p,
        choices: [],
      });
    r.end();
    noFragments(r, 'responses');
  });

  test('indexes the clients would read differently are refused: strings, negatives, fractions, huge, a block or item not the next', () => {
    for (const index of ['0', -1, 0.5, 1e9, null, [0]]) {
      const c = relay('chat.completions');
      assert.throws(
        () => c.push(undefined, chunk([{ index, delta: { content: 'x' } }])),
        StreamRefused,
        String(index),
      );
      const t = relay('chat.completions');
      assert.throws(
        () => t.push(undefined, chunk([delta(0, { tool_calls: [{ index, function: { arguments: 'x' } }] })])),
        StreamRefused,
      );
    }
    const a = relay('messages');
    a.push('message_start', { type: 'message_start', message: { content: [] } });
    assert.throws(
      () =>
        a.push('content_block_start', {
          type: 'content_block_start',
          index: 1,
          content_block: { type: 'text', text: '' },
        }),
      StreamRefused,
    );
    a.push('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    });
    for (const index of ['0', 1, -1])
      assert.throws(
        () =>
          a.push('content_block_delta', {
            type: 'content_block_delta',
            index,
            delta: { type: 'text_delta', text: 'x' },
          }),
        StreamRefused,
      );
    assert.throws(
      () =>
        a.push('content_block_start', {
          type: 'content_block_start',
          index: 0,
          content_block: { type: 'text', text: '' },
        }),
      StreamRefused,
      'a second start at index 0 (a new block to the SDK, the same to a client keyed by index)',
    );
    const o = relay('responses');
    assert.throws(
      () => o.push('', { type: 'response.output_text.delta', output_index: 0, content_index: 0, delta: 'x' }),
      StreamRefused,
      'a delta to an item that does not exist',
    );
  });

  test('more text streams than maxStreams end the stream', () => {
    const r = relay('chat.completions', { maxStreams: 8 });
    for (let i = 0; i < 8; i++)
      r.push(undefined, chunk([delta(0, { tool_calls: [{ index: i, function: { arguments: '{' } }] })]));
    assert.throws(
      () =>
        r.push(undefined, chunk([delta(0, { tool_calls: [{ index: 8, function: { arguments: '{' } }] })])),
      StreamRefused,
    );
  });

  test('text clients join across streams is checked: key pieces in separate blocks, parts or choices are refused', () => {
    // Anthropic: a text block per piece (the `text` event and the final blocks, joined)
    const a = relay('messages');
    a.push('message_start', { type: 'message_start', message: { content: [] } });
    assert.throws(() => {
      PIECES.forEach((p, i) => {
        a.push('content_block_start', {
          type: 'content_block_start',
          index: i,
          content_block: { type: 'text', text: '' },
        });
        a.push('content_block_delta', {
          type: 'content_block_delta',
          index: i,
          delta: { type: 'text_delta', text: p },
        });
        a.push('content_block_stop', { type: 'content_block_stop', index: i });
      });
      a.push('message_stop', { type: 'message_stop' });
    }, StreamRefused);
    // Responses: a part per piece (`output_text` joins every part)
    const o = relay('responses');
    o.push('', {
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'm', type: 'message', content: [] },
    });
    assert.throws(() => {
      PIECES.forEach((p, i) => {
        o.push('', {
          type: 'response.content_part.added',
          output_index: 0,
          content_index: i,
          part: { type: 'output_text', text: '' },
        });
        o.push('', { type: 'response.output_text.delta', output_index: 0, content_index: i, delta: p });
        o.push('', { type: 'response.output_text.done', output_index: 0, content_index: i, text: p });
      });
      o.end();
    }, StreamRefused);
    // chat: a choice per piece (`choices[0].delta.content` joined over chunks)
    const c = relay('chat.completions');
    assert.throws(() => {
      for (const [i, p] of PIECES.entries()) c.push(undefined, chunk([delta(i, { content: p })]));
      c.push(undefined, '[DONE]');
    }, StreamRefused);
  });

  test('a string an event replaced takes no more deltas (Responses .done, a chat choice’s message)', () => {
    const o = relay('responses');
    o.push('', {
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'f', type: 'function_call', arguments: '' },
    });
    o.push('', { type: 'response.function_call_arguments.delta', output_index: 0, delta: 'abc' });
    o.push('', { type: 'response.function_call_arguments.done', output_index: 0, arguments: 'xyzabc' });
    assert.throws(
      () => o.push('', { type: 'response.function_call_arguments.delta', output_index: 0, delta: 'def' }),
      StreamRefused,
    );
    const c = relay('chat.completions');
    c.push(undefined, chunk([delta(0, { content: 'abc' })]));
    assert.throws(
      () => c.push(undefined, chunk([{ ...delta(0, { content: 'def' }), message: { content: 'xyz' } }])),
      StreamRefused,
    );
  });

  test('event names are the event types (Anthropic, Responses) or none (chat); `[DONE]…` ends the stream; nothing passes after a terminal event', () => {
    const a = relay('messages');
    a.push('ping', { type: 'message_start', message: { content: [] } });
    a.push(undefined, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    assert.deepEqual(
      a.out.map((e) => e.event),
      ['message_start', 'content_block_start'],
    );
    const c = relay('chat.completions');
    c.push('thread.message.delta', chunk([delta(0, { content: 'hi' })]));
    assert.equal(c.out[0]!.event, undefined);
    const step = c.push(undefined, '[DONE] and more');
    assert.equal(step.terminal, true);
    assert.equal(c.out.at(-1)!.data, '[DONE]');
    assert.ok(c.ended);
    assert.deepEqual(c.push(undefined, chunk([delta(0, { content: 'late' })])).events, []);
    assert.deepEqual(c.out.slice(-1), [{ event: undefined, data: '[DONE]' }]);
    // the openai client throws at an event with a truthy `error`: terminal, after what was held
    const e = relay('chat.completions');
    e.push(undefined, chunk([delta(0, { content: 'held' })]));
    assert.equal(e.push(undefined, { error: 'boom' }).terminal, true);
    assert.equal(e.parsed().at(-2)!.choices[0].delta.content, 'held');
  });

  test('duplicate keys in an event: the client reads what the relay read (the last one), as the relay re-serializes every event', () => {
    const r = relay('messages');
    r.push('message_start', '{"type":"message_start","message":{"content":[]}}');
    r.push(
      'content_block_start',
      '{"type":"ping","type":"content_block_start","index":5,"index":0,"content_block":{"type":"text","text":""}}',
    );
    for (const p of PIECES)
      r.push(
        'content_block_delta',
        `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":${JSON.stringify(p)}}}`,
      );
    r.push('message_stop', '{"type":"message_stop"}');
    // every event sent is a serialization of what the relay parsed: no key twice
    for (const e of r.out) assert.equal(JSON.stringify(JSON.parse(e.data)), e.data);
    assert.deepEqual(
      r.out.map((e) => e.event),
      [
        'message_start',
        'content_block_start',
        ...PIECES.map(() => 'content_block_delta'),
        'content_block_delta',
        'message_stop',
      ],
    );
    assert.equal(joinedByClient('messages', r.parsed()).get('b0'), '[REDACTED]');
  });

  test('an event that is not a JSON object is refused; an empty one is dropped', () => {
    for (const raw of ['not json', '"a string"', '[1,2]', '42']) {
      const r = relay('chat.completions');
      assert.throws(() => r.push(undefined, raw), StreamRefused, raw);
    }
    const r = relay('messages');
    assert.deepEqual(r.push('message_start', '').events, []);
  });

  test('a `__proto__` field of a delta is filtered like any other (own property, not the prototype)', () => {
    const r = relay('chat.completions');
    for (const p of PIECES)
      r.push(undefined, `{"choices":[{"index":0,"delta":{"__proto__":${JSON.stringify(p)}}}]}`);
    r.push(undefined, '[DONE]');
    const joined = r
      .parsed()
      .map((e) =>
        e.choices?.[0]?.delta
          ? (Object.getOwnPropertyDescriptor(e.choices[0].delta, '__proto__')?.value ?? '')
          : '',
      )
      .join('');
    assert.deepEqual(fragments(joined), []);
    assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), []);
  });
});

/**
 * What the openai SDK holds (lib/responses/ResponseAccumulator, which ResponseStream runs on every
 * event) after each event of `events`, serialized: its whole snapshot, `output_text` and every part
 * included. Stops where the SDK throws (its stream then ends with that error).
 */
function sdkHolds(events: readonly Ev[]): { after: string[]; last: Ev; threw: boolean } {
  const after: string[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: the SDK's own snapshot type, read as JSON
  let snapshot: any;
  try {
    for (const e of events) {
      // biome-ignore lint/suspicious/noExplicitAny: events as parsed
      snapshot = accumulateResponse(e as any, snapshot);
      after.push(JSON.stringify(snapshot));
    }
  } catch {
    return { after, last: snapshot, threw: true };
  }
  return { after, last: snapshot, threw: false };
}

const n1Events = (mode: (typeof N1_MODES)[number], completed: boolean, pieces: readonly string[] = PIECES) =>
  n1EventsOf(mode, completed, pieces) as Ev[];
/** Pushes `events` (then the end of input) until the relay refuses one: whether it did. */
function pushAll(r: ReturnType<typeof relay>, events: readonly Ev[]): boolean {
  try {
    for (const e of events) r.push(e.type, e);
    r.end();
    return false;
  } catch (err) {
    if (err instanceof StreamRefused) return true;
    throw err;
  }
}

describe('stream relay: what the openai SDK holds from a Responses stream (N1)', () => {
  for (const mode of N1_MODES)
    for (const completed of [false, true])
      test(`N1 ${mode}${completed ? ', then response.completed' : ', the stream just ends'}: the stream ends with an error before the SDK holds 4 characters of the key`, () => {
        const r = relay('responses');
        assert.ok(pushAll(r, n1Events(mode, completed)), 'refused');
        assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), [], 'in the events sent');
        const sdk = sdkHolds(r.parsed());
        for (const [i, s] of sdk.after.entries())
          assert.deepEqual(fragments(s), [], `what the SDK holds after event ${i}`);
        // at most the first piece went out (the second one would have joined it)
        assert.ok(!(sdk.last?.output_text ?? '').includes(PIECES.slice(0, 2).join('')));
      });

  test('the same shapes with no key arrive exactly as sent: every event, and the SDK’s final response', () => {
    const words = ['Once ', 'upon ', 'a ', 'time, ', 'there ', 'was ', 'a ', 'key.'];
    for (const mode of N1_MODES)
      for (const completed of [false, true]) {
        const events = n1Events(mode, completed, words);
        const r = relay('responses');
        assert.ok(!pushAll(r, events), `${mode}: not refused`);
        assert.deepEqual(
          r.out.map((e) => e.data),
          events.map((e) => JSON.stringify(e)),
          `${mode}: byte for byte`,
        );
        assert.equal(sdkHolds(r.parsed()).last.output_text, words.join(''), mode);
      }
  });

  test('a legitimate stream through every path that sets a string (snapshot items, items and parts that start with text, deltas, every .done, two messages, a function call, reasoning) arrives as sent', () => {
    let seq = 0;
    const ev = (o: Ev) => ({ ...o, sequence_number: seq++ });
    const text = (t: string) => ({ type: 'output_text', text: t, annotations: [] });
    const msg = (id: string, content: unknown[], status = 'in_progress') => ({
      id,
      type: 'message',
      role: 'assistant',
      status,
      content,
    });
    const first = 'The first message, streamed in pieces. ';
    const second = 'And a second one. ';
    const reasoning = {
      id: 'rs_1',
      type: 'reasoning',
      summary: [{ type: 'summary_text', text: 'Thinking about it.' }],
    };
    const call = {
      id: 'fc_1',
      type: 'function_call',
      call_id: 'c1',
      name: 'f',
      arguments: '{"a":1}',
      status: 'completed',
    };
    const response = (output: unknown[], status = 'in_progress') => ({
      id: 'resp_1',
      object: 'response',
      status,
      output,
    });
    const ids = { item_id: 'msg_a', output_index: 1, content_index: 0 };
    const pieces = first.match(/\S+\s/g)!;
    const events = [
      ev({ type: 'response.created', response: response([]) }),
      // a resumed stream: the snapshot brings the reasoning item already done
      ev({ type: 'response.in_progress', response: response([reasoning]) }),
      ev({ type: 'response.output_item.added', output_index: 1, item: msg('msg_a', []) }),
      ev({ type: 'response.content_part.added', ...ids, part: text('') }),
      ...pieces.map((d) => ev({ type: 'response.output_text.delta', ...ids, delta: d, logprobs: [] })),
      ev({ type: 'response.output_text.done', ...ids, text: first, logprobs: [] }),
      ev({ type: 'response.content_part.done', ...ids, part: text(first) }),
      ev({
        type: 'response.output_item.done',
        output_index: 1,
        item: msg('msg_a', [text(first)], 'completed'),
      }),
      // an item that starts with its text
      ev({ type: 'response.output_item.added', output_index: 2, item: msg('msg_b', [text(second)]) }),
      ev({
        type: 'response.output_item.done',
        output_index: 2,
        item: msg('msg_b', [text(second)], 'completed'),
      }),
      ev({
        type: 'response.output_item.added',
        output_index: 3,
        item: { ...call, arguments: '', status: 'in_progress' },
      }),
      ...['{"a"', ':1}'].map((d) =>
        ev({ type: 'response.function_call_arguments.delta', item_id: 'fc_1', output_index: 3, delta: d }),
      ),
      ev({
        type: 'response.function_call_arguments.done',
        item_id: 'fc_1',
        output_index: 3,
        arguments: '{"a":1}',
      }),
      ev({ type: 'response.output_item.done', output_index: 3, item: call }),
      ev({
        type: 'response.completed',
        response: response(
          [
            reasoning,
            msg('msg_a', [text(first)], 'completed'),
            msg('msg_b', [text(second)], 'completed'),
            call,
          ],
          'completed',
        ),
      }),
    ];
    const r = relay('responses');
    assert.ok(!pushAll(r, events));
    assert.deepEqual(
      r.out.map((e) => e.data),
      events.map((e) => JSON.stringify(e)),
      'byte for byte',
    );
    const sdk = sdkHolds(r.parsed());
    assert.equal(sdk.threw, false);
    assert.equal(sdk.last.output_text, first + second);
  });

  test('what the checks cost: a part’s own deltas, a .done repeating them, and the response repeating all add no check; a second part’s first 256 characters are checked at its junction', () => {
    // with no `secrets`, the key check of what clients join is `clean`: count its calls on text that
    // is neither an event nor an event's name
    const whole = secretRedactor([KEY]);
    let checked = 0;
    const r = createStreamRelay({
      api: 'openai',
      route: 'responses',
      filter: () => secretRedactor([KEY]),
      clean: (t) => {
        if (!t.startsWith('{') && !t.startsWith('response.')) checked++;
        return whole.push(t) + whole.end();
      },
    });
    const out: SseEvent[] = [];
    const push = (o: Ev) => out.push(...r.push(o.type, JSON.stringify(o)).events);
    const words = 'The quick brown fox jumps over the lazy dog. '.match(/\S+\s/g)!;
    const texts: string[] = [];
    const part = (c: number) => {
      push({
        type: 'response.content_part.added',
        output_index: 0,
        content_index: c,
        part: { type: 'output_text', text: '' },
      });
      let t = '';
      for (let i = 0; i < 300; i++) {
        const d = words[i % words.length]!;
        t += d;
        push({ type: 'response.output_text.delta', output_index: 0, content_index: c, delta: d });
      }
      push({ type: 'response.output_text.done', output_index: 0, content_index: c, text: t });
      push({
        type: 'response.content_part.done',
        output_index: 0,
        content_index: c,
        part: { type: 'output_text', text: t },
      });
      texts.push(t);
    };
    push({ type: 'response.created', response: { output: [] } });
    push({
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'm', type: 'message', content: [] },
    });
    part(0);
    assert.equal(checked, 0);
    part(1);
    const item = { id: 'm', type: 'message', content: texts.map((text) => ({ type: 'output_text', text })) };
    push({ type: 'response.output_item.done', output_index: 0, item });
    push({ type: 'response.completed', response: { output: [item] } });
    // the deltas whose window reaches back into the first part: 256 characters, 5.1 a delta on average
    assert.ok(checked > 0 && checked <= Math.ceil(256 / 5) + 2, String(checked));
    assert.equal(sdkHolds(out.map((e) => JSON.parse(e.data) as Ev)).last.output_text, texts.join(''));
  });

  test('a snapshot’s own `output_text` is the start of the SDK’s: the deltas it appends are checked joined to it', () => {
    // each piece alone is one run of 5 inside a longer word (which stays), joined they are a run of 10
    const own = `x${SECRET.slice(0, 5)}`;
    const rest = `${SECRET.slice(5, 10)}y `;
    let seq = 0;
    const ev = (o: Ev) => ({ ...o, sequence_number: seq++ });
    const ids = { item_id: 'm', output_index: 0, content_index: 0 };
    const events = [
      ev({
        type: 'response.created',
        response: {
          output: [{ id: 'm', type: 'message', content: [{ type: 'output_text', text: '' }] }],
          output_text: own,
        },
      }),
      ev({ type: 'response.output_text.delta', ...ids, delta: rest }),
    ];
    const r = relay('responses');
    assert.ok(pushAll(r, events), 'refused');
    for (const s of sdkHolds(r.parsed()).after) assert.ok(!s.includes(SECRET.slice(0, 10)));
    // the control: each string alone passes
    const alone = relay('responses');
    assert.ok(!pushAll(alone, [events[0]!, { ...events[1]!, delta: ' plain text ' }]));
  });

  test('a part replaced by one of another type joins its neighbours: the new junction is checked', () => {
    const r = relay('responses');
    const ids = (i: number) => ({ item_id: 'm', output_index: 0, content_index: i });
    const text = (t: string) => ({ type: 'output_text', text: t });
    const events: Ev[] = [
      { type: 'response.created', response: { output: [] } },
      {
        type: 'response.output_item.added',
        output_index: 0,
        item: { id: 'm', type: 'message', content: [] },
      },
    ];
    // `output_text` is `Q7v Z3m`: two pieces of 3, apart
    for (const [i, t] of [PIECES[0]!, ' ', PIECES[1]!].entries())
      events.push(
        { type: 'response.content_part.added', ...ids(i), part: text('') },
        { type: 'response.content_part.done', ...ids(i), part: text(t) },
      );
    // the space becomes a refusal: `output_text` would be `Q7vZ3m`
    events.push({ type: 'response.content_part.done', ...ids(1), part: { type: 'refusal', refusal: 'no' } });
    assert.ok(pushAll(r, events), 'refused');
    assert.equal(r.out.length, events.length - 1, 'at that event');
    for (const s of sdkHolds(r.parsed()).after) assert.deepEqual(fragments(JSON.parse(s).output_text), []);
  });
});

describe('JSON text clients parse (tool-call arguments, input_json): printable-ASCII escapes normalised', () => {
  /** `c` as a JSON `\uXXXX` escape (`upper`: hex digits in upper case). */
  const u = (c: string, upper = false) => {
    const h = c.charCodeAt(0).toString(16).padStart(4, '0');
    return `\\u${upper ? h.toUpperCase() : h}`;
  };
  const CASES: [string, string][] = [
    [String.raw`{"k":"\u0073k-"}`, '{"k":"sk-"}'],
    [String.raw`\u0053\u004B\u004b \u0020\u007e\u007E`, 'SKK  ~~'],
    [String.raw`a\/b\u002f`, 'a/b/'],
    // `"`, `\`, DEL, control characters and anything beyond ASCII stay escaped
    [
      String.raw`\u0022\u005c\u005C\u007f\u001f\u0000\n\t\"\\`,
      String.raw`\u0022\u005c\u005C\u007f\u001f\u0000\n\t\"\\`,
    ],
    [String.raw`\u00e9\u0441\ud83d\ude00\u2028\uFF53`, String.raw`\u00e9\u0441\ud83d\ude00\u2028\uFF53`],
    // backslashes are read in pairs: an even run before `u0073` is text, an odd one an escape
    [String.raw`\\u0073`, String.raw`\\u0073`],
    [String.raw`\\\u0073`, String.raw`\\s`],
    [String.raw`\\\\u0073\\\\\u0073`, String.raw`\\\\u0073\\\\s`],
    [String.raw`\"\u0073\"`, String.raw`\"s\"`],
    // not escapes of a printable character: left as they are
    [String.raw`\u00g3\u07\u0`, String.raw`\u00g3\u07\u0`],
    [String.raw`x\u00`, String.raw`x\u00`],
    ['x\\', 'x\\'],
    ['no escapes at all', 'no escapes at all'],
    ['', ''],
  ];
  /** Every printable ASCII character, escaped in lower- and upper-case hex, between decoys. */
  const ALL = Array.from({ length: 0x5f }, (_, i) => String.fromCharCode(0x20 + i));
  const allEscaped = ALL.map((c, i) => `${u(c, i % 2 === 1)}\\\\u00${c.charCodeAt(0).toString(16)}`).join('');

  test('whole texts: each printable-ASCII escape and `\\/` is its character; everything else stays, byte for byte', () => {
    for (const [text, want] of CASES) assert.equal(normalizeJsonText(text), want, text);
    const want = ALL.map(
      (c, i) => `${c === '"' || c === '\\' ? u(c, i % 2 === 1) : c}\\\\u00${c.charCodeAt(0).toString(16)}`,
    ).join('');
    assert.equal(normalizeJsonText(allEscaped), want);
  });

  /** A random JSON string body: characters, and escapes of every kind (a printable one often). */
  const randomBody = (rnd: () => number, n: number) => {
    const atoms = [
      () => u(String.fromCharCode(0x20 + Math.floor(rnd() * 0x5f)), rnd() < 0.5),
      () => u(String.fromCharCode(Math.floor(rnd() * 0x20))),
      () => u(String.fromCharCode(0x80 + Math.floor(rnd() * 0xff00))),
      () => '\\ud83d\\ude00',
      () => '\\\\',
      () => '\\"',
      () => '\\/',
      () => '\\n',
      () => '\\\\u0073',
      () => 'abcXYZ09-_ '[Math.floor(rnd() * 11)]!,
      () => 'é',
    ];
    let out = '';
    for (let i = 0; i < n; i++) out += atoms[Math.floor(rnd() * atoms.length)]!();
    return out;
  };
  const seeded = (seed: number) => () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };

  test('what a JSON parser reads is unchanged, and no printable-ASCII escape is left (random texts)', () => {
    const rnd = seeded(7);
    for (let k = 0; k < 500; k++) {
      const body = randomBody(rnd, 1 + Math.floor(rnd() * 30));
      const text = `{"a":"${body}","b":["${body}"]}`;
      const out = normalizeJsonText(text);
      assert.deepEqual(JSON.parse(out), JSON.parse(text), text);
      // an escape left that stands for printable ASCII (other than `"` and `\`): an odd backslash run before it
      assert.doesNotMatch(
        out,
        /(?<!\\)(?:\\\\)*\\u00(?:2[013-9a-fA-F]|[3-46-7][0-9a-fA-F]|5[0-9abd-fABD-F])/,
        text,
      );
      assert.doesNotMatch(out, /(?<!\\)(?:\\\\)*\\\//, text);
    }
  });

  test('in pieces: cut at every position (and every pair of positions), the pieces give the whole text’s result; an escape cut is held, nothing more', () => {
    const rnd = seeded(11);
    const texts = [
      ...CASES.map(([t]) => t),
      allEscaped,
      String.raw`{"k":"\\\u0073\u006b-\u0070\\u0073"}`,
      ...Array.from({ length: 40 }, () => randomBody(rnd, 8)),
    ];
    const run = (pieces: string[]) => {
      const n = jsonTextNormalizer();
      const outs = pieces.map((p) => n.push(p));
      return { outs, all: outs.join('') + n.end() };
    };
    for (const text of texts) {
      const want = normalizeJsonText(text);
      for (let i = 0; i <= text.length; i++) {
        const { outs, all } = run([text.slice(0, i), text.slice(i)]);
        assert.equal(all, want, `${text} cut at ${i}`);
        // what the first piece gave is all of it but an escape not yet whole (at most `\u00X`)
        const held = normalizeJsonText(text.slice(0, i)).length - outs[0]!.length;
        assert.ok(held >= 0 && held <= 5, `${text} cut at ${i}: held ${held}`);
        if (text.length <= 60)
          for (let j = i; j <= text.length; j++)
            assert.equal(
              run([text.slice(0, i), text.slice(i, j), text.slice(j)]).all,
              want,
              `${text} cut at ${i}, ${j}`,
            );
      }
      assert.equal(run([...text]).all, want, `${text} a character at a time`);
    }
    // nothing is held but what could still be a printable-ASCII escape
    for (const [piece, out] of [
      ['a\\', 'a'],
      ['a\\u', 'a'],
      ['a\\u0', 'a'],
      ['a\\u00', 'a'],
      ['a\\u007', 'a'],
      ['a\\u008', 'a\\u008'],
      ['a\\u01', 'a\\u01'],
      ['a\\ud', 'a\\ud'],
      ['a\\\\', 'a\\\\'],
      ['a\\n', 'a\\n'],
    ] as const)
      assert.equal(jsonTextNormalizer().push(piece), out, piece);
    // a text with no backslash is passed on as it is
    const plain = 'x'.repeat(1000);
    assert.equal(jsonTextNormalizer().push(plain), plain);
  });

  const esc = (t: string) => [...t].map((c) => u(c)).join('');
  /** JSON escapes read once (`\\` pairs first): twice, what a client reads of arguments inside an event. */
  const unescapeJson = (t: string) =>
    t.replace(/\\(u[0-9a-fA-F]{4}|[\s\S])/g, (_, e: string) =>
      e.length === 5 ? String.fromCharCode(Number.parseInt(e.slice(1), 16)) : e,
    );
  const escArgs = `{"re":"\\\\u0073","k":"\\\\${esc(KEY)}"}`;
  /** The relay's output pieces of `escArgs`, cut 1, 2, 3, 4, 5, 1, ... characters (escapes split everywhere). */
  const cuts = (text: string) => {
    const out: string[] = [];
    for (let i = 0, k = 0; i < text.length; k++) {
      out.push(text.slice(i, i + (k % 5) + 1));
      i += (k % 5) + 1;
    }
    return out;
  };
  const checkArgs = (args: string, where: string) => {
    const parsed = JSON.parse(args);
    assert.deepEqual(parsed, { re: '\\u0073', k: '\\[REDACTED]' }, where);
  };

  test('chat: a key \\u-escaped in tool-call and function-call arguments, split inside escapes, is redacted as the client parses it; in a chunk’s `message` too', () => {
    const r = relay('chat.completions');
    r.push(
      undefined,
      chunk([
        delta(0, {
          role: 'assistant',
          tool_calls: [{ index: 0, id: 'c', type: 'function', function: { name: 'f', arguments: '' } }],
        }),
      ]),
    );
    r.push(undefined, chunk([delta(1, { role: 'assistant', function_call: { name: 'g', arguments: '' } })]));
    for (const p of cuts(escArgs)) {
      r.push(undefined, chunk([delta(0, { tool_calls: [{ index: 0, function: { arguments: p } }] })]));
      r.push(undefined, chunk([delta(1, { function_call: { arguments: p } })]));
    }
    r.push(undefined, '[DONE]');
    const events = r.parsed();
    checkArgs(accumulateChat(events)[0]!.args[0]!, 'tool call');
    checkArgs(
      events
        .flatMap((e) =>
          e.choices.filter((c: Ev) => c.index === 1).map((c: Ev) => c.delta.function_call?.arguments ?? ''),
        )
        .join(''),
      'function call',
    );
    assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), []);
    // a choice's whole message in a chunk (which the SDK assigns)
    const m = relay('chat.completions');
    m.push(
      undefined,
      chunk([
        {
          index: 0,
          message: {
            role: 'assistant',
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: escArgs } }],
            function_call: { name: 'g', arguments: [escArgs] },
          },
          finish_reason: 'tool_calls',
        },
      ]),
    );
    const msg = m.parsed()[0]!.choices[0].message;
    checkArgs(msg.tool_calls[0].function.arguments, 'message tool call');
    checkArgs(
      String(msg.function_call.arguments),
      'message function call (an array: JSON.parse reads its string form)',
    );
  });

  test('Responses: a key \\u-escaped in function-call arguments (the item’s start, deltas split inside escapes, .done, output_item.done, response.completed) is redacted', () => {
    const r = relay('responses');
    let seq = 0;
    const pieces = cuts(escArgs);
    r.push('response.created', {
      type: 'response.created',
      response: { output: [] },
      sequence_number: seq++,
    });
    const item = (args: string) => ({
      id: 'fc_1',
      type: 'function_call',
      call_id: 'c',
      name: 'f',
      arguments: args,
    });
    r.push('response.output_item.added', {
      type: 'response.output_item.added',
      output_index: 0,
      item: item(pieces[0]!),
      sequence_number: seq++,
    });
    for (const d of pieces.slice(1))
      r.push('response.function_call_arguments.delta', {
        type: 'response.function_call_arguments.delta',
        item_id: 'fc_1',
        output_index: 0,
        delta: d,
        sequence_number: seq++,
      });
    r.push('response.function_call_arguments.done', {
      type: 'response.function_call_arguments.done',
      item_id: 'fc_1',
      output_index: 0,
      arguments: escArgs,
      sequence_number: seq++,
    });
    r.push('response.output_item.done', {
      type: 'response.output_item.done',
      output_index: 0,
      item: item(escArgs),
      sequence_number: seq++,
    });
    r.push('response.completed', {
      type: 'response.completed',
      response: { output: [item(escArgs)] },
      sequence_number: seq++,
    });
    const events = r.parsed();
    checkArgs(
      events[1]!.item.arguments +
        events
          .filter((e) => e.type === 'response.function_call_arguments.delta')
          .map((e) => e.delta)
          .join(''),
      'deltas',
    );
    checkArgs(events.find((e) => e.type === 'response.function_call_arguments.done')!.arguments, '.done');
    checkArgs(events.find((e) => e.type === 'response.output_item.done')!.item.arguments, 'output_item.done');
    checkArgs(events.at(-1)!.response.output[0].arguments, 'response.completed');
    // what the SDK holds after each event
    let snap: unknown;
    for (const e of events) {
      snap = accumulateResponse(e as never, snap as never);
      assert.deepEqual(fragments(unescapeJson(unescapeJson(JSON.stringify(snap)))), []);
    }
  });

  test('Anthropic: a key \\u-escaped in input_json deltas split inside escapes is redacted; an escape cut at the end of the stream goes out as it was', () => {
    const r = relay('messages');
    r.push('message_start', { type: 'message_start', message: { content: [] } });
    r.push('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'tool_use', id: 't', name: 'f', input: {} },
    });
    for (const p of cuts(escArgs))
      r.push('content_block_delta', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'input_json_delta', partial_json: p },
      });
    r.push('content_block_delta', {
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'input_json_delta', partial_json: ' \\u00' },
    });
    r.push('content_block_stop', { type: 'content_block_stop', index: 0 });
    r.push('message_stop', { type: 'message_stop' });
    const joined = r
      .parsed()
      .filter((e) => e.type === 'content_block_delta')
      .map((e) => e.delta.partial_json)
      .join('');
    assert.ok(joined.endsWith(' \\u00'), joined);
    checkArgs(joined.slice(0, -' \\u00'.length), 'input_json');
    assert.deepEqual(fragments(r.out.map((e) => e.data).join('\n')), []);
  });

  test('complete answers (jsonCleaner with the route): the arguments of chat messages and Responses items are normalised, then cleaned; other strings are not', () => {
    const whole = secretRedactor([KEY]);
    const clean = (t: string) => whole.push(t) + whole.end();
    const chat = {
      choices: [
        {
          message: {
            content: '\\u0041 stays',
            tool_calls: [{ function: { name: '\\u0041', arguments: escArgs } }],
            function_call: { arguments: [escArgs] },
          },
        },
      ],
    };
    const c = jsonCleaner(clean, 'chat.completions').value(chat) as typeof chat;
    checkArgs(c.choices[0]!.message.tool_calls[0]!.function.arguments, 'chat tool call');
    checkArgs(String(c.choices[0]!.message.function_call.arguments), 'chat function call');
    assert.equal(c.choices[0]!.message.content, '\\u0041 stays');
    assert.equal(c.choices[0]!.message.tool_calls[0]!.function.name, '\\u0041');
    const resp = {
      output: [
        { type: 'function_call', arguments: escArgs },
        { type: 'mcp_call', arguments: escArgs },
      ],
    };
    const rc = jsonCleaner(clean, 'responses').value(resp) as typeof resp;
    for (const it of rc.output) checkArgs(it.arguments, it.type);
    // with no route (an error body, say) nothing is normalised
    const plain = { choices: [{ message: { tool_calls: [{ function: { arguments: '\\u0041' } }] } }] };
    jsonCleaner(clean).value(plain);
    assert.equal(plain.choices[0]!.message.tool_calls[0]!.function.arguments, '\\u0041');
  });
});
