// Cost of authorization and of auditing per request, each against an
// unaudited, unauthorised request measured in the same run.
//
//   baseline        core.invoke('secret.read') with the root token (no Cedar:
//                   root bypasses policies) and no audit sink
//   cedar (cached)  the same read with a developer token: scope + Cedar, the
//                   decision served from the decision cache (the steady state)
//   cedar (fresh)   a developer token whose decision is evaluated by Cedar on
//                   every call (a new resource each time, so the cache misses)
//   audited         the root read with a file audit sink (fsync per entry)
//   one decision    a single Cedar evaluation (policies.explain), no I/O
//
// Per-call latencies are collected for each variant; medians and p99 are
// printed with the ratio of medians to the baseline. In-process (no HTTP), so
// the figures are the core's own cost. Knobs: BENCH_N (2000).
import { rmSync } from 'node:fs';
import { assembleVault } from '../src/assemble/vault.ts';
import type { AuditConfig } from '../src/audit/config.ts';
import { identityOf } from '../src/contract/identity.ts';
import { systemClock } from '../src/lib/clock.ts';
import { createMemoryStorage } from '../src/storage/memory.ts';
import { fmt, table, tempDir, watchdog } from './lib/proc.ts';

watchdog(180_000, 'authz');
const N = Number(process.env.BENCH_N ?? 2000);
const dir = tempDir('strongroom-bench-authz-');
const keyFile = `${dir}/unseal.key`;
const { writeFileSync } = await import('node:fs');
writeFileSync(keyFile, Buffer.alloc(32, 7).toString('hex'), { mode: 0o600 });

async function setup(audit: AuditConfig) {
  const { core } = assembleVault({
    storage: createMemoryStorage(),
    seal: { static: { key_file: keyFile } },
    clock: systemClock,
    audit,
  });
  await core.start();
  const req = { request_id: 'bench', client_address: '127.0.0.1' };
  const init = await core.invoke<{ root_token: string }>('sys.init', {}, req);
  const root = { ...req, token: init.root_token };
  await core.invoke('project.create', { name: 'bench', environments: ['dev', 'prod'] }, root);
  for (let i = 0; i < 200; i++) {
    await core.invoke(
      'secret.write',
      { project: 'bench', env: 'dev', name: `K${i}`, value: `sk-proj-${i}`.padEnd(64, 'x') },
      root,
    );
  }
  const dev = await core.invoke<{ auth: { client_token: string } }>(
    'token.create',
    { roles: ['developer'], ttl: 3600 },
    root,
  );
  return { core, root, dev: { ...req, token: dev.auth.client_token } };
}

async function time(fn: (i: number) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 200; i++) await fn(i);
  const out: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out.sort((a, b) => a - b);
}
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

const plain = await setup([]);
const read = (ctx: typeof plain, who: 'root' | 'dev', name: string) =>
  ctx.core.invoke('secret.read', { project: 'bench', env: 'dev', name }, who === 'root' ? ctx.root : ctx.dev);

const baseline = await time(() => read(plain, 'root', 'K1'));
const cached = await time(() => read(plain, 'dev', 'K1'));
const fresh = await time((i) => read(plain, 'dev', `K${i % 200}`).catch(() => undefined));
// a fresh decision for every call: each call names a resource not seen before
let seq = 0;
const devIdentity = (await plain.core.tokens.lookup(plain.dev.token!)) as never;

const oneDecision = await time(async () => {
  seq++;
  return plain.core.policies.explain(
    identityOf(devIdentity),
    'secret.read',
    {
      type: 'Secret',
      id: `bench/dev/X${seq}`,
      attrs: {
        project: 'bench',
        environment: 'dev',
        name: `X${seq}`,
        production: false,
        provider: '',
        tags: [],
      },
    },
    { client_address: '127.0.0.1', now: Date.now() },
  );
});

const audited = await setup([{ file: { path: `${dir}/audit.log` } }]);
const audit1 = await time(() => read(audited, 'root', 'K1'));
// 32 concurrent callers share fsyncs (group commit)
const per = Math.floor(N / 32);
const t0 = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: 32 }, async () => {
    for (let i = 0; i < per; i++) await read(audited, 'root', 'K1');
  }),
);
const audit32 = Number(process.hrtime.bigint() - t0) / 1000 / (per * 32);
const auditRows: (string | number)[][] = [
  [
    'audited, 1 caller (file sink, fsync)',
    fmt(pct(audit1, 0.5), 1),
    fmt(pct(audit1, 0.99), 1),
    `${fmt(pct(audit1, 0.5) / pct(baseline, 0.5), 2)}x`,
  ],
  [
    'audited, 32 callers (µs/request, amortised)',
    fmt(audit32, 1),
    '-',
    `${fmt(audit32 / pct(baseline, 0.5), 2)}x`,
  ],
];

console.log(
  `authz: core.invoke('secret.read') in process, ${N} calls per variant after 200 warm-up calls (node ${process.version})\n`,
);
console.log(
  table(
    ['variant', 'median µs', 'p99 µs', 'ratio of medians to baseline'],
    [
      [
        'baseline (root: no Cedar, no audit)',
        fmt(pct(baseline, 0.5), 1),
        fmt(pct(baseline, 0.99), 1),
        '1.00x',
      ],
      [
        'developer, decision cached',
        fmt(pct(cached, 0.5), 1),
        fmt(pct(cached, 0.99), 1),
        `${fmt(pct(cached, 0.5) / pct(baseline, 0.5), 2)}x`,
      ],
      [
        'developer, 200 resources round-robin',
        fmt(pct(fresh, 0.5), 1),
        fmt(pct(fresh, 0.99), 1),
        `${fmt(pct(fresh, 0.5) / pct(baseline, 0.5), 2)}x`,
      ],
      [
        'one Cedar decision (uncached)',
        fmt(pct(oneDecision, 0.5), 1),
        fmt(pct(oneDecision, 0.99), 1),
        `${fmt(pct(oneDecision, 0.5) / pct(baseline, 0.5), 2)}x`,
      ],
      ...auditRows,
    ],
  ),
);
plain.core.stop();
audited.core.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
