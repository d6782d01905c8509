import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import OpenAI from 'openai';
import type { KeyCreateResponse, KeyListResponse, KeyResponse, VirtualKey } from '../../src/api/gateway.ts';
import { costOf, priceOf } from '../../src/api/pricing.ts';
import type { AuthResponse } from '../../src/api/v1.ts';
import { assembleVault } from '../../src/assemble/vault.ts';
import type { Budgets } from '../../src/contract/budgets.ts';
import { generateToken, isWellFormedToken, TOKEN_PREFIXES } from '../../src/crypto/token.ts';
import {
  createGatewayKeysEngine,
  GATEWAY_KEYS_MOUNT,
  type GatewayKeysEngine,
} from '../../src/engines/gateway/virtual-keys.ts';
import { isStrongroomError, type StrongroomError } from '../../src/errors/errors.ts';
import { manualClock } from '../../src/lib/clock.ts';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { createSqliteStorage } from '../../src/storage/sqlite.ts';
import { buildTestApp, staticKeyFile, type TestApp, tempDir } from '../helpers/app.ts';
import { type GatewaySetup, startGatewaySetup } from '../helpers/gateway.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';

/**
 * Gateway virtual keys and budgets (issue 7 items 3 and 5) through the HTTP
 * API: a key string is shown once and is never in a listing, a read or the
 * audit log; keys can only be narrowed; revoked and expired keys stop working
 * at the next lookup; budgets are atomic on every storage backend.
 */

// 2026-01-01T00:00:30Z: half a minute into a window
const T0 = Date.UTC(2026, 0, 1, 0, 0, 30);

type Fixture = TestApp & {
  clock: ReturnType<typeof manualClock>;
  auditFile: string;
  engine: GatewayKeysEngine;
};

async function fixture(t: TestContext, storage?: StorageBackend): Promise<Fixture> {
  const clock = manualClock(T0);
  const auditFile = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, {
    clock,
    audit: [{ file: { path: auditFile } }],
    ...(storage ? { storage } : {}),
  });
  // a second engine over the same core and storage: what the gateway server is bound to
  const engine = createGatewayKeysEngine(a.core, a.core.barrier.view(GATEWAY_KEYS_MOUNT));
  return Object.assign(a, { clock, auditFile, engine });
}

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

/** A token minted by root, or by `parent` (a child of it). */
async function mint(a: TestApp, body: Record<string, unknown>, parent?: string): Promise<string> {
  return ok<AuthResponse>(await a.call('POST', '/v1/auth/token/create', body, parent)).auth.client_token;
}

const create = async (a: TestApp, body: Record<string, unknown>, token?: string) =>
  ok<KeyCreateResponse>(await a.call('POST', '/v1/gateway/keys', body, token), 201);

// ---------------------------------------------------------------- keys

test('a key is created with its string shown once, then listed, read and revoked without it', async (t) => {
  const a = await fixture(t);
  const made = await create(a, {
    name: 'chatbot',
    scope: { providers: ['openai'], models: ['gpt-4o*'] },
    limits: { requests_per_minute: 60, tokens_per_minute: 100_000, spend: { usd: 5, period: 'day' } },
    ttl: '8h',
    classification: 'internal',
  });
  assert.match(made.virtual_key, /^srv_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}$/);
  assert.ok(isWellFormedToken(made.virtual_key), 'the key carries a valid checksum (scanners recognise it)');
  assert.match(made.key.id, /^vk_[0-9a-f]{24}$/);
  assert.equal(made.key.expires_at, new Date(T0 + 8 * 3600_000).toISOString());
  assert.deepEqual(made.key.owner.type, 'root');
  assert.deepEqual(made.key.roles, ['virtual-key']);

  const list = ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys'));
  assert.deepEqual(
    list.keys.map((k) => k.id),
    [made.key.id],
  );
  const read = ok<KeyResponse>(await a.call('GET', `/v1/gateway/keys/${made.key.id}`));
  assert.deepEqual(read.key, made.key);

  const looked = await a.engine.lookup(made.virtual_key);
  assert.equal(looked?.id, made.key.id);
  assert.deepEqual(looked?.limits, made.key.limits);
  assert.equal(looked?.classification, 'internal');

  ok(await a.call('DELETE', `/v1/gateway/keys/${made.key.id}`));
  assert.equal(await a.engine.lookup(made.virtual_key), undefined, 'revoked: refused at the next lookup');
  assert.deepEqual(ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys')).keys, []);
  const all = ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys?include_inactive=true'));
  assert.equal(all.keys[0]?.revoked, true);
  assert.equal((await a.engine.get(made.key.id))?.revoked, true, 'get() still describes a revoked key');

  // the key string is in no listing, read, audit entry, server log or storage record
  const everything = [
    JSON.stringify(list),
    JSON.stringify(read),
    JSON.stringify(all),
    readFileSync(a.auditFile, 'utf8'),
    a.logs(),
  ].join('\n');
  assert.ok(!everything.includes(made.virtual_key), 'the key string leaked');
  assert.ok(!everything.includes(made.virtual_key.slice(4, 47)), 'the key body leaked');
  for (const k of await a.storage.list('')) {
    const v = Buffer.from((await a.storage.get(k))!).toString('latin1');
    assert.ok(!v.includes(made.virtual_key.slice(4, 47)), `storage record ${k} holds the key`);
  }
  const audit = readFileSync(a.auditFile, 'utf8');
  assert.match(audit, /"operation":"gateway\.key\.create"/);
  assert.match(audit, /"operation":"gateway\.key\.revoke"/);
});

test('unknown, malformed, revoked and expired keys all look up as undefined', async (t) => {
  const a = await fixture(t);
  const live = await create(a, { name: 'live', ttl: '1h' });
  const revoked = await create(a, { name: 'revoked' });
  const expiring = await create(a, { name: 'expiring', ttl: '2m' });
  ok(await a.call('DELETE', `/v1/gateway/keys/${revoked.key.id}`));
  a.clock.advance(3 * 60_000);
  const forged = `srv_${'A'.repeat(43)}_000000`;
  const otherChecksum = `${live.virtual_key.slice(0, -6)}zzzzzz`;
  const cases: [string, string, boolean][] = [
    ['a live key', live.virtual_key, true],
    ['a revoked key', revoked.virtual_key, false],
    ['an expired key', expiring.virtual_key, false],
    ['a string that is no key', 'sk-not-a-key', false],
    ['a forged srv_ string', forged, false],
    ['a live key with a broken checksum', otherChecksum, false],
    ['a Strongroom token', a.rootToken, false],
  ];
  for (const [what, key, found] of cases) {
    assert.equal((await a.engine.lookup(key)) !== undefined, found, what);
  }
  // expiry is the key's own: listing hides expired keys unless asked
  const ids = ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys')).keys.map((k) => k.name);
  assert.deepEqual(ids, ['live']);
});

test('a key bound to a SPIFFE ID is only valid for a caller proving it', async (t) => {
  const a = await fixture(t);
  const id = 'spiffe://strongroom.local/ns/prod/chatbot';
  const made = await create(a, { name: 'bound', spiffe_id: id });
  assert.equal(made.key.spiffe_id, id);
  assert.equal(await a.engine.lookup(made.virtual_key, { spiffe_id: id }).then((k) => k?.id), made.key.id);
  assert.equal(
    await a.engine.lookup(made.virtual_key, { spiffe_id: 'spiffe://strongroom.local/other' }),
    undefined,
  );
  assert.equal(await a.engine.lookup(made.virtual_key, {}), undefined, 'no SVID proven');
  // without a proof the gateway gets the binding and must check it
  assert.equal((await a.engine.lookup(made.virtual_key))?.spiffe_id, id);
  fails(
    await a.call('POST', '/v1/gateway/keys', { name: 'x', spiffe_id: 'spiffe://strongroom.local' }),
    400,
    'invalid_value',
  );
});

test('a key lives 1 h by default and at most 30 days', async (t) => {
  const a = await fixture(t);
  const d = await create(a, { name: 'default' });
  assert.equal(d.key.expires_at, new Date(T0 + 3600_000).toISOString());
  const max = await create(a, { name: 'max', ttl: '30d' });
  assert.equal(max.key.expires_at, new Date(T0 + 30 * 86400_000).toISOString());
  fails(await a.call('POST', '/v1/gateway/keys', { name: 'long', ttl: '31d' }), 400, 'invalid_value');
  a.clock.advance(3600_000);
  assert.equal(await a.engine.lookup(d.virtual_key), undefined, 'expired at its expiry');
  assert.ok(await a.engine.lookup(max.virtual_key));
});

test('requests are validated: strict bodies, names, providers, model globs, limits', async (t) => {
  const a = await fixture(t);
  const bad: [string, Record<string, unknown>, string][] = [
    ['an unknown field', { name: 'x', admin: true }, 'unknown_field'],
    ['no name', {}, 'validation_failed'],
    ['a name with spaces', { name: 'a b' }, 'validation_failed'],
    ['an upper-case provider', { name: 'x', scope: { providers: ['OpenAI'] } }, 'invalid_value'],
    ['an empty provider list', { name: 'x', scope: { providers: [] } }, 'validation_failed'],
    ['a model with spaces', { name: 'x', scope: { models: ['gpt 4'] } }, 'invalid_value'],
    ['a negative limit', { name: 'x', limits: { requests_per_minute: -1 } }, 'validation_failed'],
    ['a fractional limit', { name: 'x', limits: { tokens_per_minute: 1.5 } }, 'validation_failed'],
    ['an unknown period', { name: 'x', limits: { spend: { usd: 1, period: 'week' } } }, 'validation_failed'],
    ['a bad classification', { name: 'x', classification: 'Top Secret' }, 'validation_failed'],
    ['a malformed ttl', { name: 'x', ttl: 'forever' }, 'invalid_value'],
  ];
  for (const [what, body, code] of bad) {
    const res = await a.call('POST', '/v1/gateway/keys', body);
    assert.equal(res.statusCode, 400, `${what}: ${res.statusCode} ${res.body}`);
    const got = (res.json() as { error: { code: string } }).error.code;
    assert.ok(got === code || (code === 'validation_failed' && got === 'unknown_field'), `${what}: ${got}`);
  }
  fails(await a.call('GET', '/v1/gateway/keys/vk_000000000000000000000009'), 404, 'not_found');
  fails(await a.call('GET', '/v1/gateway/keys/not_an_id'), 404, 'not_found');
});

test('an update only narrows: scope, limits, lifetime and binding', async (t) => {
  const a = await fixture(t);
  const made = await create(a, {
    name: 'k',
    scope: { providers: ['openai', 'anthropic'], models: ['gpt-4o*', 'claude-*'] },
    limits: { requests_per_minute: 60, spend: { usd: 10, period: 'day' } },
    ttl: '2h',
  });
  const url = `/v1/gateway/keys/${made.key.id}`;
  const narrowed = ok<KeyResponse>(
    await a.call('PUT', url, {
      scope: { providers: ['openai'], models: ['gpt-4o-mini'] },
      limits: { requests_per_minute: 10 },
      ttl: '1h',
      name: 'renamed',
    }),
  ).key;
  assert.deepEqual(narrowed.scope, { providers: ['openai'], models: ['gpt-4o-mini'] });
  // fields left out stay as they were
  assert.deepEqual(narrowed.limits, { requests_per_minute: 10, spend: { usd: 10, period: 'day' } });
  assert.equal(narrowed.expires_at, new Date(T0 + 3600_000).toISOString());
  assert.equal(narrowed.name, 'renamed');

  const wider: [string, Record<string, unknown>][] = [
    ['another provider', { scope: { providers: ['mistral'] } }],
    ['a wider model glob', { scope: { models: ['gpt-*'] } }],
    ['more requests', { limits: { requests_per_minute: 11 } }],
    ['more spend', { limits: { spend: { usd: 11, period: 'day' } } }],
    ['a monthly budget for a daily one', { limits: { spend: { usd: 10, period: 'month' } } }],
    ['a later expiry', { ttl: '2h' }],
  ];
  for (const [what, body] of wider) {
    const msg = fails(await a.call('PUT', url, body), 403, 'permission_denied');
    assert.match(msg, /may only narrow/, what);
  }
  // a binding may be added where there was none, never changed
  ok(await a.call('PUT', url, { spiffe_id: 'spiffe://strongroom.local/a' }));
  fails(await a.call('PUT', url, { spiffe_id: 'spiffe://strongroom.local/b' }), 403, 'permission_denied');
  const looked = await a.engine.lookup(made.virtual_key, { spiffe_id: 'spiffe://strongroom.local/a' });
  assert.deepEqual(looked?.scope, { providers: ['openai'], models: ['gpt-4o-mini'] });
  // a revoked key cannot be updated
  ok(await a.call('DELETE', url));
  fails(await a.call('PUT', url, { name: 'again' }), 400, 'invalid_value');
});

test('developers manage only their own keys; auditors read all; apps and unknown roles none', async (t) => {
  const a = await fixture(t);
  const dev1 = await mint(a, { roles: ['developer'], display_name: 'dev1' });
  const dev2 = await mint(a, { roles: ['developer'], display_name: 'dev2' });
  const auditor = await mint(a, { roles: ['auditor'] });
  const app = await mint(a, { roles: ['app'], scope: { paths: ['*'] } });
  const nobody = await mint(a, { roles: ['nobody'] });
  const adminKey = await create(a, { name: 'admins' });
  const k1 = await create(a, { name: 'dev1-key' }, dev1);
  // developer tokens are standalone tokens: each owns what it mints
  assert.equal(k1.key.owner.type, 'token');
  const names = async (token: string) =>
    ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys', undefined, token))
      .keys.map((k) => k.name)
      .sort();
  assert.deepEqual(await names(dev1), ['dev1-key']);
  assert.deepEqual(await names(dev2), []);
  assert.deepEqual(await names(auditor), ['admins', 'dev1-key']);
  assert.deepEqual(await names(a.rootToken), ['admins', 'dev1-key']);
  // another developer's key is "not found", whatever the operation
  fails(await a.call('GET', `/v1/gateway/keys/${k1.key.id}`, undefined, dev2), 404, 'not_found');
  fails(await a.call('DELETE', `/v1/gateway/keys/${k1.key.id}`, undefined, dev2), 404, 'not_found');
  fails(await a.call('PUT', `/v1/gateway/keys/${adminKey.key.id}`, { name: 'x' }, dev1), 404, 'not_found');
  ok(await a.call('GET', `/v1/gateway/keys/${k1.key.id}`, undefined, auditor));
  fails(
    await a.call('DELETE', `/v1/gateway/keys/${k1.key.id}`, undefined, auditor),
    403,
    'permission_denied',
  );
  ok(await a.call('DELETE', `/v1/gateway/keys/${k1.key.id}`, undefined, dev1));
  for (const token of [app, nobody]) {
    fails(await a.call('POST', '/v1/gateway/keys', { name: 'x' }, token), 403, 'permission_denied');
    fails(await a.call('GET', '/v1/gateway/keys', undefined, token), 403, 'permission_denied');
  }
});

test('a token scoped to providers mints keys only within them', async (t) => {
  const a = await fixture(t);
  const scoped = await mint(a, { roles: ['admin'], scope: { paths: ['llm'], providers: ['openai'] } });
  const pathsOnly = await mint(a, { roles: ['admin'], scope: { paths: ['llm'] } });
  ok(await a.call('POST', '/v1/gateway/keys', { name: 'in', scope: { providers: ['openai'] } }, scoped), 201);
  fails(await a.call('POST', '/v1/gateway/keys', { name: 'any' }, scoped), 403, 'permission_denied');
  fails(
    await a.call('POST', '/v1/gateway/keys', { name: 'out', scope: { providers: ['anthropic'] } }, scoped),
    403,
    'permission_denied',
  );
  const msg = fails(
    await a.call('POST', '/v1/gateway/keys', { name: 'p', scope: { providers: ['openai'] } }, pathsOnly),
    403,
    'permission_denied',
  );
  assert.match(msg, /scoped to vault paths/);
  // a scoped admin sees only the keys it minted
  const mine = ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys', undefined, scoped)).keys;
  assert.deepEqual(
    mine.map((k: VirtualKey) => k.name),
    ['in'],
  );
});

test('Cedar decides gateway.invoke on Model resources, with the optional context', async (t) => {
  const a = await fixture(t);
  ok(
    await a.call('PUT', '/v1/sys/policies/no-secret-data', {
      policy:
        'forbid (principal, action == Strongroom::Action::"gateway.invoke", resource) when { context has classification && context.classification == "secret" && resource.provider != "local" };',
    }),
  );
  const made = await create(a, { name: 'k' });
  const key = (await a.engine.lookup(made.virtual_key))!;
  const { keyIdentity, modelResource } = await import('../../src/engines/gateway/virtual-keys.ts');
  const who = keyIdentity(key);
  const ctx = { client_address: '127.0.0.1', now: a.clock.now() };
  const decide = (provider: string, extra: Record<string, unknown> = {}) =>
    a.core.policies.authorize(who, 'gateway.invoke', modelResource(provider, 'gpt-4o', 'chat.completions'), {
      ...ctx,
      ...extra,
    });
  assert.equal((await decide('openai')).allowed, true, 'no classification in the context: permitted');
  assert.equal((await decide('openai', { classification: 'public', estimated_tokens: 100 })).allowed, true);
  assert.equal((await decide('openai', { classification: 'secret' })).allowed, false);
  assert.equal((await decide('local', { classification: 'secret' })).allowed, true);
  // the key's principal holds no role beyond virtual-key: nothing else in the vault
  assert.equal(
    (await a.core.policies.authorize(who, 'secret.read', { type: 'Secret', id: 'x' }, ctx)).allowed,
    false,
  );
});

// ---------------------------------------------------------------- a key never outlives its creator (issue 12 item 8)

const MINUTE = 60_000;

/** A user with `roles`, logged in: its login token. */
async function userToken(a: TestApp, username: string, roles: string[]): Promise<string> {
  const password = 'correct horse battery staple';
  ok(await a.call('POST', '/v1/auth/users', { username, password, roles }), 201);
  const res = await a.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { username, password },
    remoteAddress: '10.7.0.1',
  });
  return ok<AuthResponse>(res).auth.client_token;
}

const accessorOf = async (a: TestApp, token: string) =>
  ok<{ data: { accessor: string; expires_at: string } }>(
    await a.call('GET', '/v1/auth/token/lookup-self', undefined, token),
  ).data;

test('a key minted by a 2-minute developer token expires with that token, and the answer says its TTL was cut', async (t) => {
  const a = await fixture(t);
  const dev = await mint(a, { roles: ['developer'], ttl: '2m', display_name: 'dev' });
  const { accessor, expires_at } = await accessorOf(a, dev);
  assert.equal(expires_at, new Date(T0 + 2 * MINUTE).toISOString());
  const made = await create(a, { name: 'month', ttl: '30d' }, dev);
  assert.equal(made.key.expires_at, expires_at, 'no later than the token that minted it');
  assert.equal(made.ttl, 120);
  assert.deepEqual(made.warnings, [
    `ttl: 2592000 s asked, 120 s granted: a key expires no later than the token that minted it (${expires_at}); mint it with a longer-lived token, or as an orphan key (orphan: true, needs gateway.key.orphan)`,
  ]);
  assert.deepEqual(made.key.creator, { accessor, orphan: false });
  assert.equal(made.key.state, 'active');
  // a TTL within the token's life is granted as asked, with no warning
  const short = await create(a, { name: 'minute', ttl: '1m' }, dev);
  assert.equal(short.ttl, 60);
  assert.equal(short.warnings, undefined);
  assert.ok(await a.engine.lookup(made.virtual_key));
  a.clock.advance(2 * MINUTE);
  assert.equal(await a.engine.lookup(made.virtual_key), undefined, 'gone with its token');
  assert.equal(ok<KeyResponse>(await a.call('GET', `/v1/gateway/keys/${made.key.id}`)).key.state, 'expired');
});

test('revoking the token that minted a key, or an ancestor of it, ends the key at its next lookup', async (t) => {
  const a = await fixture(t);
  const parent = await mint(a, { roles: ['developer'], display_name: 'parent' });
  const child = await mint(a, { display_name: 'child' }, parent);
  const fromParent = await create(a, { name: 'p' }, parent);
  const fromChild = await create(a, { name: 'c' }, child);
  const fromRoot = await create(a, { name: 'r' });
  for (const k of [fromParent, fromChild, fromRoot]) assert.ok(await a.engine.lookup(k.virtual_key));

  // the child dies with its parent, and the keys of both with them
  const parentAccessor = (await accessorOf(a, parent)).accessor;
  ok(await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: parentAccessor }));
  assert.equal(await a.engine.lookup(fromParent.virtual_key), undefined, "the parent's key");
  assert.equal(await a.engine.lookup(fromChild.virtual_key), undefined, "the child's key");
  assert.ok(await a.engine.lookup(fromRoot.virtual_key), 'a key of another token is untouched');
  assert.equal(await a.engine.live(fromChild.key.id), false);
  assert.equal(await a.engine.live(fromRoot.key.id), true);
  // listed as ended (not revoked themselves: their creator is gone), hidden from the active list
  const read = ok<KeyResponse>(await a.call('GET', `/v1/gateway/keys/${fromChild.key.id}`)).key;
  assert.equal(read.state, 'creator_gone');
  assert.equal(read.revoked, false);
  assert.deepEqual(
    ok<KeyListResponse>(await a.call('GET', '/v1/gateway/keys')).keys.map((k) => k.name),
    ['r'],
  );

  // a limited-use token's key ends when its last use is spent
  const twice = await mint(a, { roles: ['developer'], num_uses: 2 });
  const k = await create(a, { name: 'twice' }, twice); // use 1
  assert.ok(await a.engine.lookup(k.virtual_key));
  ok(await a.call('GET', '/v1/projects', undefined, twice)); // use 2: the token is spent
  assert.equal(await a.engine.lookup(k.virtual_key), undefined);
  // and a token minting a key with its last use is told the key would be dead on arrival
  const once = await mint(a, { roles: ['developer'], num_uses: 1 });
  const msg = fails(
    await a.call('POST', '/v1/gateway/keys', { name: 'doa' }, once),
    403,
    'permission_denied',
  );
  assert.match(msg, /dead on arrival/);
});

test('deleting the user who minted a key ends the key at its next lookup', async (t) => {
  const a = await fixture(t);
  const ann = await userToken(a, 'ann', ['developer']);
  const made = await create(a, { name: 'anns' }, ann);
  assert.equal(made.key.owner.type, 'user');
  assert.ok(await a.engine.lookup(made.virtual_key));
  ok(await a.call('DELETE', '/v1/auth/users/ann'));
  assert.equal(await a.engine.lookup(made.virtual_key), undefined);
  assert.equal(
    ok<KeyResponse>(await a.call('GET', `/v1/gateway/keys/${made.key.id}`)).key.state,
    'creator_gone',
  );
});

test('an orphan key needs gateway.key.orphan, and outlives the token and the user that minted it', async (t) => {
  const a = await fixture(t);
  const dev = await mint(a, { roles: ['developer'], ttl: '2m', display_name: 'dev' });
  const refused = await a.call('POST', '/v1/gateway/keys', { name: 'o', orphan: true }, dev);
  assert.equal(
    fails(refused, 403, 'permission_denied'),
    'orphan: minting a key that outlives your token needs gateway.key.orphan on System::"gateway-keys" (admin and root have it); leave orphan out for a key that ends with your token',
  );
  // the refusal is on record: allowed to manage keys, refused the orphan
  const requestId = refused.headers['x-request-id'];
  const entries = readFileSync(a.auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.request_id === requestId);
  const devAccessor = (await accessorOf(a, dev)).accessor;
  const actor = { accessor: devAccessor, display_name: 'dev', type: 'token', id: devAccessor };
  assert.deepEqual(
    entries.map(({ type, operation, action, resource, actor, decision, status, error_code, request }) => ({
      type,
      operation,
      action,
      resource,
      actor,
      ...(decision ? { decision } : {}),
      ...(status ? { status } : {}),
      ...(error_code ? { error_code } : {}),
      request,
    })),
    [
      {
        type: 'request',
        operation: 'gateway.key.create',
        action: 'gateway.key.manage',
        resource: 'System::gateway-keys',
        actor,
        decision: { allowed: true, reason: 'allowed by builtin.developer.gateway-keys' },
        request: { name: 'o', orphan: true },
      },
      {
        type: 'response',
        operation: 'gateway.key.create',
        action: 'gateway.key.manage',
        resource: 'System::gateway-keys',
        actor,
        status: 'error',
        error_code: 'permission_denied',
        request: { name: 'o', orphan: true },
      },
    ],
  );
  // a scoped admin is no more allowed: orphan keys are not filtered by a scope
  const scoped = await mint(a, { roles: ['admin'], scope: { paths: ['llm'], providers: ['openai'] } });
  fails(
    await a.call(
      'POST',
      '/v1/gateway/keys',
      { name: 'o', orphan: true, scope: { providers: ['openai'] } },
      scoped,
    ),
    403,
    'permission_denied',
  );

  // an admin user's orphan key: the full TTL asked, and it survives its token and the user
  const boss = await userToken(a, 'boss', ['admin']);
  const bossAccessor = (await accessorOf(a, boss)).accessor;
  const orphan = await create(a, { name: 'orphan', ttl: '7d', orphan: true }, boss);
  assert.equal(orphan.key.expires_at, new Date(T0 + 7 * 86400_000).toISOString());
  assert.equal(orphan.warnings, undefined);
  assert.deepEqual(orphan.key.creator, { accessor: bossAccessor, orphan: true });
  const bound = await create(a, { name: 'bound', ttl: '7d' }, boss);
  assert.ok(bound.warnings, 'a login token lives an hour: the bound key is cut to it');
  ok(await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: bossAccessor }));
  ok(await a.call('DELETE', '/v1/auth/users/boss'));
  assert.equal(await a.engine.lookup(bound.virtual_key), undefined);
  assert.equal((await a.engine.lookup(orphan.virtual_key))?.id, orphan.key.id, 'the orphan key lives on');
  a.clock.advance(7 * 86400_000 - 1);
  assert.ok(await a.engine.lookup(orphan.virtual_key));
  a.clock.advance(1);
  assert.equal(await a.engine.lookup(orphan.virtual_key), undefined, 'bounded by its own TTL');

  // a custom policy can grant the right: a developer with it mints orphans
  ok(
    await a.call('PUT', '/v1/sys/policies/dev-orphans', {
      policy:
        'permit (principal in Strongroom::Role::"developer", action == Strongroom::Action::"gateway.key.orphan", resource == Strongroom::System::"gateway-keys");',
    }),
  );
  const dev2 = await mint(a, { roles: ['developer'], ttl: '2m' });
  const o2 = await create(a, { name: 'o2', ttl: '1h', orphan: true }, dev2);
  assert.equal(o2.ttl, 3600);
});

test('an update cannot extend a key beyond the token that minted it', async (t) => {
  const a = await fixture(t);
  const dev = await mint(a, { roles: ['developer'], ttl: '10m' });
  const made = await create(a, { name: 'k', ttl: '1h' }, dev);
  assert.equal(made.key.expires_at, new Date(T0 + 10 * MINUTE).toISOString());
  const url = `/v1/gateway/keys/${made.key.id}`;
  // neither its creator nor root can push it past the creator's expiry
  for (const token of [dev, a.rootToken]) {
    const msg = fails(await a.call('PUT', url, { ttl: '1h' }, token), 403, 'permission_denied');
    assert.match(msg, /may only narrow/);
  }
  // renewing the creator token does not lengthen the key either
  ok(await a.call('POST', '/v1/auth/token/renew-self', { increment: '1h' }, dev));
  fails(await a.call('PUT', url, { ttl: '30m' }, dev), 403, 'permission_denied');
  const narrowed = ok<KeyResponse>(await a.call('PUT', url, { ttl: '5m' }, dev)).key;
  assert.equal(narrowed.expires_at, new Date(T0 + 5 * MINUTE).toISOString());
  assert.deepEqual(narrowed.creator, made.key.creator, 'an update keeps the creator binding');
  ok(await a.call('POST', '/v1/auth/token/revoke-self', {}, dev));
  assert.equal(await a.engine.lookup(made.virtual_key), undefined);
});

test('a workload authenticated by SVID holds no token: it mints orphan keys only, and only with gateway.key.orphan', async (t) => {
  const a = await fixture(t);
  const spiffeId = 'spiffe://strongroom.local/ns/prod/minter';
  const workload = (roles: string[]) => ({
    kind: 'workload' as const,
    accessor: `svid:${roles.join('+')}`,
    display_name: `jwt-svid:${spiffeId}`,
    policies: roles,
    owner: { type: 'workload' as const, id: spiffeId, name: spiffeId },
    scope: null,
    mfa: false,
  });
  // JWT-SVIDs stand in for the identity engine's (which tests/e2e/identity.test.ts covers)
  const svids: Record<string, ReturnType<typeof workload>> = {
    'eyJhZG1pbg.e30.x': workload(['admin']),
    'eyJkZXY.e30.x': workload(['developer']),
  };
  a.core.workloadAuth = async (req) => (req.token ? svids[req.token] : undefined);
  const msg = fails(
    await a.call('POST', '/v1/gateway/keys', { name: 'w' }, 'eyJhZG1pbg.e30.x'),
    403,
    'permission_denied',
  );
  assert.match(msg, /holds no token for the key to end with: ask for orphan: true/);
  fails(
    await a.call('POST', '/v1/gateway/keys', { name: 'w', orphan: true }, 'eyJkZXY.e30.x'),
    403,
    'permission_denied',
  );
  const made = await create(a, { name: 'w', orphan: true, ttl: '2h' }, 'eyJhZG1pbg.e30.x');
  assert.deepEqual(made.key.creator, { accessor: 'svid:admin', orphan: true });
  assert.equal(made.key.owner.type, 'workload');
  assert.equal(made.ttl, 7200, 'bounded by the key maximum TTL only');
  assert.ok(await a.engine.lookup(made.virtual_key));
  assert.equal(await a.engine.reader(made.key), undefined, 'no token: it reads nothing on its behalf');
});

test('a key recorded without its creator (minted before creators were recorded) is refused', async (t) => {
  const a = await fixture(t);
  const made = await create(a, { name: 'old' });
  const store = a.core.barrier.view('logical/gateway/');
  const rec = (await store.getJson<Record<string, unknown>>(`keys/${made.key.id}`))!;
  const { creator: _c, creator_ref: _r, ...legacy } = rec;
  await store.put(`keys/${made.key.id}`, Buffer.from(JSON.stringify(legacy)));
  assert.equal(await a.engine.lookup(made.virtual_key), undefined);
  const read = ok<KeyResponse>(await a.call('GET', `/v1/gateway/keys/${made.key.id}`)).key;
  assert.deepEqual(read.creator, { accessor: null, orphan: false });
  assert.equal(read.state, 'creator_gone');
});

test('unknown, revoked, expired, creator-revoked, orphan and live keys cost the same lookup: the same number of decrypted reads', async (t) => {
  const inner = createMemoryStorage();
  let decrypted = 0;
  // shared (not exclusive): no read cache, so every read reaches storage and is counted
  const counting: StorageBackend = Object.assign(Object.create(null), inner, {
    exclusive: false,
    async get(key: string) {
      const v = await inner.get(key);
      if (v !== undefined && !key.startsWith('core/index/')) decrypted++;
      return v;
    },
    // the barrier reads a record with the version index's root in one snapshot: count the record
    async getMany(keys: readonly string[]) {
      const vs = await inner.getMany!(keys);
      keys.forEach((key, i) => {
        if (vs[i] !== undefined && !key.startsWith('core/index/')) decrypted++;
      });
      return vs;
    },
  });
  const a = await fixture(t, counting);
  t.after(() => inner.close());
  const dev = await mint(a, { roles: ['developer'] });
  const gone = await mint(a, { roles: ['developer'] });
  const live = await create(a, { name: 'live' }, dev);
  const orphan = await create(a, { name: 'orphan', orphan: true });
  const revoked = await create(a, { name: 'revoked' }, dev);
  const expiring = await create(a, { name: 'expiring', ttl: '1m' }, dev);
  const creatorGone = await create(a, { name: 'creator-gone' }, gone);
  ok(await a.call('DELETE', `/v1/gateway/keys/${revoked.key.id}`));
  ok(await a.call('POST', '/v1/auth/token/revoke-self', {}, gone));
  a.clock.advance(2 * MINUTE);
  const cases: [string, string, boolean][] = [
    ['a live key', live.virtual_key, true],
    ['an orphan key', orphan.virtual_key, true],
    // a key string of valid form that was never stored
    ['an unknown key', generateToken(TOKEN_PREFIXES.virtual_key), false],
    ['a revoked key', revoked.virtual_key, false],
    ['an expired key', expiring.virtual_key, false],
    ['a key whose creator was revoked', creatorGone.virtual_key, false],
  ];
  await a.engine.lookup(live.virtual_key); // the HMAC key is loaded
  const costs: Record<string, number> = {};
  for (const [what, key, found] of cases) {
    decrypted = 0;
    assert.equal((await a.engine.lookup(key)) !== undefined, found, what);
    costs[what] = decrypted;
  }
  assert.deepEqual(
    costs,
    Object.fromEntries(cases.map(([what]) => [what, 2])),
    'one key record (or its decoy) and one creator entry (or its decoy) each',
  );
});

// ---------------------------------------------------------------- budgets

type Backend = 'memory' | 'sqlite' | 'postgres';

async function storageFor(t: TestContext, kind: Backend): Promise<StorageBackend | undefined> {
  if (kind === 'memory') return createMemoryStorage();
  if (kind === 'sqlite') return createSqliteStorage({ path: join(tempDir(t), 'sr.db') });
  const url = await postgresTestUrl();
  if (!url) return undefined;
  return createPostgresStorage({ url, table: await uniqueTable(url, t) });
}

async function budgetsOn(t: TestContext, kind: Backend): Promise<Fixture | undefined> {
  const storage = await storageFor(t, kind);
  if (!storage) return undefined;
  const a = await fixture(t, storage);
  // registered after the app's own teardown, so it runs after the vault is closed
  t.after(() => storage.close());
  return a;
}

const rateLimited = (err: unknown) => isStrongroomError(err, 'rate_limited');

async function race(budgets: Budgets, key: string, limits: object, estimate = { tokens: 10, costUsd: 0 }) {
  const results = await Promise.allSettled(
    Array.from({ length: 100 }, () => budgets.reserve([{ key, limits }], estimate)),
  );
  const refused = results.filter((r) => r.status === 'rejected');
  for (const r of refused)
    assert.ok(rateLimited((r as PromiseRejectedResult).reason), String((r as PromiseRejectedResult).reason));
  return results.length - refused.length;
}

for (const kind of ['memory', 'sqlite', 'postgres'] as const) {
  test(`100 concurrent reservations against a limit of 10: exactly 10 succeed (${kind})`, async (t) => {
    const a = await budgetsOn(t, kind);
    if (!a) return t.skip(postgresSkipReason());
    assert.equal(await race(a.engine.budgets, 'vk:requests', { requests_per_minute: 10 }), 10);
    // tokens and spend are just as exact
    assert.equal(await race(a.engine.budgets, 'vk:tokens', { tokens_per_minute: 100 }), 10);
    const spend = { spend: { usd: 1, period: 'month' } };
    assert.equal(await race(a.engine.budgets, 'vk:spend', spend, { tokens: 0, costUsd: 0.1 }), 10);
  });
}

/** Two vault servers (assembled in this process) sharing one PostgreSQL table, the first initialised; undefined without PostgreSQL. */
async function twoServersOnPostgres(t: TestContext) {
  const url = await postgresTestUrl();
  if (!url) return undefined;
  const table = await uniqueTable(url, t);
  const s1 = await createPostgresStorage({ url, table });
  const s2 = await createPostgresStorage({ url, table });
  const keyFile = staticKeyFile(t);
  const clock = manualClock(T0);
  const mk = (storage: StorageBackend) =>
    assembleVault({ storage, seal: { static: { key_file: keyFile } }, clock, audit: [] });
  const v1 = mk(s1);
  const init = await v1.core.invoke<{ root_token: string }>(
    'sys.init',
    {},
    { request_id: 'r', client_address: '127.0.0.1' },
  );
  const v2 = mk(s2);
  await v2.core.start();
  t.after(async () => {
    await v1.close();
    await v2.close();
    await s1.close();
    await s2.close();
  });
  return { v1, v2, root: init.root_token };
}

test('100 concurrent reservations through two servers sharing PostgreSQL: exactly 10 succeed', async (t) => {
  const two = await twoServersOnPostgres(t);
  if (!two) return t.skip(postgresSkipReason());
  const { v1, v2 } = two;
  const e1 = createGatewayKeysEngine(v1.core, v1.core.barrier.view(GATEWAY_KEYS_MOUNT));
  const e2 = createGatewayKeysEngine(v2.core, v2.core.barrier.view(GATEWAY_KEYS_MOUNT));
  const limits = { requests_per_minute: 10 };
  const all = await Promise.allSettled(
    Array.from({ length: 100 }, (_, i) =>
      (i % 2 ? e1 : e2).budgets.reserve([{ key: 'vk:shared', limits }], { tokens: 1, costUsd: 0 }),
    ),
  );
  assert.equal(all.filter((r) => r.status === 'fulfilled').length, 10);
  for (const r of all) if (r.status === 'rejected') assert.ok(rateLimited(r.reason), String(r.reason));
  // and a key minted through one server is looked up through the other
  const made = await v1.core.invoke<{ virtual_key: string }>(
    'gateway.key.create',
    { name: 'shared' },
    { request_id: 'r2', client_address: '127.0.0.1', token: two.root },
  );
  assert.ok(await e2.lookup(made.virtual_key));
});

test('a remote gateway reserves through one vault server and settles through another (shared PostgreSQL)', async (t) => {
  const two = await twoServersOnPostgres(t);
  if (!two) return t.skip(postgresSkipReason());
  const { v1, v2, root } = two;
  // the vault service's handlers, as a gateway workload reaches them (src/gateway/vault-service.ts)
  const gateway = {
    kind: 'workload' as const,
    accessor: 'svid:gw',
    display_name: 'x509-svid:spiffe://td/strongroom/gateway',
    policies: ['gateway'],
    owner: { type: 'workload' as const, id: 'spiffe://td/strongroom/gateway', name: 'gateway' },
    scope: null,
    mfa: false,
  };
  const request = { request_id: 'r', client_address: '127.0.0.1' };
  const call = (v: typeof v1, op: string, input: unknown) =>
    v.core.operations.get(`gateway.vault.${op}`)!.handle({ identity: gateway, request }, input) as Promise<
      Record<string, unknown>
    >;
  const minted = await v1.core.invoke<{ virtual_key: string }>(
    'gateway.key.create',
    { name: 'ha', ttl: '1h', limits: { tokens_per_minute: 150 } },
    { ...request, token: root },
  );
  // each admission is a call: a session the vault sealed for it (on one server; the other opens it,
  // the key is in the shared barrier), admitted once
  const sessionOn = async (v: typeof v1) =>
    (await call(v, 'authenticate', { credential: minted.virtual_key, client_address: '127.0.0.1' }))
      .session as string;
  const admission = (v: typeof v1, session: string) =>
    call(v, 'admit', {
      session,
      request_id: 'r',
      operation: 'gateway.invoke',
      resource: 'Model::openai/gpt-4o',
      actor: null,
      client_address: '127.0.0.1',
      decision: { allowed: true, reason: 'permitted' },
      request: { route: 'chat.completions' },
      reserve: { defaults: {}, estimate: { tokens: 100, cost_usd: 0 } },
    });
  const admit = async (v: typeof v1) => admission(v, await sessionOn(v1));
  const first = await admit(v1);
  assert.match(String(first.reservation), /^t\./, 'on shared storage the reservation is a ticket');
  assert.equal(((await admit(v2)).error as { code: string }).code, 'rate_limited');
  // a ticket made up by a gateway (what an unsealed one would hold: whose budget, which window) refunds nothing
  const keyId = (
    await v1.core.invoke<{ keys: { id: string }[] }>('gateway.key.list', {}, { ...request, token: root })
  ).keys[0]!.id;
  const window = Math.floor(v1.core.clock.now() / 60_000) * 60_000;
  const forged = `t.${Buffer.from(JSON.stringify({ t: [{ key: `vk:${keyId}`, window, period: '' }], n: 100, c: 0 })).toString('base64url')}`;
  assert.deepEqual(await call(v2, 'settle', { reservation: forged }), { settled: false });
  assert.equal(((await admit(v2)).error as { code: string }).code, 'rate_limited', 'still full');
  // settled through the other server: the reservation shrinks to what was used
  assert.deepEqual(
    await call(v2, 'settle', {
      reservation: first.reservation,
      usage: { input_tokens: 6, output_tokens: 4, cost_usd: 0 },
    }),
    { settled: true },
  );
  assert.match(String((await admit(v2)).reservation), /^t\./);
  // a session admits one call, on whichever server: sent again, it is refused
  const once = await sessionOn(v2);
  await admission(v1, once);
  await assert.rejects(admission(v2, once), (err: StrongroomError) => err.code === 'invalid_value');
  // a ticket settles once: sent again (to either server), it gives nothing back twice
  for (const v of [v1, v2])
    assert.deepEqual(await call(v, 'settle', { reservation: first.reservation }), { settled: false });
});

test('all or nothing: a subject over its limit takes nothing from the others', async (t) => {
  const a = await fixture(t);
  const b = a.engine.budgets;
  await b.reserve([{ key: 'app:x', limits: { requests_per_minute: 1 } }], { tokens: 0, costUsd: 0 });
  await assert.rejects(
    b.reserve(
      [
        { key: 'vk:y', limits: { requests_per_minute: 5 } },
        { key: 'app:x', limits: { requests_per_minute: 1 } },
      ],
      { tokens: 0, costUsd: 0 },
    ),
    (err: StrongroomError) => {
      assert.equal(err.code, 'rate_limited');
      assert.equal(err.details?.limit, 'requests_per_minute');
      assert.equal(err.details?.subject, 'app:x');
      // 30 s into the minute: the window ends in 30 s
      assert.equal(err.details?.retry_after, 30);
      return true;
    },
  );
  // vk:y was not charged: it still has all 5
  for (let i = 0; i < 5; i++)
    await b.reserve([{ key: 'vk:y', limits: { requests_per_minute: 5 } }], { tokens: 0, costUsd: 0 });
  await assert.rejects(
    b.reserve([{ key: 'vk:y', limits: { requests_per_minute: 5 } }], { tokens: 0, costUsd: 0 }),
    rateLimited,
  );
  // the next minute starts afresh
  a.clock.advance(30_000);
  await b.reserve([{ key: 'vk:y', limits: { requests_per_minute: 5 } }], { tokens: 0, costUsd: 0 });
});

test('spend is counted per period, settled from actual usage (even above the estimate), and released', async (t) => {
  const a = await fixture(t);
  const b = a.engine.budgets;
  const limits = { spend: { usd: 1, period: 'day' as const }, tokens_per_minute: 10_000 };
  const s = [{ key: 'vk:spend', limits }];
  const price = priceOf('gpt-4o-2024-08-06', {
    'gpt-4o*': { input: 2.5, output: 10 },
    'gpt-4o-mini*': { input: 0.15, output: 0.6 },
  })!;
  assert.deepEqual(price, { input: 2.5, output: 10 });
  assert.equal(costOf({ input_tokens: 1_000_000, output_tokens: 0 }, price), 2.5);
  assert.equal(costOf({ input_tokens: 100, output_tokens: 100 }, undefined), 0, 'an unknown model costs 0');

  // an estimate of 0.30, settled at 0.70 (more than the estimate: the real number counts)
  const r1 = await b.reserve(s, { tokens: 1000, costUsd: 0.3 });
  await r1.settle({ input_tokens: 1500, output_tokens: 1500 }, 0.7);
  await r1.settle({ input_tokens: 1, output_tokens: 1 }, 0.01); // idempotent: the second call changes nothing
  // 0.70 spent: an estimate of 0.31 would go over
  await assert.rejects(b.reserve(s, { tokens: 0, costUsd: 0.31 }), (err: StrongroomError) => {
    assert.equal(err.details?.limit, 'spend');
    // 00:00:30 on a day: the period ends in 23 h 59 min 30 s
    assert.equal(err.details?.retry_after, 86_370);
    return true;
  });
  // a released reservation gives its spend back
  const r2 = await b.reserve(s, { tokens: 0, costUsd: 0.3 });
  await r2.release();
  await r2.release();
  const r3 = await b.reserve(s, { tokens: 0, costUsd: 0.3 });
  await r3.settle({ input_tokens: 0, output_tokens: 0 }, 0.3);
  // exactly 1.00 spent: nothing more today, not even a call of unknown price
  await assert.rejects(b.reserve(s, { tokens: 0, costUsd: 0 }), rateLimited);
  // tokens were settled too: 3000 actual in this minute, not the 1000 estimated
  await assert.rejects(
    b.reserve([{ key: 'vk:spend', limits: { tokens_per_minute: 3500 } }], { tokens: 501, costUsd: 0 }),
    (err: StrongroomError) => err.details?.limit === 'tokens_per_minute',
  );
  // the next day starts at 0
  a.clock.advance(86_400_000);
  await b.reserve(s, { tokens: 0, costUsd: 0.9 });
});

test('a request estimated above the token limit is refused outright', async (t) => {
  const a = await fixture(t);
  await assert.rejects(
    a.engine.budgets.reserve([{ key: 'vk:t', limits: { tokens_per_minute: 100 } }], {
      tokens: 101,
      costUsd: 0,
    }),
    (err: StrongroomError) => {
      assert.match(err.message, /this request alone/);
      assert.ok((err.details?.retry_after as number) >= 1 && (err.details?.retry_after as number) <= 60);
      return true;
    },
  );
});

test('a settlement after the window has moved on counts only the overrun in the new window', async (t) => {
  const a = await fixture(t);
  const b = a.engine.budgets;
  const s = [{ key: 'vk:w', limits: { tokens_per_minute: 1000 } }];
  const r = await b.reserve(s, { tokens: 900, costUsd: 0 });
  a.clock.advance(60_000);
  await r.settle({ input_tokens: 600, output_tokens: 600 }, 0);
  // 300 over the estimate landed in this window: 700 left
  await b.reserve(s, { tokens: 700, costUsd: 0 });
  await assert.rejects(b.reserve(s, { tokens: 1, costUsd: 0 }), rateLimited);
});

test('the budget contract matches src/gateway/types.ts at run time too', async (t) => {
  const a = await fixture(t);
  const r = await a.engine.budgets.reserve([], { tokens: 5, costUsd: 0 });
  await r.settle({ input_tokens: 1, output_tokens: 1 }, 0);
  await r.release();
  await assert.rejects(
    a.engine.budgets.reserve(
      [
        { key: 'a', limits: {} },
        { key: 'a', limits: {} },
      ],
      { tokens: 0, costUsd: 0 },
    ),
    TypeError,
  );
});

// ---------------------------------------------------------------- through the gateway, with the official OpenAI client

/** The status of one chat call with `apiKey` through the gateway (200, or the client's error status). */
async function chatStatus(s: GatewaySetup, apiKey: string): Promise<number> {
  try {
    await s
      .openai(apiKey)
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] });
    return 200;
  } catch (err) {
    if (err instanceof OpenAI.APIError && typeof err.status === 'number') return err.status;
    throw err;
  }
}

async function gatewayToken(s: GatewaySetup, body: Record<string, unknown>, parent?: string) {
  const r = await s.vault<AuthResponse>('POST', '/v1/auth/token/create', body, parent);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.auth;
}

async function gatewayKey(s: GatewaySetup, body: Record<string, unknown>, token?: string) {
  const r = await s.vault<KeyCreateResponse>('POST', '/v1/gateway/keys', body, token);
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

test('a limited-use token makes exactly as many gateway calls as it has uses (num_uses 1: one call)', async (t) => {
  const s = await startGatewaySetup(t);
  const scope = { providers: ['openai', 'anthropic'] };
  const once = await gatewayToken(s, { roles: ['app'], scope, num_uses: 1, display_name: 'once' });
  assert.equal(await chatStatus(s, once.client_token), 200);
  assert.equal(await chatStatus(s, once.client_token), 401, 'its one use is spent');
  const thrice = await gatewayToken(s, { roles: ['app'], scope, num_uses: 3, display_name: 'thrice' });
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push(await chatStatus(s, thrice.client_token));
  assert.deepEqual(statuses, [200, 200, 200, 401, 401]);
  // and the vault agrees: both tokens are gone
  for (const { accessor } of [once, thrice]) {
    const r = await s.vault('POST', '/v1/auth/token/lookup-accessor', { accessor });
    assert.equal(r.status, 404, JSON.stringify(r.json));
  }
  assert.equal(s.openaiFake.requests.length, 4, 'the provider got one call per use, no more');
});

test('through the gateway, a virtual key ends at its next call with the token that minted it (revoked, or an ancestor revoked) or the user (deleted); an orphan key does not', async (t) => {
  const s = await startGatewaySetup(t);
  // a developer token, its child, and a key minted by each
  const dev = await gatewayToken(s, { roles: ['developer'], display_name: 'dev' });
  const child = await gatewayToken(s, { display_name: 'dev-child' }, dev.client_token);
  const devKey = await gatewayKey(s, { name: 'dev-key' }, dev.client_token);
  const childKey = await gatewayKey(s, { name: 'child-key' }, child.client_token);
  // an admin token's orphan key, and its bound key
  const admin = await gatewayToken(s, { roles: ['admin'], ttl: '2m', display_name: 'admin' });
  const orphan = await gatewayKey(s, { name: 'orphan', ttl: '1h', orphan: true }, admin.client_token);
  const bound = await gatewayKey(s, { name: 'bound', ttl: '1h' }, admin.client_token);
  assert.ok(
    Date.parse(bound.key.expires_at) <= Date.parse(admin.expires_at!),
    'within its creator’s 2 minutes',
  );
  assert.ok(bound.warnings?.length, 'the cut TTL is told');
  assert.equal(orphan.ttl, 3600);
  // a user's key
  const password = 'correct horse battery staple';
  assert.equal(
    (await s.vault('POST', '/v1/auth/users', { username: 'ann', password, roles: ['developer'] })).status,
    201,
  );
  const login = await fetch(`${s.api}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'ann', password }),
  });
  const ann = ((await login.json()) as AuthResponse).auth.client_token;
  const annKey = await gatewayKey(s, { name: 'ann-key' }, ann);

  const all = [devKey, childKey, orphan, bound, annKey];
  for (const k of all) assert.equal(await chatStatus(s, k.virtual_key), 200, k.key.name);

  // revoking the parent token ends its key and its child's key at the next call
  assert.equal(
    (await s.vault('POST', '/v1/auth/token/revoke-accessor', { accessor: dev.accessor })).status,
    200,
  );
  assert.equal(await chatStatus(s, devKey.virtual_key), 401);
  assert.equal(await chatStatus(s, childKey.virtual_key), 401, "the child token's key dies with the parent");
  // deleting the user ends the keys it minted
  assert.equal((await s.vault('DELETE', '/v1/auth/users/ann')).status, 200);
  assert.equal(await chatStatus(s, annKey.virtual_key), 401);
  // revoking the admin token ends its bound key, not its orphan key
  assert.equal((await s.vault('POST', '/v1/auth/token/revoke-self', {}, admin.client_token)).status, 200);
  assert.equal(await chatStatus(s, bound.virtual_key), 401);
  assert.equal(await chatStatus(s, orphan.virtual_key), 200, 'the orphan key outlives its creator');
  // a developer may not mint orphans
  const dev2 = await gatewayToken(s, { roles: ['developer'] });
  const refused = await s.vault<{ error: { code: string } }>(
    'POST',
    '/v1/gateway/keys',
    { name: 'o', orphan: true },
    dev2.client_token,
  );
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error.code, 'permission_denied');
});
