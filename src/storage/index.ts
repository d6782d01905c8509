import type { StorageBackend } from './backend.ts';
import { createMemoryStorage } from './memory.ts';
import { createPostgresStorage } from './postgres.ts';
import { createSqliteStorage } from './sqlite.ts';

export type { StorageBackend } from './backend.ts';

/** The `storage` section of the configuration: exactly one backend. */
export type StorageConfig =
  | { memory: Record<string, never> }
  | { sqlite: { path: string } }
  | { postgres: { url: string; table?: string; max_connections?: number } };

/** Opens the backend that `cfg` selects. */
export async function openStorage(cfg: StorageConfig): Promise<StorageBackend> {
  const kinds = cfg !== null && typeof cfg === 'object' ? Object.keys(cfg) : [];
  if (kinds.length !== 1) throw new TypeError('storage config must name exactly one backend');
  if ('memory' in cfg) return createMemoryStorage();
  if ('sqlite' in cfg) return createSqliteStorage({ path: cfg.sqlite.path });
  if ('postgres' in cfg) {
    const { url, table, max_connections } = cfg.postgres;
    return createPostgresStorage({
      url,
      ...(table === undefined ? {} : { table }),
      ...(max_connections === undefined ? {} : { maxConnections: max_connections }),
    });
  }
  throw new TypeError(`unknown storage backend ${JSON.stringify(kinds[0])}`);
}
