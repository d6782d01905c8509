// Cost of auditing, in one process and one run:
//   broker level   AuditBroker.log() of one realistic entry through
//                  - no-op broker (no sinks: auditing off)        the baseline
//                  - a sink that discards the bytes               sanitise + JSON + hash chain + batching (CPU),
//                                                                 with 1 and 16 concurrent writers
//                  - the file sink (write + fdatasync per batch)  with 1, 16 and 64 concurrent writers
//   request level  core.invoke('secret.read') with the root token, in process (no HTTP):
//                  no-op broker vs the file sink (2 entries per request: before and after), 1 and 32
//                  concurrent callers.
// Each variant runs for BENCH_MS (default 1500 ms) per round; rounds are interleaved (the order rotating)
// and the figure is the median of BENCH_RUNS rounds (default 3); the ratio is ops/s against the
// baseline of the same group in the same round. Group commit is what makes concurrent writers cheap:
// entries that arrive while an fsync is in flight share the next one.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CORE_MODULES } from '../src/assemble/vault.ts';
import { type AuditBroker, createAuditBroker } from '../src/audit/broker.ts';
import type { AuditEntry } from '../src/audit/entry.ts';
import { createFileSink } from '../src/audit/file.ts';
import { createAuditKeys } from '../src/audit/keys.ts';
import { createAudit } from '../src/audit/module.ts';
import { createChainedSink } from '../src/audit/sink.ts';
import { createBarrier } from '../src/barrier/barrier.ts';
import { createCore } from '../src/core/core.ts';
import { secretsModule } from '../src/engines/kv/kv.ts';
import { systemClock } from '../src/lib/clock.ts';
import { createMemoryStorage } from '../src/storage/memory.ts';
import { fmt, table, tempDir, watchdog } from './lib/proc.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MS = Number(process.env.BENCH_MS ?? 1500);

watchdog(10 * 60_000, 'audit');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** ops/s of `op` run by `concurrency` loops for `ms`. */
async function runFor(ms: number, concurrency: number, op: () => Promise<unknown>): Promise<number> {
  let count = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await op();
        count++;
      }
    }),
  );
  return (count * 1000) / (performance.now() - start);
}

interface Variant {
  name: string;
  concurrency: number;
  op: () => Promise<unknown>;
}

/** Median ops/s per variant, and the median per-round ratio against the first variant. */
async function measure(variants: Variant[]): Promise<{ opsPerSec: number; ratio: number }[]> {
  for (const v of variants) await runFor(Math.min(300, MS), v.concurrency, v.op); // warm-up
  const rounds: number[][] = variants.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length;
      rounds[i]!.push(await runFor(MS, variants[i]!.concurrency, variants[i]!.op));
    }
  }
  return rounds.map((xs) => ({
    opsPerSec: median(xs),
    ratio: median(xs.map((x, r) => x / rounds[0]![r]!)),
  }));
}

function entry(i: number): AuditEntry {
  return {
    type: 'request',
    time: new Date().toISOString(),
    request_id: `0b5e6a4c-8f1e-4c7e-9d7a-${String(i).padStart(12, '0')}`,
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    operation: 'secret.read',
    action: 'secret.read',
    resource: 'Secret::acme/prod/OPENAI_API_KEY',
    actor: { type: 'app', id: 'app-7f3a', accessor: 'pD3x9Kq2Lw8vN1sT5yH6jA', display_name: 'billing-bot' },
    client_address: '10.0.3.17',
    decision: { allowed: true, reason: 'policy builtin.app' },
    request: { project: 'acme', env: 'prod', name: 'OPENAI_API_KEY', version: 3 },
  };
}

async function main(): Promise<void> {
  process.stdout.write(
    `audit: median of ${RUNS} rounds of ${MS} ms per variant (node ${process.version}); ratio = ops/s against the no-op broker in the same round\n`,
  );
  const dir = tempDir('strongroom-bench-audit-');

  // keys from a real barrier, as the server has them
  const root = randomBytes(32);
  const barrier = createBarrier(createMemoryStorage(), systemClock);
  await barrier.initialize(root);
  await barrier.unseal(root);
  const keys = createAuditKeys(barrier.view('sys/audit/'));
  await keys.load();

  const noop = createAuditBroker([]);
  const discard = createAuditBroker(
    [
      createChainedSink({
        name: 'discard',
        open: async () => undefined,
        check: async () => 'ok',
        append: async () => {},
        reset: async () => {},
        close: async () => {},
      }),
    ],
    { keys, checkpointIntervalMs: 0 },
  );
  const brokers: AuditBroker[] = [];
  const fileBroker = (name: string) => {
    const b = createAuditBroker([createFileSink({ path: join(dir, `${name}.log`) })], {
      keys,
      checkpointIntervalMs: 0,
    });
    brokers.push(b);
    return b;
  };
  const f1 = fileBroker('c1');
  const f16 = fileBroker('c16');
  const f64 = fileBroker('c64');
  let i = 0;
  const log = (b: AuditBroker) => () => b.log(entry(i++));

  const brokerVariants: Variant[] = [
    { name: 'no-op broker (auditing off)', concurrency: 1, op: log(noop) },
    { name: 'discarding sink (CPU only), 1 writer', concurrency: 1, op: log(discard) },
    { name: 'discarding sink (CPU only), 16 writers', concurrency: 16, op: log(discard) },
    { name: 'file sink + fsync, 1 writer', concurrency: 1, op: log(f1) },
    { name: 'file sink + fsync, 16 writers', concurrency: 16, op: log(f16) },
    { name: 'file sink + fsync, 64 writers', concurrency: 64, op: log(f64) },
  ];
  const b = await measure(brokerVariants);
  process.stdout.write(
    `\nper entry (AuditBroker.log)\n${table(
      ['variant', 'entries/s', 'µs/entry', 'ratio'],
      brokerVariants.map((v, k) => [
        v.name,
        fmt(b[k]!.opsPerSec),
        (1e6 / b[k]!.opsPerSec).toFixed(2),
        `${b[k]!.ratio.toFixed(4)}x`,
      ]),
    )}\n`,
  );

  // request level: a secret read through the core, unaudited vs audited to a file
  async function vault(audited: boolean) {
    const keyFile = join(dir, `unseal-${audited}.key`);
    writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const setup = createAudit(audited ? [{ file: { path: join(dir, 'requests.log') } }] : [], {
      checkpoint: { interval_seconds: 0 },
    });
    const secrets = secretsModule();
    const core = createCore({
      storage: createMemoryStorage(),
      seal: { static: { key_file: keyFile } },
      clock: systemClock,
      audit: setup.broker,
      modules: [...CORE_MODULES, setup.module, secrets.module],
      ports: secrets.ports,
    });
    await core.start();
    const req = { request_id: 'bench', client_address: '127.0.0.1' };
    const { root_token: token } = await core.invoke<{ root_token: string }>('sys.init', {}, req);
    await core.invoke('project.create', { name: 'acme' }, { ...req, token });
    await core.invoke(
      'secret.write',
      {
        project: 'acme',
        env: 'prod',
        name: 'OPENAI_API_KEY',
        value: `sk-proj-${randomBytes(24).toString('hex')}`,
      },
      { ...req, token },
    );
    let n = 0;
    const read = () =>
      core.invoke(
        'secret.read',
        { project: 'acme', env: 'prod', name: 'OPENAI_API_KEY' },
        { request_id: `r-${n++}`, client_address: '127.0.0.1', token },
      );
    return { read, close: () => setup.close() };
  }
  const plain = await vault(false);
  const audited = await vault(true);
  const reqVariants: Variant[] = [
    { name: 'unaudited, 1 caller', concurrency: 1, op: plain.read },
    { name: 'audited (file), 1 caller', concurrency: 1, op: audited.read },
  ];
  const reqVariants32: Variant[] = [
    { name: 'unaudited, 32 callers', concurrency: 32, op: plain.read },
    { name: 'audited (file), 32 callers', concurrency: 32, op: audited.read },
  ];
  const r1 = await measure(reqVariants);
  const r32 = await measure(reqVariants32);
  const rows = [...reqVariants, ...reqVariants32].map((v, k) => {
    const m = k < 2 ? r1[k]! : r32[k - 2]!;
    const base = k < 2 ? r1[0]! : r32[0]!;
    return [
      v.name,
      fmt(m.opsPerSec),
      (1e6 / m.opsPerSec).toFixed(2),
      `${m.ratio.toFixed(3)}x`,
      k % 2 ? `+${(1e6 / m.opsPerSec - 1e6 / base.opsPerSec).toFixed(1)}` : '',
    ];
  });
  process.stdout.write(
    `\nper request (core.invoke secret.read, 2 audit entries each; ratio against unaudited)\n${table(
      ['variant', 'requests/s', 'µs/request', 'ratio', 'µs added'],
      rows,
    )}\n`,
  );
  await plain.close();
  await audited.close();
  for (const x of [...brokers, discard, noop]) await x.close();
}

await main();
