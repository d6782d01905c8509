import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBarrier } from '../barrier/barrier.ts';
import { isStrongroomError } from '../errors/errors.ts';
import { manualClock } from '../lib/clock.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import { addressKey, createAddressLimiter, createLockout } from './ratelimit.ts';

test('addresses are limited per IPv4 address and per IPv6 /64', () => {
  assert.equal(addressKey('203.0.113.7'), '203.0.113.7');
  assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:0db8:0001:0002::9'), '2001:db8:1:2::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
});

test('the address limiter refuses with rate_limited and a Retry-After once the bucket is empty', () => {
  const clock = manualClock();
  const l = createAddressLimiter({ per_minute: 10, burst: 10 }, clock);
  for (let i = 0; i < 10; i++) l.take('203.0.113.7');
  try {
    l.take('203.0.113.7');
    assert.fail('not limited');
  } catch (e) {
    assert.ok(isStrongroomError(e, 'rate_limited'));
    assert.equal(e.details?.retry_after, 6);
  }
  l.take('203.0.113.8');
  clock.advance(6000);
  l.take('203.0.113.7');
});

async function lockoutStore() {
  const storage = createMemoryStorage();
  const clock = manualClock();
  const barrier = createBarrier(storage, clock);
  await barrier.initialize(Buffer.alloc(32, 7));
  await barrier.unseal(Buffer.alloc(32, 7));
  return { store: barrier.view('lockout/'), clock };
}

const policy = { max_failures: 3, lock_seconds: 60, max_lock_seconds: 200, forget_seconds: 3600 };

test('a lockout locks after max_failures, doubles each time up to the maximum, and a success forgets', async () => {
  const { store, clock } = await lockoutStore();
  const l = createLockout(store, clock, policy);
  const lockedFor = async () => {
    try {
      await l.begin('k');
      return 0;
    } catch (e) {
      assert.ok(isStrongroomError(e, 'account_locked'));
      return e.details?.retry_after as number;
    }
  };
  for (let i = 0; i < 3; i++) assert.equal(await lockedFor(), 0);
  assert.equal(await lockedFor(), 60);
  clock.advance(60_000);
  for (let i = 0; i < 3; i++) assert.equal(await lockedFor(), 0);
  assert.equal(await lockedFor(), 120);
  clock.advance(120_000);
  for (let i = 0; i < 3; i++) assert.equal(await lockedFor(), 0);
  assert.equal(await lockedFor(), 200);
  clock.advance(200_000);
  await l.begin('k');
  await l.succeeded('k');
  for (let i = 0; i < 3; i++) assert.equal(await lockedFor(), 0);
  assert.equal(await lockedFor(), 60, 'a success resets the doubling');
});

test('forgiving an attempt uncounts it, even when it was the one that set the lock', async () => {
  const { store, clock } = await lockoutStore();
  const l = createLockout(store, clock, policy);
  await l.begin('k');
  await l.begin('k');
  const third = await l.begin('k');
  assert.ok(third.locked_until > 0);
  await l.forgive('k', third);
  // the lock is gone, and exactly one more attempt is allowed before it returns
  const again = await l.begin('k');
  assert.ok(again.locked_until > 0);
  await assert.rejects(l.begin('k'), (e) => isStrongroomError(e, 'account_locked'));
});
