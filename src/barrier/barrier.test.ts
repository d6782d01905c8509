import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { isStrongroomError } from '../errors/errors.ts';
import { manualClock } from '../lib/clock.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import { createBarrier, KEYRING_PATH } from './barrier.ts';

async function unsealedBarrier() {
  const storage = createMemoryStorage();
  const barrier = createBarrier(storage, manualClock());
  const rootKey = randomBytes(32);
  await barrier.initialize(rootKey);
  await barrier.unseal(rootKey);
  return { storage, barrier, rootKey };
}

const integrity = (err: unknown) => isStrongroomError(err, 'integrity_error');

const sharedMemoryStorage = () => createMemoryStorage({ shared: true });

describe('barrier', () => {
  test('a value round-trips and is stored only as ciphertext', async () => {
    const { storage, barrier } = await unsealedBarrier();
    const value = Buffer.from('sk-proj-canary-value-1234567890');
    await barrier.put('logical/kv/a', value);
    assert.deepEqual(await barrier.get('logical/kv/a'), value);
    const raw = Buffer.from((await storage.get('logical/kv/a'))!);
    assert.equal(raw.indexOf(value), -1);
    assert.equal(raw[0], 2, 'record format byte');
    assert.equal(raw.readUInt32BE(1), 1, 'key term 1');
    assert.ok(raw.readUIntBE(5, 6) >= 1, 'record version');
  });

  test('two writes of the same value use different nonces', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.put('x/1', Buffer.from('same'));
    await barrier.put('x/2', Buffer.from('same'));
    assert.notDeepEqual(
      (await storage.get('x/1'))!.subarray(5, 17),
      (await storage.get('x/2'))!.subarray(5, 17),
    );
  });

  test('a ciphertext moved to another path fails to decrypt', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.put('logical/kv/a', Buffer.from('alpha'));
    await storage.put('logical/kv/b', (await storage.get('logical/kv/a'))!);
    await assert.rejects(barrier.get('logical/kv/b'), integrity);
  });

  test('two ciphertexts swapped between paths both fail', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('alpha'));
    await barrier.put('p/b', Buffer.from('bravo'));
    const a = (await storage.get('p/a'))!;
    const b = (await storage.get('p/b'))!;
    await storage.put('p/a', b);
    await storage.put('p/b', a);
    await assert.rejects(barrier.get('p/a'), integrity);
    await assert.rejects(barrier.get('p/b'), integrity);
  });

  test('any flipped bit anywhere in a record is detected', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('a value of some length'));
    const good = Buffer.from((await storage.get('p/a'))!);
    for (let bit = 0; bit < good.byteLength * 8; bit++) {
      const bad = Buffer.from(good);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      await storage.put('p/a', bad);
      await assert.rejects(barrier.get('p/a'), integrity, `bit ${bit}`);
    }
    await storage.put('p/a', good);
    assert.equal((await barrier.get('p/a'))!.toString(), 'a value of some length');
  });

  test('a truncated record is an integrity error, never partial data', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('truncate me please'));
    const good = Buffer.from((await storage.get('p/a'))!);
    for (const len of [0, 1, 4, 5, 16, 17, good.byteLength - 16, good.byteLength - 1]) {
      await storage.put('p/a', good.subarray(0, len));
      await assert.rejects(barrier.get('p/a'), integrity, `length ${len}`);
    }
  });

  test('rotation adds a key term: new writes use it and old terms still decrypt', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.put('p/old', Buffer.from('old'));
    const info = await barrier.rotate();
    assert.equal(info.term, 2);
    await barrier.put('p/new', Buffer.from('new'));
    assert.equal(Buffer.from((await storage.get('p/new'))!).readUInt32BE(1), 2);
    assert.equal((await barrier.get('p/old'))!.toString(), 'old');
    assert.equal((await barrier.get('p/new'))!.toString(), 'new');
    assert.deepEqual(barrier.keyStatus().term, 2);
  });

  test('relabelling a record with another term fails', async () => {
    const { storage, barrier } = await unsealedBarrier();
    await barrier.rotate();
    await barrier.put('p/a', Buffer.from('x'));
    const raw = Buffer.from((await storage.get('p/a'))!);
    raw.writeUInt32BE(1, 1);
    await storage.put('p/a', raw);
    await assert.rejects(barrier.get('p/a'), integrity);
  });

  test('a server that did not see a rotation picks up the new term from storage', async () => {
    const storage = sharedMemoryStorage();
    const rootKey = randomBytes(32);
    const barrier = createBarrier(storage, manualClock());
    await barrier.initialize(rootKey);
    await barrier.unseal(rootKey);
    const other = createBarrier(storage, manualClock());
    await other.unseal(rootKey);
    await barrier.rotate();
    await barrier.put('p/a', Buffer.from('written under term 2'));
    assert.equal((await other.get('p/a'))!.toString(), 'written under term 2');
  });

  test('the keyring is encrypted under the root key: a wrong root key cannot unseal', async () => {
    const { storage } = await unsealedBarrier();
    const b = createBarrier(storage, manualClock());
    await assert.rejects(b.unseal(randomBytes(32)), (e) => isStrongroomError(e, 'invalid_unseal_key'));
    assert.equal(b.sealed, true);
    const ring = Buffer.from((await storage.get(KEYRING_PATH))!);
    assert.equal(ring.readUInt32BE(1), 0, 'the keyring is sealed by the root key (term 0)');
  });

  test('sealed means no key in memory: every read and write is refused', async () => {
    const { barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('x'));
    barrier.seal();
    await assert.rejects(barrier.get('p/a'), (e) => isStrongroomError(e, 'sealed'));
    await assert.rejects(barrier.put('p/a', Buffer.from('y')), (e) => isStrongroomError(e, 'sealed'));
    assert.throws(
      () => barrier.keyStatus(),
      (e) => isStrongroomError(e, 'sealed'),
    );
  });

  test('views are confined to their prefix and bind the full path', async () => {
    const { storage, barrier } = await unsealedBarrier();
    const kv = barrier.view('logical/kv/');
    await kv.put('a', Buffer.from('in view'));
    assert.ok(await storage.get('logical/kv/a'));
    assert.deepEqual(await kv.list(''), ['a']);
    const other = barrier.view('logical/other/');
    await storage.put('logical/other/a', (await storage.get('logical/kv/a'))!);
    await assert.rejects(other.get('a'), integrity);
  });

  test('a transaction that throws writes nothing', async () => {
    const { barrier } = await unsealedBarrier();
    await assert.rejects(
      barrier.transaction(async (tx) => {
        await tx.put('p/a', Buffer.from('1'));
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await barrier.get('p/a'), undefined);
  });

  test('the keyring path cannot be overwritten through the barrier', async () => {
    const { barrier } = await unsealedBarrier();
    await assert.rejects(barrier.put(KEYRING_PATH, Buffer.from('x')), TypeError);
  });

  test('the read cache never serves a value older than the last acknowledged write', async () => {
    const { barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('v1'));
    assert.equal((await barrier.get('p/a'))!.toString(), 'v1');
    await barrier.put('p/a', Buffer.from('v2'));
    assert.equal((await barrier.get('p/a'))!.toString(), 'v2');
    await barrier.transaction(async (tx) => tx.put('p/a', Buffer.from('v3')));
    assert.equal((await barrier.get('p/a'))!.toString(), 'v3');
    await barrier.view('p/').delete('a');
    assert.equal(await barrier.get('p/a'), undefined);
  });

  test('reads racing with writes settle on the last write', async () => {
    const { barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('0'));
    for (let i = 1; i <= 50; i++) {
      await Promise.all([barrier.get('p/a'), barrier.put('p/a', Buffer.from(String(i))), barrier.get('p/a')]);
      assert.equal((await barrier.get('p/a'))!.toString(), String(i));
    }
  });

  test('a caller that wipes the buffer it was given does not wipe the cache', async () => {
    const { barrier } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('keep me'));
    (await barrier.get('p/a'))!.fill(0);
    assert.equal((await barrier.get('p/a'))!.toString(), 'keep me');
  });

  test('sealing empties the cache', async () => {
    const { barrier, rootKey } = await unsealedBarrier();
    await barrier.put('p/a', Buffer.from('x'));
    await barrier.get('p/a');
    barrier.seal();
    await assert.rejects(barrier.get('p/a'), (e) => isStrongroomError(e, 'sealed'));
    await barrier.unseal(rootKey);
    assert.equal((await barrier.get('p/a'))!.toString(), 'x');
  });

  test("shared storage is never cached: another server's write is seen at once", async () => {
    const shared = sharedMemoryStorage();
    const rootKey = randomBytes(32);
    const a = createBarrier(shared, manualClock());
    await a.initialize(rootKey);
    await a.unseal(rootKey);
    const b = createBarrier(shared, manualClock());
    await b.unseal(rootKey);
    await a.put('p/x', Buffer.from('one'));
    assert.equal((await b.get('p/x'))!.toString(), 'one');
    await a.put('p/x', Buffer.from('two'));
    assert.equal((await b.get('p/x'))!.toString(), 'two');
  });

  test('getJson returns frozen values that follow every write', async () => {
    const { barrier } = await unsealedBarrier();
    await barrier.put('p/j', Buffer.from(JSON.stringify({ a: { b: 1 } })));
    const first = await barrier.getJson<{ a: { b: number } }>('p/j');
    assert.deepEqual(first, { a: { b: 1 } });
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first!.a));
    assert.throws(() => {
      (first as { a: { b: number } }).a.b = 2;
    }, TypeError);
    await barrier.put('p/j', Buffer.from(JSON.stringify({ a: { b: 3 } })));
    assert.deepEqual(await barrier.getJson('p/j'), { a: { b: 3 } });
    await barrier.transaction(async (tx) => {
      const inTx = await tx.getJson<{ a: { b: number } }>('p/j');
      assert.deepEqual(inTx, { a: { b: 3 } });
      await tx.put('p/j', Buffer.from(JSON.stringify({ a: { b: 4 } })));
    });
    assert.deepEqual(await barrier.getJson('p/j'), { a: { b: 4 } });
    assert.equal(await barrier.getJson('p/missing'), undefined);
  });
});
