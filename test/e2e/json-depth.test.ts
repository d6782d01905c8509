import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { loadServerConfig, type ServerConfig } from '../../src/config/config.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

/**
 * Issue 12 item 11: a JSON body nested deeper than `max_json_depth` (default 64) is refused with
 * 400 `json_too_deep` in the error shape, before it is parsed, on every route (public or not), and
 * the server goes on serving; a body at the limit is parsed as before.
 */

const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';

const arrays = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const objects = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const mixed = (n: number) => `${'{"a":['.repeat(n / 2)}1${']}'.repeat(n / 2)}`;
/** A secret write whose metadata holds the nesting (so the body is an object at the top, as the route wants). */
const inWrite = (inner: string) => `{"value":"x","metadata":{"m":${inner}}}`;

async function fixture(t: TestContext, config?: Partial<ServerConfig>): Promise<TestApp> {
  const a = await buildTestApp(t, config ? { config } : {});
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  assert.equal((await a.call('PUT', SECRET, { value: 'v1' })).statusCode, 200);
  return a;
}

function assertTooDeep(res: LightMyRequestResponse, depth: number): void {
  assert.equal(res.statusCode, 400, res.body.slice(0, 300));
  const body = res.json() as { error: Record<string, string> };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'request_id']);
  assert.equal(body.error.code, 'json_too_deep');
  assert.equal(body.error.request_id, res.headers['x-request-id']);
  assert.match(String(body.error.message), new RegExp(`deeper than ${depth} levels`));
}

const SHAPES: [string, (n: number) => string][] = [
  ['arrays', arrays],
  ['objects', objects],
  ['arrays and objects', mixed],
];
const ROUTES: {
  name: string;
  method: 'PUT' | 'POST';
  url: string;
  auth: boolean;
  wrap?: (s: string) => string;
}[] = [
  { name: 'a secret write', method: 'PUT', url: SECRET, auth: true },
  { name: 'a secret write (nesting in metadata)', method: 'PUT', url: SECRET, auth: true, wrap: inWrite },
  { name: 'an unseal (public)', method: 'POST', url: '/v1/sys/unseal', auth: false },
  { name: 'a login (public)', method: 'POST', url: '/v1/auth/login', auth: false },
  { name: 'a gateway vault-service call', method: 'POST', url: '/v1/gateway/vault/authorize', auth: true },
];

for (const [shape, make] of SHAPES) {
  test(`a body of ${shape} nested 100 000 deep is 400 json_too_deep on every route, and the server serves the next request`, async (t) => {
    const a = await fixture(t);
    const deep = make(100_000);
    for (const r of ROUTES) {
      const res = await a.inject({
        method: r.method,
        url: r.url,
        headers: {
          'content-type': 'application/json',
          ...(r.auth ? { authorization: `Bearer ${a.rootToken}` } : {}),
        },
        payload: r.wrap ? r.wrap(deep) : deep,
      });
      assertTooDeep(res, 64);
      // the server is up and the data untouched
      const next = await a.call('GET', SECRET);
      assert.equal(next.statusCode, 200, `${r.name}: the next request is served`);
      assert.equal((next.json() as { value: string }).value, 'v1');
    }
    assert.doesNotMatch(a.logs(), /Maximum call stack|RangeError/);
  });
}

test('an unclosed body 100 000 levels deep is json_too_deep too (refused before parsing)', async (t) => {
  const a = await fixture(t);
  const res = await a.inject({
    method: 'PUT',
    url: SECRET,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${a.rootToken}` },
    payload: '['.repeat(100_000),
  });
  assertTooDeep(res, 64);
});

test('a body at the default limit (64) is parsed, one level deeper is json_too_deep', async (t) => {
  const a = await fixture(t);
  const send = (payload: string) =>
    a.inject({
      method: 'PUT',
      url: SECRET,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${a.rootToken}` },
      payload,
    });
  // {"value", "metadata": {"m": <62 levels>}}: 64 levels in all; past the parser, the schema decides
  const atLimit = await send(inWrite(objects(62)));
  assert.equal(atLimit.statusCode, 400);
  assert.equal((atLimit.json() as { error: { code: string } }).error.code, 'validation_failed');
  assertTooDeep(await send(inWrite(objects(63))), 64);
});

test('with max_json_depth: 2, a body two levels deep is written and three levels is json_too_deep', async (t) => {
  const a = await fixture(t, { max_json_depth: 2 });
  const ok = await a.call('PUT', SECRET, { value: 'v2', metadata: { owner: 'billing' } });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal((await a.call('GET', SECRET)).json().value, 'v2');
  const res = await a.inject({
    method: 'PUT',
    url: SECRET,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${a.rootToken}` },
    payload: '{"value":"v3","metadata":{"owner":"billing"},"tags":[["x"]]}',
  });
  assertTooDeep(res, 2);
  assert.equal((await a.call('GET', SECRET)).json().value, 'v2', 'nothing was written');
});

test('max_json_depth is read from the config file and STRONGROOM_MAX_JSON_DEPTH, and checked', () => {
  const flags = { dev: true, data: '/tmp/strongroom-json-depth-test' };
  assert.equal(loadServerConfig(flags, {}, '/tmp').max_json_depth, 64, 'the default');
  assert.equal(loadServerConfig(flags, { STRONGROOM_MAX_JSON_DEPTH: '16' }, '/tmp').max_json_depth, 16);
  assert.throws(
    () => loadServerConfig(flags, { STRONGROOM_MAX_JSON_DEPTH: 'deep' }, '/tmp'),
    /STRONGROOM_MAX_JSON_DEPTH must be a whole number/,
  );
  assert.throws(
    () => loadServerConfig(flags, { STRONGROOM_MAX_JSON_DEPTH: '0' }, '/tmp'),
    /max_json_depth: .*(>=|minimum|greater)/i,
  );
});
