import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { type TestContext, test } from 'node:test';
import { inspect } from 'node:util';
import pg from 'pg';
import { isStrongroomError } from '../../src/errors/errors.ts';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { openStorage } from '../../src/storage/index.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { createSqliteStorage, type SqliteStorage } from '../../src/storage/sqlite.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { storageContract } from './storage.contract.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

// ---- memory ----

storageContract('memory storage', async (t) => {
  const storage = createMemoryStorage();
  t.after(() => storage.close());
  return storage;
});

// ---- sqlite ----

type SqliteFixture = { path: string; opened: StorageBackend[] };
const sqliteFixtures = new WeakMap<TestContext, SqliteFixture>();

/** One temp dir per test (database in a not-yet-existing subdirectory); closed and removed at the end. */
function sqliteFixture(t: TestContext): SqliteFixture {
  let fixture = sqliteFixtures.get(t);
  if (fixture === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-sqlite-'));
    const created: SqliteFixture = { path: join(dir, 'data', 'strongroom.db'), opened: [] };
    t.after(async () => {
      for (const storage of created.opened) await storage.close();
      rmSync(dir, { recursive: true, force: true });
    });
    sqliteFixtures.set(t, created);
    fixture = created;
  }
  return fixture;
}

async function openSqlite(t: TestContext): Promise<SqliteStorage> {
  const fixture = sqliteFixture(t);
  const storage = createSqliteStorage({ path: fixture.path });
  fixture.opened.push(storage);
  return storage;
}

storageContract('sqlite storage', openSqlite, openSqlite);

test('sqlite storage uses WAL and synchronous=FULL', async (t) => {
  const storage = await openSqlite(t);
  await storage.put('k', bytes('v'));
  assert.equal(storage.pragma('synchronous'), 2); // 2 = FULL
  assert.equal(storage.pragma('foreign_keys'), 1);
  assert.equal(storage.pragma('busy_timeout'), 5000);
  // journal_mode=WAL is persistent, so another connection sees it in the file
  const other = new DatabaseSync(sqliteFixture(t).path, { readOnly: true });
  t.after(() => other.close());
  assert.deepEqual({ ...other.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' });
});

test('sqlite storage creates its directory 0700 and its files 0600', async (t) => {
  const storage = await openSqlite(t);
  await storage.put('k', bytes('v'));
  const path = sqliteFixture(t).path;
  assert.equal(statSync(dirname(path)).mode & 0o777, 0o700);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
  assert.equal(statSync(`${path}-shm`).mode & 0o777, 0o600);
});

test('sqlite storage: a resolved write is visible to another connection and an open transaction is not', async (t) => {
  const storage = await openSqlite(t);
  const other = new DatabaseSync(sqliteFixture(t).path, { readOnly: true });
  t.after(() => other.close());
  const read = other.prepare('SELECT key FROM kv ORDER BY key');
  await storage.put('plain', bytes('v'));
  assert.deepEqual(
    read.all().map((row) => row.key),
    ['plain'],
  );
  await storage.transaction(async (tx) => {
    await tx.put('staged', bytes('v'));
    assert.deepEqual(
      read.all().map((row) => row.key),
      ['plain'],
    );
  });
  assert.deepEqual(
    read.all().map((row) => row.key),
    ['plain', 'staged'],
  );
});

test('sqlite storage refuses an in-memory path', () => {
  assert.throws(() => createSqliteStorage({ path: ':memory:' }), TypeError);
  assert.throws(() => createSqliteStorage({ path: '' }), TypeError);
});

// ---- openStorage ----

test('openStorage opens the backend its config names', async (t) => {
  const memory = await openStorage({ memory: {} });
  t.after(() => memory.close());
  assert.equal(memory.kind, 'memory');
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-open-'));
  const sqlite = await openStorage({ sqlite: { path: join(dir, 'db') } });
  t.after(async () => {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(sqlite.kind, 'sqlite');
  await assert.rejects(openStorage({} as never), TypeError);
  await assert.rejects(openStorage({ memory: {}, sqlite: { path: 'x' } } as never), TypeError);
});

// ---- postgres ----

test('postgres storage rejects a bad table name with a TypeError', async () => {
  for (const table of ['Bad', 'kv; DROP TABLE x', '1kv', 'a'.repeat(64), '', 'kv"']) {
    await assert.rejects(createPostgresStorage({ url: 'postgres://127.0.0.1:1/x', table }), TypeError, table);
  }
});

test('postgres storage that cannot connect rejects with storage_unavailable and never shows the password', async () => {
  const url = 'postgres://u:hunter2secret@127.0.0.1:1/x';
  await assert.rejects(createPostgresStorage({ url }), (err: unknown) => {
    assert.ok(isStrongroomError(err, 'storage_unavailable'), inspect(err));
    assert.equal(err.message, 'the storage backend is unreachable');
    assert.doesNotMatch(inspect(err, { depth: 10 }), /hunter2secret/);
    return true;
  });
});

test('postgres storage with a malformed url never shows it', async () => {
  await assert.rejects(
    createPostgresStorage({ url: 'postgres://u:hunter2secret@[nope/x' }),
    (err: unknown) => {
      assert.doesNotMatch(inspect(err, { depth: 10 }), /hunter2secret/);
      return true;
    },
  );
});

const pgUrl = await postgresTestUrl();

if (pgUrl === undefined) {
  test('postgres storage contract', { skip: postgresSkipReason() }, () => {});
} else {
  const url = pgUrl;
  const tables = new WeakMap<TestContext, string>();

  async function openPostgres(t: TestContext, appName?: string): Promise<StorageBackend> {
    let table = tables.get(t);
    if (table === undefined) {
      table = await uniqueTable(url, t);
      tables.set(t, table);
    }
    let connect = url;
    if (appName !== undefined) {
      const parsed = new URL(url);
      parsed.searchParams.set('application_name', appName);
      connect = parsed.toString();
    }
    const storage = await createPostgresStorage({ url: connect, table, maxConnections: 5 });
    t.after(() => storage.close());
    return storage;
  }

  async function admin(t: TestContext): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    t.after(() => client.end());
    return client;
  }

  const terminate = (client: pg.Client, appName: string, state?: string) =>
    client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = $1 AND ($2::text IS NULL OR state = $2)`,
      [appName, state ?? null],
    );

  storageContract(
    'postgres storage',
    (t) => openPostgres(t),
    (t) => openPostgres(t),
  );

  test('postgres storage refuses a table whose key column is not byte-ordered', async (t) => {
    const table = await uniqueTable(url, t);
    const client = await admin(t);
    await client
      .query(`CREATE TABLE "${table}" (key TEXT COLLATE "en_US" PRIMARY KEY, value BYTEA NOT NULL)`)
      .catch(
        // en_US may be missing; any non-C collation will do
        () =>
          client.query(
            `CREATE TABLE "${table}" (key TEXT COLLATE "ucs_basic" PRIMARY KEY, value BYTEA NOT NULL)`,
          ),
      );
    await assert.rejects(createPostgresStorage({ url, table }), /collation/);
  });

  test('postgres storage does not commit a transaction whose fn swallowed a failed statement', async (t) => {
    const storage = await openPostgres(t);
    const client = await admin(t);
    await client.query(`DROP TABLE "${tables.get(t)}"`);
    await assert.rejects(
      storage.transaction(async (tx) => {
        await tx.put('k', bytes('v')).catch(() => {});
        return 'looks fine';
      }),
      /does not exist/,
    );
  });

  test('postgres storage survives its connection dying inside a transaction', async (t) => {
    const appName = `sr_test_${process.pid}_${Date.now()}`;
    const storage = await openPostgres(t, appName);
    const client = await admin(t);
    await assert.rejects(
      storage.transaction(async (tx) => {
        await tx.put('k', bytes('v'));
        await terminate(client, appName);
        await new Promise((resolve) => setTimeout(resolve, 100)); // the 'error' event arrives while idle
        await tx.get('k');
      }),
      (err: unknown) => isStrongroomError(err, 'storage_unavailable'),
    );
    assert.equal(await storage.get('k'), undefined);
    await storage.put('k', bytes('after'));
    assert.deepEqual(await storage.get('k'), bytes('after'));
  });

  test('postgres storage survives an idle pooled connection dying', async (t) => {
    const appName = `sr_test_${process.pid}_${Date.now()}_idle`;
    const storage = await openPostgres(t, appName);
    const client = await admin(t);
    await storage.put('k', bytes('v'));
    const { rows } = await terminate(client, appName, 'idle');
    assert.ok(rows.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await storage.get('k'), bytes('v'));
  });

  test('postgres storage orders keys by bytes whatever the database collation', async (t) => {
    const storage = await openPostgres(t);
    for (const key of ['a-b', 'a/c', 'A', 'a', 'B', '_']) await storage.put(key, bytes('v'));
    assert.deepEqual(await storage.list(''), ['A', 'B', '_', 'a', 'a-b', 'a/c']);
  });
}
