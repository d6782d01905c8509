import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROVIDERS } from '../../src/engines/provider-catalog.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

const URL = '/v1/secrets/llm/prod/OPENAI_API_KEY';
const OPENAI = `sk-proj-${'a1B2'.repeat(12)}`;

async function app(t: Parameters<typeof buildTestApp>[0]): Promise<TestApp> {
  const a = await buildTestApp(t);
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  return a;
}

test('a secret records its provider, owner, expiry, rotation and tags, and reads them back', async (t) => {
  const a = await app(t);
  const w = await a.call('PUT', URL, {
    value: OPENAI,
    provider: 'openai',
    owner: 'ml-platform',
    expires_at: '2027-06-30T00:00:00Z',
    rotation: { interval: '30d', grace: '1h' },
    tags: ['billing', 'prod-critical'],
    metadata: { ticket: 'OPS-42' },
  });
  assert.equal(w.statusCode, 200, w.body);
  const r = (await a.call('GET', URL)).json();
  assert.equal(r.provider, 'openai');
  assert.equal(r.owner, 'ml-platform');
  assert.equal(r.expires_at, '2027-06-30T00:00:00.000Z');
  assert.deepEqual(r.rotation, { interval: 30 * 86400, grace: 3600 });
  assert.deepEqual(r.tags, ['billing', 'prod-critical']);
  assert.deepEqual(r.metadata, { ticket: 'OPS-42' });
  // a later write without the fields keeps them; null clears one
  await a.call('PUT', URL, { value: `${OPENAI}x` });
  assert.equal((await a.call('GET', URL)).json().owner, 'ml-platform');
  await a.call('PUT', URL, { value: `${OPENAI}y`, owner: null });
  assert.equal((await a.call('GET', URL)).json().owner, null);
  const list = (await a.call('GET', '/v1/secrets/llm/prod')).json();
  assert.deepEqual(list.secrets[0].provider, 'openai');
});

const MISMATCHES: [string, string][] = [
  ['openai', `sk-ant-api03-${'x'.repeat(90)}`],
  ['anthropic', OPENAI],
  ['openrouter', 'sk-or-v1-notHEX'],
  ['groq', 'gsk_short'],
  ['google', 'AIzaTooShort'],
];
for (const [provider, value] of MISMATCHES) {
  test(`a value that does not look like a ${provider} key is refused with a clear error unless forced`, async (t) => {
    const a = await app(t);
    const res = await a.call('PUT', URL, { value, provider });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'invalid_value');
    const name = PROVIDERS.find((p) => p.id === provider)!.name;
    assert.match(
      res.json().error.message,
      new RegExp(`does not look like an? ${name.replace(/[()]/g, '.')} key`),
    );
    assert.doesNotMatch(res.body, new RegExp(value.slice(4, 20)));
    assert.equal((await a.call('GET', URL)).json().error.code, 'secret_not_found');
    assert.equal((await a.call('PUT', URL, { value, provider, force: true })).statusCode, 200);
  });
}

test('keys of every provider pass their own format check', async (t) => {
  const a = await app(t);
  const samples: Record<string, string> = {
    openai: OPENAI,
    anthropic: `sk-ant-api03-${'Ab1_'.repeat(24)}`,
    'azure-openai': '0123456789abcdef0123456789abcdef',
    google: `AIza${'B'.repeat(35)}`,
    mistral: 'A'.repeat(32),
    cohere: 'c'.repeat(40),
    groq: `gsk_${'g'.repeat(52)}`,
    openrouter: `sk-or-v1-${'0f'.repeat(32)}`,
    'aws-bedrock': 'AKIAABCDEFGHIJKLMNOP',
    huggingface: `hf_${'h'.repeat(34)}`,
    deepseek: `sk-${'0a'.repeat(16)}`,
    xai: `xai-${'x'.repeat(80)}`,
    together: `tgp_v1_${'t'.repeat(43)}`,
    perplexity: `pplx-${'p'.repeat(48)}`,
    other: 'anything at all',
  };
  for (const p of PROVIDERS) {
    assert.ok(samples[p.id], `a sample for ${p.id}`);
    const res = await a.call('PUT', `/v1/secrets/llm/dev/K_${p.id.replaceAll('-', '_').toUpperCase()}`, {
      value: samples[p.id],
      provider: p.id,
    });
    assert.equal(res.statusCode, 200, `${p.id}: ${res.body}`);
  }
});

test('an unknown provider, a bad expiry and a bad rotation are refused', async (t) => {
  const a = await app(t);
  for (const body of [
    { value: 'x', provider: 'acme-ai' },
    { value: 'x', expires_at: 'next tuesday' },
    { value: 'x', rotation: { interval: 'often' } },
    { value: 'x', rotation: { interval: '30s' } },
    { value: 'x', rotation: { interval: '1h', grace: '2h' } },
  ]) {
    const res = await a.call('PUT', URL, body);
    assert.equal(res.statusCode, 400, JSON.stringify(body));
    assert.equal(res.json().error.code, 'validation_failed', res.body);
  }
});

test('a value that looks like a known provider key without a declared provider gets a hint', async (t) => {
  const a = await app(t);
  const res = await a.call('PUT', URL, { value: `sk-or-v1-${'0f'.repeat(32)}` });
  assert.match(res.json().hint, /openrouter/);
});

test('names taken by environment-wide routes (watch, export, import) are refused as secret names', async (t) => {
  const a = await app(t);
  for (const name of ['watch', 'export', 'import']) {
    const res = await a.call('PUT', `/v1/secrets/llm/dev/${name}`, { value: 'x' });
    assert.equal(res.statusCode, 400, name);
    assert.equal(res.json().error.code, 'invalid_name');
  }
  assert.equal((await a.call('PUT', '/v1/secrets/llm/dev/WATCH', { value: 'x' })).statusCode, 200);
});

test('bulk import and export honour a policy about one secret, not only the environment-wide grant', async (t) => {
  const a = await app(t);
  await a.call('PUT', '/v1/secrets/llm/dev/GUARDED', { value: 'guarded-value' });
  await a.call('PUT', '/v1/secrets/llm/dev/OPEN', { value: 'open-value' });
  const put = await a.call('PUT', '/v1/sys/policies/guard', {
    policy:
      'forbid (principal in Strongroom::Role::"developer", action in [Strongroom::Action::"secret.read", Strongroom::Action::"secret.write"], resource is Strongroom::Secret) when { resource.name == "GUARDED" };',
  });
  assert.equal(put.statusCode, 200, put.body);
  const dev = (await a.call('POST', '/v1/auth/token/create', { roles: ['developer'] })).json().auth
    .client_token;
  const imp = await a.call(
    'POST',
    '/v1/secrets/llm/dev/import',
    { secrets: [{ name: 'GUARDED', value: 'overwritten' }], on_conflict: 'overwrite' },
    dev,
  );
  assert.equal(imp.statusCode, 403, imp.body);
  assert.match(imp.body, /GUARDED/);
  assert.equal((await a.call('GET', '/v1/secrets/llm/dev/GUARDED')).json().value, 'guarded-value');
  const exp = await a.call('GET', '/v1/secrets/llm/dev/export?values=true', undefined, dev);
  assert.equal(exp.statusCode, 200, exp.body);
  assert.match(exp.body, /open-value/);
  assert.doesNotMatch(exp.body, /guarded-value/);
});

test('a developer may import, rotate and export values outside production, and not in production', async (t) => {
  const a = await app(t);
  const dev = (await a.call('POST', '/v1/auth/token/create', { roles: ['developer'] })).json().auth
    .client_token;
  const body = { secrets: [{ name: 'K', value: 'v' }], on_conflict: 'overwrite' };
  assert.equal((await a.call('POST', '/v1/secrets/llm/dev/import', body, dev)).statusCode, 200);
  assert.equal(
    (await a.call('GET', '/v1/secrets/llm/dev/export?values=true', undefined, dev)).statusCode,
    200,
  );
  assert.equal((await a.call('POST', '/v1/secrets/llm/dev/K/rotate', { value: 'v2' }, dev)).statusCode, 200);
  assert.equal((await a.call('POST', '/v1/secrets/llm/prod/import', body, dev)).statusCode, 403);
  assert.equal(
    (await a.call('GET', '/v1/secrets/llm/prod/export?values=true', undefined, dev)).statusCode,
    403,
  );
  assert.equal((await a.call('GET', '/v1/secrets/llm/prod/export', undefined, dev)).statusCode, 200);
});
