import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildTestApp, tempDir } from '../helpers/app.ts';

test('a forbid policy that fails to evaluate denies instead of being skipped', async (t) => {
  const a = await buildTestApp(t);
  await a.call('POST', '/v1/projects', { name: 'p' });
  await a.call('PUT', '/v1/secrets/p/dev/K', { value: 'v' });
  const dev = (await a.call('POST', '/v1/auth/token/create', { roles: ['developer'] })).json().auth
    .client_token;
  assert.equal((await a.call('GET', '/v1/secrets/p/dev/K', undefined, dev)).statusCode, 200);
  // an integer overflow at evaluation time: Cedar would skip this policy and allow
  const put = await a.call('PUT', '/v1/sys/policies/overflow', {
    policy:
      'forbid (principal, action == Strongroom::Action::"secret.read", resource) when { context.now * 9223372036854775807 > 0 };',
  });
  assert.equal(put.statusCode, 200, put.body);
  const res = await a.call('GET', '/v1/secrets/p/dev/K', undefined, dev);
  assert.equal(res.statusCode, 403);
  assert.match(res.json().error.message, /policy evaluation failed/);
});

test('requests refused before authorization (no token, a bad token) are in the audit log', async (t) => {
  const log = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, { audit: [{ file: { path: log } }] });
  const none = await a.inject({ method: 'GET', url: '/v1/projects' });
  const bad = await a.inject({
    method: 'GET',
    url: '/v1/projects',
    headers: { authorization: 'Bearer srt_not-a-real-token' },
  });
  assert.equal(none.statusCode, 401);
  assert.equal(bad.statusCode, 401);
  const entries = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  for (const [res, code] of [
    [none, 'unauthenticated'],
    [bad, 'invalid_token'],
  ] as const) {
    const mine = entries.filter((e) => e.request_id === res.headers['x-request-id']);
    assert.deepEqual(
      mine.map((e) => e.type),
      ['request', 'response'],
    );
    assert.equal(mine[0].decision.allowed, false);
    assert.equal(mine[0].decision.reason, code);
    assert.equal(mine[1].error_code, code);
  }
  assert.doesNotMatch(readFileSync(log, 'utf8'), /srt_not-a-real-token/);
});

test('a token with the app role needs a scope', async (t) => {
  const a = await buildTestApp(t);
  const res = await a.call('POST', '/v1/auth/token/create', { roles: ['app'] });
  assert.equal(res.statusCode, 400);
  assert.match(res.json().error.message, /app role needs a scope/);
  assert.equal(
    (await a.call('POST', '/v1/auth/token/create', { roles: ['app'], scope: { paths: ['p/dev'] } }))
      .statusCode,
    200,
  );
});
