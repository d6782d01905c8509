import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';
import { openAiAdminKey, startFakeOpenAi } from '../fakes/openai-admin.ts';
import { openRouterKey, startFakeOpenRouter } from '../fakes/openrouter.ts';
import { buildTestApp } from '../helpers/app.ts';
import { until } from '../helpers/wait.ts';

const PROJECT_ID = 'proj_leases';

interface Creds {
  lease_id: string;
  lease_duration: number;
  renewable: boolean;
  data: { provider: string; api_key: string; key_id: string };
}

test('a provider key per lease: minted at the provider, deleted at the lease’s end', async (t) => {
  const adminKey = openAiAdminKey();
  const openai = await startFakeOpenAi({ adminKey, project: PROJECT_ID });
  const provisioningKey = openRouterKey();
  const openrouter = await startFakeOpenRouter({ provisioningKey });
  t.after(() => Promise.all([openai.close(), openrouter.close()]));
  const a = await buildTestApp(t, {
    leases: { sweep_interval_ms: 100 },
    rotation: {
      interval_seconds: 0,
      adapters: { openai: { base_url: openai.url }, openrouter: { base_url: openrouter.url } },
    },
  });
  assert.equal(
    (await a.call('POST', '/v1/projects', { name: 'llm', environments: ['prod'] })).statusCode,
    201,
  );
  assert.equal(
    (await a.call('PUT', '/v1/secrets/llm/prod/OPENAI_ADMIN_KEY', { value: adminKey, force: true }))
      .statusCode,
    200,
  );
  assert.equal(
    (
      await a.call('PUT', '/v1/secrets/llm/prod/OPENROUTER_PROVISIONING_KEY', {
        value: provisioningKey,
        force: true,
      })
    ).statusCode,
    200,
  );
  const role = (name: string, body: unknown) => a.call('POST', `/v1/provider-keys/roles/${name}`, body);
  assert.equal(
    (
      await role('agent-openai', {
        provider: 'openai',
        admin_secret: 'llm/prod/OPENAI_ADMIN_KEY',
        project_id: PROJECT_ID,
        default_ttl: '10m',
      })
    ).statusCode,
    200,
  );
  assert.equal(
    (
      await role('agent-openrouter', {
        provider: 'openrouter',
        admin_secret: 'llm/prod/OPENROUTER_PROVISIONING_KEY',
        limit: 2.5,
        default_ttl: '5m',
      })
    ).statusCode,
    200,
  );
  const creds = async (r: string, body: unknown = {}) => {
    const res = await a.call('POST', `/v1/provider-keys/creds/${r}`, body);
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as Creds;
  };

  await t.test(
    'OpenAI: a service account per lease, usable by the official client, deleted at revoke',
    async () => {
      const before = openai.accounts(PROJECT_ID).size;
      const c = await creds('agent-openai');
      assert.equal(openai.accounts(PROJECT_ID).size, before + 1);
      assert.equal(openai.names.get(c.data.key_id), `strongroom-lease-${c.lease_id.split('/').at(-1)}`);
      assert.ok(openai.isLive(c.data.api_key));
      const client = new OpenAI({ apiKey: c.data.api_key, baseURL: openai.url });
      const models = await client.models.list();
      assert.equal(models.data[0]?.id, 'gpt-4o');
      const r = await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
      assert.deepEqual(r.json(), { revoked: 1, forced: 0, pending: 0 });
      assert.ok(!openai.isLive(c.data.api_key), 'the key is dead at the provider');
      assert.equal(openai.accounts(PROJECT_ID).size, before);
      await assert.rejects(client.models.list(), (e: Error & { status?: number }) => e.status === 401);
    },
  );

  await t.test(
    'OpenAI: revoking the holder token deletes its lease’s service account; another lease stays',
    async () => {
      const c = await creds('agent-openai', { ttl: 60 });
      assert.ok(openai.isLive(c.data.api_key));
      const child = await a.call('POST', '/v1/auth/token/create', { ttl: '1h', policies: ['admin'] });
      const token = (child.json() as { auth: { client_token: string } }).auth.client_token;
      const mine = (await a.call('POST', '/v1/provider-keys/creds/agent-openai', {}, token)).json() as Creds;
      assert.ok(openai.isLive(mine.data.api_key));
      await a.call('POST', '/v1/auth/token/revoke-self', undefined, token);
      await until(
        'the revoked token’s key is deleted at OpenAI',
        () => !openai.isLive(mine.data.api_key),
        3_000,
      );
      assert.ok(openai.isLive(c.data.api_key), 'the other lease is untouched');
      await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
    },
  );

  await t.test(
    'OpenRouter: the key carries the role’s credit limit and the lease’s end as its own expiry',
    async () => {
      const c = await creds('agent-openrouter');
      assert.equal(c.renewable, false);
      const k = openrouter.keys.get(c.data.key_id);
      assert.ok(k, 'minted at OpenRouter');
      assert.equal(k.limit, 2.5);
      const look = (await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id })).json() as {
        expires_at: string;
      };
      assert.ok(k.expires_at, 'an expiry was sent');
      assert.ok(
        Math.abs(Date.parse(k.expires_at!) - Date.parse(look.expires_at)) < 1000,
        `${k.expires_at} vs ${look.expires_at}`,
      );
      assert.equal((await a.call('PUT', '/v1/sys/leases/renew', { lease_id: c.lease_id })).statusCode, 400);
      await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
      assert.equal(openrouter.keys.has(c.data.key_id), false);
    },
  );

  await t.test('a key minted before its id was recorded (a crash) is found by name and deleted', async () => {
    // what a crash between the provider's answer and the lease's activation leaves: an intent, a key
    const c = await creds('agent-openrouter');
    const stray = openrouter.keys.get(c.data.key_id)!;
    const lease = await a.vault.leases.get(c.lease_id);
    assert.ok(lease);
    const { key_id: _dropped, ...rest } = lease.data as { key_id: string; role: string };
    await a.vault.leases.revoke({ ...lease, data: rest }, { reason: 'revoked' });
    assert.equal([...openrouter.keys.values()].includes(stray), false, 'found by its lease name and deleted');
  });

  await t.test(
    'a provider with no minting API (Anthropic): a gateway virtual key per lease, revoked with it',
    async () => {
      const r = await role('agent-anthropic', {
        provider: 'gateway',
        key_scope: { providers: ['anthropic'], models: ['claude-*'] },
        key_limits: { requests_per_minute: 30 },
        default_ttl: '10m',
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(
        (await role('bad', { provider: 'gateway', admin_secret: 'llm/prod/OPENAI_ADMIN_KEY' })).statusCode,
        400,
      );
      const c = await creds('agent-anthropic');
      assert.equal(c.data.provider, 'gateway');
      assert.match(c.data.api_key, /^srv_/);
      assert.equal(c.renewable, false);
      const key = (await a.call('GET', `/v1/gateway/keys/${c.data.key_id}`)).json() as {
        key: { state: string; name: string; scope: { providers: string[] }; expires_at: string };
      };
      assert.equal(key.key.state, 'active');
      assert.deepEqual(key.key.scope.providers, ['anthropic']);
      assert.equal(key.key.name, `strongroom-lease-${c.lease_id.split('/').at(-1)}`);
      await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
      const after = (await a.call('GET', `/v1/gateway/keys/${c.data.key_id}`)).json() as {
        key: { state: string };
      };
      assert.equal(after.key.state, 'revoked');
    },
  );

  await t.test('the admin key never reaches a client, a log or an error', async () => {
    const roleRead = await a.call('GET', '/v1/provider-keys/roles/agent-openai');
    assert.ok(!roleRead.body.includes(adminKey));
    openai.failure = 'outage';
    const r = await a.call('POST', '/v1/provider-keys/creds/agent-openai', {});
    openai.failure = 'none';
    assert.ok(r.statusCode >= 500, r.body);
    assert.ok(!r.body.includes(adminKey));
    assert.ok(!a.logs().includes(adminKey));
    assert.ok(!a.logs().includes(provisioningKey));
  });
});
