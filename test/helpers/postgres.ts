import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import pg from 'pg';

const LOCAL_URL = 'postgres://postgres@127.0.0.1:5432/test';

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000, query_timeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The PostgreSQL server for integration tests: STRONGROOM_TEST_POSTGRES_URL
 * when set, else a local trust-auth server at 127.0.0.1:5432 if one answers,
 * else undefined (suites skip). With STRONGROOM_TEST_REQUIRE_POSTGRES=1 a
 * missing server throws instead, so CI cannot silently skip.
 */
export async function postgresTestUrl(): Promise<string | undefined> {
  const fromEnv = process.env.STRONGROOM_TEST_POSTGRES_URL;
  if (fromEnv) return fromEnv;
  if (await answers(LOCAL_URL)) return LOCAL_URL;
  if (process.env.STRONGROOM_TEST_REQUIRE_POSTGRES === '1') {
    throw new Error(`STRONGROOM_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL answers at ${LOCAL_URL}`);
  }
  return undefined;
}

export function postgresSkipReason(): string {
  return 'PostgreSQL suite skipped: set STRONGROOM_TEST_POSTGRES_URL or start a server on 127.0.0.1:5432';
}

/** A fresh table name for one test; the table is dropped when the test ends. */
export async function uniqueTable(url: string, t: TestContext): Promise<string> {
  const table = `test_kv_${randomBytes(8).toString('hex')}`;
  t.after(async () => {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query(`DROP TABLE IF EXISTS "${table}"`);
    } finally {
      await client.end();
    }
  });
  return table;
}
