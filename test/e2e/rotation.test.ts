import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { SecretEvent } from '../../src/engines/kv/kv.ts';
import { rotationFailures, rotationMetrics } from '../../src/engines/rotation/metrics.ts';
import type { RotationOptions } from '../../src/engines/rotation/rotation.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { type FakeOpenAi, openAiAdminKey, openAiKey, startFakeOpenAi } from '../fakes/openai-admin.ts';
import { openRouterKey, startFakeOpenRouter } from '../fakes/openrouter.ts';
import { buildTestApp, staticKeyFile, type TestApp, tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { runCli } from '../helpers/process.ts';

/**
 * Issue 4, item 2: rotation through provider adapters against fakes of the
 * providers' APIs, driven by the scheduler with a manual clock.
 */

const PROJECT_ID = 'proj_strongroom_test';
const SECRET = '/v1/secrets/llm/prod/OPENAI_API_KEY';
const HOUR = 3600_000;
const DAY = 24 * HOUR;

interface Fixture {
  a: TestApp;
  fake: FakeOpenAi;
  clock: ReturnType<typeof manualClock>;
  adminKey: string;
  /** The key stored at version 1 (a service account seeded at the fake). */
  initialKey: string;
  auditPath: string;
}

async function openAiFixture(
  t: TestContext,
  opts: { rotation?: Partial<RotationOptions>; timeoutMs?: number } = {},
): Promise<Fixture> {
  const adminKey = openAiAdminKey();
  const fake = await startFakeOpenAi({ adminKey, project: PROJECT_ID });
  t.after(() => fake.close());
  const clock = manualClock(Date.UTC(2026, 0, 1));
  const auditPath = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, {
    clock,
    audit: [{ file: { path: auditPath } }],
    rotation: {
      interval_seconds: 0,
      adapters: {
        openai: { base_url: fake.url, ...(opts.timeoutMs ? { timeout_ms: opts.timeoutMs } : {}) },
      },
      ...opts.rotation,
    },
  });
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  const admin = await a.call('PUT', '/v1/secrets/llm/prod/OPENAI_ADMIN_KEY', {
    value: adminKey,
    provider: 'openai',
  });
  assert.equal(admin.statusCode, 200, admin.body);
  const initial = fake.seed(PROJECT_ID);
  const put = await a.call('PUT', SECRET, {
    value: initial.key,
    provider: 'openai',
    rotation: {
      interval: '30d',
      grace: '1h',
      adapter: 'openai',
      options: { project_id: PROJECT_ID, admin_secret: 'llm/prod/OPENAI_ADMIN_KEY' },
    },
  });
  assert.equal(put.statusCode, 200, put.body);
  return { a, fake, clock, adminKey, initialKey: initial.key, auditPath };
}

const read = async (a: TestApp, url = SECRET) => {
  const r = await a.call('GET', url);
  assert.equal(r.statusCode, 200, r.body);
  const body = r.json() as { last_rotation_error?: string; next_rotation_attempt_at?: string };
  // present only while rotation is failing
  return {
    ...body,
    last_rotation_error: body.last_rotation_error ?? null,
    next_rotation_attempt_at: body.next_rotation_attempt_at ?? null,
  } as {
    value: string;
    version: number;
    current_version: number;
    last_rotated_at: string | null;
    last_rotation_error: string | null;
    next_rotation_attempt_at: string | null;
  };
};

const auditLines = (path: string) =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown> & { request?: Record<string, unknown> });

test('an OpenAI secret rotates on schedule through the adapter; the old key lives through grace and is deleted after', async (t) => {
  const { a, fake, clock, adminKey, initialKey, auditPath } = await openAiFixture(t);
  const events: SecretEvent[] = [];
  const seen = new Promise<SecretEvent>((resolve) =>
    a.vault.secrets.events.on('change', (e) => {
      events.push(e);
      if (e.kind === 'rotation') resolve(e);
    }),
  );

  // not due yet: nothing happens
  clock.advance(29 * DAY);
  assert.deepEqual((await a.vault.rotation.tick()).rotated, []);
  assert.equal((await read(a)).value, initialKey);

  clock.advance(DAY + 1000);
  const before = rotationMetrics().rotations;
  const tickAt = Date.now();
  const report = await a.vault.rotation.tick();
  assert.equal(report.leader, true);
  assert.deepEqual(report.rotated, ['llm/prod/OPENAI_API_KEY']);
  assert.equal(rotationMetrics().rotations, before + 1);

  // a consumer watching the environment learns of it within a second (no value in the event)
  const event = await seen;
  assert.ok(Date.now() - tickAt < 1000);
  assert.deepEqual(
    { ...event, at: undefined },
    { project: 'llm', env: 'prod', name: 'OPENAI_API_KEY', kind: 'rotation', version: 2, at: undefined },
  );
  assert.ok(!JSON.stringify(events).includes(initialKey));

  // the new key is current, live at the provider, and works; the old one still works (grace)
  const now = await read(a);
  assert.equal(now.version, 2);
  assert.notEqual(now.value, initialKey);
  assert.match(now.value, /^sk-svcacct-/);
  assert.equal(now.last_rotated_at, new Date(clock.now()).toISOString());
  assert.equal(now.last_rotation_error, null);
  assert.ok(fake.isLive(now.value));
  assert.ok(fake.isLive(initialKey), 'the old key keeps working through the grace period');
  const models = await fetch(`${fake.url}/models`, { headers: { authorization: `Bearer ${now.value}` } });
  assert.equal(models.status, 200);
  const versions = (await a.call('GET', `${SECRET}/versions`)).json() as {
    versions: { version: number; source: string }[];
  };
  assert.deepEqual(
    versions.versions.map((v) => [v.version, v.source]),
    [
      [1, 'write'],
      [2, 'rotation'],
    ],
  );
  // the vault-held admin key is what authenticated the call
  const create = fake.requests.find((r) => r.method === 'POST');
  assert.equal(create?.authorization, `Bearer ${adminKey}`);
  assert.equal(create?.path, `/v1/organization/projects/${PROJECT_ID}/service_accounts`);

  // first the seeded key was entered by hand: Strongroom does not know its service account,
  // so after grace it is marked superseded; the minted one is deleted at the next rotation
  clock.advance(30 * 60_000);
  assert.deepEqual((await a.vault.rotation.tick()).revoked, []);
  clock.advance(31 * 60_000);
  const r2 = await a.vault.rotation.tick();
  assert.deepEqual(r2.revoked, ['llm/prod/OPENAI_API_KEY@1']);
  const status = (await a.call('GET', `${SECRET}/rotation`)).json() as {
    superseded: { version: number; provider_key_deleted: boolean }[];
    pending_revocations: unknown[];
  };
  assert.deepEqual(
    status.superseded.map((s) => [s.version, s.provider_key_deleted]),
    [[1, false]],
  );
  assert.deepEqual(status.pending_revocations, []);

  // the second rotation: the key minted by the first one is deleted at the provider after grace
  const minted = now.value;
  clock.advance(30 * DAY);
  assert.deepEqual((await a.vault.rotation.tick()).rotated, ['llm/prod/OPENAI_API_KEY']);
  const third = await read(a);
  assert.equal(third.version, 3);
  assert.ok(fake.isLive(minted), 'still live during the grace period');
  assert.ok(fake.isLive(third.value));
  clock.advance(HOUR + 1000);
  assert.deepEqual((await a.vault.rotation.tick()).revoked, ['llm/prod/OPENAI_API_KEY@2']);
  assert.ok(!fake.isLive(minted), 'deleted at the provider after the grace period');
  assert.ok(fake.isLive(third.value));
  const dead = await fetch(`${fake.url}/models`, { headers: { authorization: `Bearer ${minted}` } });
  assert.equal(dead.status, 401);
  const del = fake.requests.filter((r) => r.method === 'DELETE');
  assert.equal(del.length, 1);
  assert.equal(del[0]!.authorization, `Bearer ${adminKey}`);

  // all of it is in the audit log, by the scheduler, without the admin key or any provider key
  await a.vault.audit.broker.checkpoint();
  const lines = auditLines(auditPath);
  const scheduled = lines.filter((l) => (l.actor as { id?: string } | null)?.id === 'rotation-scheduler');
  assert.deepEqual(
    scheduled.map((l) => [l.operation, l.type, l.status ?? null, l.request?.version ?? null]),
    [
      ['secret.rotate', 'request', null, null],
      ['secret.rotate', 'response', 'ok', 2],
      ['secret.rotate.revoke', 'request', null, 1],
      ['secret.rotate.revoke', 'response', 'ok', 1],
      ['secret.rotate', 'request', null, null],
      ['secret.rotate', 'response', 'ok', 3],
      ['secret.rotate.revoke', 'request', null, 2],
      ['secret.rotate.revoke', 'response', 'ok', 2],
    ],
  );
  assert.equal(scheduled[6]!.request?.outcome, 'provider-key-deleted');
  assert.equal(scheduled[2]!.request?.outcome, 'superseded');
  const text = readFileSync(auditPath, 'utf8');
  for (const secret of [adminKey, initialKey, minted, third.value]) {
    assert.ok(!text.includes(secret), 'no key in the audit log');
    assert.ok(!a.logs().includes(secret), 'no key in the server log');
  }
});

test('a provider outage keeps the current version, is visible, and is retried with backoff until it succeeds', async (t) => {
  const { a, fake, clock, adminKey, initialKey, auditPath } = await openAiFixture(t);
  fake.failure = 'outage';
  clock.advance(30 * DAY + 1000);
  const failuresBefore = rotationFailures();

  const r1 = await a.vault.rotation.tick();
  assert.deepEqual(r1.failed, ['llm/prod/OPENAI_API_KEY']);
  assert.equal(rotationFailures(), failuresBefore + 1);
  const s1 = await read(a);
  assert.equal(s1.version, 1, 'the current version is untouched');
  assert.equal(s1.value, initialKey);
  assert.match(s1.last_rotation_error ?? '', /OpenAI API answered HTTP 503/);
  assert.ok(!(s1.last_rotation_error ?? '').includes(adminKey), 'the echoed admin key is sanitised');
  assert.equal(s1.next_rotation_attempt_at, new Date(clock.now() + 60_000).toISOString());

  // the backoff holds: nothing is tried before the retry time
  const calls = fake.requests.length;
  clock.advance(30_000);
  await a.vault.rotation.tick();
  assert.equal(fake.requests.length, calls);

  // connection resets too: second failure, 2 minutes
  fake.failure = 'reset';
  clock.advance(31_000);
  assert.deepEqual((await a.vault.rotation.tick()).failed, ['llm/prod/OPENAI_API_KEY']);
  const s2 = await read(a);
  assert.equal(s2.version, 1);
  assert.match(s2.last_rotation_error ?? '', /unreachable/);
  assert.equal(s2.next_rotation_attempt_at, new Date(clock.now() + 120_000).toISOString());
  assert.equal(rotationFailures(), failuresBefore + 2);

  // the provider recovers: the retry succeeds and the error is cleared
  fake.failure = 'none';
  clock.advance(120_000);
  assert.deepEqual((await a.vault.rotation.tick()).rotated, ['llm/prod/OPENAI_API_KEY']);
  const s3 = await read(a);
  assert.equal(s3.version, 2);
  assert.ok(fake.isLive(s3.value));
  assert.equal(s3.last_rotation_error, null);
  assert.equal(s3.next_rotation_attempt_at, null);

  const lines = auditLines(auditPath).filter((l) => l.operation === 'secret.rotate' && l.type === 'response');
  assert.deepEqual(
    lines.map((l) => [l.status, l.error_code ?? null]),
    [
      ['error', 'provider_error'],
      ['error', 'provider_error'],
      ['ok', null],
    ],
  );
  assert.match(String(lines[0]!.request?.error), /HTTP 503/);
  assert.ok(!readFileSync(auditPath, 'utf8').includes(adminKey));
});

test('a bad admin key fails the rotation with a clear, sanitised error', async (t) => {
  const { a, fake, adminKey } = await openAiFixture(t);
  fake.adminKeys.clear();
  const res = await a.call('POST', `${SECRET}/rotate`, {});
  assert.equal(res.statusCode, 502, res.body);
  const body = res.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'provider_error');
  assert.match(body.error.message, /refused the admin key \(HTTP 401\)/);
  assert.ok(!res.body.includes(adminKey));
  assert.equal((await read(a)).version, 1);
  assert.ok(!a.logs().includes(adminKey));
});

test('a slow provider times out without changing the secret', async (t) => {
  const { a, fake, initialKey } = await openAiFixture(t, { timeoutMs: 200 });
  fake.failure = 'slow';
  fake.slowMs = 1000;
  const res = await a.call('POST', `${SECRET}/rotate`, {});
  assert.equal(res.statusCode, 502, res.body);
  assert.match(res.body, /unreachable \(timed out\)/);
  const s = await read(a);
  assert.equal(s.value, initialKey);
  assert.match(s.last_rotation_error ?? '', /timed out/);
  // the claim was released: once the provider answers, rotating works
  fake.failure = 'none';
  assert.equal((await a.call('POST', `${SECRET}/rotate`, {})).statusCode, 200);
});

test('manual rotation with an operator value: current at once, old version superseded after grace', async (t) => {
  const { a, clock, initialKey, auditPath } = await openAiFixture(t);
  const newKey = openAiKey();
  const bad = await a.call('POST', `${SECRET}/rotate`, { value: 'not-an-openai-key' });
  assert.equal(bad.statusCode, 400, bad.body);
  assert.equal((bad.json() as { error: { code: string } }).error.code, 'invalid_value');

  const res = await a.call('POST', `${SECRET}/rotate`, { value: newKey });
  assert.equal(res.statusCode, 200, res.body);
  const out = res.json() as Record<string, unknown>;
  assert.deepEqual(
    { ...out, created_at: undefined },
    {
      name: 'OPENAI_API_KEY',
      version: 2,
      previous_version: 1,
      created_at: undefined,
      source: 'rotation',
      minted_by: 'operator',
      adapter: null,
      old_key_valid_until: new Date(clock.now() + HOUR).toISOString(),
    },
  );
  assert.ok(!res.body.includes(newKey), 'the response never carries the value');
  const now = await read(a);
  assert.equal(now.value, newKey);
  assert.equal(now.last_rotated_at, new Date(clock.now()).toISOString());
  // both versions stay readable during grace
  assert.equal((await read(a, `${SECRET}?version=1`)).value, initialKey);

  clock.advance(HOUR + 1000);
  assert.deepEqual((await a.vault.rotation.tick()).revoked, ['llm/prod/OPENAI_API_KEY@1']);
  const status = (await a.call('GET', `${SECRET}/rotation`)).json() as {
    superseded: { version: number; provider_key_deleted: boolean }[];
  };
  assert.deepEqual(
    status.superseded.map((s) => [s.version, s.provider_key_deleted]),
    [[1, false]],
  );
  const text = readFileSync(auditPath, 'utf8');
  assert.ok(!text.includes(newKey), 'the operator value is only in the audit log as an HMAC');
  const req = auditLines(auditPath).find((l) => l.operation === 'secret.rotate' && l.type === 'request');
  assert.match(String(req?.request?.value), /^hmac-sha256:/);

  // a secret without an adapter needs a value
  await a.call('PUT', '/v1/secrets/llm/prod/PLAIN', { value: 'x' });
  const noAdapter = await a.call('POST', '/v1/secrets/llm/prod/PLAIN/rotate', {});
  assert.equal(noAdapter.statusCode, 400, noAdapter.body);
  assert.match((noAdapter.json() as { error: { message: string } }).error.message, /no rotation adapter/);
});

test('the admin key must live in the same project and environment', async (t) => {
  const { a } = await openAiFixture(t);
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', {
    value: openAiKey(),
    provider: 'openai',
    rotation: {
      interval: '30d',
      adapter: 'openai',
      options: { project_id: PROJECT_ID, admin_secret: 'llm/prod/OPENAI_ADMIN_KEY' },
    },
  });
  const res = await a.call('POST', '/v1/secrets/llm/dev/OPENAI_API_KEY/rotate', {});
  assert.equal(res.statusCode, 400, res.body);
  assert.match(res.body, /must be a secret of llm\/dev/);
});

test('OpenRouter rotation against its fake: mint with a limit, delete the old key after grace', async (t) => {
  const provisioningKey = openRouterKey();
  const fake = await startFakeOpenRouter({ provisioningKey });
  t.after(() => fake.close());
  const clock = manualClock(Date.UTC(2026, 0, 1));
  const a = await buildTestApp(t, {
    clock,
    rotation: { interval_seconds: 0, adapters: { openrouter: { base_url: fake.url } } },
  });
  await a.call('POST', '/v1/projects', { name: 'llm' });
  await a.call('PUT', '/v1/secrets/llm/prod/OPENROUTER_PROVISIONING_KEY', { value: provisioningKey });
  const url = '/v1/secrets/llm/prod/OPENROUTER_API_KEY';
  const put = await a.call('PUT', url, {
    value: openRouterKey(),
    provider: 'openrouter',
    rotation: {
      interval: '7d',
      grace: '10m',
      adapter: 'openrouter',
      options: { admin_secret: 'OPENROUTER_PROVISIONING_KEY', limit: '25' },
    },
  });
  assert.equal(put.statusCode, 200, put.body);

  // rotated by hand through the adapter, then again on schedule
  const r1 = await a.call('POST', `${url}/rotate`, {});
  assert.equal(r1.statusCode, 200, r1.body);
  assert.equal((r1.json() as { minted_by: string }).minted_by, 'adapter');
  const first = (await read(a, url)).value;
  assert.match(first, /^sk-or-v1-[0-9a-f]{64}$/);
  assert.ok(fake.isLive(first));
  const create = fake.requests.find((r) => r.method === 'POST');
  assert.equal(create?.authorization, `Bearer ${provisioningKey}`);
  assert.equal((create?.body as { limit?: number } | undefined)?.limit, 25);
  const me = await fetch(`${fake.url}/key`, { headers: { authorization: `Bearer ${first}` } });
  assert.equal(me.status, 200);

  clock.advance(7 * DAY + 1000);
  const tick = await a.vault.rotation.tick();
  assert.deepEqual(tick.rotated, ['llm/prod/OPENROUTER_API_KEY']);
  // the operator's initial key (version 1) passed its grace long ago: marked superseded
  assert.deepEqual(tick.revoked, ['llm/prod/OPENROUTER_API_KEY@1']);
  const second = (await read(a, url)).value;
  assert.ok(fake.isLive(first) && fake.isLive(second));
  clock.advance(10 * 60_000 + 1000);
  const r3 = await a.vault.rotation.tick();
  assert.deepEqual(r3.revoked, ['llm/prod/OPENROUTER_API_KEY@2']);
  assert.ok(!fake.isLive(first), 'the first minted key is deleted after grace');
  assert.ok(fake.isLive(second));
  assert.equal(fake.keys.size, 1);
  assert.ok(!a.logs().includes(provisioningKey));
  // the provisioning key never appears in any answer
  for (const u of [url, `${url}/rotation`, `${url}/versions`]) {
    assert.ok(!(await a.call('GET', u)).body.includes(provisioningKey));
  }
});

test('two vaults sharing one PostgreSQL storage rotate a due secret exactly once', async (t) => {
  const url = await postgresTestUrl();
  if (!url) {
    t.skip(postgresSkipReason());
    return;
  }
  const table = await uniqueTable(url, t);
  const storageA = await createPostgresStorage({ url, table });
  const storageB = await createPostgresStorage({ url, table });
  t.after(async () => {
    await storageA.close();
    await storageB.close();
  });
  const keyFile = staticKeyFile(t);
  const adminKey = openAiAdminKey();
  const fake = await startFakeOpenAi({ adminKey, project: PROJECT_ID });
  t.after(() => fake.close());
  const clock = manualClock(Date.UTC(2026, 0, 1));
  const rotation = { interval_seconds: 0, adapters: { openai: { base_url: fake.url } } };
  const a = await buildTestApp(t, { storage: storageA, keyFile, clock, rotation });
  const b = await buildTestApp(t, { storage: storageB, keyFile, clock, rotation, uninitialized: true });
  assert.equal(b.core.barrier.sealed, false, 'the second server unsealed with the shared key file');
  await a.call('POST', '/v1/projects', { name: 'llm' });
  await a.call('PUT', '/v1/secrets/llm/prod/OPENAI_ADMIN_KEY', { value: adminKey, provider: 'openai' });
  await a.call('PUT', SECRET, {
    value: fake.seed(PROJECT_ID).key,
    provider: 'openai',
    rotation: {
      interval: '30d',
      grace: '1h',
      adapter: 'openai',
      options: { project_id: PROJECT_ID, admin_secret: 'OPENAI_ADMIN_KEY' },
    },
  });
  clock.advance(30 * DAY + 1000);
  const [ra, rb] = await Promise.all([a.vault.rotation.tick(), b.vault.rotation.tick()]);
  assert.equal(Number(ra.leader) + Number(rb.leader), 1, 'exactly one server holds the lease');
  assert.equal(ra.rotated.length + rb.rotated.length, 1);
  assert.equal(fake.requests.filter((r) => r.method === 'POST').length, 1, 'one key minted');
  assert.equal((await read(a)).version, 2);

  // the holder renews its lease; the other keeps out until it lapses
  clock.advance(60_000);
  const [ra2, rb2] = await Promise.all([a.vault.rotation.tick(), b.vault.rotation.tick()]);
  assert.equal(ra2.leader, ra.leader);
  assert.equal(rb2.leader, rb.leader);
  // the holder stops (shutdown): the other takes over at its next tick
  const [holder, other] = ra.leader ? [a, b] : [b, a];
  await holder.vault.rotation.stop();
  assert.equal((await other.vault.rotation.tick()).leader, true);
});

test('the CLI rotates with an operator value from stdin or through the adapter, and prints the new version', async (t) => {
  const { a, fake } = await openAiFixture(t);
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (a.app.server.address() as { port: number }).port;
  const env = { STRONGROOM_ADDR: `http://127.0.0.1:${port}`, STRONGROOM_TOKEN: a.rootToken };
  const newKey = openAiKey();
  const manual = await runCli(['secret', 'rotate', 'llm/prod/OPENAI_API_KEY', '--value-from-stdin'], {
    env,
    input: `${newKey}\n`,
  });
  assert.equal(manual.code, 0, manual.stderr);
  assert.match(manual.stdout, /Version\s+2 \(was 1\)/);
  assert.match(manual.stdout, /operator/);
  assert.ok(!manual.stdout.includes(newKey));
  assert.equal((await read(a)).value, newKey);

  const minted = await runCli(['--format', 'json', 'secret', 'rotate', 'llm/prod/OPENAI_API_KEY'], { env });
  assert.equal(minted.code, 0, minted.stderr);
  const out = JSON.parse(minted.stdout) as { version: number; minted_by: string; adapter: string };
  assert.deepEqual([out.version, out.minted_by, out.adapter], [3, 'adapter', 'openai']);
  assert.ok(fake.isLive((await read(a)).value));

  fake.failure = 'outage';
  const failed = await runCli(['secret', 'rotate', 'llm/prod/OPENAI_API_KEY'], { env });
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /HTTP 503/);
  const status = await runCli(['secret', 'rotation', 'llm/prod/OPENAI_API_KEY'], { env });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /Last error\s+OpenAI API answered HTTP 503/);
});

test('over HTTP: a watcher of the environment sees a scheduled rotation within a second, and an outage shows in the stale report and the metrics', async (t) => {
  const { a, fake, clock, initialKey } = await openAiFixture(t);
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = `http://127.0.0.1:${(a.app.server.address() as import('node:net').AddressInfo).port}`;
  const { watchSecrets } = await import('../../src/sdk/watch.ts');
  const abort = new AbortController();
  t.after(() => abort.abort());
  const stream = watchSecrets({
    addr,
    token: a.rootToken,
    project: 'llm',
    env: 'prod',
    signal: abort.signal,
  });
  assert.equal((await stream.next()).value?.event, 'ready');

  // an outage first: the current version stays, and the failure is visible everywhere
  fake.failure = 'outage';
  clock.advance(30 * DAY + 1000);
  await a.vault.rotation.tick();
  assert.equal((await read(a)).value, initialKey);
  const stale = await a.call('GET', '/v1/reports/stale?project=llm');
  assert.equal(stale.statusCode, 200, stale.body);
  const row = (stale.json() as { secrets: { name: string; reasons: string[] }[] }).secrets.find(
    (s) => s.name === 'OPENAI_API_KEY',
  );
  assert.ok(row?.reasons.includes('rotation_failed'), stale.body);
  const metrics = await a.call('GET', '/v1/sys/metrics');
  assert.match(metrics.body, /^strongroom_rotation_failures_total [1-9]/m);
  assert.doesNotMatch(stale.body + metrics.body, new RegExp(initialKey));

  // the provider recovers: the retry rotates, and the watcher hears of it within a second
  fake.failure = 'none';
  clock.advance(HOUR);
  const started = Date.now();
  const report = await a.vault.rotation.tick();
  assert.deepEqual(report.rotated, ['llm/prod/OPENAI_API_KEY']);
  let event: { event: string; data: unknown } | undefined;
  for (;;) {
    const next = await stream.next();
    event = next.value as { event: string; data: unknown };
    if (event?.event === 'change') break;
  }
  assert.ok(Date.now() - started < 1000, `event after ${Date.now() - started} ms`);
  assert.deepEqual(
    { ...(event.data as object), at: undefined },
    {
      project: 'llm',
      env: 'prod',
      name: 'OPENAI_API_KEY',
      kind: 'rotation',
      version: 2,
      at: undefined,
    },
  );
  assert.doesNotMatch(JSON.stringify(event), /sk-/);
});
