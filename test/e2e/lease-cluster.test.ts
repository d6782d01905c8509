import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { assembleVault, type Vault } from '../../src/assemble/vault.ts';
import type { RequestInfo } from '../../src/contract/operation.ts';
import { manualClock, systemClock } from '../../src/lib/clock.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { staticKeyFile } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';

const url = await postgresTestUrl();
const N = 20;

/** Revocations a server made, by outcome, from its own metrics. */
function revoked(v: Vault): number {
  let n = 0;
  for (const m of v.core.metrics
    .render()
    .matchAll(/^strongroom_lease_revocations_total\{([^}]*)\} (\d+)/gm)) {
    if (m[1]!.includes('outcome="revoked"')) n += Number(m[2]);
  }
  return n;
}

async function twoServers(t: TestContext) {
  const table = await uniqueTable(url!, t);
  const s1 = await createPostgresStorage({ url: url!, table });
  const s2 = await createPostgresStorage({ url: url!, table });
  const keyFile = staticKeyFile(t);
  const mk = (storage: typeof s1, holder: string) =>
    assembleVault({
      storage,
      seal: { static: { key_file: keyFile } },
      clock: systemClock,
      audit: [],
      leases: { sweep_interval_ms: 100, holder_id: holder },
    });
  const v1 = mk(s1, 'one');
  await v1.core.start();
  const init = await v1.core.invoke<{ root_token: string }>(
    'sys.init',
    {},
    { request_id: 'i', client_address: '127.0.0.1' },
  );
  const v2 = mk(s2, 'two');
  await v2.core.start();
  const closed = new Set<Vault>();
  t.after(async () => {
    for (const v of [v1, v2]) if (!closed.has(v)) await v.close();
    await s1.close();
    await s2.close();
  });
  return { v1, v2, root: init.root_token, closed };
}

test('two servers on one PostgreSQL: leases expire once, by one sweeper; when it stops the other takes over', {
  skip: url ? false : postgresSkipReason(),
  timeout: 60_000,
}, async (t) => {
  const { v1, v2, root, closed } = await twoServers(t);
  const req = (n: number): RequestInfo => ({ request_id: `r${n}`, client_address: '127.0.0.1', token: root });
  await v1.core.invoke('project.create', { name: 'ops', environments: ['dev'] }, req(0));
  await v1.core.invoke('secret.write', { project: 'ops', env: 'dev', name: 'SA', value: 'shared' }, req(1));
  const issue = async (v: Vault, n: number) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await v.core.invoke<{ lease_id: string }>(
        'secret.checkout',
        { project: 'ops', env: 'dev', name: 'SA', ttl: 1 },
        req(100 + i),
      );
      ids.push(r.lease_id);
    }
    return ids;
  };
  // half through each server
  const ids = [...(await issue(v1, N / 2)), ...(await issue(v2, N / 2))];
  await until(
    'every lease expired',
    async () => (await Promise.all(ids.map((id) => v2.leases.get(id)))).every((l) => l === undefined),
    10_000,
  );
  const [r1, r2] = [revoked(v1), revoked(v2)];
  assert.equal(r1 + r2, N, `each lease revoked exactly once (${r1} + ${r2})`);
  assert.ok(r1 === 0 || r2 === 0, `one sweeper did it all (${r1} and ${r2})`);

  // the sweeper stops (its server shuts down): the other one ends the next leases
  const [holder, other] = r1 > 0 ? [v1, v2] : [v2, v1];
  await holder.close();
  closed.add(holder);
  const more = await issue(other, 5);
  await until(
    'the other server expires the new leases',
    async () => (await Promise.all(more.map((id) => other.leases.get(id)))).every((l) => l === undefined),
    10_000,
  );
  assert.equal(revoked(other), (other === v1 ? r1 : r2) + 5);
});

test('a clock that steps back strands no lease: one issued in a minute the sweeper has passed still ends', {
  skip: url ? false : postgresSkipReason(),
}, async (t) => {
  const table = await uniqueTable(url!, t);
  const storage = await createPostgresStorage({ url: url!, table });
  const clock = manualClock(Date.now());
  const v = assembleVault({
    storage,
    seal: { static: { key_file: staticKeyFile(t) } },
    clock,
    audit: [],
    leases: { sweep_interval_ms: 0, holder_id: 'one' },
  });
  await v.core.start();
  t.after(async () => {
    await v.close();
    await storage.close();
  });
  const init = await v.core.invoke<{ root_token: string }>(
    'sys.init',
    {},
    { request_id: 'i', client_address: '127.0.0.1' },
  );
  const req = (n: number): RequestInfo => ({
    request_id: `r${n}`,
    client_address: '127.0.0.1',
    token: init.root_token,
  });
  await v.core.invoke('project.create', { name: 'ops', environments: ['dev'] }, req(0));
  await v.core.invoke('secret.write', { project: 'ops', env: 'dev', name: 'SA', value: 'shared' }, req(1));
  await v.leases.sweep();
  clock.advance(5 * 60_000);
  await v.leases.sweep(); // the sweeper's cursor moves 5 minutes on
  clock.advance(-4 * 60_000); // and the clock is corrected 4 minutes back (as NTP may, or a server behind)
  const r = await v.core.invoke<{ lease_id: string }>(
    'secret.checkout',
    { project: 'ops', env: 'dev', name: 'SA', ttl: 30 },
    req(2),
  );
  for (let i = 0; i < 3; i++) {
    clock.advance(60_000);
    await v.leases.sweep();
  }
  assert.equal(await v.leases.get(r.lease_id), undefined, 'the lease ended');
});
