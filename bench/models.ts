// Model hashing and encryption (issue 17; docs/models.md), against OpenSSL in the same run:
//   hashing:    our SHA-256 of the model's shards (hash-worker threads) vs `openssl dgst -sha256`
//   encryption: our chunked AES-256-GCM (EncryptStream, in memory) vs `openssl speed` with 1 MiB blocks
//               (one pass encrypts and hashes each byte, so the baseline is OpenSSL doing both)
//   files:      whole shards through the worker pool (read, encrypt, write) on one core and on every
//               core, in a child process whose peak RSS is the figure (target ≤ 128 MiB, whatever the size)
//   MODEL_MIB=2048 node bench/models.ts        (default 2048: a 2 GiB model in 4 shards)
import { execFileSync, spawn } from 'node:child_process';
import { createSecretKey, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_IGNORE } from '../src/api/model-signing.ts';
import { EncryptStream } from '../src/sdk/models/chunks.ts';
import type { CryptJob } from '../src/sdk/models/crypt-worker.ts';
import { hashModel } from '../src/sdk/models/files.ts';
import { createPool } from '../src/sdk/models/pool.ts';

const MIB = 1024 * 1024;
const cores = availableParallelism();
const gbps = (bytes: number, ms: number) => bytes / 1e9 / (ms / 1000);

/** The child: encrypts the shards given with `parallel` threads, prints {ms, rss_mib}. */
async function encryptFiles(parallel: number, out: string, shards: string[]): Promise<void> {
  const pool = createPool<CryptJob, { sha256: string; size: number }>(
    new URL('../src/sdk/models/crypt-worker.ts', import.meta.url),
    parallel,
  );
  const t = performance.now();
  await Promise.all(
    shards.map((src, n) =>
      pool.run({
        op: 'encrypt',
        src,
        dst: join(out, `${n}.enc`),
        key: randomBytes(32).toString('base64'),
        path: `${n}`,
      }),
    ),
  );
  const ms = performance.now() - t;
  await pool.close();
  process.stdout.write(JSON.stringify({ ms, rss_mib: process.resourceUsage().maxRSS / 1024 }));
}

async function child(
  parallel: number,
  out: string,
  shards: string[],
): Promise<{ ms: number; rss_mib: number }> {
  const p = spawn(
    process.execPath,
    [import.meta.filename, 'encrypt-files', String(parallel), out, ...shards],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let text = '';
  p.stdout.on('data', (d) => (text += d));
  await once(p, 'exit');
  return JSON.parse(text) as { ms: number; rss_mib: number };
}

async function main(): Promise<void> {
  const total = Number(process.env.MODEL_MIB ?? 2048) * MIB;
  const SHARDS = 4;
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-bench-model-'));
  const out = mkdtempSync(join(tmpdir(), 'strongroom-bench-enc-'));
  try {
    // the model: SHARDS files of random bytes, written in 16 MiB blocks
    const shards: string[] = [];
    const block = randomBytes(16 * MIB);
    for (let n = 0; n < SHARDS; n++) {
      const path = join(dir, `model-0000${n + 1}-of-0000${SHARDS}.safetensors`);
      const fd = openSync(path, 'w');
      for (let w = 0; w < total / SHARDS; w += block.length)
        writeSync(fd, block, 0, Math.min(block.length, total / SHARDS - w));
      closeSync(fd);
      shards.push(path);
    }
    // warm the page cache so both sides read from memory
    execFileSync('cat', shards, { stdio: ['ignore', 'ignore', 'inherit'] });

    // --- hashing ---
    const openssl = async (paths: string[]) => {
      const t0 = performance.now();
      await Promise.all(
        paths.map(async (p) => once(spawn('openssl', ['dgst', '-sha256', p], { stdio: 'ignore' }), 'exit')),
      );
      return performance.now() - t0;
    };
    const serialization = {
      method: 'files' as const,
      hash_type: 'sha256' as const,
      allow_symlinks: false,
      ignore_paths: DEFAULT_IGNORE,
    };
    const shard = total / SHARDS;
    const osslOne = await openssl([shards[0]!]);
    const pool1 = createPool<{ path: string }, string>(
      new URL('../src/sdk/models/hash-worker.ts', import.meta.url),
      1,
    );
    let t0 = performance.now();
    await pool1.run({ path: shards[0]! });
    const oursOne = performance.now() - t0;
    await pool1.close();
    const osslAll = await openssl(shards);
    t0 = performance.now();
    await hashModel(dir, serialization, cores);
    const oursAll = performance.now() - t0;
    console.log(`hashing (SHA-256), ${SHARDS} shards of ${shard / MIB} MiB, ${cores} cores`);
    console.log(
      `  one core:   ours ${gbps(shard, oursOne).toFixed(2)} GB/s   openssl dgst ${gbps(shard, osslOne).toFixed(2)} GB/s   ratio ${(osslOne / oursOne).toFixed(2)} (target ≥ 0.90)`,
    );
    console.log(
      `  all cores:  ours ${gbps(total, oursAll).toFixed(2)} GB/s   openssl ×${SHARDS} ${gbps(total, osslAll).toFixed(2)} GB/s   ratio ${(osslAll / oursAll).toFixed(2)}   scaling ${(gbps(total, oursAll) / gbps(shard, oursOne)).toFixed(2)}× on ${cores} cores`,
    );

    // --- encryption, in memory ---
    const speed = (alg: string) =>
      Number(
        new RegExp(`${alg}\\s+([\\d.]+)k`, 'i').exec(
          execFileSync('openssl', ['speed', '-evp', alg, '-bytes', String(MIB), '-seconds', '3'], {
            stdio: ['ignore', 'pipe', 'ignore'],
          }).toString(),
        )?.[1] ?? Number.NaN,
      ) / 1e6;
    const osslGcm = speed('aes-256-gcm');
    const osslSha = speed('sha256');
    const sameWork = 1 / (1 / osslGcm + 1 / osslSha);
    const s = new EncryptStream(createSecretKey(randomBytes(32)), 'bench.safetensors', MIB);
    s.on('data', () => {});
    const plain = randomBytes(MIB);
    const bytes = 2048 * MIB;
    t0 = performance.now();
    for (let n = 0; n < bytes / MIB; n++) {
      if (!s.write(plain)) await once(s, 'drain');
    }
    s.end();
    await once(s, 'end');
    const memMs = performance.now() - t0;
    console.log('encryption (AES-256-GCM, 1 MiB chunks), in memory, one core');
    console.log(
      `  openssl speed: aes-256-gcm ${osslGcm.toFixed(2)} GB/s, sha256 ${osslSha.toFixed(2)} GB/s; both on each byte ${sameWork.toFixed(2)} GB/s`,
    );
    console.log(
      `  ours (chunks, AAD, AES-GCM and the plaintext's SHA-256 in one pass) ${gbps(bytes, memMs).toFixed(2)} GB/s   ratio to the same work ${(gbps(bytes, memMs) / sameWork).toFixed(2)} (target ≥ 0.90)`,
    );

    // --- whole files, in a child process of their own (its peak RSS is the figure) ---
    const one = await child(1, out, shards);
    const all = await child(cores, out, shards);
    console.log(`encrypting the model's files (read, encrypt, write to ${tmpdir()}), ${total / MIB} MiB`);
    console.log(
      `  one core ${gbps(total, one.ms).toFixed(2)} GB/s   ${cores} cores ${gbps(total, all.ms).toFixed(2)} GB/s   scaling ${(one.ms / all.ms).toFixed(2)}×`,
    );
    console.log(
      `  peak RSS of the encrypting process: ${one.rss_mib.toFixed(0)} MiB (1 thread), ${all.rss_mib.toFixed(0)} MiB (${cores} threads) (target ≤ 128 MiB)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'encrypt-files') {
  await encryptFiles(Number(process.argv[3]), process.argv[4]!, process.argv.slice(5));
} else {
  await main();
}
