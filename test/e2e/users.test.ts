import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { generate } from 'otplib';
import type { LoginResponse, TotpConfirmResponse, TotpEnrollResponse, UserInfo } from '../../src/api/auth.ts';
import type { AuthMethodOptions } from '../../src/auth/user-ops.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { buildTestApp, staticKeyFile, type TestApp, type TestAppOptions, tempDir } from '../helpers/app.ts';
import { cliInProcess } from '../helpers/cli.ts';

/**
 * Users end to end over HTTP: login, one normalisation of names,
 * indistinguishable failures (answer and timing), lockout, per-address rate
 * limits, TOTP with recovery codes, MFA-required roles, token revocation, and
 * canaries for passwords and TOTP material.
 */

const PASSWORD = 'correct horse battery staple';
const BAD_LOGIN = { code: 'invalid_credentials', message: 'invalid username or password' };

/** The auth methods under test (passed in until the vault assembles them itself). */
function build(t: TestContext, opts: TestAppOptions = {}, auth: AuthMethodOptions = {}): Promise<TestApp> {
  return buildTestApp(t, { ...opts, auth });
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

let n = 0;
/** A fresh client address per call (unless given), so the per-address limit stays out of the way. */
function freshAddress(): string {
  n++;
  return `10.9.${(n >> 8) & 255}.${n & 255}`;
}

function login(a: TestApp, body: Record<string, unknown>, remoteAddress = freshAddress()) {
  return a.inject({ method: 'POST', url: '/v1/auth/login', payload: body, remoteAddress });
}

async function createUser(
  a: TestApp,
  username: string,
  roles: string[] = ['developer'],
  password = PASSWORD,
) {
  return ok<{ user: UserInfo }>(await a.call('POST', '/v1/auth/users', { username, password, roles }), 201)
    .user;
}

async function tokenFor(
  a: TestApp,
  username: string,
  extra: Record<string, unknown> = {},
  password = PASSWORD,
) {
  return ok<LoginResponse>(await login(a, { username, password, ...extra })).auth.client_token;
}

const epoch = (a: { now(): number }) => Math.floor(a.now() / 1000);

// ---- login ----

test('a user logs in with username and password and gets a 1-hour token holding their roles', async (t) => {
  const a = await build(t);
  const u = await createUser(a, 'alice', ['developer', 'auditor']);
  assert.deepEqual(u.roles, ['auditor', 'developer']);
  const r = ok<LoginResponse>(await login(a, { username: 'alice', password: PASSWORD }));
  assert.match(r.auth.client_token, /^srt_/);
  assert.deepEqual(r.auth.policies, ['auditor', 'developer']);
  assert.ok(r.auth.ttl > 3590 && r.auth.ttl <= 3600, `ttl ${r.auth.ttl}`);
  assert.equal(r.auth.mfa, false);
  assert.equal(r.auth.display_name, 'user:alice');
  const self = ok<{ data: { owner: unknown; mfa: boolean; display_name: string } }>(
    await a.call('GET', '/v1/auth/token/lookup-self', undefined, r.auth.client_token),
  );
  assert.deepEqual(self.data.owner, { type: 'user', id: u.id, name: 'alice' });
  // what the roles allow works; what they do not is refused
  ok(await a.call('GET', '/v1/projects', undefined, r.auth.client_token));
  fails(
    await a.call(
      'POST',
      '/v1/auth/users',
      { username: 'eve', password: PASSWORD, roles: ['admin'] },
      r.auth.client_token,
    ),
    403,
    'permission_denied',
  );
  const me = ok<{ user: UserInfo }>(
    await a.call('GET', '/v1/auth/user/self', undefined, r.auth.client_token),
  );
  assert.equal(me.user.name, 'alice');
});

test('usernames are normalised one way: Alice, " alice ", fullwidth ＡＬＩＣＥ are one user', async (t) => {
  const a = await build(t);
  const u = await createUser(a, '  Alice  ');
  assert.equal(u.name, 'alice');
  for (const spelling of ['alice', 'ALICE', ' alice ', 'ＡＬＩＣＥ', 'Ａlice']) {
    fails(
      await a.call('POST', '/v1/auth/users', {
        username: spelling,
        password: PASSWORD,
        roles: ['developer'],
      }),
      409,
      'already_exists',
    );
    ok(await login(a, { username: spelling, password: PASSWORD }));
  }
  const two = await createUser(a, 'Mary   Jane\tWatson');
  assert.equal(two.name, 'mary jane watson');
  ok(await login(a, { username: ' MARY JANE   WATSON', password: PASSWORD }));
  const list = ok<{ users: UserInfo[] }>(await a.call('GET', '/v1/auth/users'));
  assert.deepEqual(
    list.users.map((x) => x.name),
    ['alice', 'mary jane watson'],
  );
});

test('an unknown user and a wrong password get the same status, code and message', async (t) => {
  const a = await build(t);
  await createUser(a, 'alice');
  const answers = [
    await login(a, { username: 'alice', password: 'wrong password 123' }),
    await login(a, { username: 'nobody', password: 'wrong password 123' }),
    await login(a, { username: 'nobody', password: PASSWORD }),
    await login(a, { username: 'bad\u200bname', password: PASSWORD }),
    await login(a, { username: 'x'.repeat(200), password: PASSWORD }),
  ];
  for (const r of answers) assert.deepEqual(fails(r, 401, 'invalid_credentials'), BAD_LOGIN);
});

test('an unknown user and a wrong password take the same time (one argon2id run each)', async (t) => {
  const a = await build(
    t,
    {},
    {
      user_login: { per_minute: 0, burst: 1 },
      lockout: { max_failures: 10_000, lock_seconds: 1, max_lock_seconds: 1, forget_seconds: 86400 },
    },
  );
  await createUser(a, 'alice');
  const time = async (username: string) => {
    const t0 = performance.now();
    const r = await login(a, { username, password: 'not the password!' });
    const ms = performance.now() - t0;
    assert.equal(r.statusCode, 401);
    return ms;
  };
  // warm up (the dummy hash is made on first use)
  for (let i = 0; i < 3; i++) {
    await time('alice');
    await time('nobody');
  }
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 20; i++) {
    // interleaved, so drift in machine load hits both alike
    known.push(await time('alice'));
    unknown.push(await time(`nobody`));
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const mk = median(known);
  const mu = median(unknown);
  t.diagnostic(`median login: wrong password ${mk.toFixed(1)} ms, unknown user ${mu.toFixed(1)} ms`);
  assert.ok(Math.min(mk, mu) > 5, 'each failed login runs argon2id');
  assert.ok(Math.abs(mk - mu) < 0.3 * Math.max(mk, mu), `medians differ too much: ${mk} vs ${mu}`);
});

// ---- lockout and rate limits ----

test('five failures lock the account, whatever the spelling of the name, and the lock is in storage', async (t) => {
  const clock = manualClock();
  const keyFile = staticKeyFile(t);
  const a = await build(t, { clock, keyFile });
  await createUser(a, 'alice');
  for (const spelling of ['Alice', ' alice ', 'ＡＬＩＣＥ', 'ALICE', 'alice']) {
    assert.deepEqual(
      fails(await login(a, { username: spelling, password: 'wrong password!!' }), 401, 'invalid_credentials'),
      BAD_LOGIN,
    );
  }
  // now even the right password is refused, with a Retry-After
  const locked = await login(a, { username: 'alice', password: PASSWORD });
  fails(locked, 429, 'account_locked');
  assert.equal(locked.headers['retry-after'], '900');

  // another server on the same storage (or this one after a restart) sees the lock
  const b = await build(t, { clock, keyFile, storage: a.storage, uninitialized: true });
  fails(await login(b, { username: 'ＡＬＩＣＥ', password: PASSWORD }), 429, 'account_locked');

  clock.advance(15 * 60 * 1000 + 1000);
  ok(await login(a, { username: 'alice', password: PASSWORD }));

  // unknown names lock exactly like real ones, so a lock reveals nothing
  for (let i = 0; i < 5; i++)
    fails(await login(a, { username: 'mallory', password: 'wrong password!!' }), 401, 'invalid_credentials');
  fails(await login(a, { username: 'Mallory', password: 'wrong password!!' }), 429, 'account_locked');
});

test('each further lockout lasts twice as long', async (t) => {
  const clock = manualClock();
  const a = await build(t, { clock });
  await createUser(a, 'alice');
  const fiveFailures = async () => {
    for (let i = 0; i < 5; i++) await login(a, { username: 'alice', password: 'wrong password!!' });
  };
  await fiveFailures();
  clock.advance(901_000);
  await fiveFailures();
  const r = await login(a, { username: 'alice', password: PASSWORD });
  fails(r, 429, 'account_locked');
  assert.equal(r.headers['retry-after'], '1800');
  clock.advance(1_000_000);
  fails(await login(a, { username: 'alice', password: PASSWORD }), 429, 'account_locked');
  clock.advance(801_000);
  ok(await login(a, { username: 'alice', password: PASSWORD }));
});

test('parallel guesses cannot get past the lockout: each attempt is counted before the check', async (t) => {
  const a = await build(t);
  await createUser(a, 'alice');
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => login(a, { username: 'alice', password: 'wrong password!!' })),
  );
  const codes = answers.map((r) => (r.json() as { error: { code: string } }).error.code);
  assert.equal(codes.filter((c) => c === 'invalid_credentials').length, 5, codes.join(','));
  assert.equal(codes.filter((c) => c === 'account_locked').length, 15, codes.join(','));
});

test('an admin setting the password lifts a lockout and revokes the old sessions', async (t) => {
  const a = await build(t);
  await createUser(a, 'alice');
  const old = await tokenFor(a, 'alice');
  for (let i = 0; i < 5; i++) await login(a, { username: 'alice', password: 'wrong password!!' });
  fails(await login(a, { username: 'alice', password: PASSWORD }), 429, 'account_locked');
  const r = ok<{ tokens_revoked: number }>(
    await a.call('PUT', '/v1/auth/users/ALICE/password', { password: 'a brand new passphrase' }),
  );
  assert.equal(r.tokens_revoked, 1);
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, old), 401, 'invalid_token');
  fails(await login(a, { username: 'alice', password: PASSWORD }), 401, 'invalid_credentials');
  ok(await login(a, { username: 'alice', password: 'a brand new passphrase' }));
});

test('login attempts are rate limited per client address with 429 and Retry-After', async (t) => {
  const a = await build(t);
  for (let i = 0; i < 10; i++) {
    fails(
      await login(a, { username: `user${i}`, password: 'wrong password!!' }, '203.0.113.7'),
      401,
      'invalid_credentials',
    );
  }
  const limited = await login(a, { username: 'someone', password: 'wrong password!!' }, '203.0.113.7');
  fails(limited, 429, 'rate_limited');
  assert.ok(Number(limited.headers['retry-after']) >= 1, `retry-after ${limited.headers['retry-after']}`);
  // the same host over IPv4-mapped IPv6 shares the bucket; another address does not
  fails(await login(a, { username: 'someone', password: 'x' }, '::ffff:203.0.113.7'), 429, 'rate_limited');
  fails(
    await login(a, { username: 'someone', password: 'wrong password!!' }, '203.0.113.8'),
    401,
    'invalid_credentials',
  );
});

// ---- TOTP ----

async function enrol(a: TestApp, clock: { now(): number }, token: string) {
  const e = ok<TotpEnrollResponse>(await a.call('POST', '/v1/auth/mfa/totp/enroll', {}, token));
  const code = await generate({ secret: e.secret, epoch: epoch(clock) });
  const c = ok<TotpConfirmResponse>(await a.call('POST', '/v1/auth/mfa/totp/confirm', { code }, token));
  return { secret: e.secret, uri: e.otpauth_uri, codes: c.recovery_codes };
}

test('TOTP: enrol, confirm, then login needs a code; a code works once; recovery codes work once', async (t) => {
  const clock = manualClock();
  const a = await build(t, { clock });
  await createUser(a, 'bob');
  const token = await tokenFor(a, 'bob');

  const e = ok<TotpEnrollResponse>(await a.call('POST', '/v1/auth/mfa/totp/enroll', {}, token));
  assert.match(e.secret, /^[A-Z2-7]{32}$/);
  assert.ok(e.otpauth_uri.startsWith('otpauth://totp/Strongroom:bob?'), e.otpauth_uri);
  assert.ok(e.otpauth_uri.includes(`secret=${e.secret}`));
  fails(
    await a.call('POST', '/v1/auth/mfa/totp/confirm', { code: '000000' }, token),
    401,
    'invalid_credentials',
  );
  const first = await generate({ secret: e.secret, epoch: epoch(clock) });
  const { recovery_codes: codes } = ok<TotpConfirmResponse>(
    await a.call('POST', '/v1/auth/mfa/totp/confirm', { code: first }, token),
  );
  assert.equal(codes.length, 10);
  assert.equal(new Set(codes).size, 10);
  fails(await a.call('POST', '/v1/auth/mfa/totp/enroll', {}, token), 409, 'already_exists');

  // the password alone is no longer enough
  const need = fails(await login(a, { username: 'bob', password: PASSWORD }), 401, 'mfa_required');
  assert.match(need.message, /totp/);
  // a wrong password with a right code is still just a bad login
  assert.deepEqual(
    fails(
      await login(a, { username: 'bob', password: 'wrong password!!', totp: first }),
      401,
      'invalid_credentials',
    ),
    BAD_LOGIN,
  );
  // the code used to confirm cannot be replayed
  fails(await login(a, { username: 'bob', password: PASSWORD, totp: first }), 401, 'invalid_credentials');

  clock.advance(30_000);
  const next = await generate({ secret: e.secret, epoch: epoch(clock) });
  const r = ok<LoginResponse>(await login(a, { username: 'bob', password: PASSWORD, totp: next }));
  assert.equal(r.auth.mfa, true);
  const info = ok<{ data: { mfa: boolean } }>(
    await a.call('GET', '/v1/auth/token/lookup-self', undefined, r.auth.client_token),
  );
  assert.equal(info.data.mfa, true);
  fails(await login(a, { username: 'bob', password: PASSWORD, totp: next }), 401, 'invalid_credentials');

  // one step of drift either way is accepted; more is not
  clock.advance(60_000);
  const behind = await generate({ secret: e.secret, epoch: epoch(clock) - 30 });
  ok(await login(a, { username: 'bob', password: PASSWORD, totp: behind }));
  const ahead = await generate({ secret: e.secret, epoch: epoch(clock) + 30 });
  ok(await login(a, { username: 'bob', password: PASSWORD, totp: ahead }));
  const farAhead = await generate({ secret: e.secret, epoch: epoch(clock) + 120 });
  fails(await login(a, { username: 'bob', password: PASSWORD, totp: farAhead }), 401, 'invalid_credentials');

  // a recovery code instead of a TOTP code, once; typed in upper case without dashes works too
  const rc = ok<LoginResponse>(
    await login(a, { username: 'bob', password: PASSWORD, recovery_code: codes[0] }),
  );
  assert.equal(rc.auth.mfa, true);
  fails(
    await login(a, { username: 'bob', password: PASSWORD, recovery_code: codes[0] }),
    401,
    'invalid_credentials',
  );
  ok(
    await login(a, {
      username: 'bob',
      password: PASSWORD,
      recovery_code: codes[1]!.replaceAll('-', '').toUpperCase(),
    }),
  );
  const me = ok<{ user: UserInfo }>(await a.call('GET', '/v1/auth/users/bob'));
  assert.equal(me.user.mfa.totp, true);
  assert.equal(me.user.mfa.recovery_codes_left, 8);

  // an admin can reset a lost device; then the password alone works again
  ok(await a.call('DELETE', '/v1/auth/users/bob/mfa'));
  ok(await login(a, { username: 'bob', password: PASSWORD }));
});

test('one TOTP code used by parallel logins succeeds exactly once', async (t) => {
  const clock = manualClock();
  const a = await build(t, { clock });
  await createUser(a, 'bob');
  const { secret } = await enrol(a, clock, await tokenFor(a, 'bob'));
  clock.advance(30_000);
  const code = await generate({ secret, epoch: epoch(clock) });
  const answers = await Promise.all(
    Array.from({ length: 4 }, () => login(a, { username: 'bob', password: PASSWORD, totp: code })),
  );
  assert.deepEqual(answers.map((r) => r.statusCode).sort(), [200, 401, 401, 401]);
});

test('wrong TOTP codes count towards the lockout', async (t) => {
  const clock = manualClock();
  const a = await build(t, { clock });
  await createUser(a, 'bob');
  const { secret } = await enrol(a, clock, await tokenFor(a, 'bob'));
  clock.advance(30_000);
  // asking for the code (no code sent) is not a failure
  for (let i = 0; i < 6; i++)
    fails(await login(a, { username: 'bob', password: PASSWORD }), 401, 'mfa_required');
  for (let i = 0; i < 5; i++)
    fails(
      await login(a, { username: 'bob', password: PASSWORD, totp: '123456' }),
      401,
      'invalid_credentials',
    );
  const code = await generate({ secret, epoch: epoch(clock) });
  fails(await login(a, { username: 'bob', password: PASSWORD, totp: code }), 429, 'account_locked');
});

test('a role can require MFA: its holders cannot log in until they enrol TOTP', async (t) => {
  const clock = manualClock();
  const a = await build(t, { clock });
  ok(await a.call('PUT', '/v1/auth/mfa/required-roles', { roles: ['admin'] }));
  assert.deepEqual(ok<{ roles: string[] }>(await a.call('GET', '/v1/auth/mfa/required-roles')).roles, [
    'admin',
  ]);
  await createUser(a, 'carol', ['admin']);
  await createUser(a, 'dan', ['developer']);
  ok(await login(a, { username: 'dan', password: PASSWORD }));

  const e = fails(await login(a, { username: 'carol', password: PASSWORD }), 401, 'mfa_required');
  assert.match(e.message, /admin requires two-factor/);
  assert.match(e.message, /enrol/);
  // a wrong password still says nothing about MFA
  assert.deepEqual(
    fails(await login(a, { username: 'carol', password: 'wrong password!!' }), 401, 'invalid_credentials'),
    BAD_LOGIN,
  );

  // an enrolment-only login: no role, ten minutes, can only enrol
  const limited = ok<LoginResponse>(
    await login(a, { username: 'carol', password: PASSWORD, mfa_enrollment: true }),
  );
  assert.deepEqual(limited.auth.policies, []);
  assert.equal(limited.auth.ttl, 600);
  fails(
    await a.call('GET', '/v1/auth/users', undefined, limited.auth.client_token),
    403,
    'permission_denied',
  );
  fails(await a.call('GET', '/v1/projects', undefined, limited.auth.client_token), 403, 'permission_denied');
  const { secret } = await enrol(a, clock, limited.auth.client_token);

  clock.advance(30_000);
  const code = await generate({ secret, epoch: epoch(clock) });
  const full = ok<LoginResponse>(await login(a, { username: 'carol', password: PASSWORD, totp: code }));
  assert.deepEqual(full.auth.policies, ['admin']);
  assert.equal(full.auth.mfa, true);
});

// ---- administration ----

test('deleting a user revokes every token they hold', async (t) => {
  const a = await build(t);
  await createUser(a, 'dave');
  const t1 = await tokenFor(a, 'dave');
  const t2 = await tokenFor(a, 'DAVE');
  ok(await a.call('GET', '/v1/auth/token/lookup-self', undefined, t1));
  const r = ok<{ deleted: string; tokens_revoked: number }>(
    await a.call('DELETE', '/v1/auth/users/%EF%BC%A4ave'),
  );
  assert.deepEqual(r, { deleted: 'dave', tokens_revoked: 2 });
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, t1), 401, 'invalid_token');
  fails(await a.call('GET', '/v1/projects', undefined, t2), 401, 'invalid_token');
  assert.deepEqual(
    fails(await login(a, { username: 'dave', password: PASSWORD }), 401, 'invalid_credentials'),
    BAD_LOGIN,
  );
  fails(await a.call('DELETE', '/v1/auth/users/dave'), 404, 'not_found');
});

test('a user changes their own password with the current one; their tokens are revoked', async (t) => {
  const a = await build(t);
  await createUser(a, 'erin');
  const token = await tokenFor(a, 'erin');
  fails(
    await a.call(
      'POST',
      '/v1/auth/user/password',
      { current_password: 'not my password', new_password: 'my next passphrase' },
      token,
    ),
    401,
    'invalid_credentials',
  );
  fails(
    await a.call(
      'POST',
      '/v1/auth/user/password',
      { current_password: PASSWORD, new_password: 'short' },
      token,
    ),
    400,
    'validation_failed',
  );
  const r = ok<{ tokens_revoked: number }>(
    await a.call(
      'POST',
      '/v1/auth/user/password',
      { current_password: PASSWORD, new_password: 'my next passphrase' },
      token,
    ),
  );
  assert.equal(r.tokens_revoked, 1);
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, token), 401, 'invalid_token');
  ok(await login(a, { username: 'erin', password: 'my next passphrase' }));
  // only a user's own token can do this
  fails(
    await a.call('POST', '/v1/auth/user/password', {
      current_password: PASSWORD,
      new_password: 'my next passphrase',
    }),
    400,
    'bad_request',
  );
});

test('removing a role revokes the tokens that carry it', async (t) => {
  const a = await build(t);
  await createUser(a, 'fay', ['admin', 'developer']);
  const token = await tokenFor(a, 'fay');
  const added = ok<{ user: UserInfo; tokens_revoked: number }>(
    await a.call('PUT', '/v1/auth/users/fay/roles', { roles: ['admin', 'developer', 'auditor'] }),
  );
  assert.equal(added.tokens_revoked, 0);
  ok(await a.call('GET', '/v1/auth/token/lookup-self', undefined, token));
  const removed = ok<{ user: UserInfo; tokens_revoked: number }>(
    await a.call('PUT', '/v1/auth/users/fay/roles', { roles: ['developer'] }),
  );
  assert.deepEqual(removed.user.roles, ['developer']);
  assert.equal(removed.tokens_revoked, 1);
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, token), 401, 'invalid_token');
  const r = ok<LoginResponse>(await login(a, { username: 'fay', password: PASSWORD }));
  assert.deepEqual(r.auth.policies, ['developer']);
});

test('a principal allowed to manage users by a custom policy cannot grant roles it does not hold', async (t) => {
  const a = await build(t);
  const policy = `permit (principal in Strongroom::Role::"usermgr", action in [Strongroom::Action::"user.create", Strongroom::Action::"user.update", Strongroom::Action::"app.create"], resource);`;
  ok(await a.call('PUT', '/v1/sys/policies/usermgr', { policy }));
  const mgr = ok<{ auth: { client_token: string } }>(
    await a.call('POST', '/v1/auth/token/create', { policies: ['usermgr', 'developer'] }),
  ).auth.client_token;
  const create = (roles: string[]) =>
    a.call('POST', '/v1/auth/users', { username: `u-${roles.join('-')}`, password: PASSWORD, roles }, mgr);
  fails(await create(['admin']), 403, 'permission_denied');
  fails(await create(['developer', 'auditor']), 403, 'permission_denied');
  ok(await create(['developer']), 201);
  fails(
    await a.call('PUT', '/v1/auth/users/u-developer/roles', { roles: ['admin'] }, mgr),
    403,
    'permission_denied',
  );
  fails(
    await a.call('POST', '/v1/auth/apps', { name: 'x', roles: ['admin'], scope: { paths: ['*'] } }, mgr),
    403,
    'permission_denied',
  );
  // an admin may grant any role
  await createUser(a, 'boss', ['admin']);
  const admin = await tokenFor(a, 'boss');
  ok(
    await a.call(
      'POST',
      '/v1/auth/users',
      { username: 'ops', password: PASSWORD, roles: ['auditor'] },
      admin,
    ),
    201,
  );
});

test('user input is validated', async (t) => {
  const a = await build(t);
  const cases: [string, Record<string, unknown>, number, string][] = [
    [
      'password too short',
      { username: 'u1', password: 'short pw', roles: ['developer'] },
      400,
      'validation_failed',
    ],
    [
      'password too long',
      { username: 'u1', password: 'x'.repeat(1025), roles: ['developer'] },
      400,
      'validation_failed',
    ],
    [
      'password holds the username',
      { username: 'margaret', password: 'Margaret-2026!!', roles: ['developer'] },
      400,
      'validation_failed',
    ],
    ['the root policy', { username: 'u1', password: PASSWORD, roles: ['root'] }, 400, 'validation_failed'],
    ['no role', { username: 'u1', password: PASSWORD, roles: [] }, 400, 'validation_failed'],
    ['a bad role name', { username: 'u1', password: PASSWORD, roles: ['Admin!'] }, 400, 'validation_failed'],
    [
      'a zero-width character',
      { username: 'al\u200bice', password: PASSWORD, roles: ['developer'] },
      400,
      'invalid_name',
    ],
    [
      'a control character',
      { username: 'al\u0007ice', password: PASSWORD, roles: ['developer'] },
      400,
      'invalid_name',
    ],
    [
      'a name of 65 characters',
      { username: 'a'.repeat(65), password: PASSWORD, roles: ['developer'] },
      400,
      'invalid_name',
    ],
    ['only spaces', { username: '   ', password: PASSWORD, roles: ['developer'] }, 400, 'invalid_name'],
    [
      'an unknown field',
      { username: 'u1', password: PASSWORD, roles: ['developer'], admin: true },
      400,
      'unknown_field',
    ],
  ];
  for (const [what, body, status, code] of cases) {
    const r = await a.call('POST', '/v1/auth/users', body);
    assert.equal(r.statusCode, status, `${what}: ${r.body}`);
    assert.equal((r.json() as { error: { code: string } }).error.code, code, what);
  }
  fails(await login(a, { username: 'u1', password: PASSWORD, totp: '12345' }), 400, 'validation_failed');
  fails(await login(a, { username: 'u1' }), 400, 'validation_failed');
  assert.deepEqual(ok<{ users: unknown[] }>(await a.call('GET', '/v1/auth/users')).users, []);
});

// ---- canaries ----

test('passwords, TOTP secrets and recovery codes never reach logs, the audit file, error bodies or storage', async (t) => {
  const clock = manualClock();
  const auditFile = join(tempDir(t), 'audit.log');
  const a = await build(t, { clock, audit: [{ file: { path: auditFile } }] });
  const canaryPw = 'CANARY-pw-7c1e9d0b-first';
  const canaryPw2 = 'CANARY-pw-7c1e9d0b-second';
  const canaryWrong = 'CANARY-pw-7c1e9d0b-wrong';
  const bodies: string[] = [];
  const keep = (r: LightMyRequestResponse) => {
    bodies.push(r.body);
    return r;
  };
  keep(await a.call('POST', '/v1/auth/users', { username: 'gus', password: canaryPw, roles: ['developer'] }));
  keep(await a.call('POST', '/v1/auth/users', { username: 'gus', password: canaryPw, roles: ['developer'] }));
  keep(
    await a.call('POST', '/v1/auth/users', { username: 'gus2', password: 'CANARY', roles: ['developer'] }),
  );
  keep(await login(a, { username: 'gus', password: canaryWrong }));
  keep(await login(a, { username: 'nobody', password: canaryWrong }));
  const token = ok<LoginResponse>(keep(await login(a, { username: 'gus', password: canaryPw }))).auth
    .client_token;
  const { secret, codes } = await enrol(a, clock, token);
  keep(await login(a, { username: 'gus', password: canaryPw, recovery_code: `${codes[0]}-CANARY` }));
  keep(
    await a.call(
      'POST',
      '/v1/auth/user/password',
      { current_password: canaryWrong, new_password: canaryPw2 },
      token,
    ),
  );
  keep(
    await a.call(
      'POST',
      '/v1/auth/user/password',
      { current_password: canaryPw, new_password: canaryPw2 },
      token,
    ),
  );
  keep(await a.call('PUT', '/v1/auth/users/gus/password', { password: canaryPw }));

  const canaries = [
    canaryPw,
    canaryPw2,
    canaryWrong,
    secret,
    ...codes,
    ...codes.map((c) => c.replaceAll('-', '')),
  ];
  const logs = a.logs();
  assert.ok(logs.length > 0);
  const audit = readFileSync(auditFile, 'utf8');
  // failed logins are audited, by the name they tried
  assert.match(audit, /"operation":"auth\.login".*"error_code":"invalid_credentials"/);
  assert.match(audit, /User::nobody/);
  for (const c of canaries)
    assert.ok(!audit.includes(c), `audit log contains ${c}: ${audit.split('\n').find((l) => l.includes(c))}`);
  for (const c of canaries) {
    assert.ok(!logs.includes(c), `log contains ${c}`);
    for (const b of bodies) assert.ok(!b.includes(c), `a response contains ${c}: ${b}`);
  }
  // storage holds ciphertext only, and no username appears even in its (clear-text) paths
  const paths = await a.storage.list('');
  assert.ok(paths.some((p) => p.includes('sys/auth/users/user/')));
  assert.ok(!paths.some((p) => p.includes('gus')), 'a username in a storage path');
  for (const p of paths) {
    const v = Buffer.from((await a.storage.get(p)) ?? new Uint8Array()).toString('latin1');
    for (const c of [...canaries, 'gus', 'argon2id']) assert.ok(!v.includes(c), `storage ${p} contains ${c}`);
  }
});

// ---- CLI ----

const cli = cliInProcess;

async function listening(a: TestApp): Promise<string> {
  return a.app.listen({ host: '127.0.0.1', port: 0 });
}

test('CLI: user create, list, login (with a TOTP code on the second line), passwd and delete', async (t) => {
  const a = await build(t);
  const addr = await listening(a);
  const root = { STRONGROOM_TOKEN: a.rootToken };
  const created = await cli(addr, ['user', 'create', 'Alice', '--role', 'developer,auditor'], {
    input: `${PASSWORD}\n`,
    env: root,
  });
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /User\s+alice/);
  assert.ok(!created.stdout.includes(PASSWORD));

  const list = await cli(addr, ['--format', 'json', 'user', 'list'], { env: root });
  assert.deepEqual(
    (JSON.parse(list.stdout) as { users: UserInfo[] }).users.map((u) => u.roles),
    [['auditor', 'developer']],
  );

  const li = await cli(addr, ['login', 'ALICE'], { input: `${PASSWORD}\n` });
  assert.equal(li.code, 0, li.stderr);
  const token = /^export STRONGROOM_TOKEN=(srt_\S+)$/m.exec(li.stdout)?.[1];
  assert.ok(token, li.stdout);
  assert.match(li.stderr, /export/);
  assert.match(li.stdout, /Logged in as\s+user:alice/);
  ok(await a.call('GET', '/v1/auth/token/lookup-self', undefined, token));

  const json = await cli(addr, ['--format', 'json', 'login', 'alice'], { input: `${PASSWORD}\n` });
  const auth = (JSON.parse(json.stdout) as LoginResponse).auth;
  assert.deepEqual(auth.policies, ['auditor', 'developer']);
  assert.equal(auth.mfa, false);

  const bad = await cli(addr, ['login', 'alice'], { input: 'wrong password!!\n' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid username or password \(invalid_credentials\)/);

  // TOTP: enrol and confirm through the CLI, then log in with the code on the second line of stdin
  const clockless = await cli(addr, ['--format', 'json', 'user', 'mfa', 'enroll'], {
    env: { STRONGROOM_TOKEN: token },
  });
  assert.equal(clockless.code, 0, clockless.stderr);
  const { secret } = JSON.parse(clockless.stdout) as TotpEnrollResponse;
  const conf = await cli(addr, ['user', 'mfa', 'confirm', await generate({ secret })], {
    env: { STRONGROOM_TOKEN: token },
  });
  assert.equal(conf.code, 0, conf.stderr);
  assert.equal(conf.stdout.match(/^ {2}[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/gm)?.length, 10);
  const recovery = /^ {2}(\S+)$/m.exec(conf.stdout)![1]!;
  const noCode = await cli(addr, ['login', 'alice'], { input: `${PASSWORD}\n` });
  assert.equal(noCode.code, 2);
  assert.match(noCode.stderr, /needs a TOTP code/);
  const withCode = await cli(addr, ['--format', 'json', 'login', 'alice'], {
    input: `${PASSWORD}\n${recovery}\n`,
  });
  assert.equal(withCode.code, 0, withCode.stderr);
  assert.equal((JSON.parse(withCode.stdout) as LoginResponse).auth.mfa, true);

  const pw = await cli(addr, ['user', 'passwd', 'alice'], { input: 'another long passphrase\n', env: root });
  assert.equal(pw.code, 0, pw.stderr);
  const roles = await cli(addr, ['user', 'roles', 'alice', '--set', 'admin'], { env: root });
  assert.match(roles.stdout, /Roles\s+admin/);
  const del = await cli(addr, ['user', 'delete', 'alice'], { env: root });
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout, /Deleted\s+alice/);
  assert.equal((await cli(addr, ['login', 'alice'], { input: 'another long passphrase\n' })).code, 1);
});
