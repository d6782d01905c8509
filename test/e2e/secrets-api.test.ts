import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type {
  Project,
  SecretListResponse,
  SecretReadResponse,
  SecretVersionsResponse,
  SecretWriteResponse,
} from '../../src/api/v1.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

/**
 * The kv API end to end over HTTP (in-process inject): projects, environments
 * and versioned secrets, as a client sees them.
 */

const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

function fails(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode}: ${res.body}`);
  assert.equal((res.json() as { error: { code: string } }).error.code, code);
}

/** A fresh app with project `llm` (dev, staging, prod). */
async function appWithProject(t: TestContext): Promise<TestApp> {
  const a = await buildTestApp(t);
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  return a;
}

async function put(a: TestApp, url: string, body: Record<string, unknown>): Promise<SecretWriteResponse> {
  return ok<SecretWriteResponse>(await a.call('PUT', url, body));
}

// ---- projects and environments ----

test('a project created without environments gets dev, staging and prod', async (t) => {
  const a = await buildTestApp(t);
  const created = ok<Project>(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  assert.equal(created.name, 'llm');
  assert.match(created.created_at, ISO_TIME);
  assert.deepEqual([...created.environments].sort(), ['dev', 'prod', 'staging']);

  const read = ok<Project>(await a.call('GET', '/v1/projects/llm'));
  assert.deepEqual(read, {
    name: 'llm',
    created_at: created.created_at,
    environments: ['dev', 'prod', 'staging'],
  });
});

test('a project can be created with explicit environments', async (t) => {
  const a = await buildTestApp(t);
  const created = ok<Project>(
    await a.call('POST', '/v1/projects', { name: 'chatbot', environments: ['local', 'live'] }),
    201,
  );
  assert.deepEqual([...created.environments].sort(), ['live', 'local']);
  const read = ok<Project>(await a.call('GET', '/v1/projects/chatbot'));
  assert.deepEqual(read.environments, ['live', 'local']);
  fails(await a.call('GET', '/v1/secrets/chatbot/dev'), 404, 'environment_not_found');
  assert.deepEqual(ok<SecretListResponse>(await a.call('GET', '/v1/secrets/chatbot/live')).secrets, []);
});

test('creating a project that already exists is 409 already_exists', async (t) => {
  const a = await appWithProject(t);
  fails(
    await a.call('POST', '/v1/projects', { name: 'llm', environments: ['other'] }),
    409,
    'already_exists',
  );
  assert.deepEqual(ok<Project>(await a.call('GET', '/v1/projects/llm')).environments, [
    'dev',
    'prod',
    'staging',
  ]);
});

test('listing projects shows every project with its environments', async (t) => {
  const a = await buildTestApp(t);
  assert.deepEqual(ok<{ projects: Project[] }>(await a.call('GET', '/v1/projects')), { projects: [] });
  ok(await a.call('POST', '/v1/projects', { name: 'alpha' }), 201);
  ok(await a.call('POST', '/v1/projects', { name: 'beta', environments: ['prod'] }), 201);
  const { projects } = ok<{ projects: Project[] }>(await a.call('GET', '/v1/projects'));
  assert.deepEqual(projects.map((p) => [p.name, p.environments]).sort(), [
    ['alpha', ['dev', 'prod', 'staging']],
    ['beta', ['prod']],
  ]);
  for (const p of projects) assert.match(p.created_at, ISO_TIME);
});

test('an environment can be added to a project, and adding it twice is 409 already_exists', async (t) => {
  const a = await appWithProject(t);
  const env = ok<{ project: string; name: string; created_at: string }>(
    await a.call('POST', '/v1/projects/llm/environments', { name: 'qa' }),
    201,
  );
  assert.equal(env.project, 'llm');
  assert.equal(env.name, 'qa');
  assert.match(env.created_at, ISO_TIME);
  assert.deepEqual(ok<Project>(await a.call('GET', '/v1/projects/llm')).environments, [
    'dev',
    'prod',
    'qa',
    'staging',
  ]);
  await put(a, '/v1/secrets/llm/qa/KEY', { value: 'in qa' });

  fails(await a.call('POST', '/v1/projects/llm/environments', { name: 'qa' }), 409, 'already_exists');
  fails(await a.call('POST', '/v1/projects/llm/environments', { name: 'dev' }), 409, 'already_exists');
  // the existing environment and its secrets are untouched
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/llm/qa/KEY')).value, 'in qa');
});

test('adding an environment to an unknown project is 404 project_not_found', async (t) => {
  const a = await buildTestApp(t);
  fails(await a.call('POST', '/v1/projects/nope/environments', { name: 'qa' }), 404, 'project_not_found');
});

// ---- writing and reading ----

test('writing a secret creates version 1 and writing it again creates version 2', async (t) => {
  const a = await appWithProject(t);
  const first = await put(a, SECRET, { value: 'sk-one' });
  assert.deepEqual(Object.keys(first).sort(), ['created_at', 'version']);
  assert.equal(first.version, 1);
  assert.match(first.created_at, ISO_TIME);
  assert.equal((await put(a, SECRET, { value: 'sk-two' })).version, 2);
});

test('reading a secret returns its value, version, metadata and creation time', async (t) => {
  const a = await appWithProject(t);
  const w = await put(a, SECRET, { value: 'sk-live-123', metadata: { owner: 'ml-team' } });
  const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.deepEqual(r, {
    name: 'OPENAI_API_KEY',
    value: 'sk-live-123',
    version: 1,
    current_version: 1,
    metadata: { owner: 'ml-team' },
    provider: null,
    owner: null,
    expires_at: null,
    rotation: null,
    tags: [],
    last_rotated_at: null,
    created_at: w.created_at,
  });
});

test('?version=1 returns the value of an older version', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'old-value' });
  await put(a, SECRET, { value: 'new-value' });
  const latest = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.equal(latest.value, 'new-value');
  assert.equal(latest.version, 2);
  const old = ok<SecretReadResponse>(await a.call('GET', `${SECRET}?version=1`));
  assert.equal(old.value, 'old-value');
  assert.equal(old.version, 1);
  assert.equal(old.current_version, 2);
  assert.equal(ok<SecretReadResponse>(await a.call('GET', `${SECRET}?version=2`)).value, 'new-value');
});

test('secrets in different environments and projects are independent', async (t) => {
  const a = await appWithProject(t);
  ok(await a.call('POST', '/v1/projects', { name: 'other' }), 201);
  await put(a, '/v1/secrets/llm/dev/KEY', { value: 'llm-dev' });
  await put(a, '/v1/secrets/llm/prod/KEY', { value: 'llm-prod' });
  await put(a, '/v1/secrets/other/dev/KEY', { value: 'other-dev' });
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/llm/dev/KEY')).value, 'llm-dev');
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/llm/prod/KEY')).value, 'llm-prod');
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/other/dev/KEY')).value, 'other-dev');
  fails(await a.call('GET', '/v1/secrets/llm/staging/KEY'), 404, 'secret_not_found');
});

test('listing an environment shows names and versions but never values', async (t) => {
  const a = await appWithProject(t);
  const values = ['sk-value-AAAA-1111', 'sk-value-BBBB-2222', 'anthropic-value-CCCC'];
  await put(a, '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: values[0] });
  await put(a, '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: values[1] });
  await put(a, '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', { value: values[2], metadata: { note: 'n' } });
  await put(a, '/v1/secrets/llm/prod/OPENAI_API_KEY', { value: 'prod-only' });

  const res = await a.call('GET', '/v1/secrets/llm/dev');
  const list = ok<SecretListResponse>(res);
  assert.equal(list.project, 'llm');
  assert.equal(list.env, 'dev');
  assert.deepEqual(
    list.secrets
      .map((s) => ({ name: s.name, version: s.version, deleted: s.deleted }))
      .sort((x, y) => x.name.localeCompare(y.name)),
    [
      { name: 'ANTHROPIC_API_KEY', version: 1, deleted: false },
      { name: 'OPENAI_API_KEY', version: 2, deleted: false },
    ],
  );
  for (const s of list.secrets) {
    assert.deepEqual(Object.keys(s).sort(), [
      'deleted',
      'expires_at',
      'name',
      'provider',
      'tags',
      'updated_at',
      'version',
    ]);
    assert.match(s.updated_at, ISO_TIME);
  }
  for (const v of [...values, 'prod-only'])
    assert.ok(!res.body.includes(v), `the list must not contain the value ${v}`);
});

test('listing an empty environment gives an empty list', async (t) => {
  const a = await appWithProject(t);
  assert.deepEqual(ok<SecretListResponse>(await a.call('GET', '/v1/secrets/llm/staging')), {
    project: 'llm',
    env: 'staging',
    secrets: [],
  });
});

test('the version history lists every version without any value', async (t) => {
  const a = await appWithProject(t);
  const w1 = await put(a, SECRET, { value: 'history-value-one', metadata: { rotated_by: 'alice' } });
  const w2 = await put(a, SECRET, { value: 'history-value-two' });
  const res = await a.call('GET', `${SECRET}/versions`);
  const h = ok<SecretVersionsResponse>(res);
  assert.deepEqual(h, {
    name: 'OPENAI_API_KEY',
    current_version: 2,
    deleted_at: null,
    metadata: { rotated_by: 'alice' },
    provider: null,
    owner: null,
    expires_at: null,
    rotation: null,
    tags: [],
    last_rotated_at: null,
    versions: [
      { version: 1, created_at: w1.created_at, source: 'write', destroyed: false },
      { version: 2, created_at: w2.created_at, source: 'write', destroyed: false },
    ],
  });
  assert.ok(!res.body.includes('history-value'), 'the history must not contain values');
});

test('rolling back to version 1 creates version 3 holding the value of version 1', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'good-key' });
  await put(a, SECRET, { value: 'bad-key' });
  const rb = ok<{ version: number; created_at: string; rolled_back_from: number }>(
    await a.call('POST', `${SECRET}/rollback`, { version: 1 }),
  );
  assert.equal(rb.version, 3);
  assert.equal(rb.rolled_back_from, 1);
  assert.match(rb.created_at, ISO_TIME);

  const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.equal(r.value, 'good-key');
  assert.equal(r.version, 3);
  assert.equal(ok<SecretReadResponse>(await a.call('GET', `${SECRET}?version=2`)).value, 'bad-key');

  const h = ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`));
  assert.equal(h.current_version, 3);
  assert.deepEqual(h.versions[2], {
    version: 3,
    created_at: rb.created_at,
    source: 'rollback',
    rolled_back_from: 1,
    destroyed: false,
  });
});

test('rolling back to a version that does not exist is 404 version_not_found and writes nothing', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'v1' });
  fails(await a.call('POST', `${SECRET}/rollback`, { version: 9 }), 404, 'version_not_found');
  assert.equal(ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`)).current_version, 1);
});

// ---- delete, restore, destroy ----

test('deleting a secret soft-deletes it: reads are 404 secret_deleted, the list marks it deleted and the history still works', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'to-be-deleted' });
  await put(a, SECRET, { value: 'to-be-deleted-2' });
  const del = ok<{ name: string; deleted_at: string; destroyed: boolean }>(await a.call('DELETE', SECRET));
  assert.equal(del.name, 'OPENAI_API_KEY');
  assert.equal(del.destroyed, false);
  assert.match(del.deleted_at, ISO_TIME);

  fails(await a.call('GET', SECRET), 404, 'secret_deleted');
  fails(await a.call('GET', `${SECRET}?version=1`), 404, 'secret_deleted');
  const list = ok<SecretListResponse>(await a.call('GET', '/v1/secrets/llm/dev'));
  assert.deepEqual(
    list.secrets.map((s) => [s.name, s.version, s.deleted]),
    [['OPENAI_API_KEY', 2, true]],
  );
  const h = ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`));
  assert.equal(h.deleted_at, del.deleted_at);
  assert.equal(h.current_version, 2);
  assert.deepEqual(
    h.versions.map((v) => [v.version, v.destroyed]),
    [
      [1, false],
      [2, false],
    ],
  );
  // deleting again is harmless and keeps the first deletion time
  assert.equal(ok<{ deleted_at: string }>(await a.call('DELETE', SECRET)).deleted_at, del.deleted_at);
});

test('restoring a deleted secret makes it readable again at the same version', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'keep-me' });
  ok(await a.call('DELETE', SECRET));
  assert.deepEqual(ok(await a.call('POST', `${SECRET}/restore`)), { name: 'OPENAI_API_KEY', version: 1 });
  const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.equal(r.value, 'keep-me');
  assert.equal(r.version, 1);
  assert.equal(ok<SecretListResponse>(await a.call('GET', '/v1/secrets/llm/dev')).secrets[0]?.deleted, false);
  assert.equal(ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`)).deleted_at, null);
});

test('?destroy=true erases a secret for good: reads and history are 404 secret_not_found', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'erase-me-1' });
  await put(a, SECRET, { value: 'erase-me-2' });
  const del = ok<{ destroyed: boolean }>(await a.call('DELETE', `${SECRET}?destroy=true`));
  assert.equal(del.destroyed, true);

  fails(await a.call('GET', SECRET), 404, 'secret_not_found');
  fails(await a.call('GET', `${SECRET}?version=1`), 404, 'secret_not_found');
  fails(await a.call('GET', `${SECRET}/versions`), 404, 'secret_not_found');
  fails(await a.call('POST', `${SECRET}/restore`), 404, 'secret_not_found');
  fails(await a.call('POST', `${SECRET}/rollback`, { version: 1 }), 404, 'secret_not_found');
  assert.deepEqual(ok<SecretListResponse>(await a.call('GET', '/v1/secrets/llm/dev')).secrets, []);

  // the name can be used again, starting over at version 1
  assert.equal((await put(a, SECRET, { value: 'fresh' })).version, 1);
  assert.equal(ok<SecretReadResponse>(await a.call('GET', SECRET)).value, 'fresh');
  fails(await a.call('GET', `${SECRET}?version=2`), 404, 'version_not_found');
});

test('a soft-deleted secret can still be destroyed', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'x' });
  ok(await a.call('DELETE', SECRET));
  assert.equal(ok<{ destroyed: boolean }>(await a.call('DELETE', `${SECRET}?destroy=true`)).destroyed, true);
  fails(await a.call('GET', `${SECRET}/versions`), 404, 'secret_not_found');
});

test('?destroy=false is an ordinary soft delete', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'x' });
  assert.equal(
    ok<{ destroyed: boolean }>(await a.call('DELETE', `${SECRET}?destroy=false`)).destroyed,
    false,
  );
  fails(await a.call('GET', SECRET), 404, 'secret_deleted');
});

test('writing after a soft delete creates a new version and undeletes the secret', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'before-delete' });
  ok(await a.call('DELETE', SECRET));
  assert.equal((await put(a, SECRET, { value: 'after-delete' })).version, 2);
  const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.equal(r.value, 'after-delete');
  assert.equal(r.version, 2);
  assert.equal(ok<SecretReadResponse>(await a.call('GET', `${SECRET}?version=1`)).value, 'before-delete');
  assert.equal(ok<SecretListResponse>(await a.call('GET', '/v1/secrets/llm/dev')).secrets[0]?.deleted, false);
  assert.equal(ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`)).deleted_at, null);
});

test('a deleted secret cannot be rolled back until it is restored', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'one' });
  await put(a, SECRET, { value: 'two' });
  ok(await a.call('DELETE', SECRET));
  fails(await a.call('POST', `${SECRET}/rollback`, { version: 1 }), 404, 'secret_deleted');
  ok(await a.call('POST', `${SECRET}/restore`));
  assert.equal(
    ok<{ version: number }>(await a.call('POST', `${SECRET}/rollback`, { version: 1 })).version,
    3,
  );
});

// ---- check-and-set ----

test('cas: 0 creates a new secret but is 409 cas_mismatch once the secret exists', async (t) => {
  const a = await appWithProject(t);
  assert.equal((await put(a, SECRET, { value: 'first', cas: 0 })).version, 1);
  const res = await a.call('PUT', SECRET, { value: 'clobber', cas: 0 });
  fails(res, 409, 'cas_mismatch');
  assert.ok(!res.body.includes('first'), 'a CAS failure must not reveal the current value');
  assert.equal(ok<SecretReadResponse>(await a.call('GET', SECRET)).value, 'first');
});

test('cas equal to the current version succeeds and a stale cas is 409 cas_mismatch', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'v1' });
  assert.equal((await put(a, SECRET, { value: 'v2', cas: 1 })).version, 2);
  fails(await a.call('PUT', SECRET, { value: 'stale', cas: 1 }), 409, 'cas_mismatch');
  fails(await a.call('PUT', SECRET, { value: 'future', cas: 7 }), 409, 'cas_mismatch');
  assert.equal((await put(a, SECRET, { value: 'v3', cas: 2 })).version, 3);
  const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.equal(r.value, 'v3');
  assert.equal(r.version, 3);
});

test('of 20 concurrent writes with the same cas exactly one succeeds', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'base' });
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => a.call('PUT', SECRET, { value: `racer-${i}`, cas: 1 })),
  );
  const winners = results.filter((r) => r.statusCode === 200);
  assert.equal(winners.length, 1, results.map((r) => r.statusCode).join(','));
  for (const r of results) if (r.statusCode !== 200) fails(r, 409, 'cas_mismatch');
  assert.equal((winners[0]!.json() as SecretWriteResponse).version, 2);

  const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
  assert.equal(r.version, 2);
  assert.match(r.value, /^racer-\d+$/);
  assert.equal(ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`)).versions.length, 2);
});

test('of 20 concurrent creations with cas: 0 exactly one succeeds', async (t) => {
  const a = await appWithProject(t);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => a.call('PUT', SECRET, { value: `creator-${i}`, cas: 0 })),
  );
  assert.equal(
    results.filter((r) => r.statusCode === 200).length,
    1,
    results.map((r) => r.statusCode).join(','),
  );
  for (const r of results) if (r.statusCode !== 200) fails(r, 409, 'cas_mismatch');
  assert.equal(ok<SecretReadResponse>(await a.call('GET', SECRET)).version, 1);
});

test('20 concurrent writes without cas all succeed with distinct versions', async (t) => {
  const a = await appWithProject(t);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => a.call('PUT', SECRET, { value: `w-${i}` })),
  );
  const versions = results.map((r) => ok<SecretWriteResponse>(r).version).sort((x, y) => x - y);
  assert.deepEqual(
    versions,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

// ---- metadata ----

test('metadata round-trips through write, read and history', async (t) => {
  const a = await appWithProject(t);
  const metadata = {
    owner: 'ml-team',
    'rotated.by': 'alice',
    'ticket-id': 'SEC-42',
    empty: '',
    note: 'ключ 🔑',
  };
  await put(a, SECRET, { value: 'v', metadata });
  assert.deepEqual(ok<SecretReadResponse>(await a.call('GET', SECRET)).metadata, metadata);
  assert.deepEqual(ok<SecretVersionsResponse>(await a.call('GET', `${SECRET}/versions`)).metadata, metadata);
});

test('a write without metadata keeps the metadata; a write with metadata replaces it', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'v1', metadata: { owner: 'a', team: 'x' } });
  await put(a, SECRET, { value: 'v2' });
  assert.deepEqual(ok<SecretReadResponse>(await a.call('GET', SECRET)).metadata, { owner: 'a', team: 'x' });
  await put(a, SECRET, { value: 'v3', metadata: { owner: 'b' } });
  assert.deepEqual(ok<SecretReadResponse>(await a.call('GET', SECRET)).metadata, { owner: 'b' });
  await put(a, SECRET, { value: 'v4', metadata: {} });
  assert.deepEqual(ok<SecretReadResponse>(await a.call('GET', SECRET)).metadata, {});
});

test('a secret without metadata reads back with empty metadata', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'v' });
  assert.deepEqual(ok<SecretReadResponse>(await a.call('GET', SECRET)).metadata, {});
});

// ---- names and values ----

const VALID_NAMES = [
  { why: 'an environment-variable name', name: 'OPENAI_API_KEY' },
  { why: 'a leading underscore', name: '_x' },
  { why: 'dots and dashes', name: 'a.b-c' },
  { why: 'a single letter', name: 'k' },
  { why: 'lower case with a digit', name: 'key2' },
  { why: 'the longest allowed, 128 characters', name: `K${'x'.repeat(127)}` },
];

for (const { why, name } of VALID_NAMES) {
  test(`a secret name is accepted and usable on every route: ${why}`, async (t) => {
    const a = await appWithProject(t);
    const url = `/v1/secrets/llm/dev/${name}`;
    assert.equal((await put(a, url, { value: `value of ${name}` })).version, 1);
    const r = ok<SecretReadResponse>(await a.call('GET', url));
    assert.equal(r.name, name);
    assert.equal(r.value, `value of ${name}`);
    assert.deepEqual(
      ok<SecretListResponse>(await a.call('GET', '/v1/secrets/llm/dev')).secrets.map((s) => s.name),
      [name],
    );
    assert.equal(ok<SecretVersionsResponse>(await a.call('GET', `${url}/versions`)).name, name);
    ok(await a.call('DELETE', url));
    ok(await a.call('POST', `${url}/restore`));
    assert.equal(ok<{ version: number }>(await a.call('POST', `${url}/rollback`, { version: 1 })).version, 2);
  });
}

test('secret names are case-sensitive', async (t) => {
  const a = await appWithProject(t);
  await put(a, '/v1/secrets/llm/dev/api_key', { value: 'lower' });
  await put(a, '/v1/secrets/llm/dev/API_KEY', { value: 'upper' });
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/llm/dev/api_key')).value, 'lower');
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/llm/dev/API_KEY')).value, 'upper');
});

test('a secret name that is a prefix of another keeps its own history', async (t) => {
  const a = await appWithProject(t);
  await put(a, '/v1/secrets/llm/dev/a', { value: 'short' });
  await put(a, '/v1/secrets/llm/dev/a.b', { value: 'long-1' });
  await put(a, '/v1/secrets/llm/dev/a.b', { value: 'long-2' });
  assert.equal(
    ok<SecretVersionsResponse>(await a.call('GET', '/v1/secrets/llm/dev/a/versions')).versions.length,
    1,
  );
  ok(await a.call('DELETE', '/v1/secrets/llm/dev/a?destroy=true'));
  assert.equal(ok<SecretReadResponse>(await a.call('GET', '/v1/secrets/llm/dev/a.b')).value, 'long-2');
});

const VALUES = [
  { why: 'an empty string', value: '' },
  { why: 'unicode', value: 'clé secrète 🔑 — 鍵 — ключ\u0000\u2028 "quoted" \\ backslash' },
  { why: 'exactly 64 KiB of ASCII', value: 'a'.repeat(64 * 1024) },
  { why: '64 KiB of multi-byte UTF-8', value: '€'.repeat(Math.floor((64 * 1024) / 3)) },
  { why: 'JSON text', value: '{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\\n..."}' },
  { why: 'newlines and whitespace', value: '  line one\r\nline two\n\t' },
];

for (const { why, value } of VALUES) {
  test(`a secret value can be ${why}`, async (t) => {
    const a = await appWithProject(t);
    await put(a, SECRET, { value });
    const r = ok<SecretReadResponse>(await a.call('GET', SECRET));
    assert.equal(r.value.length, value.length);
    assert.equal(r.value, value);
  });
}

test('the X-Vault-Token header is accepted in place of Authorization: Bearer', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'via-bearer' });
  const res = await a.inject({ method: 'GET', url: SECRET, headers: { 'x-vault-token': a.rootToken } });
  assert.equal(ok<SecretReadResponse>(res).value, 'via-bearer');
});

test('responses are never cached and carry a request id', async (t) => {
  const a = await appWithProject(t);
  await put(a, SECRET, { value: 'v' });
  const res = await a.call('GET', SECRET);
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  assert.match(String(res.headers['content-type']), /^application\/json/);
});
