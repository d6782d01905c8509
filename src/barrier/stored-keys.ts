import { createSecretKey, type KeyObject } from 'node:crypto';
import { randomKey } from '../crypto/random.ts';
import type { BarrierStore } from './barrier.ts';

/**
 * A per-installation key kept in the barrier at `path`: read if present,
 * otherwise created in a transaction (so two servers starting together agree
 * on one key). Returned as a KeyObject; the raw bytes are wiped.
 */
export async function loadOrCreateKey(store: BarrierStore, path: string): Promise<KeyObject> {
  let raw = await store.get(path);
  if (!raw) {
    raw = await store.transaction(async (tx) => {
      const existing = await tx.get(path);
      if (existing) return existing;
      const fresh = randomKey();
      await tx.put(path, fresh);
      return fresh;
    });
  }
  const key = createSecretKey(raw);
  raw.fill(0);
  return key;
}
