// What leases cost (issue 16): issuing a lease (a check-out: the lease engine's own cost, no backend
// to wait for) against a plain secret read in the same run, the time to start (unseal) a vault that
// holds N live leases against an empty one — nothing is read into memory at start, so it should not
// grow with N — and one sweeper pass when nothing is due. The fully assembled vault in this process
// (SQLite, synchronous=FULL, no audit, no HTTP).
//
// Knobs (environment): BENCH_LEASES (5000), BENCH_WRITERS (20).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assembleVault, type Vault } from '../src/assemble/vault.ts';
import { systemClock } from '../src/lib/clock.ts';
import { createSqliteStorage } from '../src/storage/sqlite.ts';
import { fmt, removeTempDir, table, tempDir, watchdog } from './lib/proc.ts';

const LEASES = Number(process.env.BENCH_LEASES ?? 5000);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 20);

watchdog(15 * 60_000, 'leases');

const dir = tempDir('strongroom-bench-leases-');
const keyFile = join(dir, 'unseal.key');
writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
const request = { request_id: 'bench', client_address: '127.0.0.1' };

/** A vault on `path`; its sweeper runs only when asked (sweep_interval_ms 0). */
function open(path: string): { vault: Vault; close(): Promise<void> } {
  const storage = createSqliteStorage({ path });
  const vault = assembleVault({
    storage,
    seal: { static: { key_file: keyFile } },
    clock: systemClock,
    audit: [],
    leases: { sweep_interval_ms: 0 },
  });
  return {
    vault,
    async close() {
      await vault.close();
      await storage.close();
    },
  };
}

/** Runs `n` calls from WRITERS concurrent callers: µs of CPU and wall time per call. */
async function measure(n: number, call: (i: number) => Promise<unknown>) {
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < n) await call(next++);
    }),
  );
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: (n / wall) * 1000, cpuUs: (cpu.user + cpu.system) / n };
}

/** ms to start and unseal a vault on `path` (median of 3). */
async function startTime(path: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const v = open(path);
    await v.vault.core.start();
    // the first request after start, so lazily loaded state counts too
    await v.vault.core.invoke('sys.seal-status', {}, request);
    times.push(performance.now() - t0);
    await v.close();
  }
  return times.sort((a, b) => a - b)[1]!;
}

async function main(): Promise<void> {
  process.stdout.write(
    `leases: ${fmt(LEASES)} check-out leases in process (SQLite, no audit, no HTTP), ${WRITERS} concurrent callers (node ${process.version})\n`,
  );
  const emptyPath = join(dir, 'empty.db');
  const fullPath = join(dir, 'full.db');
  for (const path of [emptyPath, fullPath]) {
    const v = open(path);
    await v.vault.core.start();
    const init = await v.vault.core.invoke<{ root_token: string }>('sys.init', {}, request);
    const root = { ...request, token: init.root_token };
    await v.vault.core.invoke('project.create', { name: 'bench', environments: ['prod'] }, root);
    await v.vault.core.invoke(
      'secret.write',
      { project: 'bench', env: 'prod', name: 'SA', value: 'shared-value' },
      root,
    );
    if (path === fullPath) {
      const read = await measure(LEASES, () =>
        v.vault.core.invoke('secret.read', { project: 'bench', env: 'prod', name: 'SA' }, root),
      );
      const issue = await measure(LEASES, () =>
        v.vault.core.invoke(
          'secret.checkout',
          { project: 'bench', env: 'prod', name: 'SA', ttl: '24h' },
          root,
        ),
      );
      // the first pass also checks every holder token and looks for abandoned intents; later ones
      // (every 250 ms by default) list only the minutes that are due
      const t0 = performance.now();
      const report = await v.vault.leases.sweep();
      const firstMs = performance.now() - t0;
      const t1 = performance.now();
      await v.vault.leases.sweep();
      const sweepMs = performance.now() - t1;
      process.stdout.write(
        `\n${table(
          ['operation', 'per second', 'CPU µs per call', 'vs secret.read'],
          [
            ['secret.read (baseline)', fmt(read.perSecond), read.cpuUs.toFixed(0), '1.00x'],
            [
              'secret.checkout (a lease)',
              fmt(issue.perSecond),
              issue.cpuUs.toFixed(0),
              `${(issue.cpuUs / read.cpuUs).toFixed(2)}x`,
            ],
          ],
        )}\n` +
          `sweeper passes with ${fmt(LEASES)} live leases, none due: the first (holders and intents checked too) ${firstMs.toFixed(1)} ms, ` +
          `a regular one ${sweepMs.toFixed(2)} ms (${JSON.stringify(report)})\n`,
      );
    }
    await v.close();
  }
  const empty = await startTime(emptyPath);
  const full = await startTime(fullPath);
  process.stdout.write(
    `\n${table(
      ['vault', 'start + unseal, ms (median of 3)', 'vs empty'],
      [
        ['no leases (baseline)', empty.toFixed(1), '1.00x'],
        [`${fmt(LEASES)} live leases`, full.toFixed(1), `${(full / empty).toFixed(2)}x`],
      ],
    )}\n`,
  );
}

try {
  await main();
} finally {
  removeTempDir(dir);
}
