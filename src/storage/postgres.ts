import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { StrongroomError } from '../errors/errors.ts';
import type { StorageBackend, StorageTransaction } from './backend.ts';
import {
  assertActive,
  assertKey,
  assertValue,
  checkPrefix,
  createReentryGuard,
  prefixUpperBound,
  type TxState,
} from './shared.ts';

export type PostgresStorageOptions = {
  /** libpq-style URL; may hold a password, so it never appears in errors. */
  url: string;
  /** Table name, default `strongroom_kv`. */
  table?: string;
  /** Pool size, default 10. */
  maxConnections?: number;
};

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/**
 * SERIALIZABLE transactions in PostgreSQL take predicate locks on index pages,
 * so under heavy concurrency on a small table unrelated keys conflict and are
 * aborted (SQLSTATE 40001). They are safe to retry; we retry for up to
 * RETRY_BUDGET_MS (measured: at 16 concurrent writers 10 attempts were not
 * always enough).
 */
const MAX_ATTEMPTS = 100;
const RETRY_BUDGET_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

// Node socket errors that mean the server cannot be reached
const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOENT', // unix socket path missing
]);

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** SQLSTATE 40001 serialization_failure and 40P01 deadlock_detected: the transaction may simply be retried. */
function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code === '40001' || code === '40P01';
}

function unavailableMessage(err: unknown): string | undefined {
  const code = sqlState(err);
  if (code !== undefined) {
    if (NETWORK_ERRORS.has(code)) return 'the storage backend is unreachable';
    // class 08 connection_exception; 57P01-03 admin/crash shutdown, cannot_connect_now
    if (code.startsWith('08') || /^57P0[1-3]$/.test(code)) return 'the storage backend is unreachable';
    // class 28 invalid authorization, 3D000 unknown database, 53300 too_many_connections
    if (code.startsWith('28') || code === '3D000' || code === '53300') {
      return 'the storage backend refused the connection';
    }
  }
  // pg raises these as plain Errors without a code
  const message = err instanceof Error ? err.message : '';
  if (
    /Connection terminated|timeout exceeded when trying to connect|connection error|not queryable/i.test(
      message,
    )
  ) {
    return 'the storage backend is unreachable';
  }
  return undefined;
}

/**
 * Connection problems become StrongroomError('storage_unavailable'). The
 * message is ours: never the URL, which may carry a password. Other errors
 * pass through.
 */
function pgError(err: unknown): unknown {
  if (err instanceof StrongroomError) return err;
  if (sqlState(err) === 'ERR_INVALID_URL') {
    // Node's URL error carries the whole input (password included) in `.input`: drop it
    return new TypeError('postgres storage url is not a valid URL');
  }
  const message = unavailableMessage(err);
  return message === undefined ? err : new StrongroomError('storage_unavailable', message, { cause: err });
}

/** Full-jitter exponential backoff: 0..min(100, 2·2^attempt) ms. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(100, 2 * 2 ** attempt);
}

type Row = { key: string; value: Buffer };
type Query = (config: pg.QueryConfig) => Promise<pg.QueryResult<Row>>;

/**
 * The HA backend: one table in PostgreSQL, `key TEXT COLLATE "C"` so that
 * ordering and range scans follow UTF-8 byte order whatever the database's
 * default collation.
 *
 * transaction() runs at SERIALIZABLE and retries on serialization failures.
 * Plain put/delete also run as (single-statement) serializable transactions:
 * a read-committed blind write is invisible to PostgreSQL's SSI conflict
 * tracking and could complete a dependency cycle between two transactions.
 * Plain get/list are single read-committed statements (one consistent snapshot each).
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: every method shares the pool, the prepared statements and the serializable-retry loop of this closure
export async function createPostgresStorage(opts: PostgresStorageOptions): Promise<StorageBackend> {
  if (typeof opts?.url !== 'string' || opts.url === '') throw new TypeError('postgres storage needs a url');
  const table = opts.table ?? 'strongroom_kv';
  if (typeof table !== 'string' || !TABLE_NAME.test(table)) {
    throw new TypeError('postgres storage table must match /^[a-z_][a-z0-9_]{0,62}$/');
  }
  const max = opts.maxConnections ?? 10;
  if (!Number.isInteger(max) || max < 1)
    throw new TypeError('postgres storage maxConnections must be a positive integer');

  const t = `"${table}"`;
  // named statements are prepared once per connection and reused
  const q = {
    get: { name: `sr_get_${table}`, text: `SELECT value FROM ${t} WHERE key = $1` },
    getMany: {
      name: `sr_get_many_${table}`,
      text: `SELECT key, value FROM ${t} WHERE key = ANY($1::text[])`,
    },
    // the barrier's usual read (a record with the index root): two point lookups, cheaper to plan than ANY
    getTwo: { name: `sr_get_two_${table}`, text: `SELECT key, value FROM ${t} WHERE key IN ($1, $2)` },
    listRange: {
      name: `sr_list_range_${table}`,
      text: `SELECT key FROM ${t} WHERE key >= $1 AND key < $2 ORDER BY key`,
    },
    listFrom: { name: `sr_list_from_${table}`, text: `SELECT key FROM ${t} WHERE key >= $1 ORDER BY key` },
    put: {
      name: `sr_put_${table}`,
      text: `INSERT INTO ${t} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
    },
    delete: { name: `sr_delete_${table}`, text: `DELETE FROM ${t} WHERE key = $1` },
    putMany: {
      name: `sr_put_many_${table}`,
      text: `INSERT INTO ${t} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
    },
    deleteMany: { name: `sr_delete_many_${table}`, text: `DELETE FROM ${t} WHERE key = ANY($1::text[])` },
  };

  const pool = new pg.Pool({
    connectionString: opts.url,
    max,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    fallback_application_name: 'strongroom',
  });
  // An idle client whose connection dies emits 'error' on the pool; unhandled,
  // that would crash the process. The pool has already discarded the client and
  // the next query opens a new connection, so there is nothing else to do.
  pool.on('error', () => {});

  try {
    await ensureTable(pool, table);
  } catch (err) {
    await pool.end().catch(() => {});
    throw pgError(err);
  }

  const guard = createReentryGuard('postgres');
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new TypeError('postgres storage is closed');
  }

  const poolQuery: Query = (config) => pool.query<Row>(config);

  async function get(query: Query, key: string): Promise<Uint8Array | undefined> {
    assertKey(key);
    const { rows } = await query({ ...q.get, values: [key] });
    // a fresh, exact-size copy: pg may hand out Buffers sliced from a shared pool
    return rows[0] === undefined ? undefined : new Uint8Array(rows[0].value);
  }

  async function list(query: Query, prefix: string): Promise<string[]> {
    if (!checkPrefix(prefix)) return [];
    const bound = prefixUpperBound(prefix);
    const { rows } = await query(
      bound === undefined ? { ...q.listFrom, values: [prefix] } : { ...q.listRange, values: [prefix, bound] },
    );
    return rows.map((row) => row.key);
  }

  /** One attempt of a transaction. Returns the value, or `retry` with the serialization failure. */
  async function attempt<T>(
    fn: (tx: StorageTransaction) => Promise<T>,
  ): Promise<{ value: T } | { retry: unknown }> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw pgError(err);
    }
    // a checked-out client has no error listener: if its connection dies
    // between queries, an unhandled 'error' event would crash the process
    let broken: unknown;
    const onError = (err: Error): void => {
      broken ??= err;
    };
    client.on('error', onError);

    const state: TxState & { failure?: unknown } = { active: true };
    const query: Query = async (config) => {
      assertActive(state);
      try {
        return await client.query<Row>(config);
      } catch (err) {
        // after a failed statement PostgreSQL aborts the transaction, and COMMIT
        // would then silently roll back: remember it even if fn swallows the error
        state.failure ??= err;
        throw pgError(err);
      }
    };
    const tx: StorageTransaction = {
      async get(key) {
        assertActive(state);
        return get(query, key);
      },
      async list(prefix) {
        assertActive(state);
        return list(query, prefix);
      },
      async put(key, value) {
        assertActive(state);
        assertKey(key);
        assertValue(value);
        await query({ ...q.put, values: [key, Buffer.from(value)] });
      },
      async delete(key) {
        assertActive(state);
        assertKey(key);
        await query({ ...q.delete, values: [key] });
      },
      async putMany(entries) {
        assertActive(state);
        if (entries.length === 0) return;
        const keys: string[] = [];
        const values: Buffer[] = [];
        for (const [key, value] of entries) {
          assertKey(key);
          assertValue(value);
          keys.push(key);
          values.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        }
        if (new Set(keys).size !== keys.length) throw new TypeError('putMany: a key appears twice');
        await query({ ...q.putMany, values: [keys, values] });
      },
      async deleteMany(keys) {
        assertActive(state);
        if (keys.length === 0) return;
        for (const key of keys) assertKey(key);
        await query({ ...q.deleteMany, values: [[...keys]] });
      },
    };

    try {
      try {
        await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      } catch (err) {
        broken ??= err;
        throw pgError(err);
      }
      let value: T;
      try {
        value = await guard.run(state, () => fn(tx));
      } catch (err) {
        state.active = false;
        await rollback(client).catch((rollbackErr: unknown) => {
          broken ??= rollbackErr;
        });
        // a serialization failure anywhere in the attempt may be why fn threw: retry
        if (isRetryable(state.failure)) return { retry: state.failure };
        throw err;
      }
      state.active = false;
      if (state.failure !== undefined) {
        // fn swallowed a failed statement: the transaction is aborted, nothing can commit
        await rollback(client).catch((rollbackErr: unknown) => {
          broken ??= rollbackErr;
        });
        if (isRetryable(state.failure)) return { retry: state.failure };
        throw pgError(state.failure);
      }
      let result: pg.QueryResult;
      try {
        result = await client.query('COMMIT');
      } catch (err) {
        // a failed COMMIT has rolled back, except when the connection dropped:
        // then the outcome is unknown and retrying could apply fn twice
        if (isRetryable(err)) return { retry: err };
        broken ??= err;
        const mapped = pgError(err);
        if (mapped instanceof StrongroomError) {
          throw new StrongroomError(
            'storage_unavailable',
            'the storage backend became unreachable during commit; the transaction may or may not have been applied',
            { cause: err },
          );
        }
        throw mapped;
      }
      if (result.command !== 'COMMIT') throw new Error(`postgres answered ${result.command} to COMMIT`);
      return { value };
    } finally {
      state.active = false;
      client.removeListener('error', onError);
      // release(err) destroys the connection instead of returning it to the pool
      client.release(broken !== undefined);
    }
  }

  async function transaction<T>(fn: (tx: StorageTransaction) => Promise<T>): Promise<T> {
    assertOpen();
    guard.assertOutside();
    if (typeof fn !== 'function') throw new TypeError('transaction() needs a function');
    const started = Date.now();
    for (let n = 1; ; n++) {
      const outcome = await attempt(fn);
      if ('value' in outcome) return outcome.value;
      if (n >= MAX_ATTEMPTS || Date.now() - started > RETRY_BUDGET_MS) {
        throw new StrongroomError(
          'storage_unavailable',
          'the transaction kept conflicting with concurrent transactions',
          { cause: outcome.retry },
        );
      }
      await sleep(backoffMs(n));
    }
  }

  return {
    kind: 'postgres',
    exclusive: false,

    async get(key) {
      assertOpen();
      try {
        return await get(poolQuery, key);
      } catch (err) {
        throw pgError(err);
      }
    },

    async getMany(keys) {
      assertOpen();
      for (const key of keys) assertKey(key);
      try {
        // one statement: one snapshot of every key
        const { rows } = await poolQuery(
          keys.length === 2
            ? { ...q.getTwo, values: [keys[0], keys[1]] }
            : { ...q.getMany, values: [[...keys]] },
        );
        const found = new Map(rows.map((row) => [row.key, row.value]));
        return keys.map((key) => {
          const v = found.get(key);
          return v === undefined ? undefined : new Uint8Array(v);
        });
      } catch (err) {
        throw pgError(err);
      }
    },

    async list(prefix) {
      assertOpen();
      try {
        return await list(poolQuery, prefix);
      } catch (err) {
        throw pgError(err);
      }
    },

    async put(key, value) {
      assertKey(key);
      assertValue(value);
      const copy = new Uint8Array(value); // the caller may change its array while we wait for a connection
      await transaction((tx) => tx.put(key, copy));
    },

    async delete(key) {
      assertKey(key);
      await transaction((tx) => tx.delete(key));
    },

    transaction,

    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

async function rollback(client: pg.PoolClient): Promise<void> {
  await client.query('ROLLBACK');
}

async function ensureTable(pool: pg.Pool, table: string): Promise<void> {
  const create = `CREATE TABLE IF NOT EXISTS "${table}" (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL)`;
  try {
    await pool.query(create);
  } catch (err) {
    // two processes racing on CREATE TABLE IF NOT EXISTS can collide on the
    // catalog's unique index (23505) or see the other's table appear (42P07)
    const code = sqlState(err);
    if (code !== '23505' && code !== '42P07') throw err;
    await pool.query(create);
  }
  // a table created elsewhere with the database's default collation would make
  // range scans and ordering follow locale rules instead of bytes
  const { rows } = await pool.query<{ collation: string | null }>(
    `SELECT collation_name AS collation FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'key'`,
    [table],
  );
  const collation = rows[0]?.collation;
  if (collation !== 'C' && collation !== 'POSIX') {
    throw new Error(
      `postgres table ${table} has column key with collation ${collation ?? 'default'}; it must be "C"`,
    );
  }
}
