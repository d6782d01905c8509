// What the HTTP benches share: starting the real `strongroom server` and a baseline server each in
// its own process, and loading one of them (wrk in its own process, or autocannon in this one where
// wrk is not installed) while reading its CPU time from /proc.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon, { type AutocannonResult } from 'autocannon';
import { BIN, type Child, fmt as fmtRate, freePort, ROOT, spawnChild, waitFor } from './proc.ts';
import { hasWrk, wrk } from './wrk.ts';

export interface Target {
  name: string;
  /** Requests answered under load so far (warm-ups included). */
  served: number;
  base: string;
  child: Child;
}

export interface Measured {
  rps: number;
  /** CPU time the server process used per request (user + system), or NaN where /proc is missing. */
  cpuUs: number;
  /** autocannon's CPU use in this process, in % of one core (NaN with wrk, which has its own process). */
  clientPct: number;
  p50: number;
  p99: number;
  bad: number;
}

export interface LoadRequest {
  method: string;
  path: string;
  body?: string;
}

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux this runs on

/** CPU seconds (user + system) used so far by process `pid`, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
  } catch {
    return Number.NaN;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The knobs every HTTP bench reads from the environment (bench/README.md). */
export const KNOBS = {
  connections: Number(process.env.BENCH_CONNECTIONS ?? 20),
  duration: Number(process.env.BENCH_DURATION ?? 5),
  warmup: Number(process.env.BENCH_WARMUP ?? 1),
  rounds: Number(process.env.BENCH_ROUNDS ?? 2),
  secrets: Number(process.env.BENCH_SECRETS ?? 100),
  /** BENCH_AUDIT=0: `audit: []` instead of the default audit file. */
  audit: !/^(0|false|no)$/i.test(process.env.BENCH_AUDIT ?? ''),
  cpuProf: process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined,
};

/** wrk unless BENCH_LOADER=autocannon or wrk is not installed. */
const USE_WRK = process.env.BENCH_LOADER !== 'autocannon' && hasWrk();
export const loaderName = (): string =>
  USE_WRK ? 'wrk in its own process' : 'autocannon in this one (wrk is not installed)';
const pctOrDash = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(0));

/** Loads `target` for `seconds` with `connections`, cycling through `requests`. */
export async function load(
  target: Target,
  opts: { headers: Record<string, string>; requests: LoadRequest[]; seconds: number; connections: number },
): Promise<Measured> {
  const pid = target.child.child.pid;
  const cpu0 = cpuSeconds(pid);
  const self0 = process.cpuUsage();
  if (USE_WRK) {
    const w = await wrk({ base: target.base, ...opts, dir: tmpdir() });
    target.served += w.requests;
    return {
      rps: w.requests / w.duration,
      cpuUs: ((cpuSeconds(pid) - cpu0) * 1e6) / w.requests,
      clientPct: Number.NaN,
      p50: w.p50,
      p99: w.p99,
      bad: w.bad,
    };
  }
  const r: AutocannonResult = await autocannon({
    url: target.base,
    connections: opts.connections,
    pipelining: 1,
    duration: opts.seconds,
    timeout: 10,
    headers: opts.headers,
    requests: opts.requests,
  });
  target.served += r.requests.total;
  const self = process.cpuUsage(self0);
  return {
    rps: r.requests.total / r.duration,
    cpuUs: ((cpuSeconds(pid) - cpu0) * 1e6) / r.requests.total,
    clientPct: ((self.user + self.system) / 1e6 / r.duration) * 100,
    p50: r.latency.p50,
    p99: r.latency.p99,
    bad: r.non2xx + r.errors + r.timeouts,
  };
}

/**
 * The real `strongroom server` from `dir`, with a static seal key file and `storage`; `config` lines
 * are added to its YAML file (e.g. `audit: []`). `cpuProf`: run it under --cpu-prof into that folder.
 */
export async function startStrongroom(
  name: string,
  dir: string,
  storage: Record<string, unknown>,
  config: string[],
  cpuProf?: string,
): Promise<Target> {
  const port = await freePort();
  const keyFile = join(dir, 'unseal.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const configFile = join(dir, 'strongroom.yaml');
  // JSON is YAML: flow mappings keep the file exact
  writeFileSync(
    configFile,
    [
      `listen: "127.0.0.1:${port}"`,
      `storage: ${JSON.stringify(storage)}`,
      `seal: ${JSON.stringify({ static: { key_file: keyFile } })}`,
      ...config,
      '',
    ].join('\n'),
  );
  const childEnv = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('STRONGROOM_') && !k.startsWith('NODE_OPTIONS'),
    ),
  );
  // BENCH_NODE_ARGS: extra flags for the strongroom child's node (e.g. --single-threaded-gc), to try V8 settings
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const nodeArgs = [...extra, ...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : [])];
  const child = spawnChild([...nodeArgs, BIN, 'server', '--config', configFile], { env: childEnv, cwd: dir });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    child,
    'strongroom server',
    async () => (await fetch(`${base}/v1/sys/seal-status`, { signal: AbortSignal.timeout(1000) })).ok,
  );
  return { name, base, child, served: 0 };
}

/** A baseline server script (bench/lib/…) in its own process; it prints {"port": N} once listening. */
export async function startBaseline(
  name: string,
  script: string,
  env: Record<string, string>,
): Promise<Target> {
  const child = spawnChild([resolve(ROOT, script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let port = 0;
  await waitFor(child, name, async () => {
    const m = /\{"port":(\d+)\}/.exec(child.output());
    if (m) port = Number(m[1]);
    return port > 0;
  });
  return { name, base: `http://127.0.0.1:${port}`, child, served: 0 };
}

/** One target's figures: per round (in order), then the medians over the rounds. */
export interface Series {
  target: Target;
  rounds: { m: Measured; ratio: number }[];
  median: { m: Measured; ratio: number };
}

/**
 * Measures every target once per round, in the given order in odd rounds and reversed in even ones
 * (so drift in the machine's speed hits all alike); each ratio is req/s against `baseline`'s in the
 * same round.
 */
export async function interleaved(
  targets: Target[],
  baseline: Target,
  rounds: number,
  measure: (t: Target) => Promise<Measured>,
): Promise<Series[]> {
  const series = new Map<Target, Series['rounds']>(targets.map((t) => [t, []]));
  for (let round = 1; round <= rounds; round++) {
    const got = new Map<Target, Measured>();
    for (const t of round % 2 ? targets : [...targets].reverse()) got.set(t, await measure(t));
    for (const t of targets)
      series.get(t)!.push({ m: got.get(t)!, ratio: got.get(t)!.rps / got.get(baseline)!.rps });
  }
  return targets.map((target) => {
    const rs = series.get(target)!;
    const of = (f: (m: Measured) => number) => median(rs.map((r) => f(r.m)));
    return {
      target,
      rounds: rs,
      median: {
        m: {
          rps: of((m) => m.rps),
          cpuUs: of((m) => m.cpuUs),
          clientPct: of((m) => m.clientPct),
          p50: of((m) => m.p50),
          p99: of((m) => m.p99),
          bad: rs.reduce((a, r) => a + r.m.bad, 0),
        },
        ratio: median(rs.map((r) => r.ratio)),
      },
    };
  });
}

/** A table row of `m`: req/s, CPU µs per request, client CPU %, p50, p99, failures, and the ratio (blank for the baseline). */
export function figures(m: Measured, ratio: number | undefined): string[] {
  return [
    fmtRate(m.rps),
    m.cpuUs.toFixed(0),
    pctOrDash(m.clientPct),
    m.p50.toFixed(1),
    m.p99.toFixed(1),
    String(m.bad),
    ratio === undefined ? '' : `${ratio.toFixed(2)}x`,
  ];
}
