import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Owner } from '../../contract/identity.ts';
import { isStrongroomError } from '../../errors/errors.ts';
import { manualClock } from '../../lib/clock.ts';
import { limitSubject, rateLimitStep } from './rate-limit.ts';

const app: Owner = { type: 'app', id: 'client-1', name: 'billing' };
const other: Owner = { type: 'app', id: 'client-2', name: 'search' };
const limited = (err: unknown) => isStrongroomError(err, 'rate_limited');

test('no limit configured (or a rate of 0) counts nothing', () => {
  assert.equal(rateLimitStep(undefined, manualClock()), undefined);
  assert.equal(rateLimitStep({ requests_per_second: 0, burst: 5 }, manualClock()), undefined);
});

test('the burst is spent per owner, then refused with retry_after, and refills with time', () => {
  const clock = manualClock();
  const step = rateLimitStep({ requests_per_second: 1, burst: 3 }, clock)!;
  for (let i = 0; i < 3; i++) step.take(app);
  assert.throws(
    () => step.take(app),
    (e) => limited(e) && Number((e as { details?: { retry_after?: number } }).details?.retry_after) >= 1,
  );
  step.take(other); // another owner has its own bucket
  clock.advance(1000);
  step.take(app);
});

test('the subject is the owner, not the display name: two tokens of one app share a budget', () => {
  assert.equal(limitSubject(app), 'app:client-1');
  assert.equal(limitSubject({ ...app, name: 'renamed' }), 'app:client-1');
  const step = rateLimitStep({ requests_per_second: 1, burst: 1 }, manualClock())!;
  step.take(app);
  assert.throws(() => step.take({ ...app, name: 'second token of the same app' }), limited);
});

test('refused requests count against the same budget, with their own message', () => {
  const step = rateLimitStep({ requests_per_second: 1, burst: 1 }, manualClock())!;
  step.takeRefused(app);
  assert.throws(
    () => step.takeRefused(app),
    (e) => limited(e) && /refused requests/.test((e as Error).message),
  );
});
