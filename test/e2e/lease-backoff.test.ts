import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tenantDb } from '../fixtures/pg-tenants.ts';
import { buildTestApp } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';

const url = await postgresTestUrl();
const LEASES = 30;

test('a database that is down: its expired leases wait with backoff (no storm), other engines’ leases still end on time, and all end when it is back', {
  skip: url ? false : postgresSkipReason(),
  timeout: 60_000,
}, async (t) => {
  const db = await tenantDb(t, url!);
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 100 } });
  const connection = (connection_url: string) =>
    a.call('POST', '/v1/database/config/docs', {
      plugin: 'postgresql',
      connection_url,
      username: 'postgres',
      password: 'unused-with-trust-auth',
      allowed_roles: ['short'],
      verify_connection: false,
    });
  const cfg = await connection(db.adminUrl);
  assert.equal(cfg.statusCode, 200, cfg.body);
  const prefix = (cfg.json() as { role_prefix: string }).role_prefix;
  t.after(() => db.dropRoles(prefix));
  await a.call('POST', '/v1/database/roles/short', {
    db_name: 'docs',
    creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}}'],
    default_ttl: 2,
    max_ttl: 2,
  });
  await a.call('POST', '/v1/projects', { name: 'ops', environments: ['dev'] });
  await a.call('PUT', '/v1/secrets/ops/dev/SA', { value: 'shared' });
  for (let i = 0; i < LEASES; i++) {
    assert.equal((await a.call('POST', '/v1/database/creds/short', {})).statusCode, 200);
  }
  assert.equal((await db.roles(prefix)).length, LEASES);
  const checkout = (
    await a.call('POST', '/v1/secrets/ops/dev/SA/checkout', { ttl: 2, exclusive: true })
  ).json() as {
    lease_id: string;
  };
  // the database goes away before the leases end
  assert.equal((await connection('postgres://127.0.0.1:1/down')).statusCode, 200);
  const failedBefore = failures(await a.call('GET', '/v1/sys/metrics').then((r) => r.body));
  await sleep(3_500);
  // the check-out's lease ended on time: its engine is not held up by the database's
  assert.equal(
    (await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: checkout.lease_id })).statusCode,
    404,
  );
  assert.equal(
    ((await a.call('GET', '/v1/secrets/ops/dev/SA/checkout')).json() as { holder: unknown }).holder,
    null,
  );
  // the database's leases wait; the backend was asked a few times, not once per lease per pass
  const failed = failures(await a.call('GET', '/v1/sys/metrics').then((r) => r.body)) - failedBefore;
  assert.ok(failed >= 1 && failed <= 6, `${failed} failed revocations for ${LEASES} expired leases`);
  const pending = (await a.call('GET', '/v1/sys/leases?prefix=database/creds/short/&limit=1000')).json() as {
    leases: unknown[];
  };
  assert.equal(pending.leases.length, LEASES);
  assert.equal((await db.roles(prefix)).length, LEASES);
  // back: every role ends, in bounded passes
  assert.equal((await connection(db.adminUrl)).statusCode, 200);
  await until(
    'every expired role is dropped once the database is back',
    async () => (await db.roles(prefix)).length === 0,
    20_000,
  );
  const left = (await a.call('GET', '/v1/sys/leases?prefix=database/creds/short/')).json() as {
    leases: unknown[];
  };
  assert.equal(left.leases.length, 0);
});

/** strongroom_lease_revocations_total{outcome="failed"}, summed over engines and reasons. */
function failures(metrics: string): number {
  let n = 0;
  for (const m of metrics.matchAll(/^strongroom_lease_revocations_total\{([^}]*)\} (\d+)/gm)) {
    if (m[1]!.includes('outcome="failed"')) n += Number(m[2]);
  }
  return n;
}
