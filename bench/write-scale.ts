// What a durable secret write costs as the vault grows (issue 15 item 3): the fully assembled vault
// in this process (SQLite storage, synchronous=FULL, no audit and no HTTP, so only the core, the
// barrier and storage are measured), 20 concurrent writers each creating new secrets, after the
// barrier already holds 0, 20 k, 100 k and 200 k other records (written in transactions of 1,000
// under a mount of their own). The ratio is the CPU per write against the empty vault's in the same
// run: 1.00x means a write costs the same whatever the vault's size.
//
// Knobs (environment): BENCH_SIZES (0,20000,100000,200000), BENCH_MS per measurement (2000).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assembleVault } from '../src/assemble/vault.ts';
import { systemClock } from '../src/lib/clock.ts';
import { createSqliteStorage } from '../src/storage/sqlite.ts';
import { fmt, removeTempDir, table, tempDir, watchdog } from './lib/proc.ts';

const SIZES = (process.env.BENCH_SIZES ?? '0,20000,100000,200000').split(',').map(Number);
const MS = Number(process.env.BENCH_MS ?? 2000);
const WRITERS = 20;

watchdog(15 * 60_000, 'write-scale');

const dir = tempDir('strongroom-bench-scale-');
const keyFile = join(dir, 'unseal.key');
writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
const storage = createSqliteStorage({ path: join(dir, 'strongroom.db') });
const vault = assembleVault({
  storage,
  seal: { static: { key_file: keyFile } },
  clock: systemClock,
  audit: [],
});
const request = { request_id: 'bench', client_address: '127.0.0.1' };

async function main(): Promise<void> {
  process.stdout.write(
    `write-scale: secret.write in process (SQLite, no audit, no HTTP), ${WRITERS} concurrent writers, ` +
      `${MS} ms per size, vault sizes ${SIZES.join(', ')} other records (node ${process.version})\n`,
  );
  await vault.core.start();
  const init = await vault.core.invoke<{ root_token: string }>('sys.init', {}, request);
  const root = { ...request, token: init.root_token };
  await vault.core.invoke('project.create', { name: 'bench', environments: ['prod'] }, root);
  const filler = vault.core.barrier.view('logical/bench-filler/');
  let filled = 0;
  let next = 0;
  const measure = async (ms: number) => {
    let n = 0;
    const end = performance.now() + ms;
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (performance.now() < end) {
          const value = `sk-proj-${randomBytes(26).toString('base64url')}`;
          await vault.core.invoke(
            'secret.write',
            { project: 'bench', env: 'prod', name: `W${next++}`, value },
            root,
          );
          n++;
        }
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    return { rate: n / (ms / 1000), us: (cpu.user + cpu.system) / n };
  };
  const rows: string[][] = [];
  let base: number | undefined;
  for (const size of SIZES) {
    while (filled < size) {
      await filler.transaction(async (tx) => {
        for (let i = 0; i < 1000; i++) await tx.put(`r/${filled + i}`, randomBytes(64));
      });
      filled += 1000;
    }
    await measure(Math.min(500, MS));
    const m = await measure(MS);
    base ??= m.us;
    rows.push([fmt(size), fmt(m.rate), m.us.toFixed(0), `${(m.us / base).toFixed(2)}x`]);
  }
  process.stdout.write(
    `\n${table(['other records in the vault', 'writes/s', 'CPU µs/write', 'CPU vs empty vault'], rows)}\n`,
  );
}

try {
  await main();
} finally {
  await vault.close();
  await storage.close();
  removeTempDir(dir);
}
