import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { manualClock } from '../../src/lib/clock.ts';
import { buildTestApp, type TestApp, tempDir } from '../helpers/app.ts';

/**
 * The usage, rotation-status, stale-report and audit-query answers (and the
 * rotate and export answers) go through their response schemas, which cut
 * any field a schema does not name. Each answer here is compared with what
 * its handler returns when the core is asked directly (for the audit query:
 * with the lines of the audit file), on a vault where every branch has
 * something to show (nulls and non-nulls, every grouping, a failed rotation,
 * pending and superseded keys); and each answer is checked to name every
 * field the handlers returned before the schemas existed.
 */

const T0 = Date.UTC(2026, 0, 1, 9, 0, 0);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type Json = Record<string, unknown>;

function ok(res: LightMyRequestResponse, status = 200): Json {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as Json;
}

const keys = (o: unknown) => Object.keys(o as Json).sort();
const sorted = (k: string[]) => [...k].sort();

/** The handler's own result, as JSON would carry it (undefined members dropped). */
async function direct(a: TestApp, operation: string, input: Json): Promise<Json> {
  const raw = await a.core.invoke(operation, input, {
    request_id: `direct-${operation}-${Math.random()}`,
    client_address: '127.0.0.1',
    token: a.rootToken,
  });
  return JSON.parse(JSON.stringify(raw)) as Json;
}

interface Fixture {
  a: TestApp;
  clock: ReturnType<typeof manualClock>;
  auditPath: string;
  rotateAnswer: Json;
}

/**
 * llm/dev holds ROTATED (rotation with an adapter whose admin key is missing,
 * rotated twice by the operator, then failed), EXPIRING (provider, expiry,
 * no rotation) and UNREAD (never read); ROTATED and EXPIRING are read.
 */
async function fixture(t: TestContext): Promise<Fixture> {
  const clock = manualClock(T0);
  const auditPath = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, {
    clock,
    audit: [{ file: { path: auditPath } }],
    rotation: { interval_seconds: 0 },
  });
  ok(await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev'] }), 201);
  ok(
    await a.call('PUT', '/v1/secrets/llm/dev/ROTATED', {
      value: 'first-value',
      owner: 'team-a',
      rotation: {
        interval: '30d',
        grace: '1h',
        adapter: 'openai',
        options: { project_id: 'proj_wire', admin_secret: 'ADMIN_KEY' },
      },
    }),
  );
  ok(
    await a.call('PUT', '/v1/secrets/llm/dev/EXPIRING', {
      value: 'sk-proj-wire-check-0123456789abcdef',
      provider: 'openai',
      tags: ['billing'],
      metadata: { team: 'a' },
      expires_at: new Date(T0 + DAY).toISOString(),
      force: true,
    }),
  );
  ok(await a.call('PUT', '/v1/secrets/llm/dev/UNREAD', { value: 'nobody-reads-this' }));
  for (const name of ['ROTATED', 'ROTATED', 'EXPIRING'])
    ok(await a.call('GET', `/v1/secrets/llm/dev/${name}`));

  // v2 by the operator; past its grace v1 is superseded; v3; then a failed rotation (no admin key)
  const rotateAnswer = ok(
    await a.call('POST', '/v1/secrets/llm/dev/ROTATED/rotate', { value: 'second-value' }),
  );
  clock.advance(2 * HOUR);
  const tick = await a.vault.rotation.tick();
  assert.deepEqual(tick.revoked, ['llm/dev/ROTATED@1']);
  ok(await a.call('POST', '/v1/secrets/llm/dev/ROTATED/rotate', { value: 'third-value' }));
  const failed = await a.call('POST', '/v1/secrets/llm/dev/ROTATED/rotate', {});
  assert.ok(failed.statusCode >= 400, failed.body);
  ok(await a.call('GET', '/v1/secrets/llm/dev/EXPIRING'));
  return { a, clock, auditPath, rotateAnswer };
}

test('the rotate and rotation-status answers carry every field their handlers return', async (t) => {
  const { a, rotateAnswer } = await fixture(t);
  assert.deepEqual(keys(rotateAnswer), [
    'adapter',
    'created_at',
    'minted_by',
    'name',
    'old_key_valid_until',
    'previous_version',
    'source',
    'version',
  ]);
  assert.equal(rotateAnswer.minted_by, 'operator');
  assert.equal(rotateAnswer.adapter, null);

  const input = { project: 'llm', env: 'dev', name: 'ROTATED' };
  const status = ok(await a.call('GET', '/v1/secrets/llm/dev/ROTATED/rotation'));
  assert.deepEqual(status, await direct(a, 'secret.rotation-status', input));
  assert.deepEqual(keys(status), [
    'consecutive_failures',
    'current_version',
    'last_rotated_at',
    'last_rotation_error',
    'name',
    'next_rotation_at',
    'pending_revocations',
    'rotation',
    'superseded',
  ]);
  assert.deepEqual(status.rotation, {
    interval: 30 * 86400,
    grace: 3600,
    adapter: 'openai',
    options: { project_id: 'proj_wire', admin_secret: 'ADMIN_KEY' },
  });
  assert.equal(status.current_version, 3);
  assert.equal(status.consecutive_failures, 1);
  assert.equal(typeof status.last_rotation_error, 'string');
  const pending = status.pending_revocations as Json[];
  assert.equal(pending.length, 1);
  assert.deepEqual(
    keys(pending[0]),
    sorted(['version', 'revoke_at', 'deletes_provider_key', 'attempts', 'last_error']),
  );
  const superseded = status.superseded as Json[];
  assert.deepEqual(superseded, [
    { version: 1, at: new Date(T0 + 2 * HOUR).toISOString(), provider_key_deleted: false },
  ]);

  // a secret without rotation: the nulls
  const plain = ok(await a.call('GET', '/v1/secrets/llm/dev/UNREAD/rotation'));
  assert.deepEqual(plain, await direct(a, 'secret.rotation-status', { ...input, name: 'UNREAD' }));
  assert.equal(plain.rotation, null);
  assert.equal(plain.next_rotation_at, null);
  assert.deepEqual(keys(plain), keys(status));
});

test('the usage answers carry every field their handlers return, in every grouping', async (t) => {
  const { a } = await fixture(t);
  const env = { project: 'llm', env: 'dev', since: '1d' };
  const actorKeys = ['actor', 'type', 'id', 'display_name'];
  const cases: { url: string; op: string; input: Json; row: string[]; nested: Record<string, string[]> }[] = [
    {
      url: '/v1/usage/llm/dev?since=1d',
      op: 'usage.query',
      input: env,
      row: ['name', 'count', 'last_read_at', 'actors'],
      nested: { actors: [...actorKeys, 'count', 'last_read_at'] },
    },
    {
      url: '/v1/usage/llm/dev?since=1d&by=actor',
      op: 'usage.query',
      input: { ...env, by: 'actor' },
      row: [...actorKeys, 'count', 'last_read_at', 'secrets'],
      nested: { secrets: ['name', 'count', 'last_read_at'] },
    },
    {
      url: '/v1/usage/llm/dev?since=1d&by=hour',
      op: 'usage.query',
      input: { ...env, by: 'hour' },
      row: ['hour', 'count', 'actors', 'secrets'],
      nested: { actors: [...actorKeys, 'count'], secrets: ['name', 'count'] },
    },
    {
      url: '/v1/usage/llm/dev/ROTATED?since=1d',
      op: 'usage.secret',
      input: { ...env, name: 'ROTATED' },
      row: [...actorKeys, 'count', 'last_read_at', 'secrets'],
      nested: { secrets: ['name', 'count', 'last_read_at'] },
    },
  ];
  for (const c of cases) {
    const r = ok(await a.call('GET', c.url));
    assert.deepEqual(r, await direct(a, c.op, c.input), c.url);
    assert.deepEqual(
      keys(r),
      sorted(['project', 'env', 'name', 'since', 'until', 'by', 'recording', 'total', 'rows']),
      c.url,
    );
    const rows = r.rows as Json[];
    assert.ok(rows.length > 0, `${c.url} has rows`);
    for (const row of rows) {
      assert.deepEqual(keys(row), sorted(c.row), c.url);
      for (const [field, inner] of Object.entries(c.nested)) {
        const items = row[field] as Json[];
        assert.ok(items.length > 0, `${c.url} ${field}`);
        for (const item of items) assert.deepEqual(keys(item), sorted(inner), `${c.url} ${field}`);
      }
    }
  }
  // hour rows: the reads of the first hour and of the third
  const hours = ok(await a.call('GET', '/v1/usage/llm/dev?since=1d&by=hour')).rows as Json[];
  assert.deepEqual(
    hours.map((h) => [h.hour, h.count]),
    [
      [new Date(T0).toISOString(), 3],
      [new Date(T0 + 2 * HOUR).toISOString(), 1],
    ],
  );
});

test('the unused and stale answers carry every field their handlers return', async (t) => {
  const f = await fixture(t);
  const { a } = f;
  f.clock.advance(40 * DAY);

  // 40 days later: two secrets last read on day one, one never read
  const unused = ok(await a.call('GET', '/v1/usage/llm/dev/unused?days=30'));
  assert.deepEqual(unused, await direct(a, 'usage.unused', { project: 'llm', env: 'dev', days: 30 }));
  assert.deepEqual(keys(unused), sorted(['project', 'env', 'days', 'cutoff', 'recording', 'secrets']));
  const secrets = unused.secrets as Json[];
  assert.deepEqual(
    secrets.map((s) => s.name),
    ['EXPIRING', 'ROTATED', 'UNREAD'],
  );
  for (const s of secrets)
    assert.deepEqual(keys(s), sorted(['name', 'created_at', 'last_read_at', 'provider', 'owner']));
  const byName = new Map(secrets.map((s) => [s.name, s]));
  assert.equal(byName.get('UNREAD')?.last_read_at, null);
  assert.equal(byName.get('ROTATED')?.owner, 'team-a');
  assert.equal(byName.get('EXPIRING')?.provider, 'openai');

  const q = { within: '7d', unrotated_after: '1d' };
  const stale = ok(await a.call('GET', '/v1/reports/stale?within=7d&unrotated_after=1d'));
  assert.deepEqual(stale, await direct(a, 'secret.stale', q));
  assert.deepEqual(keys(stale), sorted(['generated_at', 'within', 'unrotated_after', 'secrets']));
  const rows = stale.secrets as Json[];
  const rowKeys = sorted([
    'address',
    'project',
    'env',
    'name',
    'provider',
    'owner',
    'reasons',
    'rotation_interval',
    'last_rotated_at',
    'value_set_at',
    'rotation_due_at',
    'expires_at',
    'days_overdue',
    'last_rotation_error',
  ]);
  for (const r of rows) assert.deepEqual(keys(r), rowKeys);
  const reasons = Object.fromEntries(rows.map((r) => [r.name, r.reasons]));
  assert.deepEqual(reasons, {
    EXPIRING: ['expired', 'never_rotated'],
    ROTATED: ['rotation_overdue', 'rotation_failed'],
    UNREAD: ['never_rotated'],
  });
  const rotated = rows.find((r) => r.name === 'ROTATED')!;
  assert.equal(rotated.rotation_interval, '30d');
  assert.equal(typeof rotated.last_rotation_error, 'string');
  assert.equal(typeof rotated.last_rotated_at, 'string');

  // the export (both operations answer with one schema)
  for (const values of [false, true]) {
    const url = `/v1/secrets/llm/dev/export${values ? '?values=true' : ''}`;
    const exported = ok(await a.call('GET', url));
    const op = values ? 'secret.export' : 'secret.export-metadata';
    assert.deepEqual(
      { ...exported, exported_at: undefined },
      { ...(await direct(a, op, { project: 'llm', env: 'dev' })), exported_at: undefined },
      url,
    );
    const fields = [
      'name',
      'version',
      'updated_at',
      'provider',
      'owner',
      'expires_at',
      'rotation',
      'tags',
      'metadata',
    ];
    for (const s of exported.secrets as Json[])
      assert.deepEqual(keys(s), sorted(values ? [...fields, 'value'] : fields), url);
  }
});

test('the audit query answers each entry as the file holds it, every field kept', async (t) => {
  const { a, auditPath } = await fixture(t);
  // a line with fields this server's schema does not name (as a newer server may write): readers ignore
  // fields they do not know (docs/audit.md), so the query passes them on rather than cut them
  const last = readFileSync(auditPath, 'utf8').trim().split('\n').at(-1)!;
  const newer = {
    ...(JSON.parse(last) as Json),
    seq: (JSON.parse(last) as { seq: number }).seq + 1,
    type: 'request',
    request_id: 'from-a-newer-server',
    actor: { type: 'user', id: 'u1', display_name: 'someone', tenant: 'blue' },
    shard: 7,
  };
  appendFileSync(auditPath, `${JSON.stringify(newer)}\n`);
  const answer = ok(await a.call('GET', '/v1/audit?limit=1000'));
  assert.deepEqual(keys(answer), ['entries', 'more', 'partial']);
  const lines = new Map(
    readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Json)
      .map((l) => [l.seq, l]),
  );
  const entries = answer.entries as Json[];
  assert.ok(entries.length > 20, `${entries.length} entries`);
  for (const e of entries) assert.deepEqual(e, lines.get(e.seq), `entry seq ${e.seq}`);
  assert.ok(entries.some((e) => e.request_id === 'from-a-newer-server' && e.shard === 7));
  // every kind of entry is among them: a public request (no actor), the scheduler's, a denied or failed response
  assert.ok(entries.some((e) => e.actor === null));
  assert.ok(entries.some((e) => (e.actor as Json | null)?.type === 'system'));
  assert.ok(entries.some((e) => e.error_code !== undefined && e.status === 'error'));
  assert.ok(entries.some((e) => e.decision !== undefined && e.request !== undefined));
  assert.ok(entries.some((e) => typeof e.trace_id === 'string'));

  const hash = ok(await a.call('POST', '/v1/sys/audit-hash', { input: 'x' }));
  assert.deepEqual(keys(hash), ['hash']);
});
