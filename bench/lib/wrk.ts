// Load from wrk (Debian package `wrk`), in its own process: it drives bare node:http to about
// 80 k req/s on this 2-core machine, where autocannon inside the bench process tops out near 40 k
// and flatters every ratio against a baseline (issue 15). The bench falls back to autocannon, and
// says so, where wrk is not installed.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WrkResult {
  requests: number;
  /** Seconds the run lasted, as wrk measured it. */
  duration: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  /** Non-2xx/3xx answers, and socket errors and timeouts. */
  bad: number;
}

export const hasWrk = (): boolean => spawnSync('wrk', ['--version']).error === undefined;

const luaString = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;

/**
 * Runs wrk against `base` for `seconds`, cycling through `requests` (each connection starts at a
 * different one), with `headers` on every request; `dir` holds the generated Lua script.
 */
export async function wrk(opts: {
  base: string;
  requests: readonly { method: string; path: string; body?: string }[];
  headers: Record<string, string>;
  connections: number;
  threads?: number;
  seconds: number;
  dir: string;
}): Promise<WrkResult> {
  const script = join(opts.dir, `wrk-${process.pid}-${Date.now()}.lua`);
  const reqs = opts.requests
    .map(
      (r) =>
        `{ ${luaString(r.method)}, ${luaString(r.path)}, ${r.body === undefined ? 'nil' : luaString(r.body)} }`,
    )
    .join(',\n  ');
  const headers = Object.entries(opts.headers)
    .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
    .join('\n');
  writeFileSync(
    script,
    `${headers}
local reqs = {
  ${reqs}
}
local counter = 1
function setup(thread)
  thread:set("start", counter)
  counter = counter + 7
end
local i = 0
function init(args)
  i = tonumber(start) or 0
end
function request()
  i = i % #reqs + 1
  local r = reqs[i]
  return wrk.format(r[1], r[2], nil, r[3])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %.3f %.3f %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status + e.connect + e.read + e.write + e.timeout))
end
`,
  );
  const args = [
    '-t',
    String(opts.threads ?? 1),
    '-c',
    String(opts.connections),
    '-d',
    `${opts.seconds}s`,
    '--timeout',
    '10s',
    '-s',
    script,
    opts.base,
  ];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)),
    );
  });
  const m = /WRK_RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(out);
  if (!m) throw new Error(`wrk printed no result: ${out}`);
  return {
    requests: Number(m[1]),
    duration: Number(m[2]) / 1e6,
    p50: Number(m[3]),
    p99: Number(m[4]),
    bad: Number(m[5]),
  };
}
