import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Issue 13 item 8: a JSON body that is not valid UTF-8 is refused with 400 `invalid_json`, on the vault
 * API and on the gateway, whatever the bad bytes are (an invalid byte, an overlong form, a surrogate
 * encoded as UTF-8, a code point past U+10FFFF, a truncated sequence) and wherever they sit (in a string
 * value, in a key). Before, Node decoded them to U+FFFD and the vault stored a value the client never
 * sent. Valid UTF-8 — U+FFFD itself included — is stored byte for byte, even when a character is split
 * across TCP packets. The requests go over real sockets to a listening server.
 */

const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';

const BAD: [string, string][] = [
  ['a 0xFF byte', 'ff'],
  ['a lone continuation byte', '80'],
  ['an overlong two-byte "/" (C0 AF)', 'c0af'],
  ['an overlong three-byte "/" (E0 80 AF)', 'e080af'],
  ['an overlong four-byte "/" (F0 80 80 AF)', 'f08080af'],
  ['a lone high surrogate encoded as UTF-8 (ED A0 80)', 'eda080'],
  ['a lone low surrogate encoded as UTF-8 (ED B0 80)', 'edb080'],
  ['a code point past U+10FFFF (F4 90 80 80)', 'f4908080'],
  ['a truncated three-byte sequence (E2 82)', 'e282'],
];

/** Where the bad bytes go: a secret write whose value, or a metadata key, holds them. */
const PLACES: [string, (bad: Buffer) => Buffer][] = [
  ['in a string value', (bad) => Buffer.concat([Buffer.from('{"value":"a'), bad, Buffer.from('b"}')])],
  [
    'in a key',
    (bad) => Buffer.concat([Buffer.from('{"value":"x","metadata":{"k'), bad, Buffer.from('":"v"}}')]),
  ],
];

interface RawAnswer {
  status: number;
  json: { error?: { code?: string; message?: string; type?: string } } & Record<string, unknown>;
}

/**
 * One HTTP/1.1 request written by hand: the head, then the body in `chunks`, each written on its own
 * after a pause (Nagle off) so that it travels in its own TCP segment.
 */
async function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  chunks: Buffer[],
): Promise<RawAnswer> {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const sock = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const received: Buffer[] = [];
  sock.on('data', (d: Buffer) => received.push(d));
  const ended = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  const head = [
    `${method} ${path} HTTP/1.1`,
    'host: 127.0.0.1',
    'connection: close',
    'content-type: application/json',
    `content-length: ${length}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n');
  sock.write(`${head}\r\n\r\n`);
  for (const c of chunks) {
    await sleep(15);
    sock.write(c);
  }
  await ended;
  const text = Buffer.concat(received).toString('utf8');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  // a chunked answer: take the JSON between the first and the last brace
  const json = JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1));
  return { status, json };
}

async function listening(t: TestContext): Promise<{ a: TestApp; port: number }> {
  const a = await buildTestApp(t);
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  assert.equal((await a.call('PUT', SECRET, { value: 'v1' })).statusCode, 200);
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  return { a, port: (a.app.server.address() as AddressInfo).port };
}

test('vault API: a body with invalid UTF-8 is 400 invalid_json, in a value or a key, and nothing is written', async (t) => {
  const { a, port } = await listening(t);
  const auth = { authorization: `Bearer ${a.rootToken}` };
  for (const [place, body] of PLACES) {
    for (const [what, hex] of BAD) {
      const res = await raw(port, 'PUT', SECRET, auth, [body(Buffer.from(hex, 'hex'))]);
      assert.equal(res.status, 400, `${what} ${place}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error?.code, 'invalid_json', `${what} ${place}`);
      assert.match(String(res.json.error?.message), /not valid UTF-8/);
    }
  }
  const now = (await a.call('GET', SECRET)).json() as { value: string; version: number };
  assert.equal(now.value, 'v1');
  assert.equal(now.version, 1, 'no version was written');
});

test('vault API: invalid UTF-8 split across TCP packets is refused too; a public route refuses it as well', async (t) => {
  const { a, port } = await listening(t);
  // the bad sequence is cut in two: its first byte ends one packet, the rest starts the next
  const body = Buffer.concat([Buffer.from('{"value":"a'), Buffer.from('eda080', 'hex'), Buffer.from('"}')]);
  const cut = body.indexOf(0xed) + 1;
  const res = await raw(port, 'PUT', SECRET, { authorization: `Bearer ${a.rootToken}` }, [
    body.subarray(0, cut),
    body.subarray(cut, cut + 1),
    body.subarray(cut + 1),
  ]);
  assert.equal(res.status, 400);
  assert.equal(res.json.error?.code, 'invalid_json');
  const login = await raw(port, 'POST', '/v1/auth/login', {}, [
    Buffer.concat([
      Buffer.from('{"username":"b'),
      Buffer.from('ff', 'hex'),
      Buffer.from('b","password":"x"}'),
    ]),
  ]);
  assert.equal(login.status, 400);
  assert.equal(login.json.error?.code, 'invalid_json');
  assert.equal((await a.call('GET', SECRET)).json().value, 'v1');
});

test('vault API: valid UTF-8 (U+FFFD itself included) is stored byte for byte, even with characters split across packets', async (t) => {
  const { a, port } = await listening(t);
  const value = 'é-😀-\uFFFD-中-\u{10FFFF}';
  const body = Buffer.from(JSON.stringify({ value }));
  // one byte a packet through the multi-byte characters
  const start = body.indexOf(0xc3);
  const chunks = [body.subarray(0, start)];
  for (let i = start; i < body.length - 2; i++) chunks.push(body.subarray(i, i + 1));
  chunks.push(body.subarray(body.length - 2));
  const res = await raw(port, 'PUT', SECRET, { authorization: `Bearer ${a.rootToken}` }, chunks);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  const stored = (await a.call('GET', SECRET)).json() as { value: string };
  assert.equal(stored.value, value);
  assert.deepEqual(Buffer.from(stored.value), Buffer.from(value));
});

test('gateway: a chat request with invalid UTF-8 is 400 invalid_json in the provider format, and nothing goes upstream', async (t) => {
  const s = await startGatewaySetup(t);
  const token = await s.appToken();
  const port = Number(new URL(s.gw).port);
  const before = s.upstreamRequests().length;
  for (const [what, hex] of BAD) {
    const body = Buffer.concat([
      Buffer.from('{"model":"gpt-4o","messages":[{"role":"user","content":"say '),
      Buffer.from(hex, 'hex'),
      Buffer.from('"}]}'),
    ]);
    const res = await raw(port, 'POST', '/v1/chat/completions', { authorization: `Bearer ${token}` }, [body]);
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.json)}`);
    assert.equal(res.json.error?.code, 'invalid_json', what);
    assert.equal(res.json.error?.type, 'invalid_request_error');
  }
  assert.equal(s.upstreamRequests().length, before, 'no request reached the provider');
  // a valid request still goes through
  const ok = await s.openai(token).chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'é 😀 \uFFFD' }],
  });
  assert.ok(ok.choices[0]?.message.content);
});
