import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Seen, startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Partial keys spelled out by a hostile provider (issue 12, item 3; red team L5 and L6), end to
 * end: the official `openai` client through the gateway, in front of an upstream that builds its
 * answer from the key it received, as the red team's fake did:
 *
 * - L5 (leak4.mjs): the secret part in pieces of 5 (or 4) characters, each inside a word
 *   (`codes: qXS3KCq qDQKaQq …`): a client that strips the first and last letter of each word
 *   rebuilds the key;
 * - L6 (leak3.mjs #7, #16, #17): masked forms that keep the first and last 4 characters around a
 *   mask that is not 3 or more x: `XS3K00000000qW6U`, `XS3KxxqW6U`, `XS3KyyyyqW6U`.
 *
 * Each in a plain answer, in a stream cut into words, into 3-character pieces and one character a
 * piece, and in a provider error. No run of 4 characters of the secret part may reach the client
 * (what the SDK returned and the raw bytes), the server log or the audit file. The key is random
 * but for one thing: every 4-character run of its secret part holds an upper-case letter that is
 * not a hex digit (as in gateway-streams.test.ts), so no run shows by chance in the hex of ids,
 * hashes or timestamps, in numbers or in the lower-case JSON around the answer; the upstream's ids
 * are fixed lower-case words. So any run that shows is a leak: there is no coincidence to excuse.
 */

/** Upper-case letters that are not hex digits, nor the `T`/`Z` of timestamps. */
const NOT_HEX = 'GHIJKLMNOPQRSUVWXY';

function testKey(): string {
  // none of the mask characters below (0, x, X, y): a run of the key must not run into its mask
  const rnd = randomBytes(48)
    .toString('base64url')
    .replace(/[0xXy]/g, 'k');
  let out = '';
  for (let i = 0; i < 48; i++) out += i % 3 === 0 ? NOT_HEX[randomInt(NOT_HEX.length)] : rnd[i];
  return `sk-proj-${out}`;
}

const secretPartOf = (key: string) => key.slice('sk-proj-'.length);

/** leak4.mjs: the secret part in pieces of `n`, each wrapped in a letter that does not extend the run. */
function spelled(part: string, n: number): string {
  const words: string[] = [];
  for (let i = 0; i < part.length; i += n) {
    const c = part.slice(i, i + n);
    const w = [...'qzjvZQJV'].find((x) => !part.includes(x + c) && !part.includes(c + x))!;
    words.push(w + c + w);
  }
  return words.join(' ');
}

/** What the hostile upstream answers, by name, for the key it received. */
function hostileTexts(key: string): Record<string, string> {
  const sp = secretPartOf(key);
  const a = sp.slice(0, 4);
  const z = sp.slice(-4);
  return {
    spelled5: `codes: ${spelled(sp, 5)}`,
    spelled4: `codes: ${spelled(sp, 4)}`,
    zeros: `Incorrect API key provided: sk-proj-${a}00000000${z}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    twoX: `The key ${a}xx${z} was revoked.`,
    yMask: `key=${a}yyyy${z}`,
    all: `codes: ${spelled(sp, 5)}; masked: ${a}00000000${z}, ${a}xx${z}, ${a}yyyy${z}`,
  };
}

/**
 * The secret part in 4-character pieces spread over 6 choices: each choice holds two pieces (inside
 * words) 300 characters apart, so within one choice neither rule d (3 pieces within 256
 * characters) nor rule e (a third piece) applies: only what the call's filters share does.
 */
function spreadOverChoices(key: string): string[] {
  const pieces = spelled(secretPartOf(key), 4).split(' ');
  const filler = ' and so on'.repeat(30);
  const out: string[] = [];
  for (let i = 0; i + 1 < pieces.length; i += 2) out.push(`codes:\n${pieces[i]}${filler} ${pieces[i + 1]}`);
  return out;
}

/** The pieces a stream sends its text in. */
const SPLITS = {
  words: (t: string) => t.match(/\s*\S+/g) ?? [t],
  three: (t: string) => t.match(/[\s\S]{1,3}/g) ?? [t],
  chars: (t: string) => [...t],
} as const;

/**
 * An OpenAI-compatible upstream that answers with `hostileTexts(key)[name]`, the name being the
 * last user message (`name`, `name/split` for a stream, `error/name` for a 401 quoting it).
 */
async function startHostileUpstream(t: TestContext): Promise<{ url: string; got: string[] }> {
  const got: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      got.push(key);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        stream?: boolean;
        messages: { content: string }[];
      };
      const ask = body.messages.at(-1)!.content;
      const [first, second] = ask.split('/') as [string, string | undefined];
      if (first === 'error') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: {
              message: hostileTexts(key)[second!],
              type: 'invalid_request_error',
              param: null,
              code: 'invalid_api_key',
            },
          }),
        );
        return;
      }
      const base = { id: 'chatcmpl-hostile', created: 1, model: 'gpt-4o', system_fingerprint: 'fp-hostile' };
      if (first === 'choices') {
        const texts = spreadOverChoices(key);
        if (!body.stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              ...base,
              object: 'chat.completion',
              choices: texts.map((content, index) => ({
                index,
                message: { role: 'assistant', content },
                logprobs: null,
                finish_reason: 'stop',
              })),
              usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
            }),
          );
          return;
        }
        const chunk = (index: number, delta: Record<string, unknown>, finish: string | null = null) =>
          `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const words = texts.map((t) => SPLITS.words(t));
        for (let i = 0; i < texts.length; i++) res.write(chunk(i, { role: 'assistant', content: '' }));
        // the choices' words interleaved, as a provider streams n choices
        for (let w = 0; words.some((ws) => w < ws.length); w++)
          for (let i = 0; i < texts.length; i++)
            if (w < words[i]!.length) res.write(chunk(i, { content: words[i]![w] }));
        for (let i = 0; i < texts.length; i++) res.write(chunk(i, {}, 'stop'));
        res.end('data: [DONE]\n\n');
        return;
      }
      const text = hostileTexts(key)[first]!;
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            ...base,
            object: 'chat.completion',
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: text },
                logprobs: null,
                finish_reason: 'stop',
              },
            ],
            usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
          }),
        );
        return;
      }
      const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
        `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(chunk({ role: 'assistant', content: '' }));
      for (const p of SPLITS[second as keyof typeof SPLITS](text)) res.write(chunk({ content: p }));
      res.write(chunk({}, 'stop'));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

/** No run of 4 characters of the key's secret part is in `text`. */
function assertNoKeyFragments(text: string, key: string, where: string): void {
  const sp = secretPartOf(key);
  for (let i = 0; i + 4 <= sp.length; i++) {
    const run = sp.slice(i, i + 4);
    const at = text.indexOf(run);
    if (at >= 0) {
      assert.fail(
        `${where} holds characters ${i}–${i + 3} of the key's secret part: …${text.slice(Math.max(0, at - 30), at + 34)}…`,
      );
    }
  }
}

/** The raw bytes the client received since `from`. */
/**
 * What the client received since `from`, headers and bodies, but for the provenance chain (header
 * and stream comment): signatures and certificates are random base64, where any 4 characters of a
 * key show by chance now and then, and they are made of hashes and keys of the gateway, never of
 * the answer's text.
 */
async function rawSince(seen: Seen[], from: number): Promise<string> {
  await sleep(20);
  const noProvenance = (text: string) =>
    text
      .replace(/\["x-strongroom-provenance","[^"]*"\]/g, '')
      .replace(/^: x-strongroom-provenance .*$/gm, '');
  return seen
    .slice(from)
    .map((s) => noProvenance(`${s.headers}\n${s.body}`))
    .join('\n');
}

test('a provider spelling the key in 4- and 5-character pieces inside words (L5), or keeping 4 + 4 of it around a mask of zeros, two x or y (L6), gets no 4 characters of the secret part to the client: plain, streamed (by word, 3 characters, 1 character) and in an error', async (t) => {
  const up = await startHostileUpstream(t);
  const s = await startGatewaySetup(t, { openaiBaseUrl: up.url });
  const key = testKey();
  s.openaiFake.setKey(key);
  const stored = await s.vault('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: key });
  assert.ok(stored.status < 300, `storing the key: ${stored.status}`);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const sp = secretPartOf(key);
  const names = Object.keys(hostileTexts(key));
  // what the answers keep of the text around the key: the proof they arrived, only redacted
  const kept: Record<string, RegExp> = {
    spelled5: /^codes: ([qzjvZQJV]\[REDACTED\][qzjvZQJV] )+/,
    spelled4: /^codes: ([qzjvZQJV]\[REDACTED\][qzjvZQJV] )+/,
    zeros: /^Incorrect API key provided: sk-proj-\[REDACTED\]00000000\[REDACTED\]\. You can find/,
    twoX: /^The key \[REDACTED\]xx\[REDACTED\] was revoked\.$/,
    yMask: /^key=\[REDACTED\]yyyy\[REDACTED\]$/,
    all: /masked: \[REDACTED\]00000000\[REDACTED\], \[REDACTED\]xx\[REDACTED\], \[REDACTED\]yyyy\[REDACTED\]$/,
  };

  for (const name of names) {
    const from = seen.length;
    const plain = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: name }],
    });
    const content = plain.choices[0]?.message.content ?? '';
    assertNoKeyFragments(JSON.stringify(plain), key, `the plain ${name} answer`);
    assert.match(content, kept[name]!, `plain ${name}`);
    assertNoKeyFragments(await rawSince(seen, from), key, `the raw bytes of the plain ${name} answer`);

    for (const split of Object.keys(SPLITS)) {
      const where = `the ${name} stream cut by ${split}`;
      const from = seen.length;
      const done = await openai.chat.completions
        .stream({ model: 'gpt-4o', messages: [{ role: 'user', content: `${name}/${split}` }] })
        .finalChatCompletion();
      const text = done.choices[0]?.message.content ?? '';
      // the same text as the plain answer, whatever the cut
      assert.equal(text, content, where);
      assertNoKeyFragments(JSON.stringify(done), key, `${where}, as the SDK accumulated it`);
      assertNoKeyFragments(await rawSince(seen, from), key, `${where}, the raw bytes`);
    }

    const from2 = seen.length;
    const err = (await openai.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: `error/${name}` }] })
      .then(
        () => assert.fail(`error/${name}: expected an error`),
        (e: unknown) => e,
      )) as { status?: number; message: string; error?: unknown };
    assert.equal(err.status, 401, `error/${name}`);
    const said = `${err.message} ${JSON.stringify(err.error)}`;
    assert.match(said, /\[REDACTED\]/, `error/${name}: the provider's message came through, redacted`);
    assertNoKeyFragments(said, key, `the ${name} error`);
    assertNoKeyFragments(await rawSince(seen, from2), key, `the raw bytes of the ${name} error`);
  }

  assert.ok(up.got.length > 0 && up.got.every((k) => k === key), 'the upstream got the vault key');
  // the pieces were there to find: rebuilt from the words, they are the key
  const words = hostileTexts(key).spelled5!.slice('codes: '.length).split(' ');
  assert.equal(words.map((w) => w.slice(1, -1)).join(''), sp);
  assertNoKeyFragments(s.logs(), key, 'the server log');
  assertNoKeyFragments(JSON.stringify(s.audit()), key, 'the audit file');
});

test('a key spread over the choices of one answer, two pieces a choice, gets at most two pieces (8 characters) to the client in a stream, none in a plain answer', async (t) => {
  const up = await startHostileUpstream(t);
  const s = await startGatewaySetup(t, { openaiBaseUrl: up.url });
  const key = testKey();
  s.openaiFake.setKey(key);
  const stored = await s.vault('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: key });
  assert.ok(stored.status < 300, `storing the key: ${stored.status}`);
  const seen: Seen[] = [];
  const openai = s.openai(await s.appToken(), seen);
  const sp = secretPartOf(key);
  const pieces = spelled(sp, 4)
    .split(' ')
    .map((w) => w.slice(1, -1));
  assert.equal(spreadOverChoices(key).length, 6);
  /** The 4-character runs of the secret part in `text`. */
  const runs = (text: string) => {
    const out: string[] = [];
    for (let i = 0; i + 4 <= sp.length; i++)
      if (text.includes(sp.slice(i, i + 4))) out.push(sp.slice(i, i + 4));
    return out;
  };

  // plain: the answer is one text (its strings, then the whole), so rules d and e see every piece
  let from = seen.length;
  const plain = await openai.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'choices' }],
  });
  assert.equal(plain.choices.length, 6);
  for (const c of plain.choices) assert.match(c.message.content ?? '', /^codes:\n[qzjvZQJV]\[REDACTED\]/);
  assertNoKeyFragments(JSON.stringify(plain), key, 'the plain answer');
  assertNoKeyFragments(await rawSince(seen, from), key, 'the raw bytes of the plain answer');

  // streamed: one filter per choice, all of the call: the first two pieces any of them meets may
  // pass; the text a client joins across choices (the SDK's `content` events) is checked too, and a
  // key spread over it ends the stream with an error event
  from = seen.length;
  let done:
    | Awaited<ReturnType<ReturnType<typeof openai.chat.completions.stream>['finalChatCompletion']>>
    | undefined;
  try {
    done = await openai.chat.completions
      .stream({ model: 'gpt-4o', messages: [{ role: 'user', content: 'choices/words' }] })
      .finalChatCompletion();
  } catch (err) {
    assert.match(String(err), /ended the stream with an error|credential|key/i);
  }
  const raw = await rawSince(seen, from);
  const got = runs(raw);
  assert.ok(got.length <= 2, `at most two pieces reach the client: ${got.join(', ')}`);
  for (const r of got) assert.ok(pieces.includes(r), `${r} is a whole piece, not more`);
  if (done) {
    assert.equal(done.choices.length, 6);
    assert.deepEqual(runs(JSON.stringify(done)), got, 'what the SDK built holds the same, no more');
  }
  assertNoKeyFragments(s.logs(), key, 'the server log');
  assertNoKeyFragments(JSON.stringify(s.audit()), key, 'the audit file');
});

test('a plain answer that spreads a key over its parts (Responses output_text parts, Anthropic text blocks), 3 characters a part, is withheld: the pieces never reach the client to be joined', async (t: TestContext) => {
  const key = testKey();
  // an upstream that answers with the key it received, 3 characters a part: each part alone is harmless
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const got = String(req.headers.authorization ?? req.headers['x-api-key'] ?? '').replace(/^Bearer /, '');
      const pieces = got.match(/.{1,3}/g) ?? [];
      res.writeHead(200, { 'content-type': 'application/json' });
      const answer = req.url?.startsWith('/v1/messages')
        ? {
            id: 'msg_fixed',
            type: 'message',
            role: 'assistant',
            model: 'claude-sonnet-5-5',
            content: pieces.map((text) => ({ type: 'text', text })),
            stop_reason: 'end_turn',
            stop_sequence: null,
            usage: { input_tokens: 3, output_tokens: 5 },
          }
        : {
            id: 'resp_fixed',
            object: 'response',
            created_at: 1,
            status: 'completed',
            model: 'gpt-4o',
            output: [
              {
                id: 'msg_fixed',
                type: 'message',
                status: 'completed',
                role: 'assistant',
                content: pieces.map((text) => ({ type: 'output_text', text, annotations: [] })),
              },
            ],
            usage: { input_tokens: 3, output_tokens: 5, total_tokens: 8 },
          };
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => upstream.close(() => r())));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const s = await startGatewaySetup(t, { openaiBaseUrl: url, anthropicBaseUrl: url });
  assert.equal((await s.vault('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: key })).status, 200);
  assert.equal((await s.vault('PUT', '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', { value: key })).status, 200);
  const token = await s.appToken();
  const seen: Seen[] = [];
  await assert.rejects(
    s.openai(token, seen).responses.create({ model: 'gpt-4o', input: 'hi' }),
    (e: { status?: number }) => e.status === 502,
  );
  await assert.rejects(
    s.anthropic(token, seen).messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
    }),
    (e: { status?: number }) => e.status === 502,
  );
  await sleep(50);
  const raw = seen.map((x) => x.body).join('\n');
  assert.equal(seen.length, 2);
  assert.match(raw, /withheld/);
  // not a single piece of the key came back
  assert.ok(!raw.includes(key.slice(8, 11)), raw);
});
