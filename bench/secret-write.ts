// Durable secret writes per second over HTTP (issue 15 item 3): the real `strongroom server` in the
// configuration a new user gets (SQLite, the default audit file, log_level info; own child process)
// against two bare node:http + node:sqlite servers (bench/lib/bare-sqlite-server.ts, WAL,
// synchronous=FULL, own child processes) that answer only once the value is committed: one commit
// per request (the ceiling the target is a ratio of), and one commit per event-loop turn (group
// commit). All loaded by wrk in its own process (autocannon in this one where wrk is missing),
// interleaved, in the same run; each PUT adds a version to one of BENCH_SECRETS secrets in turn.
//
// Knobs (environment): BENCH_CONNECTIONS (20), BENCH_DURATION s (5), BENCH_WARMUP s (1),
// BENCH_ROUNDS (2), BENCH_SECRETS (100), BENCH_AUDIT=0 (`audit: []`), BENCH_CPU_PROF=DIR (profile the
// strongroom child with --cpu-prof and print its CPU per write by pipeline step and its top costs).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { InitResponse } from '../src/api/v1.ts';
import { stepBudget, summarize } from './lib/cpuprofile.ts';
import { fmt, http, removeTempDir, table, tempDir, watchdog } from './lib/proc.ts';
import {
  figures,
  interleaved,
  KNOBS,
  type LoadRequest,
  load,
  loaderName,
  startBaseline,
  startStrongroom,
  type Target,
} from './lib/servers.ts';

/** Issue 15: durable writes at ≥ 0.5× one commit per request, in the same run. */
const TARGET_RATIO = 0.5;

watchdog((90 + KNOBS.rounds * 3 * (KNOBS.warmup + KNOBS.duration + 5)) * 1000, 'secret-write');

async function main(): Promise<void> {
  process.stdout.write(
    `secret-write: PUT /v1/secrets/bench/prod/<name> {"value": …} rotating over ${KNOBS.secrets} secrets, root token, ` +
      `${KNOBS.connections} connections, ${KNOBS.warmup} s warm-up + ${KNOBS.duration} s per run, ${KNOBS.rounds} rounds; each server in its ` +
      `own process, ${loaderName()} (node ${process.version}, 127.0.0.1 only); strongroom with ` +
      `${KNOBS.audit ? 'the default audit file' : 'no audit'}, log_level info; every server answers only once the write is durable\n`,
  );
  const dir = tempDir('strongroom-bench-write-');
  if (KNOBS.cpuProf) mkdirSync(KNOBS.cpuProf, { recursive: true });
  const targets: Target[] = [];
  let failed = false;
  const rows: string[][] = [];
  const notes: string[] = [];
  try {
    const sr = await startStrongroom(
      KNOBS.audit ? 'strongroom' : 'strongroom, no audit',
      dir,
      { sqlite: { path: join(dir, 'strongroom.db') } },
      ['log_level: info', ...(KNOBS.audit ? [] : ['audit: []'])],
      KNOBS.cpuProf,
    );
    targets.push(sr);
    const init = await http<InitResponse>(sr.base, 'POST', '/v1/sys/init', undefined, {});
    await http(sr.base, 'POST', '/v1/projects', init.root_token, { name: 'bench', environments: ['prod'] });
    const each = await startBaseline('bare sqlite, commit per request', 'bench/lib/bare-sqlite-server.ts', {
      BENCH_DB: join(dir, 'each.db'),
      BENCH_COMMIT: 'each',
    });
    targets.push(each);
    const turn = await startBaseline('bare sqlite, commit per turn', 'bench/lib/bare-sqlite-server.ts', {
      BENCH_DB: join(dir, 'turn.db'),
      BENCH_COMMIT: 'turn',
    });
    targets.push(turn);
    const requests: LoadRequest[] = Array.from({ length: KNOBS.secrets }, (_, i) => ({
      method: 'PUT',
      path: `/v1/secrets/bench/prod/LLM_KEY_${String(i).padStart(4, '0')}`,
      // shaped like a real provider key (≈ 60 characters)
      body: JSON.stringify({ value: `sk-proj-${randomBytes(26).toString('base64url')}` }),
    }));
    const headers = { authorization: `Bearer ${init.root_token}`, 'content-type': 'application/json' };
    const measured = [each, turn, sr];
    const opts = { headers, requests, connections: KNOBS.connections };
    const series = await interleaved(measured, each, KNOBS.rounds, async (t) => {
      if (KNOBS.warmup > 0) await load(t, { ...opts, seconds: KNOBS.warmup });
      return load(t, { ...opts, seconds: KNOBS.duration });
    });
    const ratioOf = (t: Target, r: number) => (t === each ? undefined : r);
    for (let round = 0; round < KNOBS.rounds; round++)
      for (const s of series)
        rows.push([
          String(round + 1),
          s.target.name,
          ...figures(s.rounds[round]!.m, ratioOf(s.target, s.rounds[round]!.ratio)),
        ]);
    for (const s of series) {
      rows.push(['median', s.target.name, ...figures(s.median.m, ratioOf(s.target, s.median.ratio))]);
      const r = s.median.ratio;
      if (s.target === sr)
        notes.push(
          `strongroom: ${r.toFixed(2)}x the one-commit-per-request ceiling against a target of ${TARGET_RATIO}x: ${r >= TARGET_RATIO ? 'met' : 'NOT met'}`,
        );
    }
  } catch (err) {
    failed = true;
    notes.push(`FAILED: ${(err as Error).stack ?? err}`);
  } finally {
    for (const t of targets.reverse()) await t.child.stop();
    removeTempDir(dir);
  }
  const served = targets.find((t) => t.name.startsWith('strongroom'))?.served ?? 0;
  const prof = KNOBS.cpuProf && readdirSync(KNOBS.cpuProf).find((f) => f.endsWith('.cpuprofile'));
  if (KNOBS.cpuProf && prof && served > 0) {
    const { rows: steps, total } = stepBudget(join(KNOBS.cpuProf, prof), served);
    notes.push(
      `\nstrongroom child, ${fmt(served)} writes under load (profiled, so slower than unprofiled runs):\n${table(
        ['pipeline step (from the profile)', 'µs/write'],
        [
          ...steps.filter((r) => r.us >= 0.5).map((r) => [r.step, r.us.toFixed(1)]),
          ['total (profiled)', total.toFixed(1)],
        ],
      )}\n\n${summarize(join(KNOBS.cpuProf, prof), 20, served)}`,
    );
  }
  process.stdout.write(
    `\n${table(['round', 'server', 'writes/s', 'server CPU µs/write', 'client CPU %', 'p50 ms', 'p99 ms', 'non-2xx+err', 'ratio vs commit per request'], rows)}\n`,
  );
  if (rows.some((r) => r[7] !== '0')) {
    failed = true;
    notes.push('some requests failed (non-2xx, errors or timeouts): the figures are not valid');
  }
  if (notes.length) process.stdout.write(`\n${notes.join('\n')}\n`);
  process.exitCode = failed ? 1 : 0;
}

await main();
