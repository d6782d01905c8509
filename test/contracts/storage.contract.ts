import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import type { StorageBackend } from '../../src/storage/backend.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined =>
  value === undefined ? undefined : new TextDecoder().decode(value);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// Keys whose byte order differs from naive expectations: LIKE wildcards, a key
// equal to a prefix, keys that are prefixes of each other, and U+FF00 (EF BC 80)
// which sorts before U+1F600 (F0 9F 98 80) in bytes but after it in UTF-16.
const ORDERED_KEYS = [
  'a',
  'a%',
  'a/b',
  'a/b/c',
  'a/bc',
  'a/é',
  'a/\uFF00',
  'a/\u{1F600}',
  'a_',
  'aa',
  'b',
  'b%c',
  'b_c',
  'bxc',
];

/**
 * The behaviour every StorageBackend must have. `make` opens a fresh, empty
 * backend for the test (and arranges to close it); `reopen`, for persistent
 * backends, opens the same store again after it was closed.
 */
export function storageContract(
  name: string,
  make: (t: TestContext) => Promise<StorageBackend>,
  reopen?: (t: TestContext) => Promise<StorageBackend>,
): void {
  describe(name, () => {
    test('get of a missing key is undefined', async (t) => {
      const storage = await make(t);
      assert.equal(await storage.get('missing'), undefined);
    });

    test('put then get returns the same bytes', async (t) => {
      const storage = await make(t);
      const cases: [string, Uint8Array][] = [
        ['empty', new Uint8Array(0)],
        ['zeros', new Uint8Array([0, 0, 0])],
        ['all-bytes', Uint8Array.from({ length: 256 }, (_, i) => i)],
        ['utf8', bytes('héllo 🌍')],
        ['one-mebibyte', Uint8Array.from({ length: 1024 * 1024 }, (_, i) => (i * 31 + 7) & 0xff)],
      ];
      for (const [key, value] of cases) await storage.put(key, value);
      for (const [key, value] of cases) {
        const got = await storage.get(key);
        assert.ok(got instanceof Uint8Array, key);
        assert.equal(got.length, value.length, key);
        assert.ok(Buffer.from(got).equals(value), key);
      }
    });

    test('getMany, where offered, answers every key in order from one snapshot', async (t) => {
      const storage = await make(t);
      const getMany = storage.getMany?.bind(storage);
      if (!getMany) return t.skip(`${storage.kind} reads several keys in a transaction instead`);
      await storage.put('a', bytes('one'));
      await storage.put('c', bytes('three'));
      assert.deepEqual(await getMany(['c', 'missing', 'a', 'a']), [
        bytes('three'),
        undefined,
        bytes('one'),
        bytes('one'),
      ]);
      assert.deepEqual(await getMany([]), []);
      await assert.rejects(getMany(['ok', '']), TypeError);
      // never a half-applied transaction: both keys from before it, or both from after
      const writes = Array.from({ length: 20 }, (_, i) =>
        storage.transaction(async (tx) => {
          await tx.put('x', bytes(String(i)));
          await tx.put('y', bytes(String(i)));
        }),
      );
      const reads = Array.from({ length: 20 }, () => getMany(['x', 'y']));
      for (const [x, y] of await Promise.all(reads)) {
        assert.deepEqual(x, y);
      }
      await Promise.all(writes);
    });

    test('putMany and deleteMany, where a transaction offers them, act as their single forms', async (t) => {
      const storage = await make(t);
      await storage.put('gone', bytes('x'));
      const offered = await storage
        .transaction(async (tx) => {
          if (!tx.putMany || !tx.deleteMany) return false;
          await tx.putMany([
            ['a', bytes('one')],
            ['b', Uint8Array.from({ length: 256 }, (_, i) => i)],
          ]);
          await tx.deleteMany(['gone', 'never-there']);
          await tx.putMany([]);
          assert.deepEqual(await tx.get('a'), bytes('one'));
          await assert.rejects(
            tx.putMany([
              ['c', bytes('1')],
              ['c', bytes('2')],
            ]),
            TypeError,
          );
          return true;
        })
        .catch((err: unknown) => err);
      if (offered === false) return t.skip(`${storage.kind} transactions write one key at a time`);
      // a failed statement aborts a PostgreSQL transaction: the rejected duplicate may have rolled it back
      if (offered instanceof Error) throw offered;
      assert.deepEqual(await storage.get('a'), bytes('one'));
      assert.deepEqual(
        await storage.get('b'),
        Uint8Array.from({ length: 256 }, (_, i) => i),
      );
      assert.equal(await storage.get('gone'), undefined);
    });

    test('get returns a plain Uint8Array', async (t) => {
      const storage = await make(t);
      await storage.put('k', bytes('v'));
      assert.deepEqual(await storage.get('k'), bytes('v'));
    });

    test('a view into a larger buffer stores only its own bytes', async (t) => {
      const storage = await make(t);
      const whole = new Uint8Array([9, 9, 1, 2, 3, 9]);
      await storage.put('k', whole.subarray(2, 5));
      assert.deepEqual(await storage.get('k'), new Uint8Array([1, 2, 3]));
    });

    test('put replaces the previous value', async (t) => {
      const storage = await make(t);
      await storage.put('k', bytes('first, and longer'));
      await storage.put('k', bytes('second'));
      assert.equal(text(await storage.get('k')), 'second');
    });

    test('delete removes the key and deleting a missing key is fine', async (t) => {
      const storage = await make(t);
      await storage.put('k', bytes('v'));
      await storage.delete('k');
      assert.equal(await storage.get('k'), undefined);
      assert.deepEqual(await storage.list(''), []);
      await storage.delete('k');
      await storage.delete('never-existed');
    });

    test('mutating a value after put or get does not change what is stored', async (t) => {
      const storage = await make(t);
      const value = bytes('original');
      await storage.put('k', value);
      value.fill(0);
      const got = await storage.get('k');
      assert.equal(text(got), 'original');
      got!.fill(0);
      assert.equal(text(await storage.get('k')), 'original');
    });

    test('list returns exactly the keys with the prefix, in byte order', async (t) => {
      const storage = await make(t);
      for (const key of [...ORDERED_KEYS].reverse()) await storage.put(key, bytes(key));
      assert.deepEqual(await storage.list(''), ORDERED_KEYS);
      const cases: [string, string[]][] = [
        ['a', ORDERED_KEYS.filter((key) => key.startsWith('a'))],
        ['a/', ['a/b', 'a/b/c', 'a/bc', 'a/é', 'a/\uFF00', 'a/\u{1F600}']],
        ['a/b', ['a/b', 'a/b/c', 'a/bc']],
        ['a/b/', ['a/b/c']],
        ['a/b/c', ['a/b/c']],
        ['a/bc', ['a/bc']],
        ['a%', ['a%']],
        ['a_', ['a_']],
        ['b%', ['b%c']],
        ['b_', ['b_c']],
        ['a/\uFF00', ['a/\uFF00']],
        ['a/\uD83D\uDE00', ['a/\u{1F600}']],
        ['c', []],
        ['a/b/c/', []],
      ];
      for (const [prefix, expected] of cases) {
        assert.deepEqual(await storage.list(prefix), expected, `list(${JSON.stringify(prefix)})`);
      }
    });

    test('list handles prefixes ending at the edges of the code point range', async (t) => {
      const storage = await make(t);
      const keys = [
        'p\uD7FF',
        'p\uD7FFz',
        'p\uE000',
        'q\u{10FFFF}',
        'q\u{10FFFF}x',
        'r',
        '\u{10FFFF}',
        '\u{10FFFF}!',
      ];
      for (const key of keys) await storage.put(key, bytes('v'));
      assert.deepEqual(await storage.list('p\uD7FF'), ['p\uD7FF', 'p\uD7FFz']);
      assert.deepEqual(await storage.list('q\u{10FFFF}'), ['q\u{10FFFF}', 'q\u{10FFFF}x']);
      assert.deepEqual(await storage.list('\u{10FFFF}'), ['\u{10FFFF}', '\u{10FFFF}!']);
    });

    test('list with a prefix longer than any key is empty', async (t) => {
      const storage = await make(t);
      await storage.put('k', bytes('v'));
      assert.deepEqual(await storage.list('k'.repeat(2000)), []);
    });

    test('a key of exactly 1024 bytes is accepted', async (t) => {
      const storage = await make(t);
      const key = `${'é'.repeat(511)}ab`; // 1022 + 2 bytes
      assert.equal(Buffer.byteLength(key), 1024);
      await storage.put(key, bytes('v'));
      assert.equal(text(await storage.get(key)), 'v');
      assert.deepEqual(await storage.list('é'), [key]);
    });

    const invalidKeys: [string, unknown][] = [
      ['an empty key', ''],
      ['a key with NUL', 'a\0b'],
      ['a key over 1024 bytes', 'k'.repeat(1025)],
      ['a key over 1024 bytes but not characters', 'é'.repeat(513)],
      ['a key with a lone surrogate', 'a\uD800b'],
      ['a key that is not a string', 42],
    ];
    for (const [label, key] of invalidKeys) {
      test(`${label} is rejected with a TypeError everywhere`, async (t) => {
        const storage = await make(t);
        const k = key as string;
        await assert.rejects(storage.get(k), TypeError);
        await assert.rejects(storage.put(k, bytes('v')), TypeError);
        await assert.rejects(storage.delete(k), TypeError);
        await storage.transaction(async (tx) => {
          await assert.rejects(tx.get(k), TypeError);
          await assert.rejects(tx.put(k, bytes('v')), TypeError);
          await assert.rejects(tx.delete(k), TypeError);
          await tx.put('ok', bytes('still usable'));
        });
        assert.deepEqual(await storage.list(''), ['ok']);
      });
    }

    test('a value that is not a Uint8Array is rejected with a TypeError', async (t) => {
      const storage = await make(t);
      await assert.rejects(storage.put('k', 'text' as unknown as Uint8Array), TypeError);
      await assert.rejects(
        storage.transaction((tx) => tx.put('k', [1, 2] as unknown as Uint8Array)),
        TypeError,
      );
      assert.equal(await storage.get('k'), undefined);
    });

    test('a list prefix with NUL or a lone surrogate is rejected with a TypeError', async (t) => {
      const storage = await make(t);
      await assert.rejects(storage.list('a\0'), TypeError);
      await assert.rejects(storage.list('a\uDC00'), TypeError);
      await assert.rejects(storage.list(7 as unknown as string), TypeError);
    });

    test('a transaction commits all of its writes and returns what fn returns', async (t) => {
      const storage = await make(t);
      await storage.put('doomed', bytes('x'));
      const result = await storage.transaction(async (tx) => {
        await tx.put('one', bytes('1'));
        await tx.put('two', bytes('2'));
        await tx.delete('doomed');
        return 'done';
      });
      assert.equal(result, 'done');
      assert.deepEqual(await storage.list(''), ['one', 'two']);
      assert.equal(text(await storage.get('two')), '2');
    });

    test('a transaction that throws leaves nothing written and rethrows the same error', async (t) => {
      const storage = await make(t);
      await storage.put('kept', bytes('old'));
      await storage.put('other', bytes('still here'));
      const boom = new Error('boom');
      await assert.rejects(
        storage.transaction(async (tx) => {
          await tx.put('kept', bytes('new'));
          await tx.put('added', bytes('x'));
          await tx.delete('other');
          throw boom;
        }),
        (err) => err === boom,
      );
      assert.equal(text(await storage.get('kept')), 'old');
      assert.equal(await storage.get('added'), undefined);
      assert.deepEqual(await storage.list(''), ['kept', 'other']);
    });

    test('of many writes started together, the one that throws fails alone and every other commits', async (t) => {
      const storage = await make(t);
      const boom = new Error('boom');
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) =>
          i % 10 === 3
            ? storage.transaction(async (tx) => {
                await tx.put(`k${i}`, bytes('never'));
                throw boom;
              })
            : i % 2
              ? storage.put(`k${i}`, bytes(String(i)))
              : storage.transaction(async (tx) => {
                  await tx.put(`k${i}`, bytes(String(i)));
                  return i;
                }),
        ),
      );
      for (const [i, r] of results.entries()) {
        if (i % 10 === 3) {
          assert.equal(r.status, 'rejected');
          assert.equal((r as PromiseRejectedResult).reason, boom);
          assert.equal(await storage.get(`k${i}`), undefined, `k${i} was rolled back`);
        } else {
          assert.equal(r.status, 'fulfilled', `k${i}`);
          if (i % 2 === 0) assert.equal((r as PromiseFulfilledResult<unknown>).value, i);
          assert.equal(text(await storage.get(`k${i}`)), String(i));
        }
      }
    });

    test('reads inside a transaction see its own writes and deletes', async (t) => {
      const storage = await make(t);
      for (const key of ['a/1', 'a/2', 'a/3']) await storage.put(key, bytes(key));
      await storage.transaction(async (tx) => {
        await tx.put('a/2', bytes('changed'));
        await tx.put('a/0', bytes('new'));
        await tx.put('a/9', bytes('new'));
        await tx.delete('a/3');
        await tx.put('b', bytes('elsewhere'));
        assert.equal(text(await tx.get('a/2')), 'changed');
        assert.equal(text(await tx.get('a/0')), 'new');
        assert.equal(await tx.get('a/3'), undefined);
        assert.equal(text(await tx.get('a/1')), 'a/1');
        assert.deepEqual(await tx.list('a/'), ['a/0', 'a/1', 'a/2', 'a/9']);
        assert.deepEqual(await tx.list(''), ['a/0', 'a/1', 'a/2', 'a/9', 'b']);
        await tx.delete('a/0');
        await tx.put('a/3', bytes('back'));
        assert.deepEqual(await tx.list('a/'), ['a/1', 'a/2', 'a/3', 'a/9']);
      });
      assert.deepEqual(await storage.list(''), ['a/1', 'a/2', 'a/3', 'a/9', 'b']);
      assert.equal(text(await storage.get('a/3')), 'back');
    });

    test('values read inside a transaction are copies', async (t) => {
      const storage = await make(t);
      await storage.transaction(async (tx) => {
        const value = bytes('staged');
        await tx.put('k', value);
        value.fill(0);
        const got = await tx.get('k');
        assert.equal(text(got), 'staged');
        got!.fill(0);
        assert.equal(text(await tx.get('k')), 'staged');
      });
      assert.equal(text(await storage.get('k')), 'staged');
    });

    test('writes of an uncommitted transaction are invisible outside it', async (t) => {
      const storage = await make(t);
      await storage.put('existing', bytes('old'));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let staged!: () => void;
      const isStaged = new Promise<void>((resolve) => {
        staged = resolve;
      });
      const running = storage.transaction(async (tx) => {
        await tx.put('new', bytes('x'));
        await tx.put('existing', bytes('new'));
        await tx.delete('existing');
        // the backend itself, read from inside fn, shows only committed state
        assert.equal(await storage.get('new'), undefined);
        staged();
        await gate;
      });
      await isStaged;
      assert.equal(await storage.get('new'), undefined);
      assert.equal(text(await storage.get('existing')), 'old');
      assert.deepEqual(await storage.list(''), ['existing']);
      release();
      await running;
      assert.deepEqual(await storage.list(''), ['new']);
    });

    test('concurrent read-modify-write transactions lose no update', async (t) => {
      const storage = await make(t);
      await storage.put('counter', bytes('0'));
      let calls = 0;
      await Promise.all(
        Array.from({ length: 20 }, () =>
          storage.transaction(async (tx) => {
            calls++;
            const current = Number(text(await tx.get('counter')));
            await tick(); // let the other transactions interleave
            await tx.put('counter', bytes(String(current + 1)));
          }),
        ),
      );
      assert.equal(text(await storage.get('counter')), '20');
      assert.ok(calls >= 20);
    });

    test('concurrent plain puts and transactions lose no update', async (t) => {
      const storage = await make(t);
      await storage.put('counter', bytes('0'));
      const work: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) {
        work.push(
          storage.transaction(async (tx) => {
            const current = Number(text(await tx.get('counter')));
            await tick();
            await tx.put('counter', bytes(String(current + 1)));
          }),
        );
        work.push(storage.put(`plain/${i}`, bytes('x')));
      }
      await Promise.all(work);
      assert.equal(text(await storage.get('counter')), '10');
      assert.equal((await storage.list('plain/')).length, 10);
    });

    test('a plain put racing a read-modify-write transaction is not lost', async (t) => {
      const storage = await make(t);
      await storage.put('counter', bytes('0'));
      let read!: () => void;
      const hasRead = new Promise<void>((resolve) => {
        read = resolve;
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const increment = storage.transaction(async (tx) => {
        const current = Number(text(await tx.get('counter')));
        read();
        await gate;
        await tx.put('counter', bytes(String(current + 1)));
      });
      await hasRead;
      const put = storage.put('counter', bytes('100'));
      // give the put a chance to land while the transaction is open
      await new Promise((resolve) => setTimeout(resolve, 50));
      release();
      await Promise.all([increment, put]);
      // serial orders: increment then put = 100, put then increment = 101; 1 would be a lost update
      assert.ok(['100', '101'].includes(text(await storage.get('counter'))!));
    });

    test('a plain put cannot close a serialization cycle between two transactions', async (t) => {
      const storage = await make(t);
      await storage.put('a', bytes('0'));
      await storage.put('b', bytes('0'));
      let read!: () => void;
      const hasRead = new Promise<void>((resolve) => {
        read = resolve;
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      // writer reads a then writes b; the put writes a; the reader reads a and b
      let writerSawA = '';
      const writer = storage.transaction(async (tx) => {
        writerSawA = text(await tx.get('a'))!;
        read();
        await gate;
        await tx.put('b', bytes('1'));
      });
      await hasRead;
      const put = storage.put('a', bytes('1'));
      // where the put can commit while the writer is open, start the reader after it
      await Promise.race([put, new Promise((resolve) => setTimeout(resolve, 50))]);
      const reader = storage.transaction(async (tx) => [text(await tx.get('a')), text(await tx.get('b'))]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      release();
      const [, , [readerSawA, readerSawB]] = await Promise.all([writer, put, reader]);
      // writer before put (it saw a=0), put before reader (a=1), reader before writer (b=0): a cycle
      assert.ok(
        !(writerSawA === '0' && readerSawA === '1' && readerSawB === '0'),
        'no serial order explains what the transactions saw',
      );
    });

    test('a transaction object cannot be used after its transaction ends', async (t) => {
      const storage = await make(t);
      let leaked!: Parameters<Parameters<StorageBackend['transaction']>[0]>[0];
      await storage.transaction(async (tx) => {
        leaked = tx;
      });
      await assert.rejects(leaked.get('k'), TypeError);
      await assert.rejects(leaked.list(''), TypeError);
      await assert.rejects(leaked.put('k', bytes('v')), TypeError);
      await assert.rejects(leaked.delete('k'), TypeError);
      assert.equal(await storage.get('k'), undefined);
    });

    test('writing through the backend inside a transaction is rejected instead of deadlocking', async (t) => {
      const storage = await make(t);
      await storage.transaction(async (tx) => {
        await assert.rejects(storage.put('outside', bytes('v')), TypeError);
        await assert.rejects(storage.delete('outside'), TypeError);
        await assert.rejects(
          storage.transaction(async () => {}),
          TypeError,
        );
        await tx.put('inside', bytes('v'));
      });
      assert.deepEqual(await storage.list(''), ['inside']);
    });

    test('close can be called twice and later calls reject with a TypeError', async (t) => {
      const storage = await make(t);
      await storage.put('k', bytes('v'));
      await storage.close();
      await storage.close();
      await assert.rejects(storage.get('k'), TypeError);
      await assert.rejects(storage.put('k', bytes('v')), TypeError);
      await assert.rejects(
        storage.transaction(async () => {}),
        TypeError,
      );
    });

    if (reopen) {
      test('data survives a reopen', async (t) => {
        const first = await make(t);
        await first.put('plain', bytes('p'));
        await first.transaction(async (tx) => {
          await tx.put('in-tx', bytes('t'));
        });
        await first.close();
        const second = await reopen(t);
        assert.deepEqual(await second.list(''), ['in-tx', 'plain']);
        assert.equal(text(await second.get('in-tx')), 't');
      });
    }
  });
}
