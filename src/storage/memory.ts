import { Mutex } from '../lib/mutex.ts';
import type { StorageBackend, StorageTransaction } from './backend.ts';
import {
  assertActive,
  assertKey,
  assertValue,
  checkPrefix,
  compareKeys,
  createReentryGuard,
  type TxState,
} from './shared.ts';

/**
 * An in-process backend for tests and `--dev`. Nothing is persisted.
 * Writes (plain or transactional) are serialized by one mutex; reads never
 * wait, and always see committed state because a commit is applied
 * synchronously.
 */
export function createMemoryStorage(opts: { shared?: boolean } = {}): StorageBackend {
  const data = new Map<string, Uint8Array>();
  const mutex = new Mutex();
  const guard = createReentryGuard('memory');
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new TypeError('memory storage is closed');
  }

  function committedKeys(prefix: string): string[] {
    const keys: string[] = [];
    for (const key of data.keys()) if (key.startsWith(prefix)) keys.push(key);
    return keys;
  }

  function write<T>(fn: () => T): Promise<T> {
    assertOpen();
    guard.assertOutside();
    // a plain write must not land between a transaction's read and its commit (lost update)
    return mutex.run(() => {
      assertOpen();
      return fn();
    });
  }

  return {
    kind: 'memory',
    // shared: several barriers (servers) may use it at once, as they do PostgreSQL; tests of that use it
    exclusive: opts.shared !== true,

    async get(key) {
      assertOpen();
      assertKey(key);
      const value = data.get(key);
      return value === undefined ? undefined : new Uint8Array(value);
    },

    async getMany(keys) {
      assertOpen();
      for (const key of keys) assertKey(key);
      return keys.map((key) => {
        const value = data.get(key);
        return value === undefined ? undefined : new Uint8Array(value);
      });
    },

    async list(prefix) {
      assertOpen();
      if (!checkPrefix(prefix)) return [];
      return committedKeys(prefix).sort(compareKeys);
    },

    async put(key, value) {
      assertKey(key);
      assertValue(value);
      const copy = new Uint8Array(value);
      await write(() => data.set(key, copy));
    },

    async delete(key) {
      assertKey(key);
      await write(() => data.delete(key));
    },

    async transaction(fn) {
      if (typeof fn !== 'function') throw new TypeError('transaction() needs a function');
      return write(async () => {
        // null marks a staged delete
        const staged = new Map<string, Uint8Array | null>();
        const state: TxState = { active: true };
        const tx: StorageTransaction = {
          async get(key) {
            assertActive(state);
            assertKey(key);
            const value = staged.has(key) ? staged.get(key) : data.get(key);
            return value == null ? undefined : new Uint8Array(value);
          },
          async list(prefix) {
            assertActive(state);
            if (!checkPrefix(prefix)) return [];
            const keys = new Set(committedKeys(prefix));
            for (const [key, value] of staged) {
              if (!key.startsWith(prefix)) continue;
              if (value === null) keys.delete(key);
              else keys.add(key);
            }
            return [...keys].sort(compareKeys);
          },
          async put(key, value) {
            assertActive(state);
            assertKey(key);
            assertValue(value);
            staged.set(key, new Uint8Array(value));
          },
          async delete(key) {
            assertActive(state);
            assertKey(key);
            staged.set(key, null);
          },
        };
        try {
          const result = await guard.run(state, () => fn(tx));
          for (const [key, value] of staged) {
            if (value === null) data.delete(key);
            else data.set(key, value);
          }
          return result;
        } finally {
          state.active = false;
        }
      });
    },

    async close() {
      // queued transactions finish first
      await mutex.run(() => {
        closed = true;
      });
    },
  };
}
