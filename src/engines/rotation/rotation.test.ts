import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openAiAdminKey, startFakeOpenAi } from '../../../test/fakes/openai-admin.ts';
import { startFakeOpenRouter } from '../../../test/fakes/openrouter.ts';
import { checkBaseUrl, sanitizeUpstream } from './adapters/http.ts';
import { createOpenAiAdapter } from './adapters/openai.ts';
import { createOpenRouterAdapter } from './adapters/openrouter.ts';
import { backoffSeconds } from './rotation.ts';

test('base URLs must be https, or http to a loopback address only', () => {
  for (const ok of [
    'https://api.openai.com/v1',
    'http://127.0.0.1:8080/v1',
    'http://localhost/x',
    'http://[::1]:1/v1',
  ]) {
    assert.doesNotThrow(() => checkBaseUrl(ok, 't'), ok);
  }
  for (const bad of [
    'http://api.openai.com/v1',
    'http://10.0.0.1/v1',
    'ftp://x',
    'https://u:p@h/x',
    'nonsense',
  ]) {
    assert.throws(() => checkBaseUrl(bad, 't'), TypeError, bad);
  }
  assert.equal(checkBaseUrl('https://api.openai.com/v1/', 't'), 'https://api.openai.com/v1');
});

test('upstream text loses anything key-like, the given secrets, and control characters', () => {
  const admin = openAiAdminKey();
  const cases: [string, RegExp][] = [
    [`Incorrect API key provided: ${admin}.`, /^Incorrect API key provided: \[redacted\]\.$/],
    ['auth was Bearer abc.def.ghi', /^auth was \[redacted\]$/],
    ['key sk-or-v1-0123456789abcdef0123456789abcdef bad', /^key \[redacted\] bad$/],
    ['line\nbreak\u0007', /^line break$/],
  ];
  for (const [input, want] of cases) assert.match(sanitizeUpstream(input, [admin]), want);
  assert.ok(!sanitizeUpstream(`x ${'short1'} y`, ['short1']).includes('short1'));
  assert.ok(sanitizeUpstream('a'.repeat(10) + ' '.repeat(400)).length <= 201);
});

test('backoff doubles from one minute and is capped at one hour', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 50].map(backoffSeconds),
    [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600],
  );
});

test('the OpenAI adapter mints and deletes service accounts with the admin key', async (t) => {
  const adminKey = openAiAdminKey();
  const fake = await startFakeOpenAi({ adminKey, project: 'proj_x' });
  t.after(() => fake.close());
  const adapter = createOpenAiAdapter({ base_url: fake.url });
  const ctx = { adminKey, options: { project_id: 'proj_x' }, label: 'strongroom test' };
  assert.equal(adapter.checkOptions({}), 'the openai adapter needs rotation.options.project_id (proj_…)');
  const k = await adapter.create(ctx);
  assert.ok(fake.isLive(k.value));
  assert.match(k.id, /^svc_acct_/);
  await adapter.revoke(ctx, k.id);
  assert.ok(!fake.isLive(k.value));
  await adapter.revoke(ctx, k.id); // already gone: not an error
  fake.failure = 'unauthorized';
  await assert.rejects(adapter.create(ctx), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'provider_error');
    assert.ok(!err.message.includes(adminKey), err.message);
    return true;
  });
});

test('the OpenRouter adapter mints keys with a limit and deletes them by hash', async (t) => {
  const provisioningKey = `sk-or-v1-${'ab'.repeat(32)}`;
  const fake = await startFakeOpenRouter({ provisioningKey });
  t.after(() => fake.close());
  const adapter = createOpenRouterAdapter({ base_url: fake.url });
  assert.match(adapter.checkOptions({ limit: 'lots' }) ?? '', /credit limit/);
  const ctx = { adminKey: provisioningKey, options: { limit: '5' }, label: 'strongroom test' };
  const k = await adapter.create(ctx);
  assert.equal(fake.keys.get(k.id)?.limit, 5);
  await adapter.revoke(ctx, k.id);
  assert.ok(!fake.isLive(k.value));
  fake.failure = 'outage';
  await assert.rejects(adapter.create(ctx), /OpenRouter API answered HTTP 503/);
});
