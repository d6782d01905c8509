import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { onInterrupt } from './proc.ts';

/** Why the PostgreSQL part of a bench is skipped (the server does not answer), or undefined. */
export async function pgSkipReason(url: string): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (err) {
    return `skipped: ${url.replace(/\/\/[^@/]*@/, '//…@')} does not answer (${(err as Error).message})`;
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * Runs `fn` on PostgreSQL storage over a fresh table named `<prefix>_<random>`, dropped afterwards
 * (also when the bench is interrupted with Ctrl-C or SIGTERM).
 */
export async function withScratchTable<T>(
  url: string,
  prefix: string,
  fn: (storage: StorageBackend) => Promise<T>,
): Promise<T> {
  const table = `${prefix}_${randomBytes(4).toString('hex')}`;
  const drop = async () => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    c.on('error', () => {});
    await c.connect();
    try {
      await c.query(`DROP TABLE IF EXISTS "${table}"`);
    } finally {
      await c.end();
    }
  };
  const unregister = onInterrupt(drop);
  const storage = await createPostgresStorage({ url, table });
  try {
    return await fn(storage);
  } finally {
    await storage.close();
    await drop();
    unregister();
  }
}
