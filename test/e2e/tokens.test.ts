import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import type { AuthResponse, TokenInfo } from '../../src/api/v1.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';
import { buildTestApp, type TestApp, tempDir } from '../helpers/app.ts';

/**
 * Tokens over HTTP (issue 3, "Must show"): a TTL holds to the millisecond and
 * expiry is final; durations parse one way everywhere; renewals stop at the
 * cap; a child never holds more roles, scope, lifetime or uses than its
 * parent; revoking a parent kills every descendant on its very next request;
 * `num_uses` is exact under 50 concurrent requests; and the token value is
 * never returned by a lookup nor found in storage or logs.
 *
 * Time is a manual clock started at the real time, moved by the tests.
 */

type Auth = AuthResponse['auth'];
type Clock = ReturnType<typeof manualClock>;

const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';
const CANARY = `sk-tokens-canary-${randomBytes(12).toString('hex')}`;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

function fails(res: LightMyRequestResponse, status: number, code: string): string {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode}: ${res.body}`);
  const body = res.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, code, res.body);
  return body.error.message;
}

/** A fresh app on a manual clock, with project `llm` and SECRET holding CANARY. */
async function fixture(t: TestContext): Promise<TestApp & { clock: Clock }> {
  const clock = manualClock(Date.now());
  const a = await buildTestApp(t, { clock });
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: CANARY }));
  return Object.assign(a, { clock });
}

/** Creates a token (as root unless `parent` is given); asserts success. */
async function mint(a: TestApp, body: Record<string, unknown>, parent?: string): Promise<Auth> {
  return ok<AuthResponse>(await a.call('POST', '/v1/auth/token/create', body, parent)).auth;
}

/** Tries to create a token; returns the raw response. */
const tryMint = (a: TestApp, body: Record<string, unknown>, parent?: string) =>
  a.call('POST', '/v1/auth/token/create', body, parent);

/**
 * Whether `token` is accepted, judged by a real secret read: 200 is yes, 401
 * invalid_token is no, and anything else is a test failure.
 */
async function works(a: TestApp, token: string): Promise<boolean> {
  const res = await a.call('GET', SECRET, undefined, token);
  if (res.statusCode === 200) {
    assert.equal((res.json() as { value: string }).value, CANARY);
    return true;
  }
  fails(res, 401, 'invalid_token');
  return false;
}

const lookupSelf = async (a: TestApp, token: string) =>
  ok<{ data: TokenInfo }>(await a.call('GET', '/v1/auth/token/lookup-self', undefined, token)).data;

const renewSelf = (a: TestApp, token: string, body: Record<string, unknown> = {}) =>
  a.call('POST', '/v1/auth/token/renew-self', body, token);

const an = (word: string) => `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;

/** The 43 random characters of `srt_<random>_<checksum>` (the random part may itself contain `_`). */
const randomPart = (token: string) => {
  const body = token.slice(4, -7);
  assert.equal(body.length, 43);
  return body;
};

const at = (iso: string | null) => {
  assert.ok(iso, 'the token has an expiry');
  return Date.parse(iso);
};

// ---- TTL and expiry ----

test('a token created with ttl 2s works until it expires and never after', async (t) => {
  const a = await fixture(t);
  const start = a.clock.now();
  const tok = await mint(a, { roles: ['developer'], ttl: '2s' });
  assert.equal(tok.ttl, 2);
  assert.equal(at(tok.expires_at), start + 2 * SECOND);

  assert.equal(await works(a, tok.client_token), true, 'works at once');
  a.clock.advance(1 * SECOND);
  assert.equal(await works(a, tok.client_token), true, 'works after 1 s');
  a.clock.advance(999);
  assert.equal(await works(a, tok.client_token), true, 'works 1 ms before it expires');
  a.clock.advance(1);
  assert.equal(await works(a, tok.client_token), false, 'refused at the instant it expires');
  for (const later of [1, SECOND, HOUR, 40 * 24 * HOUR]) {
    a.clock.advance(later);
    assert.equal(await works(a, tok.client_token), false, `still refused ${later} ms later`);
  }
  // nothing brings it back: not a renewal, not a lookup, not a child
  fails(await renewSelf(a, tok.client_token, { increment: '1h' }), 401, 'invalid_token');
  fails(await a.call('GET', '/v1/auth/token/lookup-self', undefined, tok.client_token), 401, 'invalid_token');
  fails(await tryMint(a, { ttl: '1h' }, tok.client_token), 401, 'invalid_token');
  fails(await a.call('POST', '/v1/auth/token/lookup-accessor', { accessor: tok.accessor }), 404, 'not_found');
});

test('with the real clock a 2s token works at once and is refused once 2 seconds have passed', async (t) => {
  const a = await buildTestApp(t);
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: CANARY }));
  const tok = await mint(a, { roles: ['developer'], ttl: '2s' });
  assert.equal(await works(a, tok.client_token), true);
  const wait = at(tok.expires_at) - Date.now();
  assert.ok(wait > 1000 && wait <= 2000, `expires in ${wait} ms`);
  await sleep(wait + 50);
  assert.equal(await works(a, tok.client_token), false);
  await sleep(200);
  assert.equal(await works(a, tok.client_token), false);
});

const DURATIONS: [input: string | number, seconds: number][] = [
  ['90s', 90],
  ['15m', 15 * 60],
  ['1h', 3600],
  ['1h30m', 5400],
  ['7d', 7 * 86400],
  [120, 120],
  ['300', 300],
];

for (const [input, seconds] of DURATIONS) {
  test(`ttl ${JSON.stringify(input)} gives a token that lives exactly ${seconds} seconds`, async (t) => {
    const a = await fixture(t);
    const start = a.clock.now();
    const tok = await mint(a, { roles: ['developer'], ttl: input });
    assert.equal(tok.ttl, seconds);
    assert.equal(at(tok.expires_at), start + seconds * SECOND);
    a.clock.advance(seconds * SECOND - 1);
    assert.equal(await works(a, tok.client_token), true);
    a.clock.advance(1);
    assert.equal(await works(a, tok.client_token), false);
  });
}

const JUNK: unknown[] = [
  'soon',
  '1x',
  '-5s',
  '1.5h',
  '10 m',
  '1h 30m',
  'h',
  '0x10',
  '',
  -1,
  1.5,
  true,
  null,
  {},
];

for (const field of ['ttl', 'explicit_max_ttl'] as const) {
  test(`${field} refuses junk with 400 validation_failed and creates nothing`, async (t) => {
    const a = await fixture(t);
    const before = (await a.core.tokens.list()).length;
    for (const junk of JUNK) {
      const res = await tryMint(a, { roles: ['developer'], [field]: junk });
      const message = fails(res, 400, 'validation_failed');
      assert.match(message, new RegExp(field), `the message names the field: ${message}`);
    }
    assert.equal((await a.core.tokens.list()).length, before);
  });
}

test('renew-self refuses a junk increment with 400 validation_failed and keeps the expiry', async (t) => {
  const a = await fixture(t);
  const tok = await mint(a, { roles: ['developer'], ttl: '10m' });
  for (const junk of JUNK) {
    fails(await renewSelf(a, tok.client_token, { increment: junk }), 400, 'validation_failed');
  }
  assert.equal((await lookupSelf(a, tok.client_token)).expires_at, tok.expires_at);
});

test('ttl 0 is refused or means the default, never a token that is dead on arrival', {}, async (t) => {
  const a = await fixture(t);
  for (const body of [{ ttl: 0 }, { ttl: '0s' }, { explicit_max_ttl: 0 }]) {
    const res = await tryMint(a, { roles: ['developer'], ...body });
    if (res.statusCode === 400) continue;
    const tok = ok<AuthResponse>(res).auth;
    assert.ok(tok.ttl > 0, `${JSON.stringify(body)} gave a token with ttl ${tok.ttl}`);
    assert.equal(await works(a, tok.client_token), true, `${JSON.stringify(body)} gave a dead token`);
  }
});

test('the default TTL is one hour', async (t) => {
  const a = await fixture(t);
  const start = a.clock.now();
  const tok = await mint(a, { roles: ['developer'] });
  assert.equal(tok.ttl, 3600);
  assert.equal(at(tok.expires_at), start + HOUR);
  a.clock.advance(HOUR - 1);
  assert.equal(await works(a, tok.client_token), true);
  a.clock.advance(1);
  assert.equal(await works(a, tok.client_token), false);
});

test('explicit_max_ttl caps the first TTL and every renewal', async (t) => {
  const a = await fixture(t);
  const start = a.clock.now();
  const capped = await mint(a, { roles: ['developer'], ttl: '1h', explicit_max_ttl: '15m' });
  assert.equal(capped.ttl, 15 * 60, 'a ttl beyond the cap is cut to it');
  assert.equal(at(capped.expires_at), start + 15 * MINUTE);

  const tok = await mint(a, { roles: ['developer'], ttl: '10m', explicit_max_ttl: '30m' });
  assert.equal(at((await lookupSelf(a, tok.client_token)).max_expires_at), start + 30 * MINUTE);
  a.clock.advance(9 * MINUTE);
  const r1 = ok<AuthResponse>(await renewSelf(a, tok.client_token, { increment: '1h' })).auth;
  assert.equal(at(r1.expires_at), start + 30 * MINUTE, 'a renewal stops at the cap');
  a.clock.advance(20 * MINUTE);
  const r2 = ok<AuthResponse>(await renewSelf(a, tok.client_token, { increment: 3600 })).auth;
  assert.equal(at(r2.expires_at), start + 30 * MINUTE, 'and so does the next one');
  a.clock.advance(MINUTE - 1);
  assert.equal(await works(a, tok.client_token), true);
  a.clock.advance(1);
  assert.equal(await works(a, tok.client_token), false, 'the token dies at the cap, renewals or not');
  assert.equal(await works(a, capped.client_token), false);
});

test('renew-self extends a token by its TTL or by an increment, up to its cap', async (t) => {
  const a = await fixture(t);
  const start = a.clock.now();
  const tok = await mint(a, { roles: ['developer'], ttl: '10m', explicit_max_ttl: '1h' });
  a.clock.advance(8 * MINUTE);
  const r1 = ok<AuthResponse>(await renewSelf(a, tok.client_token)).auth;
  assert.equal(at(r1.expires_at), start + 18 * MINUTE, 'by default a renewal grants the TTL again');
  assert.equal(r1.renewable, true);
  assert.equal((await lookupSelf(a, tok.client_token)).expires_at, r1.expires_at);
  a.clock.advance(9 * MINUTE); // 17 min: past the original 10 min
  assert.equal(await works(a, tok.client_token), true, 'it works past its first expiry');
  const r2 = ok<AuthResponse>(await renewSelf(a, tok.client_token, { increment: '30m' })).auth;
  assert.equal(at(r2.expires_at), start + 47 * MINUTE, 'an increment counts from now');
  a.clock.advance(29 * MINUTE); // 46 min
  const r3 = ok<AuthResponse>(await renewSelf(a, tok.client_token, { increment: '1h' })).auth;
  assert.equal(at(r3.expires_at), start + HOUR, 'no further than explicit_max_ttl');
  a.clock.advance(14 * MINUTE - 1);
  assert.equal(await works(a, tok.client_token), true);
  a.clock.advance(1);
  assert.equal(await works(a, tok.client_token), false);
});

test('a non-renewable token refuses renew-self with 400 and keeps its expiry', async (t) => {
  const a = await fixture(t);
  const tok = await mint(a, { roles: ['developer'], ttl: '10m', renewable: false });
  assert.equal(tok.renewable, false);
  a.clock.advance(5 * MINUTE);
  const message = fails(await renewSelf(a, tok.client_token, { increment: '1h' }), 400, 'bad_request');
  assert.match(message, /not renewable/);
  assert.equal((await lookupSelf(a, tok.client_token)).expires_at, tok.expires_at);
  a.clock.advance(5 * MINUTE);
  assert.equal(await works(a, tok.client_token), false);
});

test('lookup-self reports the remaining TTL by the vault clock', {}, async (t) => {
  const a = await fixture(t);
  const tok = await mint(a, { roles: ['developer'], ttl: '1h' });
  a.clock.advance(30 * MINUTE);
  assert.equal((await lookupSelf(a, tok.client_token)).ttl, 30 * 60);
  const renewed = ok<AuthResponse>(await renewSelf(a, tok.client_token, { increment: '10m' })).auth;
  assert.equal(renewed.ttl, 10 * 60);
});

// ---- a child never holds more than its parent ----

const ROLE_CASES: [parent: string[], child: string[], allowed: boolean][] = [
  [['developer'], ['developer'], true],
  [['developer', 'auditor'], ['auditor'], true],
  [['developer'], ['admin'], false],
  [['developer'], ['developer', 'auditor'], false],
  [['app'], ['developer'], false],
  [['auditor'], ['root'], false],
  [['developer'], ['made-up-role'], false],
];

for (const [parent, child, allowed] of ROLE_CASES) {
  test(`${an(parent.join('+'))} token ${allowed ? 'may' : 'may not'} create a child with roles ${child.join('+')}`, async (t) => {
    const a = await fixture(t);
    // an app token always carries a scope
    const p = await mint(a, {
      roles: parent,
      ...(parent.includes('app') ? { scope: { paths: ['*'] } } : {}),
    });
    const res = await tryMint(a, { roles: child }, p.client_token);
    if (allowed) {
      assert.deepEqual(ok<AuthResponse>(res).auth.policies, [...child].sort());
    } else {
      const message = fails(res, 403, 'permission_denied');
      assert.match(message, /roles or policies its creator does not hold/);
      // and the same through the `policies` field
      fails(await tryMint(a, { policies: child }, p.client_token), 403, 'permission_denied');
    }
  });
}

test('a child with no roles given gets exactly its parent’s roles', async (t) => {
  const a = await fixture(t);
  const p = await mint(a, { roles: ['auditor', 'developer'] });
  const c = await mint(a, { ttl: '5m' }, p.client_token);
  assert.deepEqual(c.policies, ['auditor', 'developer']);
});

const SCOPE_CASES: [parent: object, child: object, allowed: boolean][] = [
  [{ paths: ['llm/dev'] }, { paths: ['llm/dev'] }, true],
  [{ paths: ['llm/dev'] }, { paths: ['llm/dev/OPENAI_*'] }, true],
  [{ paths: ['llm'] }, { paths: ['llm/dev', 'llm/staging'] }, true],
  [{ paths: ['llm/*'] }, { paths: ['llm/prod'] }, true],
  [{ paths: ['llm/dev/OPENAI_*'] }, { paths: ['llm/dev/OPENAI_API_KEY'] }, true],
  [{ providers: ['openai', 'anthropic'] }, { providers: ['openai'] }, true],
  [{ paths: ['llm/dev'] }, { paths: ['llm/dev'], providers: ['openai'] }, true],
  [{ paths: ['llm/dev'] }, { paths: ['llm'] }, false],
  [{ paths: ['llm/dev'] }, { paths: ['llm/*'] }, false],
  [{ paths: ['llm/dev'] }, { paths: ['other/dev'] }, false],
  [{ paths: ['llm/dev'] }, { paths: ['llm/dev', 'llm/prod'] }, false],
  [{ paths: ['llm/dev'] }, { paths: ['*/dev'] }, false],
  [{ paths: ['llm/dev/OPENAI_*'] }, { paths: ['llm/dev'] }, false],
  [{ paths: ['llm/dev/OPENAI_*'] }, { paths: ['llm/dev/*'] }, false],
  [{ paths: ['llm/dev/OPENAI_*'] }, { paths: ['llm/dev/OPEN*'] }, false],
  [{ paths: ['llm/dev'] }, { providers: ['openai'] }, false],
  [{ providers: ['openai'] }, { providers: ['openai', 'anthropic'] }, false],
  [{ providers: ['openai'] }, { paths: ['llm/dev'] }, false],
];

for (const [parent, child, allowed] of SCOPE_CASES) {
  test(`a token scoped to ${JSON.stringify(parent)} ${allowed ? 'may' : 'may not'} create a child scoped to ${JSON.stringify(child)}`, async (t) => {
    const a = await fixture(t);
    const p = await mint(a, { roles: ['developer'], scope: parent });
    const res = await tryMint(a, { scope: child }, p.client_token);
    if (allowed) {
      assert.deepEqual(ok<AuthResponse>(res).auth.scope, child);
    } else {
      assert.match(fails(res, 403, 'permission_denied'), /scope must lie within/);
    }
  });
}

test('a scope narrows even a token holding the root policy, and its children stay within it', {}, async (t) => {
  const a = await fixture(t);
  ok(await a.call('PUT', '/v1/secrets/llm/prod/OPENAI_API_KEY', { value: `prod-${CANARY}` }));
  const res = await tryMint(a, { roles: ['root'], scope: { paths: ['llm/dev'] } });
  // refusing to create a scoped root token would be fine too
  if (res.statusCode === 400 || res.statusCode === 403) return;
  const scopedRoot = ok<AuthResponse>(res).auth;
  assert.equal(await works(a, scopedRoot.client_token), true, 'it reads inside its scope');
  const outside = await a.call(
    'GET',
    '/v1/secrets/llm/prod/OPENAI_API_KEY',
    undefined,
    scopedRoot.client_token,
  );
  assert.equal(outside.statusCode, 403, `it read outside its scope: ${outside.body.slice(0, 80)}`);
  const wider = await tryMint(a, { roles: ['admin'], scope: { paths: ['other'] } }, scopedRoot.client_token);
  assert.equal(wider.statusCode, 403, 'it minted a child outside its own scope');
});

test('a child given no scope inherits its parent’s scope, and an unscoped token’s child may be scoped', async (t) => {
  const a = await fixture(t);
  const scoped = await mint(a, { roles: ['developer'], scope: { paths: ['llm/dev/OPENAI_*'] } });
  const child = await mint(a, { ttl: '5m' }, scoped.client_token);
  assert.deepEqual(child.scope, { paths: ['llm/dev/OPENAI_*'] });
  assert.deepEqual((await lookupSelf(a, child.client_token)).scope, { paths: ['llm/dev/OPENAI_*'] });
  ok(await a.call('PUT', '/v1/secrets/llm/dev/OTHER', { value: 'x' }));
  fails(
    await a.call('GET', '/v1/secrets/llm/dev/OTHER', undefined, child.client_token),
    403,
    'permission_denied',
  );

  const open = await mint(a, { roles: ['developer'] });
  const narrowed = await mint(a, { scope: { paths: ['llm/dev'] } }, open.client_token);
  assert.deepEqual(narrowed.scope, { paths: ['llm/dev'] });
});

test('a child’s TTL beyond its parent’s expiry is clamped to it, and so are its renewals', async (t) => {
  const a = await fixture(t);
  const start = a.clock.now();
  const p = await mint(a, { roles: ['developer'], ttl: '10m' });
  const c = await mint(a, { ttl: '1h' }, p.client_token);
  assert.equal(c.expires_at, p.expires_at, 'the child dies with its parent');
  assert.equal(c.ttl, 600);
  const c2 = await mint(a, { ttl: '2m', explicit_max_ttl: '1h' }, p.client_token);
  assert.equal(at(c2.expires_at), start + 2 * MINUTE);
  assert.ok(at((await lookupSelf(a, c2.client_token)).max_expires_at) <= start + 10 * MINUTE);

  a.clock.advance(MINUTE);
  const renewed = ok<AuthResponse>(await renewSelf(a, c2.client_token, { increment: '1h' })).auth;
  assert.equal(renewed.expires_at, p.expires_at, 'a renewal cannot outlive the parent');
  a.clock.advance(9 * MINUTE - 1);
  assert.equal(await works(a, c.client_token), true);
  assert.equal(await works(a, c2.client_token), true);
  a.clock.advance(1);
  assert.equal(await works(a, p.client_token), false);
  assert.equal(await works(a, c.client_token), false);
  assert.equal(await works(a, c2.client_token), false);
});

test('a child of a renewable parent still cannot outlive the parent’s explicit_max_ttl', async (t) => {
  const a = await fixture(t);
  const start = a.clock.now();
  const p = await mint(a, { roles: ['developer'], ttl: '10m', explicit_max_ttl: '20m' });
  a.clock.advance(5 * MINUTE);
  ok(await renewSelf(a, p.client_token, { increment: '1h' }));
  const c = await mint(a, { ttl: '1h' }, p.client_token);
  assert.equal(at(c.expires_at), start + 20 * MINUTE);
  const renewed = ok<AuthResponse>(await renewSelf(a, c.client_token, { increment: '1h' })).auth;
  assert.equal(at(renewed.expires_at), start + 20 * MINUTE);
});

test('a child of a limited-use parent must have limited uses, no more than the parent has left', async (t) => {
  const a = await fixture(t);
  const p = await mint(a, { roles: ['developer'], num_uses: 10 });
  // every request the parent makes uses one of its uses, refused or not
  const noLimit = fails(await tryMint(a, { ttl: '5m' }, p.client_token), 403, 'permission_denied'); // 9 left
  assert.match(noLimit, /no more uses than it has left/);
  fails(await tryMint(a, { num_uses: 0 }, p.client_token), 403, 'permission_denied'); // 8 left
  fails(await tryMint(a, { num_uses: 8 }, p.client_token), 403, 'permission_denied'); // 7 left: 8 > 7
  const c = await mint(a, { num_uses: 6 }, p.client_token); // 6 left
  assert.equal(c.num_uses, 6);
  assert.equal((await lookupSelf(a, p.client_token)).num_uses, 5, 'lookup-self counts too');
  let used = 0;
  while (await works(a, c.client_token)) used++;
  assert.equal(used, 6, 'the child works exactly its own uses');

  const unlimited = await mint(a, { roles: ['developer'] });
  assert.equal((await mint(a, { num_uses: 3 }, unlimited.client_token)).num_uses, 3);
});

// ---- revocation ----

/** root -> a -> b -> c (each created by the one before), plus an unrelated sibling of a. */
async function family(a: TestApp) {
  const top = await mint(a, { roles: ['developer'], display_name: 'a' });
  const mid = await mint(a, { display_name: 'b' }, top.client_token);
  const leaf = await mint(a, { display_name: 'c' }, mid.client_token);
  const sibling = await mint(a, { roles: ['developer'], display_name: 'sibling' });
  const cousin = await mint(a, { display_name: 'cousin' }, sibling.client_token);
  for (const tok of [top, mid, leaf, sibling, cousin]) assert.equal(await works(a, tok.client_token), true);
  assert.equal((await lookupSelf(a, leaf.client_token)).parent, mid.accessor);
  assert.equal((await lookupSelf(a, mid.client_token)).parent, top.accessor);
  return { top, mid, leaf, sibling, cousin };
}

test('revoking a parent by accessor revokes all its descendants on their very next request', async (t) => {
  const a = await fixture(t);
  const f = await family(a);
  const out = ok<{ revoked: number }>(
    await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: f.top.accessor }),
  );
  assert.equal(out.revoked, 3);
  for (const tok of [f.top, f.mid, f.leaf]) {
    assert.equal(await works(a, tok.client_token), false);
    fails(
      await a.call('GET', '/v1/auth/token/lookup-self', undefined, tok.client_token),
      401,
      'invalid_token',
    );
    fails(await tryMint(a, { ttl: '1m' }, tok.client_token), 401, 'invalid_token');
  }
  assert.equal(await works(a, f.sibling.client_token), true, 'an unrelated token is untouched');
  assert.equal(await works(a, f.cousin.client_token), true);
  fails(
    await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: f.mid.accessor }),
    404,
    'not_found',
  );
});

test('revoking a middle token by value revokes it and its child, but not its parent', async (t) => {
  const a = await fixture(t);
  const f = await family(a);
  const out = ok<{ revoked: number }>(
    await a.call('POST', '/v1/auth/token/revoke', { token: f.mid.client_token }),
  );
  assert.equal(out.revoked, 2);
  assert.equal(await works(a, f.mid.client_token), false);
  assert.equal(await works(a, f.leaf.client_token), false);
  assert.equal(await works(a, f.top.client_token), true);
  // revoking a value that is no token, or no longer one, revokes nothing
  assert.equal(
    ok<{ revoked: number }>(await a.call('POST', '/v1/auth/token/revoke', { token: f.mid.client_token }))
      .revoked,
    0,
  );
  assert.equal(
    ok<{ revoked: number }>(await a.call('POST', '/v1/auth/token/revoke', { token: 'srt_garbage' })).revoked,
    0,
  );
});

test('revoke-self revokes the caller and its descendants at once', async (t) => {
  const a = await fixture(t);
  const f = await family(a);
  assert.equal(
    ok<{ revoked: number }>(await a.call('POST', '/v1/auth/token/revoke-self', undefined, f.mid.client_token))
      .revoked,
    2,
  );
  assert.equal(await works(a, f.mid.client_token), false);
  assert.equal(await works(a, f.leaf.client_token), false);
  assert.equal(await works(a, f.top.client_token), true);
  fails(
    await a.call('POST', '/v1/auth/token/revoke-self', undefined, f.mid.client_token),
    401,
    'invalid_token',
  );
});

test('a revoked parent cannot create a child, and a child created just before still dies with it', async (t) => {
  const a = await fixture(t);
  const p = await mint(a, { roles: ['developer'] });
  const c = await mint(a, { ttl: '5m' }, p.client_token);
  ok(await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: p.accessor }));
  fails(await tryMint(a, { ttl: '5m' }, p.client_token), 401, 'invalid_token');
  assert.equal(await works(a, c.client_token), false);
});

test('revoke and revoke-accessor need the token.revoke right: a developer cannot revoke other tokens', async (t) => {
  const a = await fixture(t);
  const dev = await mint(a, { roles: ['developer'] });
  const other = await mint(a, { roles: ['developer'] });
  fails(
    await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: other.accessor }, dev.client_token),
    403,
    'permission_denied',
  );
  fails(
    await a.call('POST', '/v1/auth/token/revoke', { token: other.client_token }, dev.client_token),
    403,
    'permission_denied',
  );
  assert.equal(await works(a, other.client_token), true);
});

// ---- limited uses ----

for (const uses of [1, 3]) {
  test(`a num_uses ${uses} token used by 50 concurrent requests succeeds exactly ${uses === 1 ? 'once' : `${uses} times`}`, async (t) => {
    const a = await fixture(t);
    const tok = await mint(a, { roles: ['app'], scope: { paths: ['*'] }, num_uses: uses });
    assert.equal(tok.num_uses, uses);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => a.call('GET', SECRET, undefined, tok.client_token)),
    );
    const count = (s: number) => results.filter((r) => r.statusCode === s).length;
    assert.equal(count(200), uses, `statuses: ${results.map((r) => r.statusCode).join(',')}`);
    assert.equal(count(401), 50 - uses);
    for (const r of results) {
      if (r.statusCode === 200) assert.equal((r.json() as { value: string }).value, CANARY);
      else assert.equal((r.json() as { error: { code: string } }).error.code, 'invalid_token');
    }
    assert.equal(await works(a, tok.client_token), false, 'and it is spent afterwards');
    fails(
      await a.call('POST', '/v1/auth/token/lookup-accessor', { accessor: tok.accessor }),
      404,
      'not_found',
    );
  });
}

test('a num_uses 3 token used one request at a time works 3 times, and a refused request still uses one', async (t) => {
  const a = await fixture(t);
  const tok = await mint(a, { roles: ['app'], scope: { paths: ['*'] }, num_uses: 3 });
  fails(await a.call('PUT', SECRET, { value: 'nope' }, tok.client_token), 403, 'permission_denied');
  assert.equal(await works(a, tok.client_token), true);
  assert.equal(await works(a, tok.client_token), true);
  assert.equal(await works(a, tok.client_token), false);
});

test('a rate-limited request does not use up a limited-use token: a use is counted only once the rate limit passed', async (t) => {
  const clock = manualClock(Date.now());
  const a = await buildTestApp(t, { clock, rateLimit: { requests_per_second: 1, burst: 1 } });
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: CANARY }));
  const tok = await mint(a, { roles: ['app'], scope: { paths: ['*'] }, num_uses: 3 });
  const usesLeft = async () =>
    ok<{ data: TokenInfo }>(
      await a.call('POST', '/v1/auth/token/lookup-accessor', { accessor: tok.accessor }),
    ).data.num_uses;
  assert.equal(await works(a, tok.client_token), true);
  assert.equal(await usesLeft(), 2);
  fails(await a.call('GET', SECRET, undefined, tok.client_token), 429, 'rate_limited');
  fails(await a.call('GET', SECRET, undefined, tok.client_token), 429, 'rate_limited');
  assert.equal(await usesLeft(), 2, 'the refused requests spent no use');
  clock.advance(SECOND);
  assert.equal(await works(a, tok.client_token), true);
  assert.equal(await usesLeft(), 1);
});

test('a child token gets no rate limit of its own: every token of a tree counts against its owner, and so do all of a user’s logins', async (t) => {
  const clock = manualClock(Date.now());
  const a = await buildTestApp(t, { clock, rateLimit: { requests_per_second: 1, burst: 3 } });
  const projects = (token: string) => a.call('GET', '/v1/projects', undefined, token);
  // a standalone token (minted by root) owns its tree: its child inherits that owner
  const parent = await mint(a, { roles: ['developer'], display_name: 'ci' });
  const child = await mint(a, { display_name: 'ci-job' }, parent.client_token);
  const grandchild = await mint(a, { display_name: 'ci-step' }, child.client_token);
  const owner = (await lookupSelf(a, grandchild.client_token)).owner;
  assert.deepEqual(owner, { type: 'token', id: parent.accessor, name: 'ci' });
  // two creations and a lookup spent the tree's burst of 3, whichever token made them
  fails(await projects(parent.client_token), 429, 'rate_limited');
  fails(await projects(child.client_token), 429, 'rate_limited');
  const limited = await projects(grandchild.client_token);
  assert.match(fails(limited, 429, 'rate_limited'), /too many requests for this token/);
  // another standalone token minted by root is another owner, with its own budget
  const other = await mint(a, { roles: ['developer'] });
  assert.equal((await projects(other.client_token)).statusCode, 200);
  clock.advance(SECOND);
  assert.equal((await projects(grandchild.client_token)).statusCode, 200);
  fails(await projects(parent.client_token), 429, 'rate_limited');

  // a user's tokens (two logins here) share the user's budget
  ok(
    await a.call('POST', '/v1/auth/users', {
      username: 'ann',
      password: 'correct horse battery staple',
      roles: ['developer'],
    }),
    201,
  );
  const login = async (address: string) =>
    ok<AuthResponse>(
      await a.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { username: 'ann', password: 'correct horse battery staple' },
        remoteAddress: address,
      }),
    ).auth.client_token;
  const first = await login('10.1.0.1');
  const second = await login('10.1.0.2');
  assert.equal((await projects(first)).statusCode, 200);
  assert.equal((await projects(second)).statusCode, 200);
  assert.equal((await projects(second)).statusCode, 200);
  assert.match(fails(await projects(first), 429, 'rate_limited'), /too many requests for this user/);
  fails(await projects(second), 429, 'rate_limited');
});

test('core.authenticate is the pipeline’s own step: it counts a use of a limited-use token, skips the rate limit when asked, and writes no audit entry', async (t) => {
  const clock = manualClock(Date.now());
  const auditFile = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, {
    clock,
    audit: [{ file: { path: auditFile } }],
    rateLimit: { requests_per_second: 1, burst: 1 },
  });
  const tok = await mint(a, { roles: ['developer'], num_uses: 2, display_name: 'twice' });
  const before = readFileSync(auditFile, 'utf8');
  const info = { request_id: 'authn-1', client_address: '127.0.0.1', token: tok.client_token };
  // rateLimit: false (the gateway's limits apply there): the burst of 1 does not stop a second call
  const one = await a.core.authenticate(info, { rateLimit: false });
  assert.equal(one.identity.kind, 'token');
  assert.equal(one.identity.accessor, tok.accessor);
  assert.equal(one.token?.num_uses, 1, 'one use counted');
  assert.equal(one.exhausted, undefined);
  const two = await a.core.authenticate({ ...info, request_id: 'authn-2' }, { rateLimit: false });
  assert.equal(two.token?.num_uses, 0);
  assert.equal(two.exhausted, true, 'its last use: revoked now');
  await assert.rejects(a.core.authenticate({ ...info, request_id: 'authn-3' }, { rateLimit: false }), {
    code: 'invalid_token',
  });
  assert.equal(readFileSync(auditFile, 'utf8'), before, 'no audit entry was written');
  // with the rate limit (the default), a burst of 1 lets one request through
  const other = await mint(a, { roles: ['developer'] });
  const info2 = { request_id: 'authn-4', client_address: '127.0.0.1', token: other.client_token };
  await a.core.authenticate(info2);
  await assert.rejects(a.core.authenticate(info2), { code: 'rate_limited' });
  await assert.rejects(a.core.authenticate({ request_id: 'authn-5', client_address: '127.0.0.1' }), {
    code: 'unauthenticated',
  });
  // and a sealed vault authenticates no one
  a.core.sealNow();
  await assert.rejects(a.core.authenticate(info2, { rateLimit: false }), { code: 'sealed' });
});

// ---- the token value is never given back nor kept ----

test('lookup-self and lookup-accessor never return the token value', async (t) => {
  const a = await fixture(t);
  const tok = await mint(a, { roles: ['developer'], meta: { team: 'ml' } });
  const self = await a.call('GET', '/v1/auth/token/lookup-self', undefined, tok.client_token);
  const byAccessor = await a.call('POST', '/v1/auth/token/lookup-accessor', { accessor: tok.accessor });
  const renew = await renewSelf(a, tok.client_token);
  for (const res of [self, byAccessor, renew]) {
    ok(res);
    assert.ok(!res.body.includes(tok.client_token), res.body);
    assert.ok(!res.body.includes(randomPart(tok.client_token)), 'not even the random part');
  }
  const data = (self.json() as { data: TokenInfo }).data;
  assert.deepEqual(Object.keys(data).sort(), [
    'accessor',
    'created_at',
    'display_name',
    'expires_at',
    'max_expires_at',
    'meta',
    'mfa',
    'num_uses',
    'owner',
    'parent',
    'policies',
    'renewable',
    'scope',
    'ttl',
  ]);
  assert.equal(data.accessor, tok.accessor);
  assert.deepEqual(data.meta, { team: 'ml' });
  assert.deepEqual((byAccessor.json() as { data: TokenInfo }).data.accessor, tok.accessor);
});

test('only HMACs of tokens are stored: no token is found in raw storage, in decrypted records, in the server log or in the audit file', async (t) => {
  const storage = createMemoryStorage();
  t.after(() => storage.close());
  const clock = manualClock(Date.now());
  const auditFile = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, { storage, clock, audit: [{ file: { path: auditFile } }] });
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('PUT', SECRET, { value: CANARY }));

  // tokens of every kind, used in every way: children, renewals, limited uses, revocations, failures
  const dev = await mint(a, { roles: ['developer'], ttl: '10m' });
  const child = await mint(a, { ttl: '5m' }, dev.client_token);
  const limited = await mint(a, { roles: ['app'], scope: { paths: ['*'] }, num_uses: 5 });
  const revoked = await mint(a, { roles: ['developer'] });
  const spent = await mint(a, { roles: ['app'], scope: { paths: ['*'] }, num_uses: 1 });
  const tokens = [a.rootToken, dev, child, limited, revoked, spent].map((x) =>
    typeof x === 'string' ? x : x.client_token,
  );
  await works(a, child.client_token);
  await works(a, limited.client_token);
  await works(a, spent.client_token);
  ok(await renewSelf(a, dev.client_token, { increment: '8m' }));
  ok(await a.call('POST', '/v1/auth/token/revoke', { token: revoked.client_token }));
  await a.call('GET', SECRET, undefined, revoked.client_token);
  await a.call('PUT', '/v1/secrets/llm/prod/X', { value: 'x' }, dev.client_token);
  await a.call('GET', '/v1/auth/token/lookup-self', undefined, `${dev.client_token}x`);
  await a.inject({ method: 'GET', url: SECRET, headers: { 'x-vault-token': limited.client_token } });

  const needles = tokens.flatMap((tok) => {
    const body = randomPart(tok);
    return [tok, body, Buffer.from(tok).toString('base64'), Buffer.from(tok).toString('hex')];
  });
  const haystacks: [where: string, text: string][] = [];
  for (const key of await storage.list('')) {
    const raw = await storage.get(key);
    assert.ok(raw);
    haystacks.push([`storage key ${key}`, key], [`raw value of ${key}`, Buffer.from(raw).toString('latin1')]);
    try {
      const plain = await a.core.barrier.get(key);
      if (plain) haystacks.push([`decrypted ${key}`, plain.toString('utf8')]);
    } catch {
      // the keyring and seal records are not barrier records
    }
  }
  haystacks.push(['server log', a.logs()], ['audit file', readFileSync(auditFile, 'utf8')]);
  assert.match(readFileSync(auditFile, 'utf8'), /token\.revoke/, 'the audit file recorded the requests');
  assert.ok(
    haystacks.some(([w]) => w.startsWith('decrypted sys/token/id/')),
    'the scan reached the token entries',
  );
  assert.ok(a.logs().length > 0, 'the server logged something');
  for (const [where, text] of haystacks) {
    for (const needle of needles) {
      assert.ok(!text.includes(needle), `a token was found in ${where}`);
    }
  }
  // and the token records are keyed by a 256-bit HMAC, nothing else
  const ids = (await storage.list('sys/token/id/')).map((k) => k.slice('sys/token/id/'.length));
  assert.ok(ids.length >= 4);
  for (const id of ids) assert.match(id, /^[0-9a-f]{64}$/);
});
