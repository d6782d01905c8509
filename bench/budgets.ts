// Gateway budget reservations per second (src/engines/gateway/budgets.ts), on
// each storage backend, against a bare storage transaction of one put in the
// same run. Variants, each run sequentially by one caller (the latency of one
// call) and by CONCURRENCY callers at once (throughput under contention):
//   bare tx (1 put)         storage.transaction(tx => tx.put(k, 64 new bytes)): the baseline
//   barrier tx (get+put)    the same through the barrier (decrypt + encrypt): the floor under a reservation
//   reserve (1 subject)     budgets.reserve([vk], …): one barrier transaction, read + write of one record
//   reserve+settle          a whole call's budget work: reserve, then settle from usage (two transactions)
//   reserve (3 subjects)    key + app + workload in one transaction
// ratio = reservations/s ÷ bare transactions/s (higher is better; 1.00x = as cheap as one put).
// Subjects have limits high enough never to refuse. PostgreSQL runs when
// BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/test) answers, in a fresh
// table dropped afterwards. Knobs: BENCH_SCALE (1), BENCH_CONCURRENCY (16).
import { join } from 'node:path';
import { createBarrier } from '../src/barrier/barrier.ts';
import { randomKey } from '../src/crypto/random.ts';
import { createBudgets } from '../src/engines/gateway/budgets.ts';
import { systemClock } from '../src/lib/clock.ts';
import type { StorageBackend } from '../src/storage/backend.ts';
import { createMemoryStorage } from '../src/storage/memory.ts';
import { createSqliteStorage } from '../src/storage/sqlite.ts';
import { pgSkipReason, withScratchTable } from './lib/pg.ts';
import { fmt, table, tempDir, watchdog } from './lib/proc.ts';

const env = process.env;
const SCALE = Number(env.BENCH_SCALE ?? 1);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 16);
const PG_URL = env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ITER: Record<string, number> = { memory: 5000, sqlite: 1500, postgres: 1500 };

watchdog(600_000, 'budgets');

const LIMITS = {
  requests_per_minute: 1e12,
  tokens_per_minute: 1e12,
  spend: { usd: 1e9, period: 'day' as const },
};
const freshValue = (i: number) => new Uint8Array(64).fill(i & 255);

/** Runs `op` n times with `width` callers at once; returns ops per second. */
async function rate(n: number, width: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function measure(kind: string, storage: StorageBackend, rows: (string | number)[][]): Promise<void> {
  const barrier = createBarrier(storage, systemClock);
  const root = randomKey();
  await barrier.initialize(root);
  await barrier.unseal(root);
  const store = barrier.view('logical/gateway/');
  const budgets = createBudgets(store, systemClock);
  const n = Math.max(100, Math.round((ITER[kind] ?? 1000) * SCALE));
  const estimate = { tokens: 1200, costUsd: 0.004 };
  const usage = { input_tokens: 1000, output_tokens: 400 };
  for (const width of [1, CONCURRENCY]) {
    // every caller works on its own subjects, as different keys do (contention on one subject is the test suite's business)
    const subject = (i: number) => `vk:bench-${i % width}`;
    const variants: [string, (i: number) => Promise<unknown>][] = [
      // a new value each time: SQLite does not even write a page whose content did not change
      [
        'bare tx (1 put)',
        (i) => storage.transaction((tx) => tx.put(`bench/bare/${i % width}`, freshValue(i))),
      ],
      [
        'barrier tx (get+put)',
        (i) =>
          store.transaction(async (tx) => {
            await tx.get(`bench/${i % width}`);
            await tx.put(`bench/${i % width}`, freshValue(i));
          }),
      ],
      ['reserve (1 subject)', (i) => budgets.reserve([{ key: subject(i), limits: LIMITS }], estimate)],
      [
        'reserve+settle',
        async (i) =>
          (await budgets.reserve([{ key: subject(i), limits: LIMITS }], estimate)).settle(usage, 0.005),
      ],
      [
        'reserve (3 subjects)',
        (i) =>
          budgets.reserve(
            [
              { key: subject(i), limits: LIMITS },
              { key: `app:bench-${i % width}`, limits: LIMITS },
              { key: `workload:bench-${i % width}`, limits: LIMITS },
            ],
            estimate,
          ),
      ],
    ];
    // warm-up, then two rounds in alternating order; the median of the two is kept
    for (const [, op] of variants) await rate(Math.ceil(n / 10), width, op);
    const got: number[][] = variants.map(() => []);
    for (const order of [variants.map((_, i) => i), variants.map((_, i) => variants.length - 1 - i)]) {
      for (const v of order) got[v]!.push(await rate(n, width, variants[v]![1]));
    }
    const perSec = got.map((xs) => xs.reduce((a, b) => a + b, 0) / xs.length);
    variants.forEach(([name], v) => {
      rows.push([
        kind,
        width,
        name,
        fmt(perSec[v]!),
        (1e6 / perSec[v]!).toFixed(1),
        `${(perSec[v]! / perSec[0]!).toFixed(2)}x`,
      ]);
    });
  }
  barrier.seal();
}

async function main(): Promise<void> {
  process.stdout.write(
    `budgets: reservations per second (node ${process.version}); ratio = ops/s ÷ a bare storage transaction of one put, same backend, same run\n`,
  );
  const rows: (string | number)[][] = [];
  const notes: string[] = [];

  const mem = createMemoryStorage();
  await measure('memory', mem, rows);
  await mem.close();

  const dir = tempDir('strongroom-bench-budgets-');
  const sqlite = createSqliteStorage({ path: join(dir, 'bench.db') });
  await measure('sqlite', sqlite, rows);
  await sqlite.close();

  const skip = await pgSkipReason(PG_URL);
  if (skip) notes.push(`postgres: ${skip}`);
  else await withScratchTable(PG_URL, 'bench_budgets', (store) => measure('postgres', store, rows));

  process.stdout.write(
    `\n${table(['storage', 'callers', 'variant', 'ops/s', 'µs/op', 'ratio vs bare tx'], rows)}\n`,
  );
  for (const n of notes) process.stdout.write(`${n}\n`);
}

await main();
