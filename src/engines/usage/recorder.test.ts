import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createBarrier } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import { manualClock } from '../../lib/clock.ts';
import { createMemoryStorage } from '../../storage/memory.ts';
import {
  createRecorder,
  emptyHour,
  HOUR_MS,
  type HourRecord,
  hourPath,
  type LastRecord,
  lastPath,
  mergeHour,
} from './recorder.ts';

const T0 = Date.UTC(2026, 0, 1, 9, 30);

function identity(type: 'app' | 'user' | 'token' | 'root', id: string, name = id): Identity {
  return {
    kind: 'token',
    accessor: `acc-${id}`,
    display_name: `token of ${name}`,
    policies: [],
    owner: { type, id, name },
    scope: null,
    mfa: false,
  };
}

async function unsealedStore() {
  const storage = createMemoryStorage();
  const barrier = createBarrier(storage, manualClock(T0));
  const root = randomBytes(32);
  await barrier.initialize(root);
  await barrier.unseal(root);
  return { storage, barrier, store: barrier.view('sys/usage/') };
}

const read = (project: string, env: string, name: string) => ({ project, env, name });

test('reads are counted per secret, actor and hour, with the last read time, and written on flush', async () => {
  const clock = manualClock(T0);
  const { barrier, store } = await unsealedStore();
  const r = createRecorder({ clock });
  r.attach(store, () => barrier.sealed);
  const app = identity('app', 'app_1', 'chatbot');
  const user = identity('user', 'u1', 'alice');
  for (let i = 0; i < 3; i++) r.observe('secret.read', app, read('llm', 'dev', 'K'), {});
  clock.advance(60_000);
  r.observe('secret.read', user, read('llm', 'dev', 'K'), {});
  clock.set(T0 + HOUR_MS);
  r.observe('secret.read', app, read('llm', 'dev', 'K'), {});
  // other operations, and calls without an identity, are not reads
  r.observe('secret.write', app, read('llm', 'dev', 'K'), {});
  r.observe('secret.read', undefined, read('llm', 'dev', 'K'), {});
  assert.equal(r.pendingCount, 3);
  assert.deepEqual(await r.flush(), { cells: 3 });
  assert.equal(r.pendingCount, 0);

  const h0 = Math.floor(T0 / HOUR_MS);
  const first = (await store.getJson<HourRecord>(hourPath('llm', 'dev', h0)))!;
  assert.deepEqual(first.rows, [
    ['K', 'app:app_1', 3, T0],
    ['K', 'user:u1', 1, T0 + 60_000],
  ]);
  assert.deepEqual(first.actors, [
    ['app:app_1', 'chatbot'],
    ['user:u1', 'alice'],
  ]);
  assert.deepEqual((await store.getJson<HourRecord>(hourPath('llm', 'dev', h0 + 1)))!.rows, [
    ['K', 'app:app_1', 1, T0 + HOUR_MS],
  ]);
  const last = (await store.getJson<LastRecord>(lastPath('llm', 'dev')))!;
  assert.deepEqual(last.secrets, [['K', T0 + HOUR_MS]]);
  assert.deepEqual(last.actors, [
    ['app:app_1', 'chatbot', T0 + HOUR_MS],
    ['user:u1', 'alice', T0 + 60_000],
  ]);

  // a second flush adds to what is stored
  r.observe('secret.read', user, read('llm', 'dev', 'K'), {});
  await r.flush();
  assert.deepEqual((await store.getJson<HourRecord>(hourPath('llm', 'dev', h0 + 1)))!.rows, [
    ['K', 'app:app_1', 1, T0 + HOUR_MS],
    ['K', 'user:u1', 1, T0 + HOUR_MS],
  ]);
});

test('a failed flush keeps the counts for the next one, and nothing is written while sealed', async () => {
  const clock = manualClock(T0);
  const { barrier, store } = await unsealedStore();
  const r = createRecorder({ clock });
  let fail = true;
  r.attach(
    {
      ...store,
      transaction: (fn) => (fail ? Promise.reject(new Error('storage down')) : store.transaction(fn)),
    },
    () => barrier.sealed,
  );
  const app = identity('app', 'a');
  r.observe('secret.read', app, read('p', 'e', 'K'), {});
  await assert.rejects(r.flush(), /storage down/);
  // counted meanwhile
  r.observe('secret.read', app, read('p', 'e', 'K'), {});
  assert.equal(r.pendingCount, 1);
  fail = false;
  await r.flush();
  const h = Math.floor(T0 / HOUR_MS);
  assert.deepEqual((await store.getJson<HourRecord>(hourPath('p', 'e', h)))!.rows, [['K', 'app:a', 2, T0]]);

  r.observe('secret.read', app, read('p', 'e', 'K'), {});
  barrier.seal();
  assert.deepEqual(await r.flush(), { cells: 0 });
  assert.equal(r.pendingCount, 1);
});

test('observe never throws, whatever the input', () => {
  const r = createRecorder({ clock: manualClock(T0) });
  const app = identity('app', 'a');
  r.observe('secret.read', app, undefined, undefined);
  r.observe('secret.export', app, { project: 'p', env: 'e' }, null);
  r.observe('secret.export', app, { project: 'p', env: 'e' }, { secrets: [null, { name: 1 }] });
  // an export with values counts one read per secret it returned; without values it is not a read
  r.observe(
    'secret.export',
    app,
    { project: 'p', env: 'e' },
    {
      secrets: [
        { name: 'A', value: 'x' },
        { name: 'B', value: 'y' },
      ],
    },
  );
  r.observe('secret.export', app, { project: 'p', env: 'e' }, { secrets: [{ name: 'C' }] });
  assert.equal(r.pendingCount, 2);
});

test('a secret named __proto__ is counted like any other (records hold no objects keyed by name)', () => {
  const rec = mergeHour(emptyHour(1), [
    {
      hour: 1,
      project: 'p',
      env: 'e',
      name: '__proto__',
      type: 'app',
      actor: 'app:a',
      display: 'a',
      count: 2,
      last: 5,
    },
    {
      hour: 1,
      project: 'p',
      env: 'e',
      name: 'constructor',
      type: 'app',
      actor: 'app:a',
      display: 'a',
      count: 1,
      last: 6,
    },
  ]);
  assert.deepEqual(rec.rows, [
    ['__proto__', 'app:a', 2, 5],
    ['constructor', 'app:a', 1, 6],
  ]);
  assert.equal(({} as Record<string, unknown>).count, undefined);
});
