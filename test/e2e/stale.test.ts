import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { StaleReport } from '../../src/api/hygiene.ts';
import { runCli } from '../../src/cli/program.ts';
import { SECRETS_MOUNT } from '../../src/engines/kv/kv.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

/**
 * The stale report (issue 4, item 4): secrets past their rotation interval,
 * expiring or expired, never rotated, or whose last rotation failed, with
 * the right reasons and dates, filtered by the caller's scope and policies.
 */
const DAY = 86_400_000;
const START = Date.UTC(2026, 0, 1);

async function fleet(t: TestContext) {
  const clock = manualClock(START);
  const a = await buildTestApp(t, { clock });
  assert.equal(
    (await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev', 'prod'] })).statusCode,
    201,
  );
  const put = async (env: string, name: string, body: Record<string, unknown>) => {
    const res = await a.call('PUT', `/v1/secrets/llm/${env}/${name}`, { value: 'v', ...body });
    assert.equal(res.statusCode, 200, res.body);
  };
  // day 0
  await put('prod', 'OVERDUE', { rotation: { interval: '30d' }, owner: 'platform' });
  await put('prod', 'ROTATES_SOON', { rotation: { interval: '100d' } });
  await put('prod', 'FRESH_ROTATING', { rotation: { interval: '365d' } });
  await put('prod', 'EXPIRES_SOON', {
    rotation: { interval: '365d' },
    expires_at: new Date(START + 103 * DAY).toISOString(),
  });
  await put('prod', 'EXPIRED', {
    rotation: { interval: '365d' },
    expires_at: new Date(START + 90 * DAY).toISOString(),
  });
  await put('dev', 'OLD_UNMANAGED', {});
  await put('dev', 'DELETED_OLD', {});
  // a rollback to this day-0 value (below) does not make the value young
  await put('dev', 'ROLLED_BACK', {});
  await a.call('DELETE', '/v1/secrets/llm/dev/DELETED_OLD');
  clock.advance(60 * DAY);
  await put('dev', 'RECENT_UNMANAGED', {});
  clock.advance(40 * DAY);
  // day 100
  await put('dev', 'ROLLED_BACK', { value: 'newer' });
  await a.call('POST', '/v1/secrets/llm/dev/ROLLED_BACK/rollback', { version: 1 });
  // day 100: a failed rotation recorded by the rotation module
  await put('prod', 'ROTATION_FAILED', { rotation: { interval: '365d' } });
  const store = a.core.barrier.view(SECRETS_MOUNT);
  await store.transaction(async (tx) => {
    const rec = (await tx.getJson<Record<string, unknown>>('meta/llm/prod/ROTATION_FAILED'))!;
    await tx.put(
      'meta/llm/prod/ROTATION_FAILED',
      Buffer.from(JSON.stringify({ ...rec, last_rotation_error: 'provider answered 503' })),
    );
  });
  return { a, clock };
}

async function report(a: TestApp, query = '', token?: string) {
  const res = await a.call('GET', `/v1/reports/stale${query}`, undefined, token);
  return { status: res.statusCode, body: res.json() as StaleReport & { error?: { code: string } } };
}

test('secrets past their interval, coming due, expiring, expired, never rotated and failed are listed with the right reasons', async (t) => {
  const { a } = await fleet(t);
  const { status, body } = await report(a, '?within=7d');
  assert.equal(status, 200);
  assert.equal(body.generated_at, new Date(START + 100 * DAY).toISOString());
  const rows = Object.fromEntries(body.secrets.map((s) => [s.name, s]));
  assert.deepEqual(Object.fromEntries(body.secrets.map((s) => [s.address, s.reasons])), {
    'llm/prod/OVERDUE': ['rotation_overdue'],
    'llm/prod/ROTATES_SOON': ['rotation_due'],
    'llm/prod/EXPIRES_SOON': ['expiring'],
    'llm/prod/EXPIRED': ['expired'],
    'llm/dev/OLD_UNMANAGED': ['never_rotated'],
    'llm/dev/ROLLED_BACK': ['never_rotated'],
    'llm/prod/ROTATION_FAILED': ['rotation_failed'],
  });
  assert.equal(rows.OVERDUE!.days_overdue, 70);
  assert.equal(rows.OVERDUE!.owner, 'platform');
  assert.equal(rows.OVERDUE!.rotation_due_at, new Date(START + 30 * DAY).toISOString());
  assert.equal(rows.OVERDUE!.rotation_interval, '30d');
  assert.equal(rows.EXPIRED!.days_overdue, 10);
  assert.equal(rows.EXPIRES_SOON!.days_overdue, 0);
  assert.equal(rows.OLD_UNMANAGED!.days_overdue, 10);
  assert.equal(rows.ROLLED_BACK!.value_set_at, new Date(START).toISOString());
  assert.equal(rows.ROTATION_FAILED!.last_rotation_error, 'provider answered 503');
  // most overdue first
  assert.equal(body.secrets[0]!.name, 'OVERDUE');

  // the window and the threshold are parameters
  const wide = await report(a, '?within=30d&unrotated_after=30d');
  const names = wide.body.secrets.map((s) => s.name).sort();
  assert.ok(names.includes('RECENT_UNMANAGED'), 'a 40-day-old value is stale after 30d');
  assert.deepEqual(wide.body.secrets.find((s) => s.name === 'EXPIRES_SOON')!.reasons, ['expiring']);

  const dev = await report(a, '?project=llm&env=dev');
  assert.deepEqual(dev.body.secrets.map((s) => s.name).sort(), ['OLD_UNMANAGED', 'ROLLED_BACK']);
});

test('the report is filtered per secret by scope and policy, and needs secret.report', async (t) => {
  const { a } = await fleet(t);
  const mint = async (body: Record<string, unknown>) =>
    (
      (await a.call('POST', '/v1/auth/token/create', { ttl: '1h', ...body })).json() as {
        auth: { client_token: string };
      }
    ).auth.client_token;
  const scoped = await mint({ roles: ['admin'], scope: { paths: ['llm/dev'] } });
  const all = await report(a, '', scoped);
  assert.equal(all.status, 200);
  assert.deepEqual(
    all.body.secrets.map((s) => s.env),
    ['dev', 'dev'],
  );
  assert.equal((await report(a, '?project=llm&env=prod', scoped)).status, 403);

  // developers and auditors read metadata (the report among it); a role without secret.report may not
  const app = await mint({ roles: ['app'], scope: { paths: ['llm'] } });
  const denied = await report(a, '', app);
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error?.code, 'permission_denied');

  assert.equal((await report(a, '?env=dev')).status, 400);
  assert.equal((await report(a, '?within=soon')).status, 400);
  assert.equal((await report(a, '?project=nope')).status, 404);
});

test('`strongroom secret stale` prints a table and JSON and exits 0', async (t) => {
  const { a } = await fleet(t);
  await a.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (a.app.server.address() as { port: number }).port;
  const run = async (args: string[]) => {
    let stdout = '';
    let stderr = '';
    const io = {
      stdout: {
        write: (s: string) => {
          stdout += s;
          return true;
        },
      } as never,
      stderr: {
        write: (s: string) => {
          stderr += s;
          return true;
        },
      } as never,
      stdin: process.stdin,
      env: { STRONGROOM_ADDR: `http://127.0.0.1:${port}`, STRONGROOM_TOKEN: a.rootToken },
      cwd: process.cwd(),
    };
    const code = await runCli(args, io, async () => {});
    return { code, stdout, stderr };
  };
  const table = await run(['secret', 'stale', 'llm/prod']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^SECRET\s+PROVIDER\s+OWNER\s+REASONS/);
  assert.match(table.stdout, /llm\/prod\/OVERDUE\s+-\s+platform\s+rotation_overdue\s+2026-01-31\s+-\s+70/);
  assert.match(table.stdout, /rotation_failed \(provider answered 503\)/);
  const json = await run(['--format', 'json', 'secret', 'stale', '--within', '30d']);
  assert.equal(json.code, 0, json.stderr);
  assert.equal((JSON.parse(json.stdout) as StaleReport).within, '30d');
  const bad = await run(['secret', 'stale', 'a/b/c']);
  assert.equal(bad.code, 2);
});
