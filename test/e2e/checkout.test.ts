import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { appToken, buildTestApp } from '../helpers/app.ts';
import { cliInProcess } from '../helpers/cli.ts';

const SA = 'svc-account-password-0123456789';

interface Checkout {
  lease_id: string;
  lease_duration: number;
  exclusive: boolean;
  data: { value: string; version: number };
}

test('check-out / check-in of a static secret under a lease', async (t) => {
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 100 } });
  assert.equal(
    (await a.call('POST', '/v1/projects', { name: 'ops', environments: ['dev', 'prod'] })).statusCode,
    201,
  );
  assert.equal((await a.call('PUT', '/v1/secrets/ops/dev/SHARED_SA', { value: SA })).statusCode, 200);
  const url = '/v1/secrets/ops/dev/SHARED_SA';

  await t.test('a check-out gives the value under a lease; check-in ends the lease', async () => {
    const r = await a.call('POST', `${url}/checkout`, { ttl: '10m' });
    assert.equal(r.statusCode, 200, r.body);
    const c = r.json() as Checkout;
    assert.equal(c.data.value, SA);
    assert.match(c.lease_id, /^checkout\/ops\/dev\/SHARED_SA\/[0-9a-f]{24}$/);
    assert.ok(c.lease_duration > 590 && c.lease_duration <= 600);
    const look = await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id });
    assert.equal(look.statusCode, 200, look.body);
    assert.equal((look.json() as { state: string }).state, 'active');
    const back = await a.call('POST', `${url}/checkin`, { lease_id: c.lease_id });
    assert.equal(back.statusCode, 200, back.body);
    assert.equal((await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id })).statusCode, 404);
    assert.equal((await a.call('POST', `${url}/checkin`, { lease_id: c.lease_id })).statusCode, 404);
  });

  await t.test(
    'exclusive: of 20 concurrent check-outs exactly one holds it; the others get 409 with its end',
    async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, () => a.call('POST', `${url}/checkout`, { ttl: '1m', exclusive: true })),
      );
      const won = results.filter((r) => r.statusCode === 200);
      assert.equal(won.length, 1, results.map((r) => r.statusCode).join(','));
      const holder = won[0]!.json() as Checkout;
      for (const r of results.filter((x) => x.statusCode !== 200)) {
        assert.equal(r.statusCode, 409, r.body);
        const e = r.json() as { error: { code: string; details: { expires_at: string } } };
        assert.equal(e.error.code, 'checked_out');
        assert.ok(Date.parse(e.error.details.expires_at) > Date.now());
        assert.ok(!r.body.includes(SA));
      }
      // the losers' leases were ended, not left behind
      const listed = (await a.call('GET', '/v1/sys/leases?prefix=checkout/ops/dev/SHARED_SA/')).json() as {
        leases: { lease_id: string }[];
      };
      assert.deepEqual(
        listed.leases.map((l) => l.lease_id),
        [holder.lease_id],
      );
      const who = (await a.call('GET', `${url}/checkout`)).json() as {
        holder: { lease_id: string; yours: boolean } | null;
      };
      assert.equal(who.holder?.lease_id, holder.lease_id);
      assert.equal(who.holder?.yours, true);
      assert.ok(!JSON.stringify(who).includes('accessor'), 'the holder’s token accessor is not shown');
      // a shared check-out does not get round an exclusive hold
      const shared = await a.call('POST', `${url}/checkout`, { ttl: '1m' });
      assert.equal(shared.statusCode, 409, shared.body);
      assert.equal((await a.call('POST', `${url}/checkin`, { lease_id: holder.lease_id })).statusCode, 200);
      assert.equal(((await a.call('GET', `${url}/checkout`)).json() as { holder: unknown }).holder, null);
      const next = await a.call('POST', `${url}/checkout`, { ttl: 1, exclusive: true });
      assert.equal(next.statusCode, 200, next.body);
      // its lease expires: the secret is free again without a check-in
      await sleep(1500);
      const after = await a.call('POST', `${url}/checkout`, { ttl: '1m', exclusive: true });
      assert.equal(after.statusCode, 200, after.body);
      await a.call('POST', `${url}/checkin`, { lease_id: (after.json() as Checkout).lease_id });
    },
  );

  await t.test(
    'the CLI: secret checkout --exclusive, a second holder is told until when, checkin',
    async () => {
      const addr = await a.app.listen({ host: '127.0.0.1', port: 0 });
      const cli = (args: string[]) => cliInProcess(addr, args, { env: { STRONGROOM_TOKEN: a.rootToken } });
      const first = await cli([
        'secret',
        'checkout',
        'ops/dev/SHARED_SA',
        '--exclusive',
        '--ttl',
        '5m',
        '--format',
        'json',
      ]);
      assert.equal(first.code, 0, first.stderr);
      const c = JSON.parse(first.stdout) as Checkout;
      assert.equal(c.data.value, SA);
      const second = await cli(['secret', 'checkout', 'ops/dev/SHARED_SA', '--exclusive']);
      assert.notEqual(second.code, 0);
      assert.match(second.stderr, /checked out until/);
      const back = await cli(['secret', 'checkin', 'ops/dev/SHARED_SA', c.lease_id]);
      assert.equal(back.code, 0, back.stderr);
      assert.equal(((await a.call('GET', `${url}/checkout`)).json() as { holder: unknown }).holder, null);
    },
  );

  await t.test('scopes and roles apply: an app outside the path is refused, its own path works', async () => {
    const other = await appToken(a, 'other-app', 'ops/prod');
    assert.equal((await a.call('POST', `${url}/checkout`, {}, other)).statusCode, 403);
    const mine = await appToken(a, 'dev-app', 'ops/dev');
    const r = await a.call('POST', `${url}/checkout`, { ttl: '1m' }, mine);
    assert.equal(r.statusCode, 200, r.body);
    // another caller cannot check in someone else's check-out
    const c = r.json() as Checkout;
    assert.equal((await a.call('POST', `${url}/checkin`, { lease_id: c.lease_id }, other)).statusCode, 403);
    assert.equal((await a.call('POST', `${url}/checkin`, { lease_id: c.lease_id })).statusCode, 404);
    assert.equal((await a.call('POST', `${url}/checkin`, { lease_id: c.lease_id }, mine)).statusCode, 200);
  });
});

test('one holder cannot fill the lease store: past its quota it is refused with 429, and a revoke frees a place', async (t) => {
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 0, max_per_holder: 3 } });
  await a.call('POST', '/v1/projects', { name: 'ops', environments: ['dev'] });
  await a.call('PUT', '/v1/secrets/ops/dev/K', { value: 'v' });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await a.call('POST', '/v1/secrets/ops/dev/K/checkout', { ttl: '1h' });
    assert.equal(r.statusCode, 200, r.body);
    ids.push((r.json() as Checkout).lease_id);
  }
  const over = await a.call('POST', '/v1/secrets/ops/dev/K/checkout', { ttl: '1h' });
  assert.equal(over.statusCode, 429, over.body);
  assert.match(over.body, /hold 3 leases/);
  // another holder is not affected
  const other = await a.call('POST', '/v1/auth/token/create', { ttl: '1h', policies: ['admin'] });
  const token = (other.json() as { auth: { client_token: string } }).auth.client_token;
  assert.equal((await a.call('POST', '/v1/secrets/ops/dev/K/checkout', {}, token)).statusCode, 200);
  await a.call('POST', '/v1/secrets/ops/dev/K/checkin', { lease_id: ids[0] });
  assert.equal((await a.call('POST', '/v1/secrets/ops/dev/K/checkout', { ttl: '1h' })).statusCode, 200);
});

test('a check-out is a read: a policy that forbids reading the secret forbids checking it out', async (t) => {
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 0 } });
  await a.call('POST', '/v1/projects', { name: 'ops', environments: ['dev'] });
  await a.call('PUT', '/v1/secrets/ops/dev/K', { value: 'kept-from-apps' });
  const put = await a.call('PUT', '/v1/sys/policies/no-k', {
    policy:
      'forbid (principal in Strongroom::Role::"app", action == Strongroom::Action::"secret.read", resource == Strongroom::Secret::"ops/dev/K");',
  });
  assert.equal(put.statusCode, 200, put.body);
  const app = await appToken(a, 'reader-app', 'ops/dev');
  assert.equal((await a.call('GET', '/v1/secrets/ops/dev/K', undefined, app)).statusCode, 403);
  const r = await a.call('POST', '/v1/secrets/ops/dev/K/checkout', {}, app);
  assert.equal(r.statusCode, 403, r.body);
  assert.ok(!r.body.includes('kept-from-apps'));
});
