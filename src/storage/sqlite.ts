import { closeSync, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { StrongroomError } from '../errors/errors.ts';
import { Mutex } from '../lib/mutex.ts';
import type { StorageBackend, StorageReader, StorageTransaction } from './backend.ts';
import { acquireLock } from './lockfile.ts';
import {
  assertActive,
  assertKey,
  assertValue,
  checkPrefix,
  createReentryGuard,
  prefixUpperBound,
  type TxState,
} from './shared.ts';

/** PRAGMAs that `pragma()` may read back, for status output and tests. */
export type SqlitePragma = 'journal_mode' | 'synchronous' | 'foreign_keys' | 'busy_timeout';

export interface SqliteStorage extends StorageBackend {
  readonly kind: 'sqlite';
  /** The current value of a PRAGMA on the writing connection (e.g. synchronous: 2 = FULL). */
  pragma(name: SqlitePragma): unknown;
}

const BUSY_TIMEOUT_MS = 5000;
const PRAGMAS = new Set<string>(['journal_mode', 'synchronous', 'foreign_keys', 'busy_timeout']);

// SQLite primary result codes that mean "the database cannot be used right now"
// rather than a bug: BUSY, LOCKED, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB
const UNAVAILABLE = new Set([5, 6, 10, 11, 13, 14, 15, 26]);

function sqliteError(err: unknown): unknown {
  const errcode = (err as { errcode?: unknown } | null)?.errcode;
  if (typeof errcode === 'number' && UNAVAILABLE.has(errcode & 0xff)) {
    return new StrongroomError('storage_unavailable', 'the sqlite database is unavailable', { cause: err });
  }
  return err;
}

function sql<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw sqliteError(err);
  }
}

/** Creates the database file with mode 0600 before SQLite does: its -wal and -shm files copy that mode. */
function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    fchmodSync(fd, 0o600); // the umask may only have narrowed it, but make it exact
  } finally {
    closeSync(fd);
  }
}

type Statements = {
  get: StatementSync;
  listRange: StatementSync;
  listFrom: StatementSync;
};

function prepareReads(db: DatabaseSync): Statements {
  return {
    get: db.prepare('SELECT value FROM kv WHERE key = ?'),
    listRange: db.prepare('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
    listFrom: db.prepare('SELECT key FROM kv WHERE key >= ? ORDER BY key'),
  };
}

/** Reads through one connection; SQLite's BINARY collation compares TEXT as UTF-8 bytes. */
function reader(
  stmts: Statements,
  before: () => void,
): StorageReader & Required<Pick<StorageBackend, 'getMany'>> {
  return {
    async get(key) {
      before();
      assertKey(key);
      const row = sql(() => stmts.get.get(key)) as { value: Uint8Array } | undefined;
      return row?.value; // node:sqlite returns a fresh Uint8Array per call
    },
    async getMany(keys) {
      before();
      for (const key of keys) assertKey(key);
      // synchronous, so no commit of this process can land between two of them (and no other process writes)
      return keys.map((key) => (sql(() => stmts.get.get(key)) as { value: Uint8Array } | undefined)?.value);
    },
    async list(prefix) {
      before();
      if (!checkPrefix(prefix)) return [];
      const bound = prefixUpperBound(prefix);
      const rows = sql(() =>
        bound === undefined ? stmts.listFrom.all(prefix) : stmts.listRange.all(prefix, bound),
      ) as { key: string }[];
      return rows.map((row) => row.key);
    },
  };
}

/**
 * The embedded backend: one SQLite file in WAL mode with synchronous=FULL, so
 * a resolved write has been fsynced.
 *
 * node:sqlite is synchronous and the writing connection is shared, so every
 * write (plain or transactional) runs under one mutex: a plain put can never
 * land inside another caller's open BEGIN IMMEDIATE. Reads outside
 * transactions go through a second, read-only connection: WAL gives it the
 * last committed snapshot, so it never sees an open transaction's writes and
 * never waits for one.
 */
export function createSqliteStorage(opts: { path: string }): SqliteStorage {
  if (
    typeof opts?.path !== 'string' ||
    opts.path === '' ||
    opts.path === ':memory:' ||
    opts.path.startsWith('file:')
  ) {
    throw new TypeError('sqlite storage needs a file path (use the memory backend for an in-memory store)');
  }
  const path = resolve(opts.path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  createPrivateFile(path);
  // one server per database file: the barrier caches reads, which is only right for the sole writer
  const releaseLock = acquireLock(`${path}.lock`);

  let db: DatabaseSync;
  try {
    db = sql(() => new DatabaseSync(path));
  } catch (err) {
    releaseLock();
    throw err;
  }
  let ro: DatabaseSync | undefined;
  try {
    // busy_timeout first, so switching to WAL waits for another process instead of failing
    db.exec(`PRAGMA busy_timeout=${BUSY_TIMEOUT_MS}`);
    const mode = (db.prepare('PRAGMA journal_mode=WAL').get() as { journal_mode: string }).journal_mode;
    if (mode !== 'wal') {
      throw new StrongroomError(
        'storage_unavailable',
        `sqlite could not enable WAL journal mode (got ${mode})`,
      );
    }
    db.exec('PRAGMA synchronous=FULL');
    db.exec('PRAGMA foreign_keys=ON');
    db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
    ro = new DatabaseSync(path, { readOnly: true });
    ro.exec(`PRAGMA busy_timeout=${BUSY_TIMEOUT_MS}`);
  } catch (err) {
    ro?.close();
    db.close();
    releaseLock();
    throw sqliteError(err);
  }
  const readDb = ro;

  const writeReads = prepareReads(db);
  const put = db.prepare(
    'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  );
  const del = db.prepare('DELETE FROM kv WHERE key = ?');
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const rollback = db.prepare('ROLLBACK');

  const mutex = new Mutex();
  const guard = createReentryGuard('sqlite');
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new TypeError('sqlite storage is closed');
  }

  function write<T>(fn: () => T | Promise<T>): Promise<T> {
    assertOpen();
    guard.assertOutside();
    return mutex.run(() => {
      assertOpen();
      return fn();
    });
  }

  function rollbackQuietly(): void {
    // after some errors (e.g. SQLITE_FULL) SQLite has already rolled back
    try {
      if (db.isTransaction) rollback.run();
    } catch {
      // keep the error that caused the rollback; a stuck transaction makes the next BEGIN fail loudly
    }
  }

  const outside = reader(prepareReads(readDb), assertOpen);

  return {
    kind: 'sqlite',
    exclusive: true,
    get: outside.get,
    getMany: outside.getMany,
    list: outside.list,

    async put(key, value) {
      assertKey(key);
      assertValue(value);
      await write(() => sql(() => put.run(key, value)));
    },

    async delete(key) {
      assertKey(key);
      await write(() => sql(() => del.run(key)));
    },

    async transaction(fn) {
      if (typeof fn !== 'function') throw new TypeError('transaction() needs a function');
      return write(async () => {
        const state: TxState = { active: true };
        const check = (): void => assertActive(state);
        const reads = reader(writeReads, check);
        const tx: StorageTransaction = {
          get: reads.get,
          list: reads.list,
          async put(key, value) {
            check();
            assertKey(key);
            assertValue(value);
            sql(() => put.run(key, value));
          },
          async delete(key) {
            check();
            assertKey(key);
            sql(() => del.run(key));
          },
        };
        sql(() => begin.run());
        try {
          const result = await guard.run(state, () => fn(tx));
          state.active = false;
          sql(() => commit.run());
          return result;
        } catch (err) {
          state.active = false;
          rollbackQuietly();
          throw err;
        }
      });
    },

    pragma(name) {
      if (!PRAGMAS.has(name)) throw new TypeError(`unsupported pragma ${String(name)}`);
      assertOpen();
      const row = db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined;
      // the result column is not always named after the pragma (busy_timeout answers `timeout`)
      return row === undefined ? undefined : Object.values(row)[0];
    },

    async close() {
      // waits for the running and queued transactions
      await mutex.run(() => {
        if (closed) return;
        closed = true;
        readDb.close();
        db.close();
        releaseLock();
      });
    },
  };
}
