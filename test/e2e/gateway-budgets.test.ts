import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type GatewaySetup, startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Issue 12 items 4, 5 and 6, through the gateway with the official OpenAI
 * client: a call reserves an upper bound of what it can cost before it goes
 * upstream (input: its size in bytes; output: its cap times the choices it
 * asks for, the cap sent to the provider when the caller set none), so
 * concurrent calls cannot together spend past a budget or a tokens-per-minute
 * limit even when the provider reports far more tokens than characters / 4;
 * and a model's price is its exact entry first, then the most specific glob.
 */

async function mintKey(s: GatewaySetup, body: Record<string, unknown>): Promise<{ key: string; id: string }> {
  const r = await s.vault<{ virtual_key: string; key: { id: string } }>('POST', '/v1/gateway/keys', {
    ttl: '1h',
    ...body,
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { key: r.json.virtual_key, id: r.json.key.id };
}

async function chat(
  s: GatewaySetup,
  key: string,
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${s.gw}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], ...body }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface Outcome {
  request_id: string;
  type: string;
  status_code: number;
  actor: { accessor?: string } | null;
  request: Record<string, unknown>;
}

/** The outcome records of the calls made with a virtual key. */
function outcomes(s: GatewaySetup, keyId: string): Outcome[] {
  return (s.audit() as unknown as Outcome[]).filter(
    (e) =>
      (e as unknown as { operation: string }).operation === 'gateway.invoke' &&
      e.type === 'response' &&
      e.actor?.accessor === `vk:${keyId}`,
  );
}

/** 2,000 characters that tokenizers count as about 2,000 tokens (characters / 4 says 500). */
const WIDE_PROMPT = '漢字'.repeat(1000);

test('50 concurrent calls never settle more than a spend budget, even when the provider reports 4 times the tokens characters / 4 estimates', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const budget = 0.05;
  const vk = await mintKey(s, { name: 'spender', limits: { spend: { usd: budget, period: 'total' } } });
  // an honest provider: it bills the prompt's real tokens and no more output than max_tokens
  s.openaiFake.usage = { input: 2000, output: 100 };
  s.openaiFake.delayMs = 30;
  const results = await Promise.all(
    Array.from({ length: 50 }, () =>
      chat(s, vk.key, { max_tokens: 100, messages: [{ role: 'user', content: WIDE_PROMPT }] }),
    ),
  );
  const ok = results.filter((r) => r.status === 200).length;
  assert.ok(ok >= 1, 'some calls were served');
  assert.equal(
    ok + results.filter((r) => r.status === 429).length,
    50,
    `statuses: ${[...new Set(results.map((r) => r.status))]}`,
  );
  const spent = outcomes(s, vk.id)
    .filter((e) => e.status_code === 200)
    .reduce((n, e) => n + Number(e.request.cost_usd), 0);
  // each call costs (2000 × 2.5 + 100 × 10) / 1e6 = $0.006; all 50 would be $0.30
  assert.ok(spent <= budget + 1e-9, `settled $${spent} on a $${budget} budget (${ok} calls served)`);
  assert.equal(s.openaiFake.requests.length, ok, 'only admitted calls reached the provider');
});

test('50 concurrent calls never use more than a tokens-per-minute limit, whatever characters / 4 said', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const limit = 20_000;
  const vk = await mintKey(s, { name: 'tpm', limits: { tokens_per_minute: limit } });
  s.openaiFake.usage = { input: 2000, output: 100 };
  s.openaiFake.delayMs = 30;
  const results = await Promise.all(
    Array.from({ length: 50 }, () =>
      chat(s, vk.key, { max_tokens: 100, messages: [{ role: 'user', content: WIDE_PROMPT }] }),
    ),
  );
  const served = outcomes(s, vk.id).filter((e) => e.status_code === 200);
  assert.ok(served.length >= 1, 'some calls were served');
  const used = served.reduce(
    (n, e) => n + Number(e.request.input_tokens) + Number(e.request.output_tokens),
    0,
  );
  assert.ok(used <= limit, `${used} tokens used under a limit of ${limit} per minute`);
  assert.equal(results.filter((r) => r.status === 200).length, served.length);
});

test('n is counted: 128 choices of 100 tokens do not fit a $0.05 budget and never reach the provider; n outside 1–128 is refused', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const vk = await mintKey(s, { name: 'many', limits: { spend: { usd: 0.05, period: 'total' } } });
  // 128 × 100 output tokens at $10 per million: $0.128 at most
  const many = await chat(s, vk.key, { n: 128, max_tokens: 100 });
  assert.equal(many.status, 429, JSON.stringify(many.json));
  assert.equal((many.json.error as { code?: string }).code, 'rate_limited');
  assert.equal(s.openaiFake.requests.length, 0);

  // two choices of 100 fit, and the reservation counted both
  const two = await chat(s, vk.key, { n: 2, max_tokens: 100 });
  assert.equal(two.status, 200, JSON.stringify(two.json));
  const admitted = s.audit().find((e) => e.type === 'request' && e.operation === 'gateway.invoke') as
    | Outcome
    | undefined;
  assert.ok(admitted, 'a request record');
  assert.ok(Number(admitted.request.reserved_tokens) >= 200, JSON.stringify(admitted.request));

  for (const n of [0, 129, 1.5, '2', -1]) {
    const r = await chat(s, vk.key, { n, max_tokens: 10 });
    assert.equal(r.status, 400, `n=${JSON.stringify(n)}: ${JSON.stringify(r.json)}`);
    assert.equal((r.json.error as { code?: string }).code, 'invalid_value');
  }
  for (const max_tokens of [0, -5, 2.5, '100']) {
    const r = await chat(s, vk.key, { max_tokens });
    assert.equal(r.status, 400, `max_tokens=${JSON.stringify(max_tokens)}`);
  }
  assert.equal(s.openaiFake.requests.length, 1, 'only the call that fitted went upstream');
});

test('a call that sets no output cap is sent upstream with the gateway cap, in the field each API uses', async (t: TestContext) => {
  const s = await startGatewaySetup(t, { gatewayYaml: ['default_max_output_tokens: 300'] });
  const token = await s.appToken();
  const openai = s.openai(token);
  await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] });
  let body = s.openaiFake.lastRequest()!.body as Record<string, unknown>;
  assert.equal(body.max_completion_tokens, 300);
  assert.equal(body.max_tokens, undefined);

  // the caller's own cap is kept as sent
  await openai.chat.completions.create({
    model: 'gpt-4o',
    max_tokens: 20,
    messages: [{ role: 'user', content: 'a' }],
  });
  body = s.openaiFake.lastRequest()!.body as Record<string, unknown>;
  assert.equal(body.max_tokens, 20);
  assert.equal(body.max_completion_tokens, undefined);

  await openai.responses.create({ model: 'gpt-4o', input: 'a' });
  body = s.openaiFake.lastRequest()!.body as Record<string, unknown>;
  assert.equal(body.max_output_tokens, 300);

  const res = await fetch(`${s.gw}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': token, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-sonnet-5-5', messages: [{ role: 'user', content: 'a' }] }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  body = s.anthropicFake.lastRequest()!.body as Record<string, unknown>;
  assert.equal(body.max_tokens, 300);
});

test('a model is priced by its exact entry first, then the most specific glob, whatever the order of the price table', async (t: TestContext) => {
  const s = await startGatewaySetup(t, {
    prices: {
      '*': { input: 1000, output: 1000 },
      'gpt-*': { input: 100, output: 100 },
      'gpt-4o': { input: 2.5, output: 10 },
      'claude-*': { input: 3, output: 15 },
    },
  });
  const vk = await mintKey(s, { name: 'priced' });
  s.openaiFake.usage = { input: 1000, output: 1000 };
  assert.equal((await chat(s, vk.key, { model: 'gpt-4o' })).status, 200);
  assert.equal((await chat(s, vk.key, { model: 'gpt-4o-mini' })).status, 200);
  assert.equal((await chat(s, vk.key, { model: 'gpt-5' })).status, 200);
  const costs = outcomes(s, vk.id).map((e) => Number(e.request.cost_usd));
  // gpt-4o: its own entry; gpt-4o-mini and gpt-5: `gpt-*` (more specific than `*`)
  assert.deepEqual(
    costs.map((c) => Math.round(c * 1e6) / 1e6),
    [0.0125, 0.2, 0.2],
  );
});

test('a model with no price cannot spend a budget: a key with a spend limit is refused, a key without one is served', async (t: TestContext) => {
  const s = await startGatewaySetup(t, { prices: { 'gpt-*': { input: 2.5, output: 10 } } });
  const limited = await mintKey(s, { name: 'limited', limits: { spend: { usd: 5, period: 'day' } } });
  const free = await mintKey(s, { name: 'free', limits: { requests_per_minute: 100 } });
  const embed = (key: string) =>
    fetch(`${s.gw}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'text-embedding-3-small', input: 'hello' }),
    });
  const refused = await embed(limited.key);
  assert.equal(refused.status, 403);
  const err = ((await refused.json()) as { error: { code: string; message: string } }).error;
  assert.equal(err.code, 'model_not_priced');
  assert.match(err.message, /gateway\.prices/);
  assert.equal((await embed(free.key)).status, 200);
  assert.equal(s.openaiFake.requests.length, 1);
});

test('limits on a caller bind what it mints: its child tokens and the virtual keys it minted share its requests per minute', async (t: TestContext) => {
  const s = await startGatewaySetup(t, { gatewayYaml: ['limits: {tokens: {requests_per_minute: 5}}'] });
  const parent = await s.vault<{ auth: { client_token: string } }>('POST', '/v1/auth/token/create', {
    roles: ['developer'],
    ttl: '1h',
    display_name: 'limited-developer',
  });
  const token = parent.json.auth.client_token;
  const child = await s.vault<{ auth: { client_token: string } }>(
    'POST',
    '/v1/auth/token/create',
    { roles: ['developer'], ttl: '30m', display_name: 'its-child' },
    token,
  );
  assert.equal(child.status, 200, JSON.stringify(child.json));
  const minted = await s.vault<{ virtual_key: string }>(
    'POST',
    '/v1/gateway/keys',
    { name: 'self-minted', ttl: '30m', limits: { requests_per_minute: 1000 } },
    token,
  );
  assert.equal(minted.status, 201, JSON.stringify(minted.json));
  const statuses: number[] = [];
  for (const key of [token, child.json.auth.client_token, minted.json.virtual_key]) {
    for (let i = 0; i < 3; i++) statuses.push((await chat(s, key, { max_tokens: 5 })).status);
  }
  // nine calls by one caller and what it minted: five fit its limit, whoever made them
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429]);
  assert.equal(s.openaiFake.requests.length, 5);
});

test('an answer that reports no usage keeps what its call reserved, so a provider that says nothing cannot spend past a budget', async (t: TestContext) => {
  // an OpenAI-compatible provider that answers without `usage` (as a background response does)
  const silent = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-silent',
          object: 'chat.completion',
          created: 1,
          model: 'gpt-4o',
          choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        }),
      );
    });
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => silent.close(() => r())));
  const s = await startGatewaySetup(t, {
    openaiBaseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
  });
  const vk = await mintKey(s, { name: 'silent', limits: { spend: { usd: 0.05, period: 'total' } } });
  const statuses: number[] = [];
  // each call may cost up to (its bytes × 2.5 + 1000 × 10) / 1e6 ≈ $0.0103: four fit in $0.05
  for (let i = 0; i < 10; i++) statuses.push((await chat(s, vk.key, { max_tokens: 1000 })).status);
  assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429, 429, 429, 429]);
  const served = outcomes(s, vk.id).filter((e) => e.status_code === 200);
  assert.equal(served.length, 4);
  for (const e of served) assert.equal(e.request.input_tokens, null, 'no usage was reported');
});

test('a Responses call in the background is refused: neither its answer nor its usage could come back through the gateway', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const res = await fetch(`${s.gw}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ model: 'gpt-4o', input: 'hi', background: true }),
  });
  assert.equal(res.status, 400);
  const err = ((await res.json()) as { error: { code: string; message: string } }).error;
  assert.equal(err.code, 'invalid_value');
  assert.match(err.message, /background/);
  assert.equal(s.openaiFake.requests.length, 0);
});

test('a call whose input the provider assembles (an earlier response, a file, a server-side tool) reserves the context window; media blocks anywhere reserve their allowance', async (t: TestContext) => {
  const s = await startGatewaySetup(t, {
    gatewayYaml: ['reference_tokens: 3000'],
  });
  const vk = await mintKey(s, { name: 'context', limits: { spend: { usd: 0.08, period: 'total' } } });
  const responses = (body: Record<string, unknown>) =>
    fetch(`${s.gw}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${vk.key}` },
      body: JSON.stringify({ model: 'gpt-4o', max_output_tokens: 50, ...body }),
    });
  // up to 1,000,000 input tokens at $2.5 per million cannot fit $0.08
  for (const extra of [
    { input: 'and then?', previous_response_id: 'resp_0123' },
    { input: 'hi', conversation: 'conv_0123' },
    { input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-0123' }] }] },
    { input: 'find it', tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] },
    { input: 'look it up', tools: [{ type: 'web_search' }] },
  ]) {
    const r = await responses(extra);
    assert.equal(r.status, 429, `${JSON.stringify(extra)}: ${await r.text()}`);
  }
  // a chat turn that names an earlier answer's audio by id: the provider reads it back
  const audio = await chat(s, vk.key, {
    max_tokens: 50,
    messages: [
      { role: 'assistant', audio: { id: 'audio_0123' } },
      { role: 'user', content: 'and then?' },
    ],
  });
  assert.equal(audio.status, 429, JSON.stringify(audio.json));
  assert.equal(s.openaiFake.requests.length, 0);
  // a plain one fits, and an image inside a tool result is reserved as its allowance
  const plain = await responses({
    input: [
      {
        type: 'function_call_output',
        call_id: 'c1',
        output: [{ type: 'input_image', image_url: 'https://x/y.png' }],
      },
    ],
  });
  assert.equal(plain.status, 200, await plain.text());
  const admitted = s.audit().find((e) => e.type === 'request' && e.operation === 'gateway.invoke') as
    | Outcome
    | undefined;
  assert.ok(Number(admitted?.request.reserved_tokens) >= 3000 + 50, JSON.stringify(admitted?.request));
});

test('prompt-cache tokens count: an Anthropic call that writes 10,000 tokens to the cache is charged for them, so cache_control cannot spend past a budget', async (t: TestContext) => {
  // an Anthropic-compatible provider that reports usage as Anthropic does with prompt caching:
  // `input_tokens` leaves out what was written to the cache
  const caching = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'msg_cache',
          type: 'message',
          role: 'assistant',
          model: 'claude-sonnet-5-5',
          content: [{ type: 'text', text: 'ok' }],
          stop_reason: 'end_turn',
          stop_sequence: null,
          usage: {
            input_tokens: 5,
            output_tokens: 10,
            cache_creation_input_tokens: 10_000,
            cache_read_input_tokens: 0,
          },
        }),
      );
    });
  });
  await new Promise<void>((r) => caching.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => caching.close(() => r())));
  const s = await startGatewaySetup(t, {
    anthropicBaseUrl: `http://127.0.0.1:${(caching.address() as AddressInfo).port}`,
  });
  const vk = await mintKey(s, { name: 'cacher', limits: { spend: { usd: 0.2, period: 'total' } } });
  // a long system prompt marked for caching (10,000 bytes: as many tokens at most)
  const system = [{ type: 'text', text: 'policy '.repeat(1430), cache_control: { type: 'ephemeral' } }];
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`${s.gw}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': vk.key, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({
        model: 'claude-sonnet-5-5',
        max_tokens: 100,
        system,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    statuses.push(res.status);
    await res.arrayBuffer();
  }
  // a cache write for an hour costs 2 x $3 per million: 10,000 tokens are $0.06 a call
  const served = outcomes(s, vk.id).filter((e) => e.status_code === 200);
  for (const e of served) {
    assert.equal(e.request.cache_write_tokens, 10_000);
    assert.ok(Math.abs(Number(e.request.cost_usd) - (5 * 3 + 10 * 15 + 10_000 * 6) / 1e6) < 1e-9);
  }
  assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
  const spent = served.reduce((n, e) => n + Number(e.request.cost_usd), 0);
  assert.ok(spent <= 0.2, `settled $${spent} on a $0.20 budget`);
});
