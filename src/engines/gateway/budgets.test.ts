import assert from 'node:assert/strict';
import { test } from 'node:test';
import { costOf, priceOf } from '../../api/pricing.ts';
import { createBarrier } from '../../barrier/barrier.ts';
import { randomKey } from '../../crypto/random.ts';
import { isStrongroomError } from '../../errors/errors.ts';
import { manualClock } from '../../lib/clock.ts';
import { createMemoryStorage } from '../../storage/memory.ts';
import { createBudgets, periodOf } from './budgets.ts';

/** An unsealed barrier's view for budgets over `storage` (initialised when `root` is new). */
async function gatewayView(
  storage: ReturnType<typeof createMemoryStorage>,
  clock: ReturnType<typeof manualClock>,
  root: ReturnType<typeof randomKey>,
  init: boolean,
) {
  const barrier = createBarrier(storage, clock);
  if (init) await barrier.initialize(root);
  await barrier.unseal(root);
  return barrier.view('logical/gateway/');
}

async function setup(opts: { writeBehindMs?: number } = {}) {
  const storage = createMemoryStorage();
  const clock = manualClock(Date.UTC(2026, 0, 31, 23, 59, 0));
  const view = await gatewayView(storage, clock, randomKey(), true);
  return { storage, clock, budgets: createBudgets(view, clock, opts) };
}

test('a subject without limits is only counted', async () => {
  const { budgets } = await setup();
  for (let i = 0; i < 50; i++)
    await budgets.reserve([{ key: 'vk:free', limits: {} }], { tokens: 1e6, costUsd: 100 });
});

test('a limit of 0 refuses everything', async () => {
  const { budgets } = await setup();
  for (const limits of [
    { requests_per_minute: 0 },
    { tokens_per_minute: 0 },
    { spend: { usd: 0, period: 'total' as const } },
  ]) {
    await assert.rejects(
      budgets.reserve([{ key: `k${JSON.stringify(limits)}`, limits }], { tokens: 0, costUsd: 0 }),
      (e) => isStrongroomError(e, 'rate_limited'),
    );
  }
});

test('a monthly budget resets with the month; retry_after says when', async () => {
  const { budgets, clock } = await setup();
  const s = [{ key: 'vk:m', limits: { spend: { usd: 1, period: 'month' as const } } }];
  await budgets.reserve(s, { tokens: 0, costUsd: 1 });
  await assert.rejects(budgets.reserve(s, { tokens: 0, costUsd: 0.01 }), (e) => {
    assert.ok(isStrongroomError(e, 'rate_limited'));
    assert.equal(e.details?.retry_after, 60, 'one minute to February');
    return true;
  });
  clock.advance(60_000);
  await budgets.reserve(s, { tokens: 0, costUsd: 1 });
});

test('a total budget never resets and hints a day', async () => {
  const { budgets, clock } = await setup();
  const s = [{ key: 'vk:t', limits: { spend: { usd: 0.5, period: 'total' as const } } }];
  await budgets.reserve(s, { tokens: 0, costUsd: 0.5 });
  clock.advance(400 * 86_400_000);
  await assert.rejects(budgets.reserve(s, { tokens: 0, costUsd: 0 }), (e) => {
    assert.ok(isStrongroomError(e, 'rate_limited'));
    assert.equal(e.details?.retry_after, 86_400);
    return true;
  });
});

test('a failed settlement can be retried; after success settle and release are no-ops', async () => {
  const { budgets } = await setup();
  const s = [{ key: 'vk:r', limits: { requests_per_minute: 1 } }];
  const r = await budgets.reserve(s, { tokens: 0, costUsd: 0 });
  await r.release();
  await r.settle({ input_tokens: 10, output_tokens: 10 }, 1);
  const again = await budgets.reserve(s, { tokens: 0, costUsd: 0 });
  await Promise.all([
    again.release(),
    again.release(),
    again.settle({ input_tokens: 1, output_tokens: 1 }, 0),
  ]);
  await budgets.reserve(s, { tokens: 0, costUsd: 0 });
});

test('budgets are stored through the barrier: no subject key in clear in storage', async () => {
  const { budgets, storage } = await setup();
  await budgets.reserve([{ key: 'app:very-identifiable-name', limits: { requests_per_minute: 5 } }], {
    tokens: 1,
    costUsd: 0,
  });
  for (const k of await storage.list('')) {
    assert.ok(!k.includes('very-identifiable-name'));
    assert.ok(
      !Buffer.from((await storage.get(k))!)
        .toString('latin1')
        .includes('very-identifiable-name'),
    );
  }
});

test('misuse is a TypeError', async () => {
  const { budgets } = await setup();
  await assert.rejects(budgets.reserve([{ key: '', limits: {} }], { tokens: 0, costUsd: 0 }), TypeError);
  await assert.rejects(budgets.reserve([{ key: 'a', limits: {} }], { tokens: -1, costUsd: 0 }), TypeError);
  await assert.rejects(
    budgets.reserve([{ key: 'a', limits: {} }], { tokens: 0, costUsd: Number.NaN }),
    TypeError,
  );
  await assert.rejects(
    budgets.reserve([{ key: 'a', limits: { requests_per_minute: 1.5 } }], { tokens: 0, costUsd: 0 }),
    TypeError,
  );
});

test('prices: exact entry first, then the most specific glob; unknown models cost 0', () => {
  const prices = {
    'gpt-4o': { input: 2.5, output: 10 },
    'gpt-4o*': { input: 5, output: 15 },
    'gpt-4o-mini*': { input: 0.15, output: 0.6 },
    '*': { input: 1, output: 1 },
  };
  assert.deepEqual(priceOf('gpt-4o', prices), { input: 2.5, output: 10 });
  assert.deepEqual(priceOf('gpt-4o-2024-08-06', prices), { input: 5, output: 15 });
  assert.deepEqual(priceOf('gpt-4o-mini-2024-07-18', prices), { input: 0.15, output: 0.6 });
  assert.deepEqual(priceOf('claude-3-5-sonnet', prices), { input: 1, output: 1 });
  assert.equal(priceOf('claude-3-5-sonnet', { 'gpt-*': { input: 1, output: 1 } }), undefined);
  assert.equal(priceOf('constructor', {}), undefined, 'no prototype lookups');
  // two globs as specific as each other: the higher price, in either order of the table
  const cheap = { input: 1, output: 1 };
  const dear = { input: 1000, output: 1000 };
  assert.deepEqual(priceOf('gpt-mini', { 'gpt-*': dear, '*mini': cheap }), dear);
  assert.deepEqual(priceOf('gpt-mini', { '*mini': cheap, 'gpt-*': dear }), dear);
  // each component at its higher price: an output-heavy call is never charged the cheaper output
  const inputHeavy = { input: 30, output: 1 };
  const outputHeavy = { input: 1, output: 15 };
  for (const table of [
    { 'gpt-*': inputHeavy, '*mini': outputHeavy },
    { '*mini': outputHeavy, 'gpt-*': inputHeavy },
  ])
    assert.deepEqual(priceOf('gpt-mini', table), { input: 30, output: 15 });
  assert.equal(costOf({ input_tokens: 2000, output_tokens: 1000 }, { input: 3, output: 15 }), 0.021);
  assert.equal(costOf({ input_tokens: 2000, output_tokens: 1000 }, undefined), 0);
  // prompt-cache tokens at their own prices: 0.1x, 1.25x and 2x the input price unless the table says
  const cached = {
    input_tokens: 0,
    output_tokens: 0,
    cache_read_tokens: 1e6,
    cache_write_5m_tokens: 1e6,
    cache_write_1h_tokens: 1e6,
  };
  assert.equal(costOf(cached, { input: 4, output: 0 }), 0.4 + 5 + 8);
  assert.equal(
    costOf(cached, { input: 4, output: 0, cache_read: 1, cache_write_5m: 2, cache_write_1h: 3 }),
    6,
  );
});

test('periods are UTC days and months', () => {
  const at = Date.UTC(2026, 1, 28, 23, 59, 59);
  assert.equal(periodOf('day', at), 'day:2026-02-28');
  assert.equal(periodOf('month', at), 'month:2026-02');
  assert.equal(periodOf('total', at), 'total');
  assert.equal(periodOf(undefined, at), '');
});

// ---- write-behind (exclusive storage: counted in memory, flushed to the barrier) ----

async function writeBehind(flushMs = 20) {
  const storage = createMemoryStorage();
  const clock = manualClock(Date.UTC(2026, 0, 31, 12, 0, 0));
  const barrier = createBarrier(storage, clock);
  const root = randomKey();
  await barrier.initialize(root);
  await barrier.unseal(root);
  const store = barrier.view('logical/gateway/');
  return { store, clock, make: () => createBudgets(store, clock, { writeBehindMs: flushMs }) };
}

test('write-behind: 100 concurrent reservations against a limit of 10 take exactly 10', async () => {
  const { make } = await writeBehind();
  const budgets = make();
  const results = await Promise.allSettled(
    Array.from({ length: 100 }, () =>
      budgets.reserve([{ key: 'vk:wb', limits: { requests_per_minute: 10 } }], { tokens: 1, costUsd: 0 }),
    ),
  );
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10);
  for (const r of results) {
    if (r.status === 'rejected') assert.ok(isStrongroomError(r.reason, 'rate_limited'));
  }
});

test('write-behind: counts reach storage, and a new instance (a restart) goes on from them', async () => {
  const { make } = await writeBehind(10);
  const first = make();
  const limits = { requests_per_minute: 5, spend: { usd: 1, period: 'day' as const } };
  for (let i = 0; i < 3; i++) {
    const r = await first.reserve([{ key: 'app:restart', limits }], { tokens: 10, costUsd: 0.1 });
    await r.settle({ input_tokens: 5, output_tokens: 5 }, 0.2);
  }
  await new Promise((r) => setTimeout(r, 60));
  const second = make();
  await second.reserve([{ key: 'app:restart', limits }], { tokens: 10, costUsd: 0.1 });
  await second.reserve([{ key: 'app:restart', limits }], { tokens: 10, costUsd: 0.1 });
  await assert.rejects(
    second.reserve([{ key: 'app:restart', limits }], { tokens: 10, costUsd: 0.1 }),
    (e: unknown) => isStrongroomError(e, 'rate_limited'),
    'the sixth request of the minute is refused: the first three were persisted',
  );
});

test('write-behind: a graceful close writes the counts kept in memory, so a restart loses no spend', async () => {
  // a flush period far longer than the test: only close() can have written the counts
  const { make } = await writeBehind(60_000);
  const first = make();
  const limits = { requests_per_minute: 3, spend: { usd: 1, period: 'day' as const } };
  const r = await first.reserve([{ key: 'app:close', limits }], { tokens: 10, costUsd: 0.1 });
  await r.settle({ input_tokens: 5, output_tokens: 5 }, 0.7);
  await first.close?.();
  const second = make();
  await assert.rejects(
    second.reserve([{ key: 'app:close', limits }], { tokens: 10, costUsd: 0.5 }),
    (e: unknown) =>
      isStrongroomError(e, 'rate_limited') && /budget of 1 USD per day is spent/.test(String(e)),
    'the spend settled before the close (0.7 of 1 USD) was written: 0.5 more is over the budget',
  );
  await second.reserve([{ key: 'app:close', limits }], { tokens: 10, costUsd: 0.2 });
  await second.close?.();
});

test('write-behind: settle and release adjust the counts; a refused reservation takes nothing', async () => {
  const { make } = await writeBehind();
  const budgets = make();
  const limits = { tokens_per_minute: 100 };
  const r = await budgets.reserve([{ key: 'vk:adj', limits }], { tokens: 60, costUsd: 0 });
  await assert.rejects(budgets.reserve([{ key: 'vk:adj', limits }], { tokens: 60, costUsd: 0 }));
  await r.release();
  const again = await budgets.reserve([{ key: 'vk:adj', limits }], { tokens: 60, costUsd: 0 });
  await again.settle({ input_tokens: 10, output_tokens: 0 }, 0);
  await budgets.reserve([{ key: 'vk:adj', limits }], { tokens: 80, costUsd: 0 });
});

test('shared storage: another server settles a reservation from its ticket; a malformed ticket is refused', async () => {
  const s = [{ key: 'vk:shared', limits: { tokens_per_minute: 150 } }];
  const first = await setupShared();
  const r = await first.a.reserve(s, { tokens: 100, costUsd: 0 });
  assert.ok(r.ticket, 'a reservation on shared storage has a ticket');
  // without the settlement the next 100 would not fit
  await assert.rejects(first.a.reserve(s, { tokens: 100, costUsd: 0 }), (e) =>
    isStrongroomError(e, 'rate_limited'),
  );
  await first.b.resume!(r.ticket!).settle({ input_tokens: 6, output_tokens: 4 }, 0);
  await first.a.reserve(s, { tokens: 100, costUsd: 0 });
  for (const bad of [
    '',
    'not json',
    '{"t":"x","n":1,"c":0}',
    JSON.stringify({ t: [{ key: 1 }], n: 0, c: 0 }),
  ]) {
    assert.throws(
      () => first.b.resume!(bad),
      (e) => isStrongroomError(e, 'invalid_value'),
      bad,
    );
  }
});

test('budgets kept in memory (write-behind) have no ticket: only their own process settles them', async () => {
  const wb = (await setup({ writeBehindMs: 1_000 })).budgets;
  const r = await wb.reserve([{ key: 'vk:wb', limits: {} }], { tokens: 1, costUsd: 0 });
  assert.equal(r.ticket, undefined);
  assert.equal(wb.resume, undefined);
  await r.release();
});

/** Two budget instances over one storage, as two vault servers sharing PostgreSQL. */
async function setupShared() {
  const storage = createMemoryStorage({ shared: true });
  const clock = manualClock(Date.UTC(2026, 0, 31, 12, 0, 0));
  const root = randomKey();
  const one = await gatewayView(storage, clock, root, true);
  const two = await gatewayView(storage, clock, root, false);
  return { a: createBudgets(one, clock), b: createBudgets(two, clock) };
}
