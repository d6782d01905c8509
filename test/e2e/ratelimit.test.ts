import assert from 'node:assert/strict';
import { test } from 'node:test';
import { manualClock } from '../../src/lib/clock.ts';
import { buildTestApp } from '../helpers/app.ts';

test('a token over its request rate gets 429 with Retry-After, and recovers as its bucket refills', async (t) => {
  const clock = manualClock(Date.UTC(2026, 10, 1));
  const a = await buildTestApp(t, { clock, rateLimit: { requests_per_second: 2, burst: 5 } });
  const child = (await a.call('POST', '/v1/auth/token/create', { roles: ['admin'] })).json().auth
    .client_token as string;
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await a.call('GET', '/v1/projects', undefined, child)).statusCode);
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429]);
  const limited = await a.call('GET', '/v1/projects', undefined, child);
  assert.equal(limited.json().error.code, 'rate_limited');
  assert.equal(limited.headers['retry-after'], '1');
  clock.advance(1000);
  assert.equal((await a.call('GET', '/v1/projects', undefined, child)).statusCode, 200);
  // the root token is exempt (break-glass), and other tokens have their own budget
  for (let i = 0; i < 10; i++) assert.equal((await a.call('GET', '/v1/projects')).statusCode, 200);
  const other = (await a.call('POST', '/v1/auth/token/create', { roles: ['admin'] })).json().auth
    .client_token as string;
  assert.equal((await a.call('GET', '/v1/projects', undefined, other)).statusCode, 200);
});
