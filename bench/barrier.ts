// Barrier cost per value, against raw AES-256-GCM in the same process.
//   raw AES-GCM      createCipheriv/createDecipheriv on a cached KeyObject,
//                    random 12-byte nonce, same-size AAD (the baseline)
//   record (sync)    the barrier's record format (format 2 with its version
//                    where the build has it) encrypted and opened: no storage,
//                    no async
//   barrier put+get  barrier.put() then barrier.get() over memory storage: the
//                    full path a secret write/read takes below the engine
//                    (the put is a transaction that also rewrites the
//                    record's index bucket and the index root, decision 0012)
//   barrier get      barrier.get() alone, read cache off: one read and one
//                    version check against the index (exclusive: the index in
//                    memory; shared: the root read in the same snapshot)
// Then, when PostgreSQL answers, the same over a real PostgreSQL table against
// raw storage get/put on the same table (the baseline there): reads, and
// writes from 16 concurrent writers (writes/s).
// Each figure is the median of RUNS timed runs of N iterations after a
// warm-up run; the variants' runs are interleaved, and the ratio is the median
// of the per-run ratios, so bursts of other load on the machine cancel out.
// Knobs: BENCH_RUNS (5), BENCH_SCALE (1: multiplies iterations), BENCH_PG_URL.
// Uses only the barrier's public surface, so it also runs on older commits (for before/after figures).
import { createCipheriv, createDecipheriv, type KeyObject, randomBytes } from 'node:crypto';
import * as barrierModule from '../src/barrier/barrier.ts';
import { importAesKey, open } from '../src/crypto/aead.ts';
import { randomKey } from '../src/crypto/random.ts';
import { systemClock } from '../src/lib/clock.ts';
import type { StorageBackend } from '../src/storage/backend.ts';
import { createMemoryStorage } from '../src/storage/memory.ts';
import { pgSkipReason, withScratchTable } from './lib/pg.ts';
import { fmt, table, watchdog } from './lib/proc.ts';

const { createBarrier, encryptRecord, recordAad } = barrierModule;
/** Format 2 (versioned records) where this build has it. */
const encryptVersioned = (barrierModule as Record<string, unknown>).encryptVersioned as
  | ((key: KeyObject, term: number, version: number, path: string, plaintext: Uint8Array) => Buffer)
  | undefined;
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SIZES: { label: string; bytes: number; iterations: number }[] = [
  { label: '64 B', bytes: 64, iterations: 20_000 },
  { label: '1 KiB', bytes: 1024, iterations: 20_000 },
  { label: '64 KiB', bytes: 64 * 1024, iterations: 4_000 },
];
const PATH = 'kv/projects/bench/envs/prod/secrets/LLM_KEY_0001/v/1';
const HEADER_BYTES = 5;

watchdog(300_000, 'barrier');

let sink = 0; // keeps results observable so no work is optimised away

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** ns per iteration of one timed run of `op`. */
async function runOnce(iterations: number, op: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const r = op();
    if (r instanceof Promise) await r;
  }
  return Number(process.hrtime.bigint() - t0) / iterations;
}

/**
 * Times every variant RUNS times, interleaved (the order rotating each run) so
 * a burst of other load on the machine hits all of them; returns per variant
 * the median ns/op and the median of its per-run throughput ratio against the
 * first variant (the baseline).
 */
async function measureAll(
  iterations: number,
  ops: (() => unknown)[],
): Promise<{ ns: number; ratio: number }[]> {
  for (const op of ops) await runOnce(iterations, op); // warm-up
  const times: number[][] = ops.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    for (let k = 0; k < ops.length; k++) {
      const v = (k + r) % ops.length;
      times[v]!.push(await runOnce(iterations, ops[v]!));
    }
  }
  return times.map((t) => ({ ns: median(t), ratio: median(t.map((ns, r) => times[0]![r]! / ns)) }));
}

function rawRoundTrip(key: KeyObject, aad: Buffer, plaintext: Buffer): void {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad);
  const ct = cipher.update(plaintext);
  cipher.final();
  const tag = cipher.getAuthTag();
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const pt = decipher.update(ct);
  decipher.final();
  sink += pt.byteLength;
}

async function unsealed(storage: StorageBackend, cacheBytes?: number) {
  const barrier = createBarrier(storage, systemClock, cacheBytes === undefined ? {} : { cacheBytes });
  const root = randomKey();
  await barrier.initialize(root);
  await barrier.unseal(root);
  return barrier.view('kv/');
}

function row(
  label: string,
  name: string,
  n: number,
  bytes: number,
  r: { ns: number; ratio: number },
  raw: number,
) {
  return [
    label,
    name,
    fmt(n),
    (r.ns / 1000).toFixed(2),
    fmt(1e9 / r.ns),
    bytes ? `${((bytes * 1e9) / r.ns / 2 ** 20).toFixed(0)}` : '',
    `${r.ratio.toFixed(2)}x`,
    r.ns === raw ? '' : `${r.ns >= raw ? '+' : '-'}${(Math.abs(r.ns - raw) / 1000).toFixed(2)}`,
  ];
}

async function main(): Promise<void> {
  process.stdout.write(
    `barrier: median of ${RUNS} runs after a warm-up (node ${process.version}); ratio = ops/s against the baseline in the same run; records ${encryptVersioned ? 'format 2 (versioned, with the version index)' : 'format 1 (before the version index)'}\n`,
  );
  const key = importAesKey(randomKey());
  const aad = recordAad(1, PATH); // the same size of AAD the barrier builds for this path

  const storage = createMemoryStorage();
  const store = await unsealed(storage);
  const uncached = await unsealed(createMemoryStorage(), 0);
  const shared = await unsealed(createMemoryStorage({ shared: true }));
  const rel = PATH.slice('kv/'.length);
  const versionedAad = (barrierModule as Record<string, unknown>).versionedRecordAad as
    | ((term: number, version: number, path: string) => Buffer)
    | undefined;
  const header = encryptVersioned ? 11 : HEADER_BYTES;
  const seal = (plaintext: Buffer) =>
    encryptVersioned ? encryptVersioned(key, 1, 7, PATH, plaintext) : encryptRecord(key, 1, PATH, plaintext);
  const aadOf = () => (encryptVersioned && versionedAad ? versionedAad(1, 7, PATH) : recordAad(1, PATH));

  const rows: string[][] = [];
  for (const size of SIZES) {
    const n = Math.max(100, Math.round(size.iterations * SCALE));
    const plaintext = randomBytes(size.bytes);

    // correctness checks, so the bench cannot quietly measure a broken path
    if (!open(key, seal(plaintext).subarray(header), aadOf())?.equals(plaintext))
      throw new Error('record round trip failed');
    for (const s of [store, uncached, shared]) {
      await s.put(rel, plaintext);
      if (!(await s.get(rel))?.equals(plaintext)) throw new Error('barrier put/get round trip failed');
    }

    const results = await measureAll(n, [
      () => rawRoundTrip(key, aad, plaintext),
      () => {
        sink += open(key, seal(plaintext).subarray(header), aadOf())!.byteLength;
      },
      async () => {
        await store.put(rel, plaintext);
        sink += (await store.get(rel))!.byteLength;
      },
      async () => {
        sink += (await uncached.get(rel))!.byteLength;
      },
      async () => {
        sink += (await shared.get(rel))!.byteLength;
      },
    ]);
    const names = [
      'raw AES-GCM (baseline)',
      'record encrypt + open',
      'barrier put+get (memory)',
      'barrier get, uncached (exclusive)',
      'barrier get (shared)',
    ];
    results.forEach((r, i) => {
      rows.push(row(size.label, names[i]!, n, size.bytes, r, results[0]!.ns));
    });
  }
  await storage.close();
  process.stdout.write(
    `\n${table(['value', 'variant', 'iterations', 'µs/op', 'ops/s', 'MiB/s', 'ratio', 'µs over raw'], rows)}\n`,
  );
  await postgresSection();
  if (sink === 0) process.stdout.write('(no work done?)\n');
}

/** Reads and concurrent writes through the barrier on PostgreSQL, against raw storage on the same table. */
async function postgresSection(): Promise<void> {
  const skip = await pgSkipReason(PG_URL);
  if (skip) {
    process.stdout.write(`\npostgres: ${skip}\n`);
    return;
  }
  await withScratchTable(PG_URL, 'bench_barrier', async (pgStorage) => {
    const store = await unsealed(pgStorage);
    const value = randomBytes(256);
    const WRITERS = 16;
    const paths = Array.from({ length: WRITERS }, (_, i) => `secrets/KEY_${i}`);
    for (const p of paths) {
      await store.put(p, value);
      await pgStorage.put(`raw/${p}`, value);
    }
    const n = Math.max(50, Math.round(400 * SCALE));
    const reads = await measureAll(n, [
      async () => {
        sink += (await pgStorage.get('raw/secrets/KEY_0'))!.byteLength;
      },
      async () => {
        sink += (await store.get('secrets/KEY_0'))!.byteLength;
      },
    ]);
    // writes: WRITERS concurrent writers, each op = one write by each writer (reported per write)
    const writes = await measureAll(Math.max(10, Math.round(40 * SCALE)), [
      () => Promise.all(paths.map((p) => pgStorage.put(`raw/${p}`, value))),
      () => Promise.all(paths.map((p) => store.put(p, value))),
    ]);
    const perWrite = writes.map((w) => ({ ns: w.ns / WRITERS, ratio: w.ratio }));
    const rows = [
      row('256 B', 'raw storage get (baseline)', n, 0, reads[0]!, reads[0]!.ns),
      row('256 B', 'barrier get (postgres)', n, 0, reads[1]!, reads[0]!.ns),
      row('256 B', `raw storage put x${WRITERS} (baseline)`, WRITERS, 0, perWrite[0]!, perWrite[0]!.ns),
      row('256 B', `barrier put x${WRITERS} (postgres)`, WRITERS, 0, perWrite[1]!, perWrite[0]!.ns),
    ];
    process.stdout.write(
      `\npostgres (${WRITERS} concurrent writers; a put is one transaction):\n${table(['value', 'variant', 'iterations', 'µs/op', 'ops/s', 'MiB/s', 'ratio', 'µs over raw'], rows)}\n`,
    );
  });
}

await main();
