import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { InitResponse, KeyStatusResponse, SealStatusResponse } from '../../src/api/v1.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

/**
 * Shamir sealing over HTTP: init, unseal progress, wrong shares, seal, and key
 * rotation, as an operator drives them.
 */

const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

function fails(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode}: ${res.body}`);
  const body = res.json() as { error: { code: string; message: string; request_id: string } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(body.error.request_id, res.headers['x-request-id']);
}

const init = (a: TestApp, body: unknown) =>
  a.inject({ method: 'POST', url: '/v1/sys/init', payload: body as object });
const unseal = (a: TestApp, body: unknown) =>
  a.inject({ method: 'POST', url: '/v1/sys/unseal', payload: body as object });
const status = async (a: TestApp) =>
  ok<SealStatusResponse>(await a.inject({ method: 'GET', url: '/v1/sys/seal-status' }));
const withToken = (token: string) => ({ authorization: `Bearer ${token}` });

/** An uninitialised Shamir server, initialised over HTTP with `shares`/`threshold`; left sealed. */
async function initialised(
  t: TestContext,
  shares = 5,
  threshold = 3,
): Promise<TestApp & { init: InitResponse }> {
  const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
  const out = ok<InitResponse>(await init(a, { secret_shares: shares, secret_threshold: threshold }));
  // the helper's call() uses the token it got from its own init: rebind it to ours
  const call: TestApp['call'] = (method, url, body, token) =>
    a.call(method, url, body, token ?? out.root_token);
  return { ...a, init: out, rootToken: out.root_token, keys: out.keys, call };
}

async function unsealWith(a: TestApp, keys: string[]): Promise<SealStatusResponse> {
  let last: SealStatusResponse | undefined;
  for (const key of keys) last = ok<SealStatusResponse>(await unseal(a, { key }));
  return last!;
}

// ---- init ----

test('init returns the key shares and a root token, and leaves the server sealed', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
  assert.deepEqual(await status(a), {
    type: 'shamir',
    initialized: false,
    sealed: true,
    t: 0,
    n: 0,
    progress: 0,
    recovery_seal: false,
  });

  const out = ok<InitResponse>(await init(a, { secret_shares: 5, secret_threshold: 3 }));
  assert.deepEqual(Object.keys(out).sort(), [
    'keys',
    'keys_base64',
    'recovery_keys',
    'recovery_keys_base64',
    'root_token',
  ]);
  assert.deepEqual(out.recovery_keys, [], 'recovery keys are for an HSM seal');
  assert.equal(out.keys.length, 5);
  assert.equal(out.keys_base64.length, 5);
  for (const [i, k] of out.keys.entries()) {
    assert.match(k, /^[0-9a-f]{66}$/, 'a share is 33 bytes of hex');
    assert.equal(
      Buffer.from(out.keys_base64[i]!, 'base64').toString('hex'),
      k,
      'keys_base64 holds the same shares',
    );
  }
  assert.equal(new Set(out.keys).size, 5, 'shares are distinct');
  assert.match(out.root_token, /^srt_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}$/);

  assert.deepEqual(await status(a), {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 3,
    n: 5,
    progress: 0,
    recovery_seal: false,
  });
  fails(
    await a.inject({ method: 'GET', url: '/v1/projects', headers: withToken(out.root_token) }),
    503,
    'sealed',
  );
  assert.equal((await a.inject({ method: 'GET', url: '/v1/sys/health' })).statusCode, 503);
});

test('init without parameters uses 5 shares and a threshold of 3', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
  assert.equal(ok<InitResponse>(await init(a, {})).keys.length, 5);
  const s = await status(a);
  assert.equal(s.n, 5);
  assert.equal(s.t, 3);
});

test('a second init is 409 already_initialized and the original shares still unseal', async (t) => {
  const a = await initialised(t, 3, 2);
  fails(await init(a, { secret_shares: 3, secret_threshold: 2 }), 409, 'already_initialized');
  fails(await init(a, {}), 409, 'already_initialized');
  assert.equal((await unsealWith(a, a.keys.slice(0, 2))).sealed, false);
  fails(await init(a, {}), 409, 'already_initialized');
  assert.equal(ok<{ projects: unknown[] }>(await a.call('GET', '/v1/projects')).projects.length, 0);
});

test('of concurrent init requests exactly one succeeds', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
  const results = await Promise.all(
    Array.from({ length: 5 }, () => init(a, { secret_shares: 3, secret_threshold: 2 })),
  );
  const winners = results.filter((r) => r.statusCode === 200);
  assert.equal(winners.length, 1, results.map((r) => `${r.statusCode} ${r.body.slice(0, 80)}`).join('\n'));
  for (const r of results) if (r.statusCode !== 200) fails(r, 409, 'already_initialized');
  const { keys, root_token } = winners[0]!.json() as InitResponse;
  assert.equal((await unsealWith(a, keys.slice(0, 2))).sealed, false);
  assert.equal(
    (await a.inject({ method: 'GET', url: '/v1/projects', headers: withToken(root_token) })).statusCode,
    200,
  );
});

const BAD_INIT = [
  {
    why: 'a threshold larger than the shares',
    body: { secret_shares: 3, secret_threshold: 4 },
    code: 'validation_failed',
  },
  {
    why: 'a threshold of 1 with several shares',
    body: { secret_shares: 3, secret_threshold: 1 },
    code: 'validation_failed',
  },
  { why: 'zero shares', body: { secret_shares: 0, secret_threshold: 0 }, code: 'validation_failed' },
  { why: '256 shares', body: { secret_shares: 256, secret_threshold: 2 }, code: 'validation_failed' },
  { why: 'shares as a string', body: { secret_shares: '5', secret_threshold: 3 }, code: 'validation_failed' },
  { why: 'fractional shares', body: { secret_shares: 2.5, secret_threshold: 2 }, code: 'validation_failed' },
  {
    why: 'an unknown field',
    body: { secret_shares: 3, secret_threshold: 2, pgp_keys: [] },
    code: 'unknown_field',
  },
];

for (const { why, body, code } of BAD_INIT) {
  test(`init with ${why} is 400 ${code} and leaves the server uninitialised`, async (t) => {
    const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
    fails(await init(a, body), 400, code);
    assert.equal((await status(a)).initialized, false);
    // a correct init still works afterwards
    assert.equal(ok<InitResponse>(await init(a, { secret_shares: 2, secret_threshold: 2 })).keys.length, 2);
  });
}

test('a single share with a threshold of 1 unseals on its own', async (t) => {
  const a = await initialised(t, 1, 1);
  assert.equal(a.keys.length, 1);
  const s = await unsealWith(a, a.keys);
  assert.equal(s.sealed, false);
  assert.equal((await a.call('GET', '/v1/projects')).statusCode, 200);
});

// ---- unseal ----

test('fewer shares than the threshold leave the server sealed and report progress', async (t) => {
  const a = await initialised(t, 5, 3);
  assert.deepEqual(ok(await unseal(a, { key: a.keys[0] })), {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 3,
    n: 5,
    progress: 1,
    recovery_seal: false,
  });
  assert.deepEqual(ok(await unseal(a, { key: a.keys[3] })), {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 3,
    n: 5,
    progress: 2,
    recovery_seal: false,
  });
  assert.equal((await status(a)).progress, 2);
  fails(await a.call('GET', '/v1/projects'), 503, 'sealed');
});

test('the same share given twice does not advance progress', async (t) => {
  const a = await initialised(t, 5, 3);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[1] })).progress, 1);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[1] })).progress, 1);
  // the same share in base64 is still the same share
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.init.keys_base64[1] })).progress, 1);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[1]!.toUpperCase() })).progress, 1);
  assert.equal((await status(a)).sealed, true);
  assert.equal((await unsealWith(a, [a.keys[2]!, a.keys[4]!])).sealed, false);
});

test('threshold distinct shares unseal the server', async (t) => {
  const a = await initialised(t, 5, 3);
  const s = await unsealWith(a, [a.keys[4]!, a.keys[0]!, a.keys[2]!]);
  assert.deepEqual(s, {
    type: 'shamir',
    initialized: true,
    sealed: false,
    t: 3,
    n: 5,
    progress: 0,
    recovery_seal: false,
  });
  assert.equal((await a.inject({ method: 'GET', url: '/v1/sys/health' })).statusCode, 200);
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: 'after-unseal' }));
  assert.equal(ok<{ value: string }>(await a.call('GET', SECRET)).value, 'after-unseal');
});

test('every threshold-sized subset of the shares unseals', async (t) => {
  const a = await initialised(t, 4, 2);
  for (let i = 0; i < 4; i++) {
    for (let j = i + 1; j < 4; j++) {
      assert.equal((await unsealWith(a, [a.keys[i]!, a.keys[j]!])).sealed, false, `shares ${i} and ${j}`);
      ok(await a.call('POST', '/v1/sys/seal'));
    }
  }
});

test('an unseal request once unsealed is harmless and reports unsealed', async (t) => {
  const a = await initialised(t, 3, 2);
  await unsealWith(a, a.keys.slice(0, 2));
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[2] })).sealed, false);
  assert.equal(
    ok<SealStatusResponse>(await unseal(a, { key: randomBytes(33).toString('hex') })).sealed,
    false,
  );
});

test('keys_base64 shares unseal as well', async (t) => {
  const a = await initialised(t, 5, 3);
  const s = await unsealWith(a, a.init.keys_base64.slice(2, 5));
  assert.equal(s.sealed, false);
  assert.equal((await a.call('GET', '/v1/projects')).statusCode, 200);
});

test('hex and base64 shares can be mixed', async (t) => {
  const a = await initialised(t, 3, 2);
  assert.equal((await unsealWith(a, [a.keys[0]!, a.init.keys_base64[1]!])).sealed, false);
});

test('a share from a different initialisation leaves the server sealed, resets progress and is 400 invalid_unseal_key', async (t) => {
  const a = await initialised(t, 3, 2);
  const other = await initialised(t, 3, 2);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[0] })).progress, 1);
  // a valid-looking share of another vault's key, at a different x-coordinate
  const foreign = other.keys.find((k) => k.slice(-2) !== a.keys[0]!.slice(-2))!;
  fails(await unseal(a, { key: foreign }), 400, 'invalid_unseal_key');
  assert.deepEqual(await status(a), {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 2,
    n: 3,
    progress: 0,
    recovery_seal: false,
  });
  fails(await a.call('GET', '/v1/projects'), 503, 'sealed');
  // the reset means two correct shares are needed again, and then they work
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[1] })).progress, 1);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[2] })).sealed, false);
});

test('a foreign share given first is caught when the threshold is reached', async (t) => {
  const a = await initialised(t, 3, 2);
  const other = await initialised(t, 3, 2);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: other.keys[0] })).progress, 1);
  fails(
    await unseal(a, { key: a.keys.find((k) => k.slice(-2) !== other.keys[0]!.slice(-2)) }),
    400,
    'invalid_unseal_key',
  );
  assert.equal((await status(a)).progress, 0);
  assert.equal((await status(a)).sealed, true);
  assert.equal((await unsealWith(a, a.keys.slice(1, 3))).sealed, false);
});

test('random 33 bytes as a share leave the server sealed, reset progress and are 400 invalid_unseal_key', async (t) => {
  const a = await initialised(t, 3, 2);
  for (let i = 0; i < 5; i++) {
    assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[0] })).progress, 1);
    const random = randomBytes(33);
    const key = i % 2 === 0 ? random.toString('hex') : random.toString('base64');
    fails(await unseal(a, { key }), 400, 'invalid_unseal_key');
    assert.deepEqual(await status(a), {
      type: 'shamir',
      initialized: true,
      sealed: true,
      t: 2,
      n: 3,
      progress: 0,
      recovery_seal: false,
    });
  }
  assert.equal((await unsealWith(a, a.keys.slice(0, 2))).sealed, false);
});

test('a wrong share with a threshold of 1 is 400 invalid_unseal_key', async (t) => {
  const a = await initialised(t, 1, 1);
  fails(await unseal(a, { key: randomBytes(33).toString('hex') }), 400, 'invalid_unseal_key');
  assert.equal((await status(a)).sealed, true);
  assert.equal((await unsealWith(a, a.keys)).sealed, false);
});

const MALFORMED_SHARES = [
  { why: 'too short', key: 'abcd' },
  { why: '32 bytes of hex', key: '00'.repeat(32) },
  { why: '34 bytes of hex', key: '00'.repeat(34) },
  { why: 'not hex or base64', key: 'this is not a key!' },
  { why: '200 characters', key: 'a'.repeat(200) },
];

for (const { why, key } of MALFORMED_SHARES) {
  test(`a malformed share (${why}) is 400 invalid_unseal_key and keeps the progress made`, async (t) => {
    const a = await initialised(t, 5, 3);
    await unsealWith(a, [a.keys[0]!]);
    fails(await unseal(a, { key }), 400, 'invalid_unseal_key');
    assert.equal((await status(a)).progress, 1);
    assert.equal((await unsealWith(a, a.keys.slice(1, 3))).sealed, false);
  });
}

const BAD_UNSEAL_BODIES = [
  { why: 'an empty body', body: {}, code: 'validation_failed' },
  { why: 'an empty key', body: { key: '' }, code: 'validation_failed' },
  { why: 'a key over 200 characters', body: { key: 'a'.repeat(201) }, code: 'validation_failed' },
  { why: 'a numeric key', body: { key: 12 }, code: 'validation_failed' },
  { why: 'a string reset', body: { reset: 'true' }, code: 'validation_failed' },
  { why: 'an unknown field', body: { key: 'x', nonce: 'y' }, code: 'unknown_field' },
];

for (const { why, body, code } of BAD_UNSEAL_BODIES) {
  test(`an unseal with ${why} is 400 ${code}`, async (t) => {
    const a = await initialised(t, 3, 2);
    await unsealWith(a, [a.keys[0]!]);
    fails(await unseal(a, body), 400, code);
    assert.equal((await status(a)).progress, 1);
  });
}

test('{reset: true} clears unseal progress', async (t) => {
  const a = await initialised(t, 5, 3);
  await unsealWith(a, a.keys.slice(0, 2));
  assert.equal((await status(a)).progress, 2);
  assert.deepEqual(ok(await unseal(a, { reset: true })), {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 3,
    n: 5,
    progress: 0,
    recovery_seal: false,
  });
  // the two shares given before the reset no longer count
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[2] })).progress, 1);
  assert.equal((await unsealWith(a, a.keys.slice(3, 5))).sealed, false);
});

test('{reset: true} wins over a key given in the same request', async (t) => {
  const a = await initialised(t, 3, 2);
  await unsealWith(a, [a.keys[0]!]);
  assert.equal(ok<SealStatusResponse>(await unseal(a, { key: a.keys[1], reset: true })).progress, 0);
  assert.equal((await status(a)).sealed, true);
});

test('unseal and seal-status need no token', async (t) => {
  const a = await initialised(t, 3, 2);
  const res = await a.inject({
    method: 'POST',
    url: '/v1/sys/unseal',
    payload: { key: a.keys[0] },
    headers: { authorization: 'Bearer garbage' },
  });
  assert.equal(ok<SealStatusResponse>(res).progress, 1);
  assert.equal(
    (
      await a.inject({
        method: 'GET',
        url: '/v1/sys/seal-status',
        headers: { authorization: 'Bearer garbage' },
      })
    ).statusCode,
    200,
  );
});

// ---- seal ----

test('sealing with the root token seals: reads are 503 sealed until the server is unsealed again', async (t) => {
  const a = await initialised(t, 3, 2);
  await unsealWith(a, a.keys.slice(0, 2));
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: 'survives-sealing' }));

  const sealed = ok<SealStatusResponse>(await a.call('POST', '/v1/sys/seal'));
  assert.deepEqual(sealed, {
    type: 'shamir',
    initialized: true,
    sealed: true,
    t: 2,
    n: 3,
    progress: 0,
    recovery_seal: false,
  });
  fails(await a.call('GET', SECRET), 503, 'sealed');
  fails(await a.call('GET', '/v1/secrets/llm/dev'), 503, 'sealed');
  fails(await a.call('PUT', SECRET, { value: 'x' }), 503, 'sealed');
  fails(await a.call('POST', '/v1/sys/seal'), 503, 'sealed');
  assert.equal((await a.inject({ method: 'GET', url: '/v1/sys/health' })).statusCode, 503);

  assert.equal((await unsealWith(a, [a.keys[2]!, a.keys[0]!])).sealed, false);
  const r = ok<{ value: string; version: number }>(await a.call('GET', SECRET));
  assert.equal(r.value, 'survives-sealing');
  assert.equal(r.version, 1);
  assert.equal(ok<{ version: number }>(await a.call('PUT', SECRET, { value: 'after' })).version, 2);
});

test('sealing discards unseal progress in flight', async (t) => {
  const a = await initialised(t, 3, 2);
  await unsealWith(a, a.keys.slice(0, 2));
  ok(await a.call('POST', '/v1/sys/seal'));
  assert.equal((await status(a)).progress, 0);
});

test('sealing without a token is 401 unauthenticated and the server stays unsealed', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  fails(await a.inject({ method: 'POST', url: '/v1/sys/seal' }), 401, 'unauthenticated');
  fails(
    await a.inject({ method: 'POST', url: '/v1/sys/seal', headers: withToken('garbage') }),
    401,
    'invalid_token',
  );
  assert.equal((await status(a)).sealed, false);
});

test('sealing with a token that is not root is 403 permission_denied and the server stays unsealed', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  const { token } = await a.core.tokens.create({ policies: ['default'], display_name: 'ci' });
  fails(
    await a.inject({ method: 'POST', url: '/v1/sys/seal', headers: withToken(token) }),
    403,
    'permission_denied',
  );
  fails(
    await a.inject({ method: 'POST', url: '/v1/sys/rotate', headers: withToken(token) }),
    403,
    'permission_denied',
  );
  assert.equal((await status(a)).sealed, false);
});

test('a token created before sealing still works after unsealing', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', shares: 3, threshold: 2 });
  ok(await a.call('POST', '/v1/sys/seal'));
  await unsealWith(a, a.keys.slice(1, 3));
  assert.equal((await a.call('GET', '/v1/projects')).statusCode, 200);
});

// ---- rotation ----

test('after sys/rotate old secrets still read, new writes work and key-status term increments', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', shares: 3, threshold: 2 });
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: 'written-under-term-1' }));

  const before = ok<KeyStatusResponse>(await a.call('GET', '/v1/sys/key-status'));
  assert.deepEqual(Object.keys(before).sort(), ['installed_at', 'term', 'terms']);
  assert.equal(before.terms, before.term);

  const rotated = ok<{ term: number; installed_at: string }>(await a.call('POST', '/v1/sys/rotate'));
  assert.equal(rotated.term, before.term + 1);
  const after = ok<KeyStatusResponse>(await a.call('GET', '/v1/sys/key-status'));
  assert.deepEqual(after, {
    term: before.term + 1,
    terms: before.terms + 1,
    installed_at: rotated.installed_at,
  });

  assert.equal(ok<{ value: string }>(await a.call('GET', SECRET)).value, 'written-under-term-1');
  ok(await a.call('PUT', SECRET, { value: 'written-under-term-2' }));
  ok(await a.call('PUT', '/v1/secrets/llm/dev/NEW_KEY', { value: 'new' }));
  assert.equal(ok<{ value: string }>(await a.call('GET', SECRET)).value, 'written-under-term-2');
  assert.equal(
    ok<{ value: string }>(await a.call('GET', `${SECRET}?version=1`)).value,
    'written-under-term-1',
  );

  ok(await a.call('POST', '/v1/sys/rotate'));
  assert.equal(ok<KeyStatusResponse>(await a.call('GET', '/v1/sys/key-status')).term, before.term + 2);

  // the rotated keyring survives a seal/unseal cycle
  ok(await a.call('POST', '/v1/sys/seal'));
  await unsealWith(a, a.keys.slice(0, 2));
  assert.equal(ok<KeyStatusResponse>(await a.call('GET', '/v1/sys/key-status')).term, before.term + 2);
  assert.equal(
    ok<{ value: string }>(await a.call('GET', `${SECRET}?version=1`)).value,
    'written-under-term-1',
  );
  assert.equal(
    ok<{ value: string }>(await a.call('GET', `${SECRET}?version=2`)).value,
    'written-under-term-2',
  );
  assert.equal(ok<{ value: string }>(await a.call('GET', '/v1/secrets/llm/dev/NEW_KEY')).value, 'new');
});

test('concurrent rotations each add one term', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  const before = ok<KeyStatusResponse>(await a.call('GET', '/v1/sys/key-status'));
  const terms = (await Promise.all(Array.from({ length: 5 }, () => a.call('POST', '/v1/sys/rotate')))).map(
    (r) => ok<{ term: number }>(r).term,
  );
  assert.deepEqual(
    terms.sort((x, y) => x - y),
    [1, 2, 3, 4, 5].map((n) => before.term + n),
  );
  assert.equal(ok<KeyStatusResponse>(await a.call('GET', '/v1/sys/key-status')).terms, before.terms + 5);
});

test('rotate and key-status need a token', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  fails(await a.inject({ method: 'POST', url: '/v1/sys/rotate' }), 401, 'unauthenticated');
  fails(await a.inject({ method: 'GET', url: '/v1/sys/key-status' }), 401, 'unauthenticated');
});

test('rotate and key-status are 503 sealed while sealed', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  ok(await a.call('POST', '/v1/sys/seal'));
  fails(await a.call('POST', '/v1/sys/rotate'), 503, 'sealed');
  fails(await a.call('GET', '/v1/sys/key-status'), 503, 'sealed');
});

test('a static-seal server sealed by an operator unseals again from its key file, and refuses key shares', async (t) => {
  const a = await buildTestApp(t);
  assert.equal((await a.call('POST', '/v1/projects', { name: 'p' })).statusCode, 201);
  assert.equal((await a.call('POST', '/v1/sys/seal')).statusCode, 200);
  assert.equal((await a.call('GET', '/v1/projects')).statusCode, 503);
  const withKey = await a.inject({
    method: 'POST',
    url: '/v1/sys/unseal',
    payload: { key: 'ab'.repeat(33) },
  });
  assert.equal(withKey.statusCode, 400);
  const res = await a.inject({ method: 'POST', url: '/v1/sys/unseal', payload: {} });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().sealed, false);
  assert.equal((await a.call('GET', '/v1/projects')).statusCode, 200);
});
