import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { AppCredentials, AppInfo, LoginResponse } from '../../src/api/auth.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { buildTestApp, type TestApp, type TestAppOptions, tempDir } from '../helpers/app.ts';
import { cliInProcess } from '../helpers/cli.ts';

/**
 * Applications (machine identities) end to end over HTTP: create, log in,
 * scoped short-lived tokens, secret rotation with grace, revocation, allowed
 * address ranges, and canaries for client secrets.
 */

/** The auth methods under test (passed in until the vault assembles them itself). */
function build(t: TestContext, opts: TestAppOptions = {}): Promise<TestApp> {
  return buildTestApp(t, opts);
}

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

function fails(res: LightMyRequestResponse, status: number, code: string): { code: string; message: string } {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode}: ${res.body}`);
  const e = (res.json() as { error: { code: string; message: string } }).error;
  assert.equal(e.code, code);
  return { code: e.code, message: e.message };
}

function appLogin(a: TestApp, client_id: string, client_secret: string, remoteAddress = '127.0.0.1') {
  return a.inject({
    method: 'POST',
    url: '/v1/auth/app/login',
    payload: { client_id, client_secret },
    remoteAddress,
  });
}

/** A vault with project `llm` (dev, staging, prod), one secret in each environment. */
async function withSecrets(t: TestContext, opts: TestAppOptions = {}): Promise<TestApp> {
  const a = await build(t, opts);
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('POST', '/v1/projects', { name: 'other' }), 201);
  for (const env of ['dev', 'staging', 'prod'])
    ok(await a.call('PUT', `/v1/secrets/llm/${env}/OPENAI_API_KEY`, { value: `sk-${env}-value` }));
  ok(await a.call('PUT', '/v1/secrets/other/dev/OPENAI_API_KEY', { value: 'sk-other' }));
  return a;
}

async function createApp(a: TestApp, body: Record<string, unknown> = {}): Promise<AppCredentials> {
  return ok<AppCredentials>(
    await a.call('POST', '/v1/auth/apps', {
      name: 'chatbot',
      roles: ['app'],
      scope: { paths: ['llm/dev'] },
      ...body,
    }),
    201,
  );
}

test('an app is created with a client id and a secret shown once, and logs in for a scoped 1-hour token', async (t) => {
  const a = await withSecrets(t);
  const c = await createApp(a);
  assert.match(c.client_id, /^app_[0-9a-f]{24}$/);
  assert.match(c.client_secret, /^srs_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}$/);
  assert.deepEqual(Object.keys(c).slice(0, 2), ['client_id', 'client_secret']);
  assert.equal(c.token_ttl, 3600);

  // the secret is never shown again
  const listed = ok<{ apps: AppInfo[] }>(await a.call('GET', '/v1/auth/apps'));
  assert.equal(listed.apps.length, 1);
  assert.ok(!JSON.stringify(listed).includes(c.client_secret));
  const one = ok<{ app: AppInfo }>(await a.call('GET', '/v1/auth/apps/chatbot'));
  assert.equal(one.app.client_id, c.client_id);
  assert.ok(!('client_secret' in one.app));

  const r = ok<LoginResponse>(await appLogin(a, c.client_id, c.client_secret));
  assert.deepEqual(r.auth.policies, ['app']);
  assert.deepEqual(r.auth.scope, { paths: ['llm/dev'] });
  assert.ok(r.auth.ttl > 3590 && r.auth.ttl <= 3600);
  assert.equal(r.auth.renewable, false);
  const self = ok<{ data: { owner: unknown } }>(
    await a.call('GET', '/v1/auth/token/lookup-self', undefined, r.auth.client_token),
  );
  assert.deepEqual(self.data.owner, { type: 'app', id: c.client_id, name: 'chatbot' });
});

test('an app token reads secrets only inside its scope, and writes nothing', async (t) => {
  const a = await withSecrets(t);
  const c = await createApp(a, { scope: { paths: ['llm/dev', 'llm/staging/OPENAI_*'] } });
  const token = ok<LoginResponse>(await appLogin(a, c.client_id, c.client_secret)).auth.client_token;
  const read = (path: string) => a.call('GET', `/v1/secrets/${path}`, undefined, token);
  assert.equal(ok<{ value: string }>(await read('llm/dev/OPENAI_API_KEY')).value, 'sk-dev-value');
  assert.equal(ok<{ value: string }>(await read('llm/staging/OPENAI_API_KEY')).value, 'sk-staging-value');
  fails(await read('llm/prod/OPENAI_API_KEY'), 403, 'permission_denied');
  fails(await read('other/dev/OPENAI_API_KEY'), 403, 'permission_denied');
  fails(
    await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'x' }, token),
    403,
    'permission_denied',
  );
  fails(await a.call('GET', '/v1/auth/apps', undefined, token), 403, 'permission_denied');
  fails(await a.call('GET', '/v1/auth/users', undefined, token), 403, 'permission_denied');
  // nor can it mint itself a wider token
  fails(
    await a.call('POST', '/v1/auth/token/create', { scope: { paths: ['llm/prod'] } }, token),
    403,
    'permission_denied',
  );
});

test('an unknown client id and a wrong secret get the same answer', async (t) => {
  const a = await withSecrets(t);
  const c = await createApp(a);
  const other = await createApp(a, { name: 'other-app' });
  const answers = [
    await appLogin(a, c.client_id, other.client_secret),
    await appLogin(a, c.client_id, `${c.client_secret}x`),
    await appLogin(a, 'app_000000000000000000000000', c.client_secret),
    await appLogin(a, 'not-an-id', c.client_secret),
  ];
  for (const r of answers)
    assert.deepEqual(fails(r, 401, 'invalid_credentials'), {
      code: 'invalid_credentials',
      message: 'invalid client id or client secret',
    });
});

test('rotating the secret stops the old one at once, or after the grace period', async (t) => {
  const clock = manualClock();
  const a = await withSecrets(t, { clock });
  const c = await createApp(a);
  const live = ok<LoginResponse>(await appLogin(a, c.client_id, c.client_secret)).auth.client_token;

  const r1 = ok<AppCredentials>(await a.call('POST', '/v1/auth/apps/chatbot/rotate-secret', {}));
  assert.equal(r1.client_id, c.client_id);
  assert.notEqual(r1.client_secret, c.client_secret);
  fails(await appLogin(a, c.client_id, c.client_secret), 401, 'invalid_credentials');
  ok(await appLogin(a, c.client_id, r1.client_secret));
  // tokens already issued live out their (short) life
  ok(await a.call('GET', '/v1/auth/token/lookup-self', undefined, live));

  const r2 = ok<AppCredentials>(
    await a.call('POST', '/v1/auth/apps/chatbot/rotate-secret', { grace: '10m' }),
  );
  assert.equal(r2.previous_secrets.length, 1);
  ok(await appLogin(a, c.client_id, r1.client_secret));
  ok(await appLogin(a, c.client_id, r2.client_secret));
  clock.advance(10 * 60 * 1000 + 1);
  fails(await appLogin(a, c.client_id, r1.client_secret), 401, 'invalid_credentials');
  ok(await appLogin(a, c.client_id, r2.client_secret));
  assert.deepEqual(
    ok<{ app: AppInfo }>(await a.call('GET', '/v1/auth/apps/chatbot')).app.previous_secrets,
    [],
  );
});

test('revoking an app kills its live tokens on their next request', async (t) => {
  const a = await withSecrets(t);
  const c = await createApp(a);
  const t1 = ok<LoginResponse>(await appLogin(a, c.client_id, c.client_secret)).auth.client_token;
  const t2 = ok<LoginResponse>(await appLogin(a, c.client_id, c.client_secret)).auth.client_token;
  ok(await a.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY', undefined, t1));
  const r = ok<{ deleted: string; tokens_revoked: number }>(await a.call('DELETE', '/v1/auth/apps/chatbot'));
  assert.equal(r.deleted, 'chatbot');
  assert.equal(r.tokens_revoked, 2);
  fails(await a.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY', undefined, t1), 401, 'invalid_token');
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, t2), 401, 'invalid_token');
  fails(await appLogin(a, c.client_id, c.client_secret), 401, 'invalid_credentials');
  fails(await a.call('GET', '/v1/auth/apps/chatbot'), 404, 'not_found');
});

test('an app with allowed address ranges cannot log in from elsewhere', async (t) => {
  const a = await withSecrets(t);
  const c = await createApp(a, { allowed_cidrs: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] });
  assert.deepEqual(c.allowed_cidrs, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7/32']);
  ok(await appLogin(a, c.client_id, c.client_secret, '10.1.2.3'));
  ok(await appLogin(a, c.client_id, c.client_secret, '::ffff:10.200.0.1'));
  ok(await appLogin(a, c.client_id, c.client_secret, '2001:db8:1::5'));
  ok(await appLogin(a, c.client_id, c.client_secret, '192.0.2.7'));
  for (const outside of ['192.168.1.10', '11.0.0.1', '192.0.2.8', '2001:db9::1', '::1']) {
    fails(await appLogin(a, c.client_id, c.client_secret, outside), 403, 'permission_denied');
  }
  // outside the range, a wrong secret gets the same refusal: the secret is not even tested there
  fails(await appLogin(a, c.client_id, 'srs_wrong', '192.168.1.10'), 403, 'permission_denied');
});

test('app input is validated', async (t) => {
  const a = await build(t);
  const base = { name: 'svc', roles: ['app'], scope: { paths: ['llm/dev'] } };
  const cases: [string, Record<string, unknown>, number, string][] = [
    ['no scope', { name: 'svc', roles: ['app'] }, 400, 'validation_failed'],
    ['an empty scope', { ...base, scope: {} }, 400, 'validation_failed'],
    ['a bad scope path', { ...base, scope: { paths: ['LLM/dev/'] } }, 400, 'validation_failed'],
    ['the root policy', { ...base, roles: ['root'] }, 400, 'validation_failed'],
    ['no role', { ...base, roles: [] }, 400, 'validation_failed'],
    ['a bad name', { ...base, name: 'Chat Bot' }, 400, 'validation_failed'],
    ['a bad range', { ...base, allowed_cidrs: ['10.0.0.0/33'] }, 400, 'validation_failed'],
    ['not an address', { ...base, allowed_cidrs: ['example.com'] }, 400, 'validation_failed'],
    ['a TTL too long', { ...base, token_ttl: '48h' }, 400, 'validation_failed'],
    ['a TTL too short', { ...base, token_ttl: 5 }, 400, 'validation_failed'],
    ['a bad TTL', { ...base, token_ttl: 'soon' }, 400, 'validation_failed'],
    ['an unknown field', { ...base, secret: 'mine' }, 400, 'unknown_field'],
  ];
  for (const [what, body, status, code] of cases) {
    const r = await a.call('POST', '/v1/auth/apps', body);
    assert.equal(r.statusCode, status, `${what}: ${r.body}`);
    assert.equal((r.json() as { error: { code: string } }).error.code, code, what);
  }
  ok(await a.call('POST', '/v1/auth/apps', { ...base, token_ttl: '15m' }), 201);
  fails(await a.call('POST', '/v1/auth/apps', base), 409, 'already_exists');
  assert.equal(ok<{ apps: AppInfo[] }>(await a.call('GET', '/v1/auth/apps')).apps[0]!.token_ttl, 900);
});

test('client secrets never reach logs, the audit file, error bodies or storage', async (t) => {
  const auditFile = join(tempDir(t), 'audit.log');
  const a = await withSecrets(t, { audit: [{ file: { path: auditFile } }] });
  const c = await createApp(a);
  const bodies: string[] = [];
  bodies.push((await appLogin(a, c.client_id, `${c.client_secret}-wrong`)).body);
  bodies.push((await appLogin(a, 'app_000000000000000000000000', c.client_secret)).body);
  const token = ok<LoginResponse>(await appLogin(a, c.client_id, c.client_secret)).auth.client_token;
  bodies.push((await a.call('GET', '/v1/secrets/llm/prod/OPENAI_API_KEY', undefined, token)).body);
  const rotated = ok<AppCredentials>(
    await a.call('POST', '/v1/auth/apps/chatbot/rotate-secret', { grace: 60 }),
  );
  bodies.push(
    (await a.call('GET', '/v1/auth/apps')).body,
    (await a.call('GET', '/v1/auth/apps/chatbot')).body,
  );
  const canaries = [c.client_secret, rotated.client_secret, token];
  const audit = readFileSync(auditFile, 'utf8');
  assert.match(audit, /"operation":"auth\.app-login"/);
  for (const s of canaries) {
    assert.ok(!audit.includes(s), 'audit log contains a secret');
    assert.ok(!a.logs().includes(s), 'log contains a secret');
    for (const b of bodies) assert.ok(!b.includes(s), `a response contains a secret: ${b}`);
  }
  for (const p of await a.storage.list('')) {
    const v = Buffer.from((await a.storage.get(p)) ?? new Uint8Array()).toString('latin1');
    for (const s of [...canaries, 'srs_'])
      assert.ok(!v.includes(s) && !p.includes(s), `storage ${p} holds a secret`);
  }
});

// ---- CLI ----

const cli = cliInProcess;

test('CLI: app create --format json prints client_id and client_secret; login --app reads them from env or stdin', async (t) => {
  const a = await withSecrets(t);
  const addr = await a.app.listen({ host: '127.0.0.1', port: 0 });
  const root = { STRONGROOM_TOKEN: a.rootToken };
  const created = await cli(
    addr,
    [
      '--format',
      'json',
      'app',
      'create',
      'chatbot',
      '--role',
      'app',
      '--scope',
      'llm/dev,llm/staging',
      '--cidr',
      '127.0.0.0/8',
      '--ttl',
      '15m',
    ],
    { env: root },
  );
  assert.equal(created.code, 0, created.stderr);
  const c = JSON.parse(created.stdout) as AppCredentials;
  assert.deepEqual(Object.keys(c).slice(0, 2), ['client_id', 'client_secret']);
  assert.match(c.client_secret, /^srs_/);
  assert.deepEqual(c.scope, { paths: ['llm/dev', 'llm/staging'] });
  assert.deepEqual(c.allowed_cidrs, ['127.0.0.0/8']);
  assert.equal(c.token_ttl, 900);

  const env = await cli(addr, ['login', '--app'], {
    env: { STRONGROOM_CLIENT_ID: c.client_id, STRONGROOM_CLIENT_SECRET: c.client_secret },
  });
  assert.equal(env.code, 0, env.stderr);
  const token = /^export STRONGROOM_TOKEN=(srt_\S+)$/m.exec(env.stdout)?.[1];
  assert.ok(token, env.stdout);
  assert.equal(
    ok<{ value: string }>(await a.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY', undefined, token)).value,
    'sk-dev-value',
  );
  fails(
    await a.call('GET', '/v1/secrets/llm/prod/OPENAI_API_KEY', undefined, token),
    403,
    'permission_denied',
  );

  // the JSON printed by `app create`, piped in
  const piped = await cli(addr, ['--format', 'json', 'login', '--app'], { input: created.stdout });
  assert.equal(piped.code, 0, piped.stderr);
  assert.deepEqual((JSON.parse(piped.stdout) as LoginResponse).auth.policies, ['app']);
  const lines = await cli(addr, ['login', '--app'], { input: `${c.client_id}\n${c.client_secret}\n` });
  assert.equal(lines.code, 0, lines.stderr);

  const list = await cli(addr, ['app', 'list'], { env: root });
  assert.match(list.stdout, /chatbot\s+app_[0-9a-f]{24}\s+app\s+llm\/dev, llm\/staging\s+127\.0\.0\.0\/8/);
  assert.ok(!list.stdout.includes(c.client_secret));

  const rotated = await cli(addr, ['app', 'rotate-secret', 'chatbot', '--grace', '1m'], { env: root });
  assert.equal(rotated.code, 0, rotated.stderr);
  const fresh = /Client secret\s+(srs_\S+)/.exec(rotated.stdout)?.[1];
  assert.ok(fresh && fresh !== c.client_secret, rotated.stdout);
  assert.match(rotated.stderr, /shown only this once/);

  const revoked = await cli(addr, ['app', 'revoke', 'chatbot'], { env: root });
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /Tokens revoked\s+3/);
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, token), 401, 'invalid_token');
  const gone = await cli(addr, ['login', '--app'], {
    env: { STRONGROOM_CLIENT_ID: c.client_id, STRONGROOM_CLIENT_SECRET: fresh! },
  });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /invalid_credentials/);

  const noScope = await cli(addr, ['app', 'create', 'x'], { env: root });
  assert.equal(noScope.code, 2);
  assert.match(noScope.stderr, /--scope/);
});
