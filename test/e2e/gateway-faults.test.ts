import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { APIError } from 'openai';
import type { RecordedRequest } from '../fakes/openai-upstream.ts';
import { type GatewaySetup, startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Issue 12 items 9–12, through the gateway with the official clients:
 * revocation reaches open streams within a second, a client that goes away
 * cancels the upstream request, a call is cut at `max_call_duration`, a body
 * nested too deep is a 400, and nothing is spent unrecorded — no upstream
 * call unless the audit sink took the call's request record, and a stream
 * whose outcome record fails ends with an error event, never a clean end.
 */

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');

/** Waits until the upstream request's connection was closed before its answer ended (or gives up). */
async function cancelled(rec: () => RecordedRequest | undefined, ms = 3000): Promise<number | undefined> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const at = rec()?.abortedAt;
    if (at !== undefined) return at;
    await sleep(20);
  }
  return undefined;
}

/** The outcome record of the last gateway call. */
function lastOutcome(s: GatewaySetup) {
  return s
    .audit()
    .filter((e) => e.operation === 'gateway.invoke' && e.type === 'response')
    .at(-1) as { status: string; error_code?: string; request: Record<string, unknown> } | undefined;
}

test('a revoked token or virtual key ends its open stream within 1 s: an error event, the upstream request cancelled, the call recorded', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  s.openaiFake.reply = words(400);
  s.openaiFake.chunkDelayMs = 40;
  s.anthropicFake.reply = words(400);
  s.anthropicFake.chunkDelayMs = 40;

  // a token, with the OpenAI client
  const token = await s.appToken();
  const stream = await s.openai(token).chat.completions.create({
    model: 'gpt-4o',
    stream: true,
    messages: [{ role: 'user', content: 'talk for a while' }],
  });
  let revokedAt = 0;
  let chunks = 0;
  const ended = await (async () => {
    try {
      for await (const _ of stream) {
        if (++chunks === 3) {
          assert.equal((await s.vault('POST', '/v1/auth/token/revoke-self', undefined, token)).status, 200);
          revokedAt = Date.now();
        }
      }
      return 'clean end';
    } catch (err) {
      return err instanceof APIError ? 'error event' : String(err);
    }
  })();
  const took = Date.now() - revokedAt;
  assert.equal(ended, 'error event');
  assert.ok(took < 1000, `the stream went on ${took} ms after the revocation`);
  const abortedAt = await cancelled(() => s.openaiFake.lastRequest());
  assert.ok(abortedAt !== undefined, 'the upstream request was cancelled');
  assert.ok(
    abortedAt - revokedAt < 1500,
    `upstream cancelled ${abortedAt - revokedAt} ms after the revocation`,
  );
  assert.equal(lastOutcome(s)?.error_code, 'credential_revoked');

  // a virtual key, with the Anthropic client
  const minted = await s.vault<{ virtual_key: string; key: { id: string } }>('POST', '/v1/gateway/keys', {
    name: 'streamer',
    ttl: '1h',
  });
  const messages = s.anthropic(minted.json.virtual_key).messages.stream({
    model: 'claude-sonnet-5-5',
    max_tokens: 1000,
    messages: [{ role: 'user', content: 'talk for a while' }],
  });
  let keyRevokedAt = 0;
  let events = 0;
  const keyEnded = await (async () => {
    try {
      for await (const _ of messages) {
        if (++events === 5) {
          assert.equal((await s.vault('DELETE', `/v1/gateway/keys/${minted.json.key.id}`)).status, 200);
          keyRevokedAt = Date.now();
        }
      }
      return 'clean end';
    } catch {
      return 'error event';
    }
  })();
  assert.equal(keyEnded, 'error event');
  assert.ok(Date.now() - keyRevokedAt < 1000, `the stream went on ${Date.now() - keyRevokedAt} ms`);
  assert.ok((await cancelled(() => s.anthropicFake.lastRequest())) !== undefined);
});

test('a one-use token spends its use on the call it makes: that stream runs to its end, and the token makes no second call', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  s.openaiFake.reply = words(40);
  s.openaiFake.chunkDelayMs = 40; // about 1.6 s: several revocation checks happen meanwhile
  const created = await s.vault<{ auth: { client_token: string } }>('POST', '/v1/auth/token/create', {
    roles: ['app'],
    ttl: '1h',
    num_uses: 1,
    scope: { providers: ['openai'] },
  });
  const token = created.json.auth.client_token;
  let text = '';
  const stream = await s.openai(token).chat.completions.create({
    model: 'gpt-4o',
    stream: true,
    messages: [{ role: 'user', content: 'one call' }],
  });
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
  assert.ok(text.endsWith('w39'), text.slice(-40));
  await assert.rejects(
    s
      .openai(token)
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'again' }] }),
    (e: { status?: number }) => e.status === 401,
  );
});

test('a client that goes away cancels the upstream request (streamed and plain), and the call is recorded as client_closed', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  s.openaiFake.reply = words(400);
  s.openaiFake.chunkDelayMs = 40;
  const controller = new AbortController();
  const stream = await s
    .openai(token)
    .chat.completions.create(
      { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'a' }] },
      { signal: controller.signal },
    );
  let n = 0;
  // the client's stream ends quietly when its caller aborts it
  for await (const _ of stream) if (++n === 2) controller.abort();
  assert.equal(n, 2);
  const gone = Date.now();
  const abortedAt = await cancelled(() => s.openaiFake.lastRequest());
  assert.ok(abortedAt !== undefined, 'the upstream stream was cancelled');
  assert.ok(abortedAt - gone < 1000, `${abortedAt - gone} ms`);
  await sleep(100);
  assert.equal(lastOutcome(s)?.error_code, 'client_closed');

  // a plain call waiting for a slow provider
  s.openaiFake.chunkDelayMs = 0;
  s.openaiFake.delayMs = 5000;
  const plain = new AbortController();
  const pending = fetch(`${s.gw}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }),
    signal: plain.signal,
  });
  await sleep(300);
  plain.abort();
  await assert.rejects(pending);
  assert.ok(
    (await cancelled(() => s.openaiFake.lastRequest(), 2000)) !== undefined,
    'the plain call was cancelled',
  );
});

test('a call is cut at max_call_duration: a never-ending stream ends with an error event, a silent provider with 504, both cancelled upstream', async (t: TestContext) => {
  const s = await startGatewaySetup(t, { gatewayYaml: ['max_call_duration: 2'] });
  const token = await s.appToken();
  s.openaiFake.reply = words(2000);
  s.openaiFake.chunkDelayMs = 50;
  const started = Date.now();
  const stream = await s.openai(token).chat.completions.create({
    model: 'gpt-4o',
    stream: true,
    messages: [{ role: 'user', content: 'never stop' }],
  });
  await assert.rejects(async () => {
    for await (const _ of stream) {
    }
  }, APIError);
  const took = Date.now() - started;
  assert.ok(took >= 1900 && took < 3500, `cut after ${took} ms`);
  assert.ok((await cancelled(() => s.openaiFake.lastRequest())) !== undefined);
  assert.equal(lastOutcome(s)?.error_code, 'call_timeout');

  s.openaiFake.chunkDelayMs = 0;
  s.openaiFake.delayMs = 10_000;
  const t0 = Date.now();
  const res = await fetch(`${s.gw}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }),
  });
  assert.equal(res.status, 504);
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'call_timeout');
  assert.ok(Date.now() - t0 < 3500);
});

test('a body nested deeper than max_json_depth gets 400 json_too_deep in the provider format, and the gateway goes on serving', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  for (const [open, close] of [
    ['[', ']'],
    ['{"a":', '}'],
  ] as const) {
    const deep = `{"model":"gpt-4o","messages":[{"role":"user","content":${open.repeat(100_000)}1${close.repeat(100_000)}}]}`;
    const res = await fetch(`${s.gw}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: deep,
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; type: string } };
    assert.equal(body.error.code, 'json_too_deep');
    assert.equal(body.error.type, 'invalid_request_error');
  }
  // just under the limit is served
  const ok = await s.openai(token).chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'still here' }],
    metadata: { nested: JSON.stringify({ a: [[[[1]]]] }) },
  });
  assert.ok(ok.choices[0]?.message.content);
  assert.equal(s.openaiFake.requests.length, 1);
  assert.doesNotMatch(s.logs(), /RangeError|Maximum call stack/);
});

test('nothing is spent unrecorded: with the audit sink failing no upstream call is made, and a stream whose outcome record fails ends with an error event', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const openai = s.openai(token);
  // warm: the provider key is in memory, the caller known
  await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'warm' }] });
  const before = s.openaiFake.requests.length;

  chmodSync(s.auditFile, 0o400);
  try {
    for (const stream of [false, true]) {
      const res = await fetch(`${s.gw}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          model: 'gpt-4o',
          stream,
          messages: [{ role: 'user', content: 'unrecorded' }],
        }),
      });
      assert.equal(res.status, 503, `stream=${stream}`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'audit_unavailable');
    }
    assert.equal(s.openaiFake.requests.length, before, 'no upstream call without a record');
  } finally {
    chmodSync(s.auditFile, 0o600);
  }

  // the record of the start is written, the sink fails before the end: the client sees an error, not a clean end
  s.openaiFake.reply = words(30);
  s.openaiFake.chunkDelayMs = 30;
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o',
    stream: true,
    messages: [{ role: 'user', content: 'recorded start' }],
  });
  let n = 0;
  try {
    // the client's iteration throws on the error event: the stream did not end cleanly
    await assert.rejects(async () => {
      for await (const _ of stream) if (++n === 1) chmodSync(s.auditFile, 0o400);
    }, APIError);
  } finally {
    chmodSync(s.auditFile, 0o600);
  }
});

test('a caller that sends its request too slowly is disconnected at request_timeout, and nothing reaches the provider', async (t: TestContext) => {
  const s = await startGatewaySetup(t, { gatewayYaml: ['request_timeout: 2'] });
  const token = await s.appToken();
  const url = new URL(s.gw);
  const socket = connect(Number(url.port), url.hostname);
  t.after(() => socket.destroy());
  const started = Date.now();
  socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model":`,
  );
  // one byte a second: never done
  const drip = setInterval(() => socket.write(' '), 1000);
  t.after(() => clearInterval(drip));
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d) => {
      text += d.toString();
    });
    socket.on('close', () => resolve(text));
  });
  const took = Date.now() - started;
  assert.ok(took >= 1900 && took < 6000, `closed after ${took} ms`);
  assert.match(answer, /^HTTP\/1\.1 408/);
  assert.equal(s.openaiFake.requests.length, 0);
});
