// Secret reads per second over HTTP: the real `strongroom server` (own child
// process, YAML config, static seal, log_level warn) against a bare node:http
// server (own child process) answering a JSON body of the same shape and size,
// both loaded by wrk in its own process (autocannon in this one where wrk is not
// installed: `apt-get install wrk`), interleaved, in the same run. The server runs
// the configuration a new user gets: audit file on, log_level info (issue 15).
// See bench/README.md for how to read the output.
//
// Knobs (environment): BENCH_CONNECTIONS (20), BENCH_DURATION s (5),
// BENCH_WARMUP s (1), BENCH_ROUNDS (2), BENCH_SECRETS (100),
// BENCH_STORAGE (sqlite,postgres), BENCH_PG_URL
// (postgres://postgres@127.0.0.1:5432/test), BENCH_AUDIT=0 (`audit: []` instead
// of the default audit file), BENCH_LOG_LEVEL (info), BENCH_ACCESS_LOG=1 (a server
// log line per request), BENCH_LOADER=autocannon, BENCH_FASTIFY=1 (also measure
// bench/lib/fastify-server.ts: Fastify set up like Strongroom's adapter with no
// core behind it, to split framework cost from core cost), BENCH_CPU_PROF=DIR (profile the
// strongroom child with --cpu-prof and print its CPU per request by pipeline
// step and its top costs; the profiled figures are then slower than normal).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { InitResponse, SecretReadResponse } from '../src/api/v1.ts';
import { stepBudget, summarize } from './lib/cpuprofile.ts';
import { fmt, http, onInterrupt, removeTempDir, table, tempDir, watchdog } from './lib/proc.ts';
import {
  figures,
  interleaved,
  KNOBS,
  load,
  loaderName,
  startBaseline,
  startStrongroom,
  type Target,
} from './lib/servers.ts';

const env = process.env;
const STORAGES = (env.BENCH_STORAGE ?? 'sqlite,postgres')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const PG_URL = env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const FASTIFY = /^(1|true|yes)$/i.test(env.BENCH_FASTIFY ?? '');
const LOG_LEVEL = env.BENCH_LOG_LEVEL ?? 'info';
const ACCESS_LOG = /^(1|true|yes)$/i.test(env.BENCH_ACCESS_LOG ?? '');
/** The read path's budget (issue 15): server CPU per request with the default configuration. */
const BUDGET_US = 30;
const PROJECT = 'bench';
const ENVIRONMENT = 'prod';

// worst case per backend: setup + rounds x 2 servers x (warm-up + run), plus slack
watchdog(
  (STORAGES.length * (60 + KNOBS.rounds * 3 * (KNOBS.warmup + KNOBS.duration + 5)) + 60) * 1000,
  'secret-read',
);

async function startStrongroomRead(dir: string, storage: Record<string, unknown>): Promise<Target> {
  return startStrongroom(
    KNOBS.audit ? 'strongroom' : 'strongroom, no audit',
    dir,
    storage,
    [
      `log_level: ${LOG_LEVEL}`,
      ...(ACCESS_LOG ? ['access_log: true'] : []),
      // the default audit file unless BENCH_AUDIT=0
      ...(KNOBS.audit ? [] : ['audit: []']),
    ],
    KNOBS.cpuProf,
  );
}

const readLoad = (t: Target, headers: Record<string, string>, paths: string[], seconds: number) =>
  load(t, {
    headers,
    requests: paths.map((path) => ({ method: 'GET', path })),
    seconds,
    connections: KNOBS.connections,
  });

/** Initialises the server, creates a project and BENCH_SECRETS secrets; returns the token and the URL paths to read. */
async function setup(base: string): Promise<{ token: string; paths: string[]; sample: string }> {
  const init = await http<InitResponse>(base, 'POST', '/v1/sys/init', undefined, {});
  const token = init.root_token;
  const status = await http<{ sealed: boolean }>(base, 'GET', '/v1/sys/seal-status');
  if (status.sealed)
    throw new Error('the server is still sealed after init (static seal should unseal itself)');
  await http(base, 'POST', '/v1/projects', token, { name: PROJECT, environments: [ENVIRONMENT] });
  const paths: string[] = [];
  for (let i = 0; i < KNOBS.secrets; i++) {
    const name = `LLM_KEY_${String(i).padStart(4, '0')}`;
    const path = `/v1/secrets/${PROJECT}/${ENVIRONMENT}/${name}`;
    // shaped like a real provider key, e.g. sk-proj-… (≈ 60 characters)
    await http(base, 'PUT', path, token, {
      value: `sk-proj-${randomBytes(26).toString('base64url')}`,
      metadata: { provider: 'openai', owner: 'bench' },
    });
    paths.push(path);
  }
  const first = await http<SecretReadResponse>(base, 'GET', paths[0]!, token);
  if (first.version !== 1 || !first.value.startsWith('sk-proj-'))
    throw new Error(`unexpected read response ${JSON.stringify(first)}`);
  return { token, paths, sample: JSON.stringify(first) };
}

interface PgPlan {
  storage: Record<string, unknown>;
  cleanup(): Promise<void>;
}

async function postgresPlan(): Promise<PgPlan | string> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    await client.end().catch(() => {});
    return `skipped: ${PG_URL.replace(/\/\/[^@/]*@/, '//…@')} does not answer (${(err as Error).message})`;
  }
  await client.end();
  const tableName = `bench_read_${randomBytes(4).toString('hex')}`;
  return {
    storage: { postgres: { url: PG_URL, table: tableName } },
    async cleanup() {
      const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
      await c.connect();
      try {
        await c.query(`DROP TABLE IF EXISTS "${tableName}"`);
      } finally {
        await c.end();
      }
    },
  };
}

async function benchBackend(
  kind: string,
  storage: Record<string, unknown>,
  dir: string,
): Promise<{ rows: string[][]; served: number }> {
  const targets: Target[] = [];
  try {
    const sr = await startStrongroomRead(dir, storage);
    targets.push(sr);
    const { token, paths, sample } = await setup(sr.base);
    const base = await startBaseline('bare node:http', 'bench/lib/bare-http-server.ts', {
      BENCH_BODY: sample,
    });
    targets.push(base);
    // measured in this order in odd rounds, reversed in even ones, so drift in the machine's speed hits all
    const measured: Target[] = [base];
    if (FASTIFY) {
      const fy = await startBaseline('fastify, no core', 'bench/lib/fastify-server.ts', {
        BENCH_BODY: sample,
      });
      targets.push(fy);
      measured.push(fy);
    }
    measured.push(sr);
    const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
    const series = await interleaved(measured, base, KNOBS.rounds, async (t) => {
      if (KNOBS.warmup > 0) await readLoad(t, headers, paths, KNOBS.warmup);
      return readLoad(t, headers, paths, KNOBS.duration);
    });
    const rows: string[][] = [];
    const ratioOf = (t: Target, r: number) => (t === base ? undefined : r);
    for (let round = 0; round < KNOBS.rounds; round++)
      for (const s of series)
        rows.push([
          kind,
          String(round + 1),
          s.target.name,
          ...figures(s.rounds[round]!.m, ratioOf(s.target, s.rounds[round]!.ratio)),
        ]);
    for (const s of series)
      rows.push([kind, 'median', s.target.name, ...figures(s.median.m, ratioOf(s.target, s.median.ratio))]);
    return { rows, served: sr.served };
  } finally {
    for (const t of targets.reverse()) await t.child.stop();
  }
}

/** The CPU per request of each pipeline step, from the child's profile (profiled, so slower than unprofiled runs). */
function budgetTable(prof: string, requests: number): string {
  const { rows, total } = stepBudget(prof, requests);
  return table(
    ['pipeline step (from the profile)', 'µs/req', 'share'],
    [
      ...rows
        .filter((r) => r.us >= 0.5)
        .map((r) => [r.step, r.us.toFixed(1), `${((100 * r.us) / total).toFixed(0)}%`]),
      ['total (profiled)', total.toFixed(1), '100%'],
    ],
  );
}

function newestProfile(dir: string, since: number): string | undefined {
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

async function main(): Promise<void> {
  process.stdout.write(
    `secret-read: GET /v1/secrets/${PROJECT}/${ENVIRONMENT}/<name> rotating over ${KNOBS.secrets} secrets, root token, ` +
      `${KNOBS.connections} connections, pipelining 1, ${KNOBS.warmup} s warm-up + ${KNOBS.duration} s per run, ${KNOBS.rounds} rounds; ` +
      `each server in its own process, ${loaderName()} ` +
      `(node ${process.version}, 127.0.0.1 only); strongroom with ${KNOBS.audit ? 'the default audit file' : 'no audit'}, ` +
      `log_level ${LOG_LEVEL}${ACCESS_LOG ? ', access log on' : ''}\n`,
  );
  if (KNOBS.cpuProf) {
    mkdirSync(KNOBS.cpuProf, { recursive: true });
    process.stdout.write(
      `profiling the strongroom child into ${KNOBS.cpuProf} (figures below are slowed by the profiler)\n`,
    );
  }
  const rows: string[][] = [];
  const notes: string[] = [];
  let failed = false;
  for (const kind of STORAGES) {
    const dir = tempDir(`strongroom-bench-${kind}-`);
    let plan: PgPlan | undefined;
    let unregister = () => {};
    const started = Date.now();
    try {
      let storage: Record<string, unknown>;
      if (kind === 'sqlite') storage = { sqlite: { path: join(dir, 'strongroom.db') } };
      else if (kind === 'postgres') {
        const p = await postgresPlan();
        if (typeof p === 'string') {
          notes.push(`postgres: ${p}`);
          continue;
        }
        plan = p;
        unregister = onInterrupt(p.cleanup);
        storage = p.storage;
      } else throw new Error(`unknown BENCH_STORAGE entry ${JSON.stringify(kind)} (sqlite, postgres)`);
      const result = await benchBackend(kind, storage, dir);
      rows.push(...result.rows);
      if (KNOBS.cpuProf) {
        const prof = newestProfile(KNOBS.cpuProf, started);
        notes.push(
          prof
            ? `\n${kind} strongroom child (${fmt(result.served)} requests under load):\n${budgetTable(prof, result.served)}\n\n${summarize(prof, 15, result.served)}`
            : `${kind}: no .cpuprofile was written`,
        );
      }
    } catch (err) {
      failed = true;
      notes.push(`${kind}: FAILED: ${(err as Error).stack ?? err}`);
    } finally {
      unregister();
      await plan
        ?.cleanup()
        .catch((err: Error) => notes.push(`${kind}: could not drop the bench table: ${err.message}`));
      removeTempDir(dir);
    }
  }
  process.stdout.write(
    `\n${table(['storage', 'round', 'server', 'req/s', 'server CPU µs/req', 'client CPU %', 'p50 ms', 'p99 ms', 'non-2xx+err', 'ratio vs node:http'], rows)}\n`,
  );
  for (const r of rows.filter((r) => r[1] === 'median' && r[2] === 'strongroom')) {
    const us = Number.parseFloat(r[4]!);
    notes.push(
      `${r[0]}: ${us.toFixed(0)} µs of server CPU per read against a budget of ${BUDGET_US} µs: ${us <= BUDGET_US ? 'met' : 'NOT met'}` +
        (us <= BUDGET_US || KNOBS.cpuProf
          ? ''
          : ' (rerun with BENCH_CPU_PROF=/tmp/prof for the CPU per pipeline step)'),
    );
  }
  if (rows.some((r) => r[8] !== '0')) {
    failed = true;
    notes.push('some requests failed (non-2xx, errors or timeouts): the figures are not valid');
  }
  if (notes.length) process.stdout.write(`\n${notes.join('\n')}\n`);
  process.exitCode = failed ? 1 : 0;
}

await main();
