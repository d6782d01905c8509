import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { EchoKeyMode, RecordedRequest } from '../fakes/openai-upstream.ts';
import { type GatewaySetup, OPENAI_MODELS, type Seen, startGatewaySetup } from '../helpers/gateway.ts';
import { awayFromMinuteEdge } from '../helpers/wait.ts';

/**
 * The AI gateway end to end (issue 7, "Must show"): the official `openai` and
 * `@anthropic-ai/sdk` clients pointed at a real gateway listener (in-process
 * `startServer`, SQLite in a temp folder, a JSON-lines audit file, the log
 * captured) in front of the fake upstreams; the vault holds the provider keys,
 * the clients hold Strongroom credentials. Each top-level test builds its own
 * set-up. An "evil" server stands for every other host: it must never be called.
 */

/** Headers the gateway may send upstream: what it builds itself plus the per-API allow-list. */
const ALLOWED_UPSTREAM_HEADERS = {
  openai: new Set([
    'host',
    'connection',
    'content-length',
    'content-type',
    'accept',
    'authorization',
    'traceparent',
    'openai-beta',
  ]),
  anthropic: new Set([
    'host',
    'connection',
    'content-length',
    'content-type',
    'accept',
    'x-api-key',
    'traceparent',
    'anthropic-version',
    'anthropic-beta',
  ]),
};
const UPSTREAM_PATHS = new Set([
  'POST /v1/chat/completions',
  'POST /v1/responses',
  'POST /v1/embeddings',
  'GET /v1/models',
  'POST /v1/messages',
  'POST /v1/messages/count_tokens',
]);

const marker = () => `quokka${randomBytes(6).toString('hex')}`;

/** Every 16-character piece of a secret and of its base64 forms: none may show anywhere. */
function leakPieces(secret: string): string[] {
  const forms = [secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url')];
  const out = new Set<string>();
  for (const f of forms) for (let i = 0; i + 16 <= f.length; i += 4) out.add(f.slice(i, i + 16));
  return [...out];
}

function assertNoSecret(text: string, secrets: readonly string[], where: string): void {
  for (const s of secrets) {
    for (const p of leakPieces(s)) {
      assert.ok(!text.includes(p), `${where} contains a piece of a secret (${p.slice(0, 4)}…)`);
    }
  }
}

/** Every response the client saw (headers and body), once the tee'd bodies have drained. */
async function seenText(seen: Seen[]): Promise<string> {
  await sleep(30);
  return seen.map((s) => `${s.status} ${s.url}\n${s.headers}\n${s.body}`).join('\n');
}

/** The upstream request carried the vault-held key, and nothing the client chose. */
function assertForwarded(r: RecordedRequest, api: 'openai' | 'anthropic', key: string, port: number): void {
  if (api === 'openai') assert.equal(r.headers.authorization, `Bearer ${key}`);
  else {
    assert.equal(r.headers['x-api-key'], key);
    assert.equal(r.headers.authorization, undefined);
  }
  assert.equal(r.headers.host, `127.0.0.1:${port}`);
  assert.ok(UPSTREAM_PATHS.has(`${r.method} ${r.path}`), `upstream path ${r.method} ${r.path}`);
  const names = new Set<string>();
  for (let i = 0; i < r.rawHeaders.length; i += 2) names.add(r.rawHeaders[i]!.toLowerCase());
  for (const n of names) assert.ok(ALLOWED_UPSTREAM_HEADERS[api].has(n), `upstream got header ${n}`);
  // one of each: no duplicated credential or length
  assert.equal(r.rawHeaders.length / 2, names.size, `duplicated headers upstream: ${r.rawHeaders}`);
}

function assertAllForwarded(s: GatewaySetup): void {
  for (const r of s.openaiFake.requests) assertForwarded(r, 'openai', s.openaiFake.key, s.openaiFake.port);
  for (const r of s.anthropicFake.requests)
    assertForwarded(r, 'anthropic', s.anthropicFake.key, s.anthropicFake.port);
  assert.deepEqual(s.evil.requests, [], 'nothing reached the evil server');
}

/** Nothing the server wrote (log, audit file, metrics) holds a key, the caller's credential, a prompt or a completion. */
async function assertNothingLeaked(s: GatewaySetup, extra: { secrets?: string[]; texts?: string[] } = {}) {
  const metrics = await s.vault('GET', '/v1/sys/metrics');
  assert.equal(metrics.status, 200);
  const metricsText = String(metrics.json);
  const auditText = JSON.stringify(s.audit());
  const secrets = [...s.secrets(), ...(extra.secrets ?? [])];
  for (const [where, text] of [
    ['the server log', s.logs()],
    ['the audit log', auditText],
    ['the metrics', metricsText],
  ] as const) {
    assertNoSecret(text, secrets, where);
    for (const t of [...(extra.texts ?? []), 'You said', 'Your key is']) {
      assert.ok(!text.includes(t), `${where} contains prompt or completion text ${JSON.stringify(t)}`);
    }
  }
}

function openAiError(body: unknown, code?: string): void {
  const e = (body as { error?: { message?: unknown; type?: unknown; code?: unknown } }).error;
  assert.ok(
    e && typeof e.message === 'string' && typeof e.type === 'string',
    `OpenAI error shape: ${JSON.stringify(body)}`,
  );
  if (code) assert.equal(e.code, code);
}

function anthropicError(body: unknown, type: string): void {
  const b = body as { type?: unknown; error?: { type?: unknown; message?: unknown } };
  assert.equal(b.type, 'error', `Anthropic error shape: ${JSON.stringify(body)}`);
  assert.equal(b.error?.type, type);
  assert.equal(typeof b.error?.message, 'string');
}

/** A plain chat call with fetch: status, headers and parsed body. */
async function rawChat(
  s: GatewaySetup,
  headers: Record<string, string>,
  model = 'gpt-4o',
  path = '/v1/chat/completions',
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const res = await fetch(s.gw + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }] }),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body, text };
}

async function rawMessages(s: GatewaySetup, headers: Record<string, string>) {
  const res = await fetch(`${s.gw}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify({
      model: 'claude-sonnet-5-5',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as unknown };
}

/** Sends raw bytes to the gateway and returns whatever came back before the socket closed (or 2 s passed). */
function rawHttp(gw: string, text: string): Promise<string> {
  const { hostname, port } = new URL(gw);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    let out = '';
    const timer = setTimeout(() => sock.destroy(), 2000);
    sock.on('data', (d) => (out += d));
    sock.on('error', (e) => (out ? resolve(out) : reject(e)));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.write(text);
  });
}

const statusOf = (raw: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);

async function collectChat(
  stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>,
): Promise<string> {
  let t = '';
  for await (const c of stream) t += c.choices[0]?.delta?.content ?? '';
  return t;
}

async function collectResponse(stream: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>): Promise<string> {
  let t = '';
  for await (const e of stream) if (e.type === 'response.output_text.delta') t += e.delta;
  return t;
}

async function collectMessages(
  stream: AsyncIterable<Anthropic.Messages.RawMessageStreamEvent>,
): Promise<string> {
  let t = '';
  for await (const e of stream)
    if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') t += e.delta.text;
  return t;
}

/** Each call's outcome record (`response`); a call that reached the provider also has a `request` record before it. */
function gatewayEntries(s: GatewaySetup) {
  return s.audit().filter((e) => e.operation === 'gateway.invoke' && e.type === 'response') as {
    request_id: string;
    resource: string;
    decision: { allowed: boolean; reason: string };
    status_code: number;
    request: {
      route: string;
      stream: boolean;
      input_tokens: number | null;
      output_tokens: number | null;
      cost_usd: number | null;
      latency_ms: number;
    };
  }[];
}

// ---------------------------------------------------------------------------

test('the official OpenAI and Anthropic clients complete plain and streaming calls through the gateway; the fake received the vault-held key and the client never saw it', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const seen: Seen[] = [];
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const prompt = `${marker()} ${marker()} ${marker()}`;

  const chat = await openai.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: prompt }],
  });
  assert.equal(chat.choices[0]?.message.content, 'You said 3 words.');
  assert.equal(chat.usage?.prompt_tokens, 3);

  const chatStream = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    stream: true,
    messages: [{ role: 'user', content: prompt }],
  });
  assert.equal(await collectChat(chatStream), 'You said 3 words.');

  const resp = await openai.responses.create({ model: 'gpt-4o', input: prompt });
  assert.equal(resp.output_text, 'You said 3 words.');
  const respStream = await openai.responses.create({ model: 'gpt-4o', input: prompt, stream: true });
  assert.equal(await collectResponse(respStream), 'You said 3 words.');

  const emb = await openai.embeddings.create({ model: 'text-embedding-3-small', input: prompt });
  assert.equal(emb.data.length, 1);
  assert.equal(emb.data[0]!.embedding.length, 8);

  const models = await openai.models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    OPENAI_MODELS,
  );

  const msg = await anthropic.messages.create({
    model: 'claude-sonnet-5-5',
    max_tokens: 100,
    messages: [{ role: 'user', content: prompt }],
  });
  assert.deepEqual(
    msg.content.map((b) => (b.type === 'text' ? b.text : b.type)),
    ['You said 3 words.'],
  );
  const helper = anthropic.messages.stream({
    model: 'claude-sonnet-5-5',
    max_tokens: 100,
    messages: [{ role: 'user', content: prompt }],
  });
  const final = await helper.finalMessage();
  assert.equal(final.content[0]?.type === 'text' && final.content[0].text, 'You said 3 words.');
  assert.equal(final.usage.output_tokens, 4);
  const rawStream = await anthropic.messages.create({
    model: 'claude-haiku-5-5',
    max_tokens: 100,
    stream: true,
    messages: [{ role: 'user', content: prompt }],
  });
  assert.equal(await collectMessages(rawStream), 'You said 3 words.');
  const count = await anthropic.messages.countTokens({
    model: 'claude-sonnet-5-5',
    messages: [{ role: 'user', content: prompt }],
  });
  assert.equal(count.input_tokens, 3);

  // GET /v1/models is answered from the routes: no upstream call
  assert.equal(s.openaiFake.requests.length, 5);
  assert.equal(s.anthropicFake.requests.length, 4);
  assertAllForwarded(s);
  // the clients' credential never went upstream
  for (const r of s.upstreamRequests()) assert.ok(!JSON.stringify(r.rawHeaders).includes(token));
  // the streamed chat asked for usage (the budget is settled from it)
  const streamed = s.openaiFake.requests[1]!.body as {
    stream: boolean;
    stream_options?: { include_usage?: boolean };
  };
  assert.equal(streamed.stream, true);
  assert.equal(streamed.stream_options?.include_usage, true);

  const sawText = await seenText(seen);
  assert.ok(seen.length >= 10, `the client made ${seen.length} calls`);
  assertNoSecret(sawText, s.secrets(), 'what the clients received');
  await assertNothingLeaked(s, { secrets: [token], texts: prompt.split(' ') });
});

test('credentials: a token works as Authorization Bearer and as x-api-key; revoked, expired, garbage and missing keys get 401 and an app scoped to another provider gets 403, in the provider error format', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();

  // accepted both ways, by both APIs
  assert.equal((await rawChat(s, { authorization: `Bearer ${token}` })).status, 200);
  assert.equal((await rawChat(s, { 'x-api-key': token })).status, 200);
  assert.equal((await rawMessages(s, { 'x-api-key': token })).status, 200);
  assert.equal((await rawMessages(s, { authorization: `Bearer ${token}` })).status, 200);
  const upstreamBefore = s.upstreamRequests().length;

  // revoked
  const revoked = await s.appToken();
  assert.equal((await rawChat(s, { authorization: `Bearer ${revoked}` })).status, 200);
  assert.equal((await s.vault('POST', '/v1/auth/token/revoke', { token: revoked })).status, 200);
  // expired
  const expiring = await s.appToken({ ttl: '1s' });
  await sleep(1500);

  const refused: [string, Record<string, string>][] = [
    ['revoked', { authorization: `Bearer ${revoked}` }],
    ['expired', { authorization: `Bearer ${expiring}` }],
    ['garbage', { authorization: 'Bearer sk-garbage-not-a-strongroom-credential' }],
    ['garbage x-api-key', { 'x-api-key': 'hvs.garbage' }],
    ['a fake virtual key', { 'x-api-key': `srv_${randomBytes(24).toString('hex')}` }],
    ['a malformed JWT', { authorization: 'Bearer eyJhbGciOiJub25lIn0.e30.' }],
    ['no key', {}],
  ];
  for (const [what, headers] of refused) {
    const o = await rawChat(s, headers);
    assert.equal(o.status, 401, `${what} (OpenAI): ${o.text}`);
    openAiError(o.body);
    const a = await rawMessages(s, headers);
    assert.equal(a.status, 401, `${what} (Anthropic): ${JSON.stringify(a.body)}`);
    anthropicError(a.body, 'authentication_error');
  }
  // the official clients see their own error classes
  await assert.rejects(
    s
      .openai('sk-garbage-key')
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    OpenAI.AuthenticationError,
  );
  await assert.rejects(
    s.anthropic('sk-garbage-key').messages.create({
      model: 'claude-sonnet-5-5',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'x' }],
    }),
    Anthropic.AuthenticationError,
  );

  // an app whose scope names only anthropic may not call OpenAI
  const app = await s.vault<{ client_id: string; client_secret: string }>('POST', '/v1/auth/apps', {
    name: 'claude-only',
    roles: ['app'],
    scope: { providers: ['anthropic'] },
  });
  assert.equal(app.status, 201, JSON.stringify(app.json));
  const login = await fetch(`${s.api}/v1/auth/app/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: app.json.client_id, client_secret: app.json.client_secret }),
  });
  const appToken = (await login.json()) as { auth?: { client_token: string }; token?: string };
  const scoped = appToken.auth?.client_token ?? appToken.token!;
  const denied = await rawChat(s, { authorization: `Bearer ${scoped}` });
  assert.equal(denied.status, 403, denied.text);
  openAiError(denied.body, 'permission_denied');
  await assert.rejects(
    s.openai(scoped).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    OpenAI.PermissionDeniedError,
  );
  assert.equal(
    (await rawMessages(s, { 'x-api-key': scoped })).status,
    200,
    'the same app may call Anthropic',
  );

  // refusals never reach an upstream (only the revoked token's one good call and the last Anthropic one did)
  assert.equal(s.upstreamRequests().length, upstreamBefore + 2);
  assertAllForwarded(s);
});

test('clients cannot steer the gateway to another host: base-URL headers, a smuggled Host, absolute-form targets, Connection tricks and conflicting lengths reach only the configured upstream with the allow-listed headers', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const evil = s.evil.url;
  const evilHost = new URL(evil).host;
  const seen: Seen[] = [];

  // 1. headers naming another host, through the official clients
  const steering = {
    'x-forwarded-host': evilHost,
    'x-forwarded-proto': 'http',
    'x-forwarded-for': '10.0.0.1',
    forwarded: `host=${evilHost};proto=http`,
    'x-openai-base-url': evil,
    'openai-base-url': evil,
    'anthropic-base-url': evil,
    'x-original-url': `${evil}/v1/chat/completions`,
    'x-rewrite-url': `${evil}/v1/chat/completions`,
    'x-host': evilHost,
    'x-http-method-override': 'GET',
    'x-upstream': evil,
    'openai-organization': 'org-evil',
    'openai-project': 'proj_evil',
    cookie: 'session=evil',
    'x-api-key': 'sk-attacker-chosen-upstream-key-000000',
  };
  const openai = s.openai(token, seen, { defaultHeaders: steering });
  const chat = await openai.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'a b' }],
  });
  assert.equal(chat.choices[0]?.message.content, 'You said 2 words.');
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o',
    stream: true,
    messages: [{ role: 'user', content: 'a b' }],
  });
  assert.equal(await collectChat(stream), 'You said 2 words.');
  const { 'x-api-key': _, ...anthropicSteering } = steering;
  const anthropic = new Anthropic({
    baseURL: s.gw,
    apiKey: token,
    maxRetries: 0,
    defaultHeaders: anthropicSteering,
  });
  const msg = await anthropic.messages.create({
    model: 'claude-sonnet-5-5',
    max_tokens: 20,
    messages: [{ role: 'user', content: 'a b' }],
  });
  assert.equal(msg.content[0]?.type === 'text' && msg.content[0].text, 'You said 2 words.');
  // a query string asking for another upstream is not forwarded
  const q = await rawChat(
    s,
    { authorization: `Bearer ${token}` },
    'gpt-4o',
    `/v1/chat/completions?base_url=${encodeURIComponent(evil)}&api-version=x`,
  );
  assert.equal(q.status, 200, q.text);

  // 2. raw requests: Host, absolute-form targets, Connection, duplicate and conflicting lengths
  const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'raw one' }] });
  const len = Buffer.byteLength(body);
  const auth = `Authorization: Bearer ${token}\r\nContent-Type: application/json\r\n`;
  const raws: [string, string, (status: number) => boolean][] = [
    [
      'Host: evil',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: ${evilHost}\r\n${auth}Content-Length: ${len}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 200,
    ],
    [
      'Host: evil.example',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\n${auth}Content-Length: ${len}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 200,
    ],
    [
      'absolute-form target at the evil server',
      `POST ${evil}/v1/chat/completions HTTP/1.1\r\nHost: ${evilHost}\r\n${auth}Content-Length: ${len}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 200 || st === 400 || st === 404,
    ],
    [
      'absolute-form target at evil.example',
      `POST http://evil.example/v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\n${auth}Content-Length: ${len}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 200 || st === 400 || st === 404,
    ],
    [
      'scheme-relative path',
      `POST //${evilHost}/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Length: ${len}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 404 || st === 400,
    ],
    [
      'Connection naming the credential and length as hop-by-hop',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ${token}\r\nContent-Type: application/json\r\nConnection: close, x-api-key, authorization, content-length, host\r\nContent-Length: ${len}\r\n\r\n${body}`,
      (st) => st === 200 || st === 401,
    ],
    [
      'Connection: keep-alive, x-api-key with a second request on the socket',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ${token}\r\nContent-Type: application/json\r\nConnection: keep-alive, x-api-key\r\nContent-Length: ${len}\r\n\r\n${body}` +
        `POST /v1/chat/completions HTTP/1.1\r\nHost: ${evilHost}\r\n${auth}Content-Length: ${len}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 200,
    ],
    [
      'duplicate Content-Length',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Length: ${len}\r\nContent-Length: ${len + 60}\r\nConnection: close\r\n\r\n${body}`,
      (st) => st === 400,
    ],
    [
      'Transfer-Encoding and Content-Length (a smuggled request in the body)',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\nPOST ${evil}/v1/chat/completions HTTP/1.1\r\nHost: ${evilHost}\r\n${auth}Content-Length: ${len}\r\n\r\n${body}`,
      (st) => st === 400,
    ],
    [
      'Transfer-Encoding: chunked, identity',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Transfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n${len.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      (st) => st === 400 || st === 501,
    ],
  ];
  for (const [what, text, ok] of raws) {
    const answer = await rawHttp(s.gw, text);
    const st = statusOf(answer);
    t.diagnostic(`${what}: HTTP ${st}`);
    assert.ok(ok(st), `${what}: got ${st}\n${answer.slice(0, 300)}`);
    assertNoSecret(answer, s.secrets(), `the answer to "${what}"`);
  }

  // the upstream saw only the configured host, fixed paths, no query, the vault key, the allow-list
  assertAllForwarded(s);
  for (const r of s.upstreamRequests()) {
    assert.ok(!r.path.includes('?'), `a query string went upstream: ${r.path}`);
    assert.ok(
      !JSON.stringify(r.rawHeaders).includes('evil'),
      `a client header went upstream: ${r.rawHeaders}`,
    );
    assert.ok(!JSON.stringify(r.rawHeaders).includes('sk-attacker'));
  }
  assertNoSecret(await seenText(seen), s.secrets(), 'what the client received');
  assert.deepEqual(s.evil.requests, []);
});

const ECHO_MODES: EchoKeyMode[] = ['whole', 'split', 'base64'];

test('a provider answer that echoes the key, whole, split across SSE chunks or base64, plain or streamed, and an upstream error body that echoes it, reach the client redacted with the text around them intact', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const seen: Seen[] = [];
  const openai = s.openai(token, seen);
  const anthropic = s.anthropic(token, seen);
  const messages = [{ role: 'user' as const, content: 'one two three' }];
  const expectRedacted = (text: string, what: string) => {
    assert.match(text, /^You said 3 words\. Your key is .*\[REDACTED\]/, `${what}: ${text}`);
    assertNoSecret(text, s.secrets(), what);
  };

  for (const mode of ECHO_MODES) {
    s.openaiFake.echoKey = mode;
    s.anthropicFake.echoKey = mode;
    const chat = await openai.chat.completions.create({ model: 'gpt-4o', messages });
    expectRedacted(chat.choices[0]!.message.content!, `chat ${mode}`);
    expectRedacted(
      await collectChat(await openai.chat.completions.create({ model: 'gpt-4o', messages, stream: true })),
      `chat stream ${mode}`,
    );
    const resp = await openai.responses.create({ model: 'gpt-4o', input: 'one two three' });
    expectRedacted(resp.output_text, `responses ${mode}`);
    expectRedacted(
      await collectResponse(
        await openai.responses.create({ model: 'gpt-4o', input: 'one two three', stream: true }),
      ),
      `responses stream ${mode}`,
    );
    const msg = await anthropic.messages.create({ model: 'claude-sonnet-5-5', max_tokens: 100, messages });
    expectRedacted(msg.content[0]?.type === 'text' ? msg.content[0].text : '', `messages ${mode}`);
    expectRedacted(
      await collectMessages(
        await anthropic.messages.create({
          model: 'claude-sonnet-5-5',
          max_tokens: 100,
          messages,
          stream: true,
        }),
      ),
      `messages stream ${mode}`,
    );
    const final = await anthropic.messages
      .stream({ model: 'claude-sonnet-5-5', max_tokens: 100, messages })
      .finalMessage();
    expectRedacted(final.content[0]?.type === 'text' ? final.content[0].text : '', `messages.stream ${mode}`);
  }
  s.openaiFake.echoKey = 'none';
  s.anthropicFake.echoKey = 'none';

  // upstream errors whose message echoes the key (a single-key pool: nothing to fall back to)
  s.openaiFake.fail = { status: 429, times: 1, retryAfter: 7 };
  const e429 = await openai.chat.completions.create({ model: 'gpt-4o', messages }).then(
    () => assert.fail('expected a 429'),
    (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
  );
  assert.equal(e429.status, 429);
  assert.equal(e429.headers?.get('retry-after'), '7');
  assert.match(
    String((e429.error as { message?: string }).message),
    /^Rate limit reached for requests made with Bearer \[REDACTED\]: Limit 3/,
  );

  s.openaiFake.fail = { status: 500, times: 1 };
  const e500 = await openai.responses.create({ model: 'gpt-4o', input: 'x' }).then(
    () => assert.fail('expected a 500'),
    (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
  );
  assert.equal(e500.status, 500);
  assert.match(
    String((e500.error as { message?: string }).message),
    /\(authorization: Bearer \[REDACTED\]\)\. Sorry about that!/,
  );

  s.anthropicFake.fail = { status: 529, times: 1 };
  const e529 = await anthropic.messages.create({ model: 'claude-sonnet-5-5', max_tokens: 10, messages }).then(
    () => assert.fail('expected a 529'),
    (e: unknown) => e as InstanceType<typeof Anthropic.APIError>,
  );
  assert.equal(e529.status, 529);
  assert.match(
    JSON.stringify(e529.error),
    /Overloaded \(request authenticated with x-api-key \[REDACTED\]\)/,
  );

  // an error event in the middle of a stream that echoes the key
  s.openaiFake.streamFailure = { afterEvents: 3, mode: 'error' };
  await assert.rejects(
    collectChat(await openai.chat.completions.create({ model: 'gpt-4o', messages, stream: true })),
  );
  s.anthropicFake.streamFailure = { afterEvents: 4, mode: 'error' };
  await assert.rejects(
    collectMessages(
      await anthropic.messages.create({
        model: 'claude-sonnet-5-5',
        max_tokens: 100,
        messages,
        stream: true,
      }),
    ),
  );

  const sawText = await seenText(seen);
  assert.ok(sawText.includes('[REDACTED]'));
  assertNoSecret(sawText, s.secrets(), 'what the clients received');
  assertAllForwarded(s);
  await assertNothingLeaked(s, { secrets: [token] });
});

/** JSON text with every character of `s` written as a \u escape (valid JSON: a parser reads back `s`). */
const uEscaped = (s: string) =>
  [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');

/** An OpenAI-compatible upstream that echoes the key it got inside JSON escapes, as some servers write JSON. */
async function startEscapingUpstream(t: TestContext): Promise<{ url: string; got: string[] }> {
  const got: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      got.push(key);
      const b64 = Buffer.from(key).toString('base64');
      // \u-escaped key, then its base64 with every "/" written "\/" (PHP's json_encode default)
      const content = `Your key is ${uEscaped(key)} and ${b64.replaceAll('/', '\\/')} ok`;
      const raw = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"${content}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(raw);
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

test('a key echoed inside JSON escapes (\\u-escaped, or its base64 with \\/) in a plain answer is redacted too', async (t) => {
  const up = await startEscapingUpstream(t);
  const s = await startGatewaySetup(t, { openaiBaseUrl: up.url });
  const token = await s.appToken();
  const seen: Seen[] = [];
  const r = await s
    .openai(token, seen)
    .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
  assert.deepEqual(up.got, [s.openaiFake.key], 'the upstream got the vault key');
  const content = r.choices[0]!.message.content!;
  assert.match(content, /^Your key is .*\[REDACTED\].* ok$/);
  assertNoSecret(content, s.secrets(), 'the answer the client parsed');
  assertNoSecret(await seenText(seen), s.secrets(), 'what the client received');
});

test('one outcome record per call with model, tokens, cost, latency and decision, and a request record before every upstream call; no key, credential or prompt text in the log, the audit file or the metrics', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const openai = s.openai(token);
  const anthropic = s.anthropic(token);
  const prompts = [marker(), marker(), marker(), marker(), marker()];
  s.openaiFake.echoKey = 'split';
  s.anthropicFake.echoKey = 'whole';
  const before = gatewayEntries(s).length;

  // 8 calls: 5 answered, 3 refused
  await openai.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: prompts[0]! }],
  });
  await collectChat(
    await openai.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      messages: [{ role: 'user', content: prompts[1]! }],
    }),
  );
  await openai.embeddings.create({ model: 'text-embedding-3-small', input: prompts[2]! });
  await anthropic.messages.create({
    model: 'claude-sonnet-5-5',
    max_tokens: 50,
    messages: [{ role: 'user', content: prompts[3]! }],
  });
  await anthropic.messages
    .stream({
      model: 'claude-sonnet-5-5',
      max_tokens: 50,
      messages: [{ role: 'user', content: prompts[4]! }],
    })
    .finalMessage();
  await assert.rejects(
    s
      .openai('sk-wrong')
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: prompts[0]! }] }),
  );
  await assert.rejects(
    openai.chat.completions.create({
      model: 'no-such-model',
      messages: [{ role: 'user', content: prompts[0]! }],
    }),
  );
  s.openaiFake.fail = { status: 500, times: 1 };
  await assert.rejects(
    openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: prompts[0]! }],
    }),
  );

  const entries = gatewayEntries(s).slice(before);
  assert.equal(entries.length, 8, JSON.stringify(entries, null, 1));
  const [chat, stream, emb, msg, msgStream, unauth, unrouted, failed] = entries as [
    (typeof entries)[0],
    ...typeof entries,
  ];
  for (const [e, resource, route, streamed] of [
    [chat, 'Model::openai/gpt-4o', 'chat.completions', false],
    [stream, 'Model::openai/gpt-4o', 'chat.completions', true],
    [emb, 'Model::openai/text-embedding-3-small', 'embeddings', false],
    [msg, 'Model::anthropic/claude-sonnet-5-5', 'messages', false],
    [msgStream, 'Model::anthropic/claude-sonnet-5-5', 'messages', true],
  ] as const) {
    assert.equal(e!.resource, resource);
    assert.equal(e!.request.route, route);
    assert.equal(e!.request.stream, streamed);
    assert.deepEqual(e!.decision, { allowed: true, reason: 'permitted' });
    assert.equal(e!.status_code, 200);
    assert.ok((e!.request.input_tokens ?? 0) >= 1, `${route} input tokens`);
    if (route !== 'embeddings') assert.ok((e!.request.output_tokens ?? 0) >= 1, `${route} output tokens`);
    assert.ok((e!.request.cost_usd ?? 0) > 0, `${route} cost`);
    assert.equal(typeof e!.request.latency_ms, 'number');
    assert.ok(e!.request.latency_ms >= 0);
  }
  assert.equal(unauth!.decision.allowed, false);
  assert.equal(unauth!.status_code, 401);
  assert.equal(unrouted!.decision.allowed, false);
  assert.equal(unrouted!.status_code, 404);
  assert.equal(failed!.status_code, 500);
  assert.equal(failed!.resource, 'Model::openai/gpt-4o-mini');
  // a call that reached the provider was recorded before it did; a refused one never reached it
  const all = s.audit();
  for (const e of [chat, stream, emb, msg, msgStream, failed]) {
    const at = all.findIndex((x) => x.request_id === e!.request_id && x.type === 'request');
    assert.ok(at >= 0, `a request record for ${e!.resource}`);
    assert.ok(at < all.findIndex((x) => x.request_id === e!.request_id && x.type === 'response'));
    assert.deepEqual(all[at]!.decision, { allowed: true, reason: 'allowed by builtin.app' });
  }
  for (const e of [unauth, unrouted])
    assert.equal(all.filter((x) => x.request_id === e!.request_id).length, 1, 'refused: one record');

  // the metrics count the calls, by model, without any text
  const metrics = String((await s.vault('GET', '/v1/sys/metrics')).json);
  assert.match(
    metrics,
    /strongroom_gateway_requests_total\{provider="openai",model="gpt-4o",status="200"\} 2/,
  );
  assert.match(
    metrics,
    /strongroom_gateway_tokens_total\{provider="anthropic",model="claude-sonnet-5-5",direction="output"\} \d+/,
  );
  await assertNothingLeaked(s, { secrets: [token], texts: prompts });
});

test('a redirect from the upstream is not followed: the evil server gets nothing and the client gets 502', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const seen: Seen[] = [];
  s.openaiFake.redirectTo = `${s.evil.url}/v1/chat/completions`;
  s.anthropicFake.redirectTo = `${s.evil.url}/v1/messages`;
  const openai = s.openai(token, seen);
  await assert.rejects(
    openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    (e: unknown) => {
      assert.equal((e as { status?: number }).status, 502);
      return true;
    },
  );
  await assert.rejects(
    openai.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    }),
    (e: unknown) => {
      assert.equal((e as { status?: number }).status, 502);
      return true;
    },
  );
  const a = await rawMessages(s, { 'x-api-key': token });
  assert.equal(a.status, 502);
  anthropicError(a.body, 'api_error');
  assert.equal(a.headers.get('location'), null);
  assert.equal(s.openaiFake.requests.length, 2);
  assert.equal(s.anthropicFake.requests.length, 1);
  assert.deepEqual(s.evil.requests, []);
  const sawText = await seenText(seen);
  assert.ok(!sawText.includes(s.evil.url), 'the redirect target is not passed on');
});

test('fallback in a key pool: the first key answered 429 once, the call succeeds with the second key', async (t) => {
  const s = await startGatewaySetup(t, { pool: true });
  const token = await s.appToken();
  const seen: Seen[] = [];
  // the fake accepts only its own key (the pool's second); the first answers 429 and echoes itself
  s.openaiFake.fail = { status: 429, times: 1, retryAfter: 20 };
  const r = await s
    .openai(token, seen)
    .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a b c' }] });
  assert.equal(r.choices[0]?.message.content, 'You said 3 words.');
  assert.equal(s.openaiFake.requests.length, 2);
  assert.equal(s.openaiFake.requests[0]!.headers.authorization, `Bearer ${s.poolKey}`);
  assert.equal(s.openaiFake.requests[1]!.headers.authorization, `Bearer ${s.openaiFake.key}`);
  assertNoSecret(await seenText(seen), s.secrets(), 'what the client received');
  assert.deepEqual(s.evil.requests, []);
  const entries = gatewayEntries(s);
  assert.equal(entries.length, 1, 'one call, one outcome record, however many attempts');
  assert.equal(entries[0]!.status_code, 200);
  await assertNothingLeaked(s, { secrets: [token] });
});

test('a sealed vault: the gateway answers 503 in the provider format and calls no upstream', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  assert.equal((await rawChat(s, { authorization: `Bearer ${token}` })).status, 200);
  const sealed = await s.vault('POST', '/v1/sys/seal');
  assert.ok(sealed.status < 300, JSON.stringify(sealed.json));
  const upstream = s.upstreamRequests().length;
  const o = await rawChat(s, { authorization: `Bearer ${token}` });
  assert.equal(o.status, 503, o.text);
  openAiError(o.body);
  const a = await rawMessages(s, { 'x-api-key': token });
  assert.equal(a.status, 503);
  anthropicError(a.body, 'api_error');
  assert.equal(s.upstreamRequests().length, upstream);
  assertNoSecret(o.text + JSON.stringify(a.body), s.secrets(), 'the 503 answers');
});

// ---------------------------------------------------------------------------
// virtual keys (src/engines/gateway; POST /v1/gateway/keys)

async function mintKey(s: GatewaySetup, body: Record<string, unknown>): Promise<{ key: string; id: string }> {
  const r = await s.vault<{ virtual_key: string; key: { id: string } }>('POST', '/v1/gateway/keys', {
    ttl: '1h',
    ...body,
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { key: r.json.virtual_key, id: r.json.key.id };
}

test('a virtual key works, and is refused on its next request once revoked, expired, narrowed to other models, or bound to an SVID it does not present', {}, async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const chatWith = (key: string, model = 'gpt-4o') => rawChat(s, { authorization: `Bearer ${key}` }, model);

  // works, with both SDKs' ways of sending it
  const vk = await mintKey(s, { name: 'chatbot', scope: { providers: ['openai', 'anthropic'] } });
  assert.match(vk.key, /^srv_/);
  const ok = await s
    .openai(vk.key)
    .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] });
  assert.equal(ok.choices[0]?.message.content, 'You said 1 words.');
  assert.equal((await rawMessages(s, { 'x-api-key': vk.key })).status, 200);
  assert.equal(s.openaiFake.lastRequest()!.headers.authorization, `Bearer ${s.openaiFake.key}`);

  // revoked: refused from the next request on
  assert.equal((await s.vault('DELETE', `/v1/gateway/keys/${vk.id}`)).status, 200);
  const revoked = await chatWith(vk.key);
  assert.equal(revoked.status, 401, revoked.text);
  openAiError(revoked.body);

  // expired
  const short = await mintKey(s, { name: 'short', ttl: 1 });
  assert.equal((await chatWith(short.key)).status, 200);
  await sleep(1500);
  assert.equal((await chatWith(short.key)).status, 401);

  // a model outside its scope; then narrowed while in use
  const scoped = await mintKey(s, {
    name: 'mini-only',
    scope: { providers: ['openai'], models: ['gpt-4o-mini', 'gpt-4o'] },
  });
  assert.equal((await chatWith(scoped.key, 'gpt-4o')).status, 200);
  assert.equal((await chatWith(scoped.key, 'gpt-4.1')).status, 403);
  assert.equal((await rawMessages(s, { 'x-api-key': scoped.key })).status, 403);
  const narrowed = await s.vault('PUT', `/v1/gateway/keys/${scoped.id}`, {
    scope: { providers: ['openai'], models: ['gpt-4o-mini'] },
  });
  assert.equal(narrowed.status, 200, JSON.stringify(narrowed.json));
  const outside = await chatWith(scoped.key, 'gpt-4o');
  assert.equal(outside.status, 403, outside.text);
  openAiError(outside.body, 'permission_denied');
  assert.equal((await chatWith(scoped.key, 'gpt-4o-mini')).status, 200);

  // bound to a SPIFFE ID: useless without that SVID (here: no client certificate at all)
  const bound = await mintKey(s, { name: 'bound', spiffe_id: 'spiffe://strongroom.local/ns/prod/chatbot' });
  const unbound = await chatWith(bound.key);
  assert.equal(unbound.status, 401, unbound.text);
  const later = await mintKey(s, { name: 'bound-later' });
  assert.equal((await chatWith(later.key)).status, 200);
  assert.equal(
    (
      await s.vault('PUT', `/v1/gateway/keys/${later.id}`, {
        spiffe_id: 'spiffe://strongroom.local/ns/prod/chatbot',
      })
    ).status,
    200,
  );
  assert.equal((await chatWith(later.key)).status, 401);

  assertAllForwarded(s);
  await assertNothingLeaked(s, { secrets: [vk.key, short.key, scoped.key, bound.key, later.key] });
});

test('100 concurrent calls against a virtual key allowed 10 requests a minute: at most 10 succeed, the rest get 429 with Retry-After', {}, async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const vk = await mintKey(s, { name: 'budgeted', limits: { requests_per_minute: 10 } });
  s.openaiFake.delayMs = 20;
  // one minute window for the whole burst (the limit counts windows aligned to the minute)
  await awayFromMinuteEdge();
  const results = await Promise.all(
    Array.from({ length: 100 }, () => rawChat(s, { authorization: `Bearer ${vk.key}` })),
  );
  const ok = results.filter((r) => r.status === 200).length;
  const limited = results.filter((r) => r.status === 429);
  assert.ok(ok <= 10, `${ok} calls succeeded`);
  assert.ok(ok >= 1, 'some calls succeeded');
  assert.equal(ok + limited.length, 100, `statuses: ${[...new Set(results.map((r) => r.status))]}`);
  for (const r of limited) {
    assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
    openAiError(r.body);
  }
  assert.ok(s.openaiFake.requests.length <= 10, `${s.openaiFake.requests.length} calls reached the upstream`);
  // and the next one is refused too
  assert.equal((await rawChat(s, { authorization: `Bearer ${vk.key}` })).status, 429);
  await assertNothingLeaked(s, { secrets: [vk.key] });
});
