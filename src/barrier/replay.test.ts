import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { importAesKey, open } from '../crypto/aead.ts';
import { isStrongroomError } from '../errors/errors.ts';
import { manualClock } from '../lib/clock.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import { type Barrier, createBarrier, encryptRecord, KEYRING_PATH, recordAad } from './barrier.ts';
import { bucketOf, bucketPath, INDEX_PREFIX, ROOT_PATH } from './versions.ts';

/**
 * Storage is untrusted, and an attacker who can write it holds older copies
 * of its records (a backup, a replica, a snapshot). Putting one back at its
 * own path must be an integrity error or have no effect, on exclusive storage
 * (memory is the authority while the server runs; the index after a restart)
 * and on shared storage (the index root in the same snapshot as the record).
 */

const reason = (r: string) => (err: unknown) =>
  isStrongroomError(err, 'integrity_error') && (err.details as { reason?: string }).reason === r;
const integrity = (err: unknown) => isStrongroomError(err, 'integrity_error');

const sharedMemoryStorage = () => createMemoryStorage({ shared: true });

async function barrierOn(storage: StorageBackend, rootKey: Buffer, init = false): Promise<Barrier> {
  const b = createBarrier(storage, manualClock(), { cacheBytes: 0 });
  if (init) await b.initialize(rootKey);
  await b.unseal(rootKey);
  return b;
}

const copy = async (s: StorageBackend, path: string) => Buffer.from((await s.get(path))!);

for (const kind of ['exclusive', 'shared'] as const) {
  describe(`replayed records on ${kind} storage`, () => {
    const setup = async () => {
      const storage = kind === 'exclusive' ? createMemoryStorage() : sharedMemoryStorage();
      const rootKey = randomBytes(32);
      const barrier = await barrierOn(storage, rootKey, true);
      return { storage, rootKey, barrier };
    };

    test('an older copy of a record put back at its own path is an integrity error', async () => {
      const { storage, barrier } = await setup();
      await barrier.put('kv/meta/demo/OPENAI', Buffer.from('{"current_version":1}'));
      const v1 = await copy(storage, 'kv/meta/demo/OPENAI');
      await barrier.put('kv/meta/demo/OPENAI', Buffer.from('{"current_version":2}'));
      await storage.put('kv/meta/demo/OPENAI', v1);
      await assert.rejects(barrier.get('kv/meta/demo/OPENAI'), reason('replayed'));
      await assert.rejects(
        barrier.transaction((tx) => tx.get('kv/meta/demo/OPENAI')),
        reason('replayed'),
      );
    });

    test('a deleted record put back (a revoked token) is an integrity error', async () => {
      const { storage, barrier } = await setup();
      await barrier.put('sys/token/id/abc', Buffer.from('{"policies":["root"]}'));
      const live = await copy(storage, 'sys/token/id/abc');
      await barrier.delete('sys/token/id/abc');
      assert.equal(await barrier.get('sys/token/id/abc'), undefined);
      await storage.put('sys/token/id/abc', live);
      await assert.rejects(barrier.get('sys/token/id/abc'), reason('unindexed'));
    });

    test('a record put back after its deletion is not listed, so a walk over a listing cannot be blocked by it', async () => {
      const { storage, barrier } = await setup();
      await barrier.put('sys/token/children/parent/kept', Buffer.from('1'));
      await barrier.put('sys/token/children/parent/gone', Buffer.from('1'));
      const stale = await copy(storage, 'sys/token/children/parent/gone');
      await barrier.delete('sys/token/children/parent/gone');
      await storage.put('sys/token/children/parent/gone', stale);
      assert.deepEqual(await barrier.list('sys/token/children/parent/'), ['sys/token/children/parent/kept']);
      assert.deepEqual(await barrier.transaction((tx) => tx.list('sys/token/children/parent/')), [
        'sys/token/children/parent/kept',
      ]);
      // what a transaction writes and deletes is listed as it will be
      assert.deepEqual(
        await barrier.transaction(async (tx) => {
          await tx.put('sys/token/children/parent/new', Buffer.from('1'));
          await tx.delete('sys/token/children/parent/kept');
          return tx.list('sys/token/children/parent/');
        }),
        ['sys/token/children/parent/new'],
      );
      assert.deepEqual(await barrier.list('sys/token/children/parent/'), ['sys/token/children/parent/new']);
    });

    test('a record deleted outside Strongroom is an integrity error, not a quiet absence', async () => {
      const { storage, barrier } = await setup();
      await barrier.put('sys/policy/tombstone', Buffer.from('deny'));
      await storage.delete('sys/policy/tombstone');
      await assert.rejects(barrier.get('sys/policy/tombstone'), reason('deleted'));
    });

    test('after a restart: an older record with its older bucket disagrees with the root', async () => {
      const { storage, rootKey, barrier } = await setup();
      const path = 'kv/meta/demo/KEY';
      await barrier.put(path, Buffer.from('one'));
      const oldRecord = await copy(storage, path);
      const oldBucket = await copy(storage, bucketPath(bucketOf(path)));
      await barrier.put(path, Buffer.from('two'));
      await storage.put(path, oldRecord);
      await storage.put(bucketPath(bucketOf(path)), oldBucket);
      barrier.seal();
      const restarted = await barrierOn(storage, rootKey);
      await assert.rejects(restarted.get(path), reason('replayed'));
    });

    test('after a restart: an older root is caught by the buckets written since', async () => {
      const { storage, rootKey, barrier } = await setup();
      await barrier.put('a/1', Buffer.from('one'));
      const oldRoot = await copy(storage, ROOT_PATH);
      await barrier.put('a/1', Buffer.from('two'));
      await storage.put(ROOT_PATH, oldRoot);
      barrier.seal();
      const restarted = await barrierOn(storage, rootKey);
      await assert.rejects(restarted.get('a/1'), reason('replayed'));
    });

    test('the index cannot be deleted to have it rebuilt from replayed records', async () => {
      const { storage, rootKey, barrier } = await setup();
      await barrier.put('a/1', Buffer.from('one'));
      for (const p of await storage.list(INDEX_PREFIX)) await storage.delete(p);
      barrier.seal();
      await assert.rejects(barrierOn(storage, rootKey), reason('index_missing'));
    });

    test('a keyring put back from before a rotation leaves the vault sealed', async () => {
      const { storage, rootKey, barrier } = await setup();
      await barrier.put('a/1', Buffer.from('one'));
      const oldRing = await copy(storage, KEYRING_PATH);
      await barrier.rotate();
      await storage.put(KEYRING_PATH, oldRing);
      barrier.seal();
      await assert.rejects(barrierOn(storage, rootKey), integrity);
    });

    test("a change to the seal's own records is caught at unseal", async () => {
      const storage = kind === 'exclusive' ? createMemoryStorage() : sharedMemoryStorage();
      const rootKey = randomBytes(32);
      const b = createBarrier(storage, manualClock());
      await b.initialize(rootKey, new Map([['core/seal/config', Buffer.from('{"threshold":3}')]]));
      await b.unseal(rootKey);
      b.seal();
      await storage.put('core/seal/config', Buffer.from('{"threshold":1}'));
      await assert.rejects(barrierOn(storage, rootKey), reason('seal_changed'));
    });

    test('the index paths are not writable through the barrier', async () => {
      const { barrier } = await setup();
      await assert.rejects(barrier.put(ROOT_PATH, Buffer.from('x')), TypeError);
      await assert.rejects(barrier.put(bucketPath(0), Buffer.from('x')), TypeError);
    });

    test('a replayed record read from inside a transaction is an integrity error, never a hang', {
      timeout: 5_000,
    }, async () => {
      const { storage, barrier } = await setup();
      await barrier.put('a/replayed', Buffer.from('one'));
      const old = await copy(storage, 'a/replayed');
      await barrier.put('a/replayed', Buffer.from('two'));
      await storage.put('a/replayed', old);
      await assert.rejects(
        barrier.transaction(async (tx) => {
          await tx.put('a/other', Buffer.from('x'));
          return barrier.get('a/replayed'); // a read outside the transaction, from inside it
        }),
        integrity,
      );
    });

    test('100 concurrent writers and readers never see a false integrity error', async () => {
      const { barrier } = await setup();
      const paths = Array.from({ length: 20 }, (_, i) => `race/${i}`);
      for (const p of paths) await barrier.put(p, Buffer.from('0'));
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) {
        const p = paths[i % paths.length]!;
        work.push(barrier.put(p, Buffer.from(String(i))));
        work.push(barrier.get(p));
        work.push(barrier.transaction(async (tx) => tx.get(paths[(i * 7) % paths.length]!)));
        if (i % 10 === 0) work.push(barrier.delete(`race/gone-${i}`));
      }
      await Promise.all(work);
      for (const p of paths) assert.ok(await barrier.get(p));
    });
  });
}

describe('the version index', () => {
  test('a whole-index rollback under a running server on shared storage is caught', async () => {
    const storage = sharedMemoryStorage();
    const rootKey = randomBytes(32);
    const barrier = await barrierOn(storage, rootKey, true);
    await barrier.put('a/1', Buffer.from('one'));
    const snapshot = new Map<string, Buffer>();
    for (const p of await storage.list('')) snapshot.set(p, await copy(storage, p));
    await barrier.put('a/1', Buffer.from('two'));
    for (const [p, v] of snapshot) await storage.put(p, v);
    await assert.rejects(barrier.get('a/1'), reason('index_rolled_back'));
  });

  test('a database written before the index is migrated at unseal, and replays are caught from then on', async () => {
    // build a "format 1" database: what the barrier wrote before the version index
    const storage = createMemoryStorage();
    const rootKey = randomBytes(32);
    const b = await barrierOn(storage, rootKey, true);
    b.seal();
    for (const p of await storage.list(INDEX_PREFIX)) await storage.delete(p);
    const ringPlain = open(
      importAesKey(rootKey),
      (await copy(storage, KEYRING_PATH)).subarray(5),
      recordAad(0, KEYRING_PATH),
    )!;
    const ring = JSON.parse(ringPlain.toString('utf8')) as { terms: { term: number; key: string }[] };
    const termKey = importAesKey(Buffer.from(ring.terms[0]!.key, 'base64'));
    for (const [p, v] of [
      ['kv/meta/demo/A', 'alpha'],
      ['sys/token/id/t1', 'token'],
    ] as const) {
      await storage.put(p, encryptRecord(termKey, 1, p, Buffer.from(v)));
    }
    const oldToken = await copy(storage, 'sys/token/id/t1');

    const upgraded = await barrierOn(storage, rootKey);
    assert.equal((await upgraded.get('kv/meta/demo/A'))!.toString(), 'alpha');
    assert.equal((await copy(storage, 'kv/meta/demo/A'))[0], 2, 'rewritten as format 2');
    await upgraded.delete('sys/token/id/t1');
    await storage.put('sys/token/id/t1', oldToken);
    await assert.rejects(upgraded.get('sys/token/id/t1'), reason('unindexed'));
  });
});
