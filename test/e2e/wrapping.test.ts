import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildTestApp, tempDir } from '../helpers/app.ts';

const SECRET = 'sk-proj-wrapped-value-0123456789abcdefghijklmnop';

interface WrapInfo {
  wrap_info: { token: string; accessor: string; ttl: number; creation_time: string; creation_path: string };
}

test('response wrapping: a read answered with a single-use token', async (t) => {
  const log = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, { audit: [{ file: { path: log } }] });
  assert.equal(
    (await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev'] })).statusCode,
    201,
  );
  assert.equal(
    (await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: SECRET, force: true })).statusCode,
    200,
  );
  const plain = await a.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY');
  const wrapRead = (headers: Record<string, string>) =>
    a.inject({
      method: 'GET',
      url: '/v1/secrets/llm/dev/OPENAI_API_KEY',
      headers: { authorization: `Bearer ${a.rootToken}`, ...headers },
    });

  await t.test(
    'the answer is a wrapping token, never the value; unwrap gives exactly the plain read',
    async () => {
      const r = await wrapRead({ 'x-strongroom-wrap-ttl': '5m' });
      assert.equal(r.statusCode, 200, r.body);
      assert.ok(!r.body.includes(SECRET), 'the value is not in the wrapped answer');
      const w = r.json() as WrapInfo;
      assert.match(w.wrap_info.token, /^srw_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}$/);
      assert.equal(w.wrap_info.ttl, 300);
      assert.equal(w.wrap_info.creation_path, '/v1/secrets/llm/dev/OPENAI_API_KEY');
      const look = await a.inject({
        method: 'POST',
        url: '/v1/sys/wrapping/lookup',
        payload: { token: w.wrap_info.token },
      });
      assert.equal(look.statusCode, 200, look.body);
      assert.deepEqual(Object.keys(look.json() as object).sort(), [
        'creation_path',
        'creation_time',
        'creation_ttl',
      ]);
      assert.ok(!look.body.includes(SECRET));
      // Vault's way: the wrapping token as the bearer token, no body
      const u = await a.inject({
        method: 'POST',
        url: '/v1/sys/wrapping/unwrap',
        headers: { 'x-vault-token': w.wrap_info.token },
      });
      assert.equal(u.statusCode, 200, u.body);
      const unwrapped = u.json() as Record<string, unknown>;
      const expected = plain.json() as Record<string, unknown>;
      assert.equal(unwrapped.value, SECRET);
      assert.deepEqual({ ...unwrapped, read_at: null }, { ...expected, read_at: null });
    },
  );

  await t.test(
    '100 concurrent unwraps of one token: exactly one value; the others are refused and audited as possible interception',
    async () => {
      const w = (await wrapRead({ 'x-vault-wrap-ttl': '60' })).json() as WrapInfo;
      const results = await Promise.all(
        Array.from({ length: 100 }, () =>
          a.inject({ method: 'PUT', url: '/v1/sys/wrapping/unwrap', payload: { token: w.wrap_info.token } }),
        ),
      );
      const ok = results.filter((r) => r.statusCode === 200);
      assert.equal(ok.length, 1, 'exactly one unwrap got the value');
      assert.equal((ok[0]!.json() as { value: string }).value, SECRET);
      for (const r of results.filter((x) => x.statusCode !== 200)) {
        assert.equal(r.statusCode, 400);
        assert.equal((r.json() as { error: { code: string } }).error.code, 'invalid_wrapping_token');
        assert.ok(!r.body.includes(SECRET));
      }
      const alerts = readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { error_code?: string; request?: { alert?: string; accessor?: string } })
        .filter((e) => e.error_code === 'possible_interception');
      assert.equal(alerts.filter((e) => e.request?.accessor === w.wrap_info.accessor).length, 99);
      assert.ok(!readFileSync(log, 'utf8').includes(SECRET), 'the value is in no audit entry');
      assert.ok(
        !readFileSync(log, 'utf8').includes(w.wrap_info.token),
        'the wrapping token is in no audit entry',
      );
      const metrics = await a.call('GET', '/v1/sys/metrics');
      assert.match(metrics.body, /strongroom_wrapping_interceptions_total 99\b/);
      // and the lookup of a spent token says nothing more than an unknown one
      const look = await a.inject({
        method: 'POST',
        url: '/v1/sys/wrapping/lookup',
        payload: { token: w.wrap_info.token },
      });
      assert.equal(look.statusCode, 400);
    },
  );

  await t.test(
    'refused: a malformed TTL, one over 24 h, an unknown or forged token; a route that cannot be wrapped ignores the header',
    async () => {
      assert.equal((await wrapRead({ 'x-strongroom-wrap-ttl': 'soon' })).statusCode, 400);
      assert.equal((await wrapRead({ 'x-strongroom-wrap-ttl': '25h' })).statusCode, 400);
      for (const token of ['nope', `srw_${'A'.repeat(43)}_000000`, a.rootToken]) {
        const r = await a.inject({ method: 'POST', url: '/v1/sys/wrapping/unwrap', payload: { token } });
        assert.equal(r.statusCode, 400, token);
      }
      const list = await a.inject({
        method: 'GET',
        url: '/v1/projects',
        headers: { authorization: `Bearer ${a.rootToken}`, 'x-strongroom-wrap-ttl': '5m' },
      });
      assert.equal(list.statusCode, 200);
      assert.ok(!('wrap_info' in (list.json() as object)));
    },
  );

  await t.test('a read the caller may not make is refused before anything is wrapped', async () => {
    const other = await a.call('POST', '/v1/auth/token/create', { ttl: '1h', policies: ['auditor'] });
    const token = (other.json() as { auth: { client_token: string } }).auth.client_token;
    const r = await a.inject({
      method: 'GET',
      url: '/v1/secrets/llm/dev/OPENAI_API_KEY',
      headers: { authorization: `Bearer ${token}`, 'x-strongroom-wrap-ttl': '5m' },
    });
    assert.equal(r.statusCode, 403);
    assert.ok(!r.body.includes('wrap_info'));
  });
});
