import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { constantTimeEqual } from './random.ts';
import { combineShares, splitSecret } from './shamir.ts';
import { generateToken, isWellFormedToken } from './token.ts';

describe('tokens', () => {
  test('a generated token has the srt_ prefix, 256 random bits and a valid checksum', () => {
    const t = generateToken();
    assert.match(t, /^srt_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}$/);
    assert.equal(isWellFormedToken(t), true);
    assert.notEqual(generateToken(), t);
  });

  test('a token with any changed character fails its checksum', () => {
    const t = generateToken();
    for (let i = 4; i < t.length; i++) {
      if (t[i] === '_' && i === 47) continue;
      const c = t[i] === 'A' ? 'B' : 'A';
      const bad = t.slice(0, i) + c + t.slice(i + 1);
      assert.equal(isWellFormedToken(bad), false, `position ${i}`);
    }
  });

  test('shapes that are not tokens are refused', () => {
    for (const s of ['', 'srt_', 'Bearer x', 'srt_abc_def', `${generateToken()}x`, 'SRT_'.padEnd(55, 'a')]) {
      assert.equal(isWellFormedToken(s), false, s);
    }
  });
});

describe('shamir', () => {
  test('any threshold-sized subset of shares reconstructs the secret', async () => {
    const secret = randomBytes(32);
    const shares = await splitSecret(secret, 5, 3);
    assert.equal(shares.length, 5);
    for (const subset of [
      [0, 1, 2],
      [2, 3, 4],
      [0, 2, 4],
      [4, 1, 3],
    ]) {
      assert.deepEqual(await combineShares(subset.map((i) => shares[i]!)), secret);
    }
  });

  test('fewer shares than the threshold do not reconstruct the secret', async () => {
    const secret = randomBytes(32);
    const shares = await splitSecret(secret, 5, 3);
    const guess = await combineShares([shares[0]!, shares[1]!]);
    assert.notDeepEqual(guess, secret);
  });

  test('a single share works as the whole key', async () => {
    const secret = randomBytes(32);
    const [only] = await splitSecret(secret, 1, 1);
    assert.deepEqual(await combineShares([only!]), secret);
  });

  test('bad share counts are refused', async () => {
    await assert.rejects(splitSecret(randomBytes(32), 2, 3), TypeError);
    await assert.rejects(splitSecret(randomBytes(32), 256, 3), TypeError);
  });
});

test('constant-time comparison tells equal from unequal, whatever the lengths', () => {
  assert.equal(constantTimeEqual('abc', 'abc'), true);
  assert.equal(constantTimeEqual('abc', 'abd'), false);
  assert.equal(constantTimeEqual('abc', 'abcd'), false);
  assert.equal(constantTimeEqual(Buffer.from([1, 2]), Buffer.from([1, 2])), true);
});
