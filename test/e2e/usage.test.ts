import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type {
  UnusedResponse,
  UsageByActorRow,
  UsageByHourRow,
  UsageBySecretRow,
  UsageResponse,
} from '../../src/api/usage.ts';
import type { AuthResponse } from '../../src/api/v1.ts';
import { assembleVault, type Vault } from '../../src/assemble/vault.ts';
import type { ServerConfig } from '../../src/config/config.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { buildServer } from '../../src/server/app.ts';
import { createLogger } from '../../src/server/logger.ts';
import { vaultRoutes } from '../../src/server/routes/vault-routes.ts';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';
import { staticKeyFile } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';

/**
 * Usage analytics (issue 4 item 6, "Must show"): after a known workload by
 * three actors (an app, a user and a standalone child token) over two hours
 * of a manual clock, the counts per actor, secret and hour and the last reads
 * are exactly right before a flush, after it and after a restart; `unused`
 * lists exactly the unread secrets; who may see usage is enforced; and no
 * value is ever stored in a usage record.
 */

const T0 = Date.UTC(2026, 0, 1, 9, 0, 0);
const DAY = 86_400_000;
const HOUR = 3_600_000;

interface Server {
  vault: Vault;
  call(
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    token?: string,
  ): Promise<LightMyRequestResponse>;
  inject(o: InjectOptions): Promise<LightMyRequestResponse>;
  rootToken(): string;
  /** Closes the HTTP adapter and the vault (which flushes pending usage counts). */
  stop(): Promise<void>;
}

/** A server whose vault the test holds (to flush, and to restart on the same storage). */
async function start(
  t: TestContext,
  o: { storage: StorageBackend; keyFile: string; clock: ReturnType<typeof manualClock>; rootToken?: string },
): Promise<Server> {
  const vault = assembleVault({
    storage: o.storage,
    seal: { static: { key_file: o.keyFile } },
    clock: o.clock,
    audit: [],
    // the workload spans two hours of the manual clock
    auth: { user_token_ttl: 6 * 3600 },
    usage: { flush_interval: 3600 },
  });
  await vault.core.start();
  const config = Object.freeze({
    listen: '127.0.0.1:0',
    storage: { memory: {} },
    seal: { static: { key_file: o.keyFile } },
    allow_insecure_http: false,
    max_request_bytes: 1024 * 1024,
    log_level: 'silent',
    dev: false,
    rate_limit: { requests_per_second: 0, burst: 1 },
  }) as ServerConfig;
  const app = await buildServer({
    config,
    core: vault.core,
    logger: createLogger('silent'),
    routes: [...vaultRoutes],
  });
  await app.ready();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await app.close();
    await vault.close();
  };
  t.after(stop);
  let root = o.rootToken ?? '';
  const s: Server = {
    vault,
    inject: (x) => app.inject(x),
    rootToken: () => root,
    call: (method, url, body, token) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token ?? root}` },
        ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
      }),
    stop,
  };
  if (!o.rootToken) {
    const res = await app.inject({ method: 'POST', url: '/v1/sys/init', payload: {} });
    assert.equal(res.statusCode, 200, res.body);
    root = (res.json() as { root_token: string }).root_token;
  }
  return s;
}

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

let address = 0;
const freshAddress = () => `10.9.${(address >> 8) & 255}.${address++ & 255}`;

/** The known workload's vault: actors, secrets (values are canaries) and a log of every read. */
async function setup(t: TestContext, storage: StorageBackend = createMemoryStorage()) {
  const clock = manualClock(T0);
  const keyFile = staticKeyFile(t);
  const s = await start(t, { storage, keyFile, clock });
  const rootRes = await s.call('GET', '/v1/auth/token/lookup-self');
  assert.equal(rootRes.statusCode, 200);
  ok(await s.call('POST', '/v1/projects', { name: 'llm', environments: ['dev', 'prod'] }), 201);
  const canary = `canary-${randomBytes(12).toString('hex')}`;
  const values: string[] = [];
  const put = async (env: string, name: string) => {
    const value = `${canary}-${name}`;
    values.push(value);
    ok(await s.call('PUT', `/v1/secrets/llm/${env}/${name}`, { value }));
  };
  // created at T0: OLD_KEY is never read; STALE_KEY is read only now, 40 days before the workload
  for (const n of [
    'OPENAI_API_KEY',
    'ANTHROPIC_API_KEY',
    'MISTRAL_API_KEY',
    'OLD_KEY',
    'STALE_KEY',
    'GONE_KEY',
  ])
    await put('dev', n);
  await put('prod', 'OPENAI_API_KEY');
  ok(await s.call('GET', '/v1/secrets/llm/dev/STALE_KEY'));
  ok(await s.call('DELETE', '/v1/secrets/llm/dev/GONE_KEY'));
  // 40 days later: the actors appear (their tokens are short-lived)
  clock.set(T0 + 40 * DAY);

  // actors
  const app = ok<{ client_id: string; client_secret: string }>(
    await s.call('POST', '/v1/auth/apps', {
      name: 'chatbot',
      roles: ['app'],
      scope: { paths: ['llm/dev'] },
      token_ttl: '4h',
    }),
    201,
  );
  const appToken = ok<AuthResponse>(
    await s.inject({
      method: 'POST',
      url: '/v1/auth/app/login',
      payload: { client_id: app.client_id, client_secret: app.client_secret },
      remoteAddress: freshAddress(),
    }),
  ).auth.client_token;
  const users: Record<string, { id: string; token: string }> = {};
  for (const [username, roles] of [
    ['alice', ['developer']],
    ['audrey', ['auditor']],
  ] as const) {
    const password = `correct horse battery ${username.length}x staple`;
    const u = ok<{ user: { id: string } }>(
      await s.call('POST', '/v1/auth/users', { username, password, roles }),
      201,
    ).user;
    const token = ok<AuthResponse>(
      await s.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { username, password },
        remoteAddress: freshAddress(),
      }),
    ).auth.client_token;
    users[username] = { id: u.id, token };
  }
  const child = ok<AuthResponse>(
    await s.call('POST', '/v1/auth/token/create', {
      ttl: '90d',
      display_name: 'ci-job',
      roles: ['developer'],
    }),
  ).auth;

  const actors = {
    app: { key: `app:${app.client_id}`, token: appToken },
    user: { key: `user:${users.alice!.id}`, token: users.alice!.token },
    token: { key: `token:${child.accessor}`, token: child.client_token },
  };
  const auditor = users.audrey!.token;
  return { s, clock, keyFile, storage, canary, values, actors, auditor };
}

type Actor = 'app' | 'user' | 'token';

/**
 * The workload, 40 days after T0: hour A (09:xx) and hour B (10:xx), each
 * read at its own minute so the last reads are distinct. Also reads that fail
 * (out of scope, missing secret), which must not count.
 */
async function workload(w: Awaited<ReturnType<typeof setup>>) {
  const { s, clock, actors } = w;
  const hourA = T0 + 40 * DAY;
  const read = async (who: Actor, name: string, times: number, minute: number, hourStart: number) => {
    clock.set(hourStart + minute * 60_000);
    for (let i = 0; i < times; i++)
      ok(await s.call('GET', `/v1/secrets/llm/dev/${name}`, undefined, actors[who].token));
  };
  await read('app', 'OPENAI_API_KEY', 5, 1, hourA);
  await read('app', 'ANTHROPIC_API_KEY', 2, 2, hourA);
  await read('user', 'OPENAI_API_KEY', 3, 3, hourA);
  await read('token', 'MISTRAL_API_KEY', 1, 4, hourA);
  await read('app', 'OPENAI_API_KEY', 1, 30, hourA);
  const hourB = hourA + HOUR;
  await read('app', 'OPENAI_API_KEY', 4, 5, hourB);
  await read('user', 'ANTHROPIC_API_KEY', 2, 10, hourB);
  await read('token', 'OPENAI_API_KEY', 1, 20, hourB);
  // failures are not reads
  clock.set(hourB + 25 * 60_000);
  assert.equal(
    (await s.call('GET', '/v1/secrets/llm/prod/OPENAI_API_KEY', undefined, actors.app.token)).statusCode,
    403,
  );
  assert.equal(
    (await s.call('GET', '/v1/secrets/llm/dev/NO_SUCH_KEY', undefined, actors.user.token)).statusCode,
    404,
  );
  assert.equal(
    (await s.call('GET', '/v1/secrets/llm/dev/GONE_KEY', undefined, actors.token.token)).statusCode,
    404,
  );
  clock.set(hourB + 50 * 60_000);
  return { hourA, hourB, at: (h: number, minute: number) => new Date(h + minute * 60_000).toISOString() };
}

/** What the workload must show, by actor (since 1 day: STALE_KEY's read 40 days ago is outside). */
function expectedByActor(
  w: Awaited<ReturnType<typeof setup>>,
  at: (h: number, m: number) => string,
  hourA: number,
  hourB: number,
) {
  const { actors } = w;
  return [
    {
      actor: actors.app.key,
      count: 12,
      last_read_at: at(hourB, 5),
      secrets: [
        { name: 'OPENAI_API_KEY', count: 10, last_read_at: at(hourB, 5) },
        { name: 'ANTHROPIC_API_KEY', count: 2, last_read_at: at(hourA, 2) },
      ],
    },
    {
      actor: actors.user.key,
      count: 5,
      last_read_at: at(hourB, 10),
      secrets: [
        { name: 'OPENAI_API_KEY', count: 3, last_read_at: at(hourA, 3) },
        { name: 'ANTHROPIC_API_KEY', count: 2, last_read_at: at(hourB, 10) },
      ],
    },
    {
      actor: actors.token.key,
      count: 2,
      last_read_at: at(hourB, 20),
      secrets: [
        { name: 'MISTRAL_API_KEY', count: 1, last_read_at: at(hourA, 4) },
        { name: 'OPENAI_API_KEY', count: 1, last_read_at: at(hourB, 20) },
      ],
    },
  ];
}

const strip = (rows: UsageByActorRow[]) =>
  rows.map((r) => ({ actor: r.actor, count: r.count, last_read_at: r.last_read_at, secrets: r.secrets }));

async function usage<T = UsageResponse>(s: Server, path: string, token?: string): Promise<T> {
  return ok<T>(await s.call('GET', path, undefined, token));
}

test('counts per actor, secret and hour and the last reads are exact before a flush, after it and after a restart', async (t) => {
  const w = await setup(t);
  const { hourA, hourB, at } = await workload(w);
  const want = expectedByActor(w, at, hourA, hourB);

  const check = async (s: Server, extra = 0) => {
    const byActor = await usage(s, '/v1/usage/llm/dev?since=1d&by=actor');
    assert.equal(byActor.by, 'actor');
    assert.equal(byActor.total, 19 + extra);
    const rows = byActor.rows as UsageByActorRow[];
    const expected = structuredClone(want);
    if (extra) {
      expected[2]!.count += extra;
      expected[2]!.secrets[0]!.count += extra;
      expected[2]!.secrets[0]!.last_read_at = at(hourB, 50);
      expected[2]!.last_read_at = at(hourB, 50);
    }
    assert.deepEqual(strip(rows), expected);
    // types and display names
    assert.deepEqual(
      rows.map((r) => [r.type, r.display_name]),
      [
        ['app', 'chatbot'],
        ['user', 'alice'],
        ['token', 'ci-job'],
      ],
    );

    const bySecret = (await usage(s, '/v1/usage/llm/dev?since=1d')).rows as UsageBySecretRow[];
    assert.deepEqual(
      bySecret.map((r) => [r.name, r.count, r.last_read_at, r.actors.map((a) => [a.actor, a.count])]),
      [
        [
          'OPENAI_API_KEY',
          14,
          at(hourB, 20),
          [
            [w.actors.app.key, 10],
            [w.actors.user.key, 3],
            [w.actors.token.key, 1],
          ],
        ],
        [
          'ANTHROPIC_API_KEY',
          4,
          at(hourB, 10),
          [
            [w.actors.app.key, 2],
            [w.actors.user.key, 2],
          ],
        ],
        [
          'MISTRAL_API_KEY',
          1 + extra,
          extra ? at(hourB, 50) : at(hourA, 4),
          [[w.actors.token.key, 1 + extra]],
        ],
      ].sort((a, b) => (b[1] as number) - (a[1] as number)),
    );

    const byHour = (await usage(s, '/v1/usage/llm/dev?since=1d&by=hour')).rows as UsageByHourRow[];
    assert.deepEqual(
      byHour.map((r) => [r.hour, r.count, r.actors.map((a) => [a.actor, a.count])]),
      [
        [
          new Date(hourA).toISOString(),
          12,
          [
            [w.actors.app.key, 8],
            [w.actors.user.key, 3],
            [w.actors.token.key, 1],
          ],
        ],
        [
          new Date(hourB).toISOString(),
          7 + extra,
          [
            [w.actors.app.key, 4],
            [w.actors.user.key, 2],
            [w.actors.token.key, 1 + extra],
          ].sort(
            (a, b) => (b[1] as number) - (a[1] as number) || ((a[0] as string) < (b[0] as string) ? -1 : 1),
          ),
        ],
      ],
    );

    // one hour only, and one secret by actor
    const onlyB = await usage(s, `/v1/usage/llm/dev?since=${new Date(hourB).toISOString()}&by=actor`);
    assert.equal(onlyB.total, 7 + extra);
    const one = await usage(s, '/v1/usage/llm/dev/OPENAI_API_KEY?since=1d');
    assert.equal(one.by, 'actor');
    assert.deepEqual(
      (one.rows as UsageByActorRow[]).map((r) => [r.actor, r.count, r.last_read_at]),
      [
        [w.actors.app.key, 10, at(hourB, 5)],
        [w.actors.user.key, 3, at(hourA, 3)],
        [w.actors.token.key, 1, at(hourB, 20)],
      ],
    );
    // STALE_KEY's read 40 days ago is in a 60-day window
    const stale = await usage(s, '/v1/usage/llm/dev/STALE_KEY?since=60d');
    assert.equal(stale.total, 1);
  };

  // before any flush: the counts come from memory
  assert.ok(w.s.vault.usage.recorder.pendingCount > 0);
  await check(w.s);
  // after a flush: the same from storage
  const flushed = await w.s.vault.usage.flush();
  assert.ok(flushed.cells > 0);
  assert.equal(w.s.vault.usage.recorder.pendingCount, 0);
  await check(w.s);
  // more reads after the flush, written by the clean shutdown
  w.clock.set(hourB + 50 * 60_000);
  ok(await w.s.call('GET', '/v1/secrets/llm/dev/MISTRAL_API_KEY', undefined, w.actors.token.token));
  await check(w.s, 1);
  await w.s.stop();

  // a restart on the same storage: everything persisted
  const again = await start(t, {
    storage: w.storage,
    keyFile: w.keyFile,
    clock: w.clock,
    rootToken: w.s.rootToken(),
  });
  await check(again, 1);
});

test('unused lists exactly the secrets nobody read for N days, and never-read secrets older than N days', async (t) => {
  const w = await setup(t);
  const { hourB } = await workload(w);
  // a secret created just now and never read is too new to be a candidate
  ok(await w.s.call('PUT', '/v1/secrets/llm/dev/NEW_KEY', { value: `${w.canary}-new` }));
  const check = async () => {
    const r = await usage<UnusedResponse>(w.s, '/v1/usage/llm/dev/unused?days=30', w.auditor);
    assert.equal(r.days, 30);
    assert.equal(r.cutoff, new Date(hourB + 50 * 60_000 - 30 * DAY).toISOString());
    assert.deepEqual(
      r.secrets.map((x) => [x.name, x.last_read_at, x.created_at]),
      [
        ['OLD_KEY', null, new Date(T0).toISOString()],
        ['STALE_KEY', new Date(T0).toISOString(), new Date(T0).toISOString()],
      ],
    );
    // 50 days: STALE_KEY was read 40 days ago; OLD_KEY is only 40 days old
    const r50 = await usage<UnusedResponse>(w.s, '/v1/usage/llm/dev/unused?days=50');
    assert.deepEqual(r50.secrets, []);
    // 1 day: MISTRAL was read an hour ago, so nothing more than at 30 days... except nothing new
    const r1 = await usage<UnusedResponse>(w.s, '/v1/usage/llm/dev/unused?days=1');
    assert.deepEqual(
      r1.secrets.map((x) => x.name),
      ['OLD_KEY', 'STALE_KEY'],
    );
  };
  await check();
  await w.s.vault.usage.flush();
  await check();
  // default: 30 days
  const d = await usage<UnusedResponse>(w.s, '/v1/usage/llm/dev/unused');
  assert.equal(d.days, 30);
  assert.equal((await w.s.call('GET', '/v1/usage/llm/dev/unused?days=0')).statusCode, 400);
});

test('an auditor and a developer can read usage, an app cannot, and a scoped token sees only its scope', async (t) => {
  const w = await setup(t);
  await workload(w);
  const byActor = await usage(w.s, '/v1/usage/llm/dev?since=1d', w.auditor);
  assert.equal(byActor.total, 19);
  assert.equal((await usage(w.s, '/v1/usage/llm/dev?since=1d', w.actors.user.token)).total, 19);

  // an app's role has no usage.read
  const denied = await w.s.call('GET', '/v1/usage/llm/dev', undefined, w.actors.app.token);
  assert.equal(denied.statusCode, 403, denied.body);
  assert.equal(
    (await w.s.call('GET', '/v1/usage/llm/dev/unused', undefined, w.actors.app.token)).statusCode,
    403,
  );
  // ...unless a policy grants it
  ok(
    await w.s.call('PUT', '/v1/sys/policies/apps-see-usage', {
      policy:
        'permit (principal in Strongroom::Role::"app", action == Strongroom::Action::"usage.read", resource);',
    }),
  );
  assert.equal((await usage(w.s, '/v1/usage/llm/dev?since=1d', w.actors.app.token)).total, 19);

  // a token scoped to OPENAI* in dev sees only that secret's usage
  const scoped = ok<AuthResponse>(
    await w.s.call('POST', '/v1/auth/token/create', {
      ttl: '1h',
      policies: ['auditor'],
      scope: { paths: ['llm/dev/OPENAI*'] },
    }),
  ).auth.client_token;
  const seen = await usage(w.s, '/v1/usage/llm/dev?since=1d', scoped);
  assert.deepEqual(
    (seen.rows as UsageBySecretRow[]).map((r) => r.name),
    ['OPENAI_API_KEY'],
  );
  assert.equal(seen.total, 14);
  const byHour = await usage(w.s, '/v1/usage/llm/dev?since=1d&by=hour', scoped);
  assert.deepEqual(
    (byHour.rows as UsageByHourRow[]).map((r) => r.secrets.map((x) => x.name)),
    [['OPENAI_API_KEY'], ['OPENAI_API_KEY']],
  );
  const unused = await usage<UnusedResponse>(w.s, '/v1/usage/llm/dev/unused', scoped);
  assert.deepEqual(unused.secrets, []);
  assert.equal(
    (await w.s.call('GET', '/v1/usage/llm/dev/MISTRAL_API_KEY', undefined, scoped)).statusCode,
    403,
  );
  assert.equal((await w.s.call('GET', '/v1/usage/llm/prod', undefined, scoped)).statusCode, 403);
  // an unknown environment is a 404, a malformed bound a 400
  assert.equal((await w.s.call('GET', '/v1/usage/llm/nope')).statusCode, 404);
  assert.equal((await w.s.call('GET', '/v1/usage/llm/dev?since=yesterday')).statusCode, 400);
});

test('no secret value appears in any stored usage record (canary)', async (t) => {
  const w = await setup(t);
  await workload(w);
  await w.s.vault.usage.flush();
  const view = w.s.vault.core.barrier.view('sys/usage/');
  const paths = await view.list('');
  assert.ok(paths.some((p) => p.startsWith('h/llm/dev/')));
  assert.ok(paths.includes('last/llm/dev'));
  let text = '';
  for (const p of paths) text += (await view.get(p))!.toString('utf8');
  assert.match(text, /OPENAI_API_KEY/);
  assert.ok(!text.includes(w.canary), 'a usage record holds a secret value');
  for (const v of w.values) assert.ok(!text.includes(v));
  // nor in what the API answers
  const answered = JSON.stringify([
    await usage(w.s, '/v1/usage/llm/dev?since=60d&by=hour'),
    await usage(w.s, '/v1/usage/llm/dev?since=60d&by=actor'),
    await usage(w.s, '/v1/usage/llm/dev/unused?days=1'),
  ]);
  assert.ok(!answered.includes(w.canary));
});

test('with usage.enabled off nothing is recorded, and the API says so', async (t) => {
  const storage = createMemoryStorage();
  const clock = manualClock(T0);
  const keyFile = staticKeyFile(t);
  const vault = assembleVault({
    storage,
    seal: { static: { key_file: keyFile } },
    clock,
    audit: [],
    usage: { enabled: false },
  });
  t.after(() => vault.close());
  const req = { request_id: 'r', client_address: '127.0.0.1' };
  const init = await vault.core.invoke<{ root_token: string }>('sys.init', {}, req);
  const r = { ...req, token: init.root_token };
  await vault.core.invoke('project.create', { name: 'llm', environments: ['dev'] }, r);
  await vault.core.invoke('secret.write', { project: 'llm', env: 'dev', name: 'K', value: 'v' }, r);
  await vault.core.invoke('secret.read', { project: 'llm', env: 'dev', name: 'K' }, r);
  assert.equal(vault.usage.recorder.pendingCount, 0);
  const u = await vault.core.invoke<UsageResponse>('usage.query', { project: 'llm', env: 'dev' }, r);
  assert.equal(u.recording, false);
  assert.equal(u.total, 0);
});

test('two servers sharing PostgreSQL add their counts up', async (t) => {
  const url = await postgresTestUrl();
  if (!url) return t.skip(postgresSkipReason());
  const { openStorage } = await import('../../src/storage/index.ts');
  const pg = (await import('pg')).default;
  const table = `usage_test_${randomBytes(4).toString('hex')}`;
  const open = () => openStorage({ postgres: { url, table } } as never);
  const a = await open();
  const b = await open();
  t.after(async () => {
    await a.close();
    await b.close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`DROP TABLE IF EXISTS "${table}"`);
    await c.end();
  });
  const clock = manualClock(T0);
  const keyFile = staticKeyFile(t);
  const mk = (storage: StorageBackend) =>
    assembleVault({
      storage,
      seal: { static: { key_file: keyFile } },
      clock,
      audit: [],
      usage: { flush_interval: 3600 },
    });
  const va = mk(a);
  const req = { request_id: 'r', client_address: '127.0.0.1' };
  const init = await va.core.invoke<{ root_token: string }>('sys.init', {}, req);
  const r = { ...req, token: init.root_token };
  await va.core.invoke('project.create', { name: 'llm', environments: ['dev'] }, r);
  await va.core.invoke('secret.write', { project: 'llm', env: 'dev', name: 'K', value: 'v' }, r);
  const vb = mk(b);
  await vb.core.start();
  t.after(async () => {
    await va.close();
    await vb.close();
  });
  const reads = async (v: Vault, n: number) => {
    for (let i = 0; i < n; i++)
      await v.core.invoke('secret.read', { project: 'llm', env: 'dev', name: 'K' }, r);
  };
  // several rounds of concurrent flushes of the same records
  for (let round = 0; round < 3; round++) {
    await Promise.all([reads(va, 7), reads(vb, 5)]);
    await Promise.all([va.usage.flush(), vb.usage.flush()]);
  }
  const u = await va.core.invoke<UsageResponse>(
    'usage.query',
    { project: 'llm', env: 'dev', by: 'actor' },
    r,
  );
  assert.equal(u.total, 36);
  assert.equal((u.rows as UsageByActorRow[])[0]!.actor, 'root:root');
});
