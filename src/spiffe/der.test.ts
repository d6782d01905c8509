import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DerError, decodeOid, oid, readTlv, readWhole, seq, time, unsignedInteger } from './der.ts';

test('OIDs round-trip, including multi-byte arcs', () => {
  for (const o of ['2.5.29.17', '1.2.840.10045.4.3.2', '1.3.6.1.4.1.311.21.7', '2.999.1']) {
    const enc = oid(o);
    assert.equal(decodeOid(enc, readWhole(enc)), o);
  }
});

test('integers are minimal and positive', () => {
  assert.deepEqual([...unsignedInteger(Buffer.from([0, 0, 1]))], [2, 1, 1]);
  assert.deepEqual([...unsignedInteger(Buffer.from([0x80]))], [2, 2, 0, 0x80]);
});

test('times switch from UTCTime to GeneralizedTime in 2050 (RFC 5280 §4.1.2.5)', () => {
  assert.equal(
    time(Date.UTC(2049, 11, 31, 23, 59, 59))
      .subarray(2)
      .toString(),
    '491231235959Z',
  );
  assert.equal(
    time(Date.UTC(2050, 0, 1))
      .subarray(2)
      .toString(),
    '20500101000000Z',
  );
  assert.equal(time(Date.UTC(2050, 0, 1))[0], 0x18);
});

test('long lengths are written and read back', () => {
  const big = seq(Buffer.alloc(300, 1));
  const t = readWhole(big);
  assert.equal(t.end - t.start, 300);
});

test('truncated, overlong and trailing input is refused', () => {
  const s = seq(Buffer.from([1, 2, 3]));
  assert.throws(() => readWhole(s.subarray(0, 4)), DerError);
  assert.throws(() => readWhole(Buffer.concat([s, Buffer.from([0])])), DerError);
  assert.throws(() => readTlv(Buffer.from([0x30, 0x81, 0x05, 0, 0, 0, 0, 0]), 0, 8), /non-minimal/);
  assert.throws(() => readTlv(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), 0, 7), DerError);
  assert.throws(() => readTlv(Buffer.from([0x1f, 0x01, 0x00]), 0, 3), DerError);
});
