// Barrier encrypt+decrypt cost per value, against raw AES-256-GCM in the same
// process. Three ways of doing one encrypt + one decrypt of a value:
//   raw AES-GCM      createCipheriv/createDecipheriv on a cached KeyObject,
//                    random 12-byte nonce, same-size AAD (the baseline)
//   record (sync)    encryptRecord() + aead.open() of its body: the barrier's
//                    record format and AAD building, no storage, no async
//   barrier put+get  barrier.put() then barrier.get() over memory storage: the
//                    full path a secret write/read takes below the engine
// Each figure is the median of RUNS timed runs of N iterations after a
// warm-up run; the variants' runs are interleaved, and the ratio is the median
// of the per-run ratios, so bursts of other load on the machine cancel out. Knobs: BENCH_RUNS (5), BENCH_SCALE (1: multiplies iterations).
import { createCipheriv, createDecipheriv, type KeyObject, randomBytes } from 'node:crypto';
import { createBarrier, encryptRecord, recordAad } from '../src/barrier/barrier.ts';
import { importAesKey, open } from '../src/crypto/aead.ts';
import { randomKey } from '../src/crypto/random.ts';
import { systemClock } from '../src/lib/clock.ts';
import { createMemoryStorage } from '../src/storage/memory.ts';
import { fmt, table, watchdog } from './lib/proc.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SIZES: { label: string; bytes: number; iterations: number }[] = [
  { label: '64 B', bytes: 64, iterations: 20_000 },
  { label: '1 KiB', bytes: 1024, iterations: 20_000 },
  { label: '64 KiB', bytes: 64 * 1024, iterations: 4_000 },
];
const PATH = 'kv/projects/bench/envs/prod/secrets/LLM_KEY_0001/v/1';
const HEADER_BYTES = 5;

watchdog(120_000, 'barrier');

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

async function main(): Promise<void> {
  process.stdout.write(
    `barrier: one encrypt + one decrypt per op, median of ${RUNS} runs after a warm-up (node ${process.version}); ratio = ops/s against raw AES-256-GCM in the same run\n`,
  );
  const key = importAesKey(randomKey());
  const aad = recordAad(1, PATH); // the same AAD the barrier builds for this path

  const storage = createMemoryStorage();
  const barrier = createBarrier(storage, systemClock);
  const root = randomKey();
  await barrier.initialize(root);
  await barrier.unseal(root);
  const store = barrier.view('kv/');
  const rel = PATH.slice('kv/'.length);

  const rows: string[][] = [];
  for (const size of SIZES) {
    const n = Math.max(100, Math.round(size.iterations * SCALE));
    const plaintext = randomBytes(size.bytes);

    // correctness checks, so the bench cannot quietly measure a broken path
    const rec = encryptRecord(key, 1, PATH, plaintext);
    if (!open(key, rec.subarray(HEADER_BYTES), aad)?.equals(plaintext))
      throw new Error('encryptRecord/open round trip failed');
    await store.put(rel, plaintext);
    if (!(await store.get(rel))?.equals(plaintext)) throw new Error('barrier put/get round trip failed');

    const results = await measureAll(n, [
      () => rawRoundTrip(key, aad, plaintext),
      () => {
        const r = encryptRecord(key, 1, PATH, plaintext);
        sink += open(key, r.subarray(HEADER_BYTES), recordAad(1, PATH))!.byteLength;
      },
      async () => {
        await store.put(rel, plaintext);
        sink += (await store.get(rel))!.byteLength;
      },
    ]);
    const names = ['raw AES-GCM (baseline)', 'encryptRecord + open', 'barrier put+get (memory)'];
    const raw = results[0]!.ns;
    results.forEach(({ ns, ratio }, i) => {
      rows.push([
        size.label,
        names[i]!,
        fmt(n),
        (ns / 1000).toFixed(2),
        fmt(1e9 / ns),
        `${((size.bytes * 1e9) / ns / 2 ** 20).toFixed(0)}`,
        `${ratio.toFixed(2)}x`,
        i === 0 ? '' : `${ns >= raw ? '+' : '-'}${(Math.abs(ns - raw) / 1000).toFixed(2)}`,
      ]);
    });
  }
  await storage.close();
  process.stdout.write(
    `\n${table(['value', 'variant', 'iterations', 'µs/op', 'ops/s', 'MiB/s', 'ratio', 'µs over raw'], rows)}\n`,
  );
  if (sink === 0) process.stdout.write('(no work done?)\n');
}

await main();
