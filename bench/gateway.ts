// The AI gateway's cost: added latency (p50/p99) and maximum throughput of
// non-streaming chat completions through the real gateway (`strongroom server`
// with a `gateway:` section, own child process) against calling the fake
// OpenAI upstream directly (own child process), in the same run; then a
// streaming run (time to first byte, total). See bench/README.md.
//
// Knobs (environment): BENCH_CONNECTIONS (20), BENCH_DURATION s (5),
// BENCH_WARMUP s (1), BENCH_ROUNDS (2), BENCH_LATENCY_CALLS (2000),
// BENCH_STREAM_CALLS (200), BENCH_AUDIT=0 (audit: [] instead of the file sink),
// BENCH_PROVENANCE=0 (the gateway's `provenance: false`: no signed chain; the
// targets name authorization, budgets, audit and one firewall stage, not signing),
// BENCH_CPU_PROF=DIR (profile the gateway's strongroom child with --cpu-prof and
// print its top self-time functions and files; the profiled figures are slowed
// by the profiler). BENCH_LATENCY_CALLS=0, BENCH_ROUNDS=0 or BENCH_STREAM_CALLS=0
// skip that run (e.g. throughput only while profiling). BENCH_REMOTE=1: the
// gateway in its own process (`strongroom gateway`, gateway.vault) in front of
// the vault over mTLS with its SVID (docs/gateway-remote.md); the CPU column is
// then the gateway process's, and the vault's CPU per call is printed apart.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, Client } from 'undici';
import type { X509SvidResponse } from '../src/api/identity.ts';
import type { InitResponse } from '../src/api/v1.ts';
import { makeCsr } from '../test/helpers/spiffe.ts';
import { selfSignedCert } from '../test/helpers/tls.ts';
import { GATEWAY_STEPS, stepBudget, summarize } from './lib/cpuprofile.ts';
import {
  BIN,
  type Child,
  fmt,
  freePort,
  http,
  ROOT,
  removeTempDir,
  spawnChild,
  table,
  tempDir,
  waitFor,
  watchdog,
} from './lib/proc.ts';
import { loaderName, load as loadTarget, startBaseline } from './lib/servers.ts';

const env = process.env;

// ---------------------------------------------------------------- child mode: the fake upstream
if (process.argv[2] === '--fake-upstream') {
  const { startOpenAiFake } = await import('../test/fakes/openai-upstream.ts');
  const fake = await startOpenAiFake();
  // the fake records every request: forget them, or a long run fills the memory
  setInterval(() => {
    fake.requests.length = 0;
  }, 500).unref();
  process.stdout.write(`${JSON.stringify({ port: fake.port, key: fake.key })}\n`);
  process.on('SIGTERM', () => void fake.close().then(() => process.exit(0)));
  await new Promise(() => {});
}

const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 20);
const DURATION = Number(env.BENCH_DURATION ?? 5);
const WARMUP = Number(env.BENCH_WARMUP ?? 1);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 2);
const LATENCY_CALLS = Number(env.BENCH_LATENCY_CALLS ?? 2000);
const STREAM_CALLS = Number(env.BENCH_STREAM_CALLS ?? 200);
const AUDIT = !/^(0|false|no)$/i.test(env.BENCH_AUDIT ?? '');
const PROVENANCE = !/^(0|false|no)$/i.test(env.BENCH_PROVENANCE ?? '');
const CPU_PROF = env.BENCH_CPU_PROF ? resolve(env.BENCH_CPU_PROF) : undefined;
const REMOTE = /^(1|true|yes)$/i.test(env.BENCH_REMOTE ?? '');
const TRUST_DOMAIN = 'bench.local';
const GATEWAY_ID = `spiffe://${TRUST_DOMAIN}/strongroom/gateway`;
const MODEL = 'gpt-4o';
const BODY = JSON.stringify({
  model: MODEL,
  messages: [
    { role: 'system', content: 'You are a terse assistant.' },
    { role: 'user', content: 'Say hello to the benchmark in a few words please.' },
  ],
  max_tokens: 64,
});
const STREAM_BODY = JSON.stringify({ ...JSON.parse(BODY), stream: true });
/** Issue 15's gateway target as a ratio, so it holds on a machine of any speed: 150 µs against the bare proxy's 53 µs. */
const CPU_RATIO_TARGET = 150 / 53;

// setup + throughput rounds + latency + streaming, with slack
watchdog(
  (90 + ROUNDS * 2 * (WARMUP + DURATION + 5) + (LATENCY_CALLS + STREAM_CALLS) * 4 * 0.02 + 60) * 1000,
  'gateway',
);

/** Which of the gateway's optional parts the vault wires in (src/assemble/vault.ts gatewayDeps, src/gateway/assemble.ts). */
function wired(): { budgets: boolean; firewall: boolean; outputFilter: boolean; provenance: boolean } {
  const vault = readFileSync(join(ROOT, 'src/assemble/vault.ts'), 'utf8');
  const assemble = join(ROOT, 'src/gateway/assemble.ts');
  const deps =
    vault.slice(Math.max(0, vault.lastIndexOf('gatewayDeps('))) +
    (existsSync(assemble) ? readFileSync(assemble, 'utf8') : '');
  return {
    budgets: existsSync(join(ROOT, 'src/engines/gateway/budgets.ts')) && /budgets\s*[:,]/.test(vault),
    firewall: /requestStages\s*[:,]/.test(deps),
    outputFilter: /responseStages\s*[:,]/.test(deps),
    provenance: deps.includes('createGatewayIdentity'),
  };
}

interface Target {
  name: string;
  base: string;
  token: string;
  /** The process answering (for its CPU time). */
  child: Child;
}

async function startFake(): Promise<{ child: Child; base: string; key: string }> {
  const child = spawnChild([import.meta.filename, '--fake-upstream']);
  let found: { port: number; key: string } | undefined;
  await waitFor(child, 'fake upstream', async () => {
    const m = /(\{"port":\d+,"key":"[^"]+"\})/.exec(child.output());
    if (m) found = JSON.parse(m[1]!) as { port: number; key: string };
    return found !== undefined;
  });
  return { child, base: `http://127.0.0.1:${found!.port}`, key: found!.key };
}

/**
 * The strongroom server: first started without its gateway to set the vault up
 * over HTTP (init, the key, an app token), then restarted with the `gateway:`
 * section (the static seal unseals it at start, so the gateway starts on an
 * unsealed vault, as in production after an unseal).
 */
async function startGateway(dir: string, upstream: string, fakeKey: string) {
  const port = await freePort();
  const gwPort = await freePort();
  const keyFile = join(dir, 'unseal.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const configFile = join(dir, 'strongroom.yaml');
  const auditFile = join(dir, 'audit.log');
  const base = [
    `listen: "127.0.0.1:${port}"`,
    `storage: ${JSON.stringify({ sqlite: { path: join(dir, 'strongroom.db') } })}`,
    `seal: ${JSON.stringify({ static: { key_file: keyFile } })}`,
    'log_level: warn',
    AUDIT ? `audit: ${JSON.stringify([{ file: { path: auditFile } }])}` : 'audit: []',
    ...(REMOTE ? [`identity: {trust_domain: ${TRUST_DOMAIN}}`] : []),
  ];
  const routes = [
    `  listen: "127.0.0.1:${gwPort}"`,
    '  routes:',
    '    - provider: openai',
    `      models: ["gpt-4o", "gpt-4o-mini"]`,
    `      base_url: ${upstream}`,
    '      keys: [llm/prod/OPENAI_API_KEY]',
    '  prices: {"gpt-4o*": {input: 2.5, output: 10}}',
    ...(PROVENANCE ? [] : ['  provenance: false']),
    // budgets on every app (high enough never to refuse during the bench), when the vault wires budgets in
    '  limits: {apps: {requests_per_minute: 10000000, tokens_per_minute: 10000000000}, tokens: {requests_per_minute: 10000000, tokens_per_minute: 10000000000}}',
  ];
  const childEnv = Object.fromEntries(
    Object.entries(env).filter(([k]) => !k.startsWith('STRONGROOM_') && !k.startsWith('NODE_OPTIONS')),
  );
  const setupApi = `http://127.0.0.1:${port}`;
  const gw = `http://127.0.0.1:${gwPort}`;
  const start = async (lines: string[], nodeArgs: string[] = [], api = setupApi) => {
    writeFileSync(configFile, [...lines, ''].join('\n'));
    const child = spawnChild([...nodeArgs, BIN, 'server', '--config', configFile], {
      env: childEnv,
      cwd: dir,
    });
    await waitFor(child, 'strongroom server', async () => {
      try {
        return (await fetch(`${api}/v1/sys/seal-status`, { dispatcher: tlsAgent } as RequestInit)).ok;
      } catch {
        return false;
      }
    });
    return child;
  };
  let tlsAgent: Agent | undefined;

  const setup = await start(base);
  const init = await http<InitResponse>(setupApi, 'POST', '/v1/sys/init', undefined, {});
  const root = init.root_token;
  await http(setupApi, 'POST', '/v1/projects', root, { name: 'llm', environments: ['prod'] });
  await http(setupApi, 'PUT', '/v1/secrets/llm/prod/OPENAI_API_KEY', root, { value: fakeKey });
  const created = await http<{ auth?: { client_token: string }; token?: string }>(
    setupApi,
    'POST',
    '/v1/auth/token/create',
    root,
    { roles: ['app'], scope: { providers: ['openai'] }, ttl: '2h', display_name: 'bench-app' },
  );
  const token = created.auth?.client_token ?? created.token!;
  const svidDir = join(dir, 'svid');
  if (REMOTE) {
    // the gateway's identity (docs/gateway-remote.md): registered with the gateway role, its SVID in files
    await http(setupApi, 'POST', '/v1/identity/registrations', root, {
      spiffe_id: GATEWAY_ID,
      selectors: ['app:gateway'],
      roles: ['gateway'],
      scope: { paths: ['llm/prod'] },
    });
    const jt = await http<{ join_token: string }>(setupApi, 'POST', '/v1/identity/join-tokens', root, {
      spiffe_id: GATEWAY_ID,
    });
    const csr = await makeCsr(GATEWAY_ID);
    const svid = await http<X509SvidResponse>(setupApi, 'POST', '/v1/identity/x509-svid', undefined, {
      csr: csr.pem,
      join_token: jt.join_token,
      ttl: '2h',
    });
    mkdirSync(svidDir, { mode: 0o700 });
    writeFileSync(join(svidDir, 'svid_key.pem'), csr.keyPem, { mode: 0o600 });
    writeFileSync(join(svidDir, 'svid.pem'), svid.certificate);
    writeFileSync(join(svidDir, 'bundle.pem'), svid.bundle.join('\n'));
  }
  await setup.stop();

  const profile = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [];
  if (!REMOTE) {
    // only the gateway run is profiled (the setup run is not under load)
    const child = await start([...base, 'gateway:', ...routes], profile);
    await waitFor(child, 'gateway listener', async () => (await fetch(`${gw}/healthz`)).ok);
    return { child, api: setupApi, gw, root, token, auditFile };
  }
  // the vault again, now with TLS (client certificates requested); the gateway in a process of its own
  const { certFile, keyFile: tlsKey } = selfSignedCert(dir, 'vault');
  tlsAgent = new Agent({ connect: { ca: readFileSync(certFile, 'utf8') } });
  const api = `https://127.0.0.1:${port}`;
  const vault = await start([...base, `tls: {cert_file: ${certFile}, key_file: ${tlsKey}}`], [], api);
  const gwConfig = join(dir, 'gateway.yaml');
  writeFileSync(
    gwConfig,
    [
      'log_level: warn',
      'gateway:',
      ...routes,
      '  vault:',
      `    url: ${api}`,
      `    ca_file: ${certFile}`,
      `    svid: {dir: ${svidDir}}`,
      '',
    ].join('\n'),
  );
  const child = spawnChild([...profile, BIN, 'gateway', '--config', gwConfig], { env: childEnv, cwd: dir });
  await waitFor(child, 'gateway listener', async () => {
    try {
      return (await fetch(`${gw}/healthz`)).ok;
    } catch {
      return false;
    }
  });
  return { child, vault, api, gw, root, token, auditFile };
}

function newestProfile(dir: string, since: number): string | undefined {
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

/** CPU seconds (user + system) used so far by `pid`, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

interface Load {
  rps: number;
  cpuUs: number;
  p50: number;
  p99: number;
  bad: number;
}

/** Calls made to each target (warm-ups included): the profile's per-request figures divide by it. */
const served = new Map<Target, number>();
const count = (t: Target, n: number) => served.set(t, (served.get(t) ?? 0) + n);

async function load(t: Target, seconds: number): Promise<Load> {
  const lt = { name: t.name, base: t.base, child: t.child, served: 0 };
  const m = await loadTarget(lt, {
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
    requests: [{ method: 'POST', path: '/v1/chat/completions', body: BODY }],
    seconds,
    connections: CONNECTIONS,
  });
  count(t, lt.served);
  return { rps: m.rps, cpuUs: m.cpuUs, p50: m.p50, p99: m.p99, bad: m.bad };
}

const pct = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : Number.NaN;
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One call on a kept-alive connection: ms to the first body byte and to the last. */
async function timedCall(
  client: Client,
  token: string,
  body: string,
): Promise<{ ttfb: number; total: number; status: number }> {
  const t0 = performance.now();
  const res = await client.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
  });
  let ttfb = Number.NaN;
  for await (const _chunk of res.body) if (Number.isNaN(ttfb)) ttfb = performance.now() - t0;
  return { ttfb, total: performance.now() - t0, status: res.statusCode };
}

/** Sequential calls, direct and through the gateway alternately, one kept-alive connection each. */
async function sequential(direct: Target, gateway: Target, calls: number, body: string) {
  const clients = new Map([direct, gateway].map((t) => [t, new Client(t.base, { pipelining: 1 })]));
  const got = new Map<Target, { ttfb: number[]; total: number[]; bad: number; cpuUs: number }>(
    [direct, gateway].map((t) => [t, { ttfb: [], total: [], bad: 0, cpuUs: Number.NaN }]),
  );
  try {
    for (let i = 0; i < 50; i++)
      for (const t of [direct, gateway]) await timedCall(clients.get(t)!, t.token, body);
    for (const t of [direct, gateway]) count(t, 50 + calls);
    const cpu0 = new Map([direct, gateway].map((t) => [t, cpuSeconds(t.child.child.pid)]));
    for (let i = 0; i < calls; i++) {
      for (const t of i % 2 ? [direct, gateway] : [gateway, direct]) {
        const r = await timedCall(clients.get(t)!, t.token, body);
        const g = got.get(t)!;
        if (r.status !== 200) g.bad++;
        g.ttfb.push(r.ttfb);
        g.total.push(r.total);
      }
    }
    for (const t of [direct, gateway])
      got.get(t)!.cpuUs = ((cpuSeconds(t.child.child.pid) - cpu0.get(t)!) * 1e6) / calls;
  } finally {
    for (const c of clients.values()) await c.close();
  }
  const stats = (t: Target) => {
    const g = got.get(t)!;
    const ttfb = [...g.ttfb].sort((a, b) => a - b);
    const total = [...g.total].sort((a, b) => a - b);
    return {
      ttfb50: pct(ttfb, 50),
      ttfb99: pct(ttfb, 99),
      p50: pct(total, 50),
      p99: pct(total, 99),
      bad: g.bad,
      /** CPU of the process answering, per call (user + system: a file sync's kernel time counts). */
      cpuUs: g.cpuUs,
    };
  };
  return { direct: stats(direct), gateway: stats(gateway) };
}

async function main(): Promise<void> {
  const parts = wired();
  process.stdout.write(
    `gateway: POST /v1/chat/completions (${MODEL}, non-streaming unless said) through the gateway vs the fake OpenAI upstream directly; ` +
      `each in its own process, load from this one (node ${process.version}, 127.0.0.1 only)` +
      `${REMOTE ? '; REMOTE: `strongroom gateway` in front of the vault over mTLS (BENCH_REMOTE=1)' : ''}\n` +
      `on: token auth, Cedar gateway.invoke, ${AUDIT ? 'audit file sink (fsync per entry)' : 'NO audit (BENCH_AUDIT=0)'}, key redaction of every answer; ` +
      `budgets ${parts.budgets ? 'on' : 'not wired in yet'}, prompt firewall ${parts.firewall ? 'on' : 'not wired in yet'}, output filter stage ${parts.outputFilter ? 'on' : 'not wired in yet (the key redactor runs alone)'}, provenance signing ${!parts.provenance ? 'not wired in yet' : PROVENANCE ? 'on' : 'OFF (BENCH_PROVENANCE=0)'}\n`,
  );
  if (CPU_PROF) {
    mkdirSync(CPU_PROF, { recursive: true });
    process.stdout.write(
      `profiling the gateway's strongroom child into ${CPU_PROF} (figures below are slowed by the profiler)\n`,
    );
  }
  const started = Date.now();
  const dir = tempDir('strongroom-bench-gateway-');
  const children: Child[] = [];
  const notes: string[] = [];
  let failed = false;
  let gatewayTarget: Target | undefined;
  try {
    const fake = await startFake();
    children.push(fake.child);
    const sr = await startGateway(dir, fake.base, fake.key);
    if (sr.vault) children.push(sr.vault);
    children.push(sr.child);
    const direct: Target = {
      name: 'direct (fake upstream)',
      base: fake.base,
      token: fake.key,
      child: fake.child,
    };
    const gateway: Target = { name: 'through the gateway', base: sr.gw, token: sr.token, child: sr.child };
    gatewayTarget = gateway;
    const bare = await startBaseline('bare undici proxy', 'bench/lib/bare-undici-proxy-server.ts', {
      BENCH_UPSTREAM: fake.base,
      BENCH_UPSTREAM_KEY: fake.key,
    });
    children.push(bare.child);
    const proxy: Target = { name: 'bare undici proxy', base: bare.base, token: 'none', child: bare.child };

    // sanity: the same answer both ways
    const a = await (
      await fetch(`${fake.base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fake.key}`, 'content-type': 'application/json' },
        body: BODY,
      })
    ).json();
    const b = await (
      await fetch(`${sr.gw}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${sr.token}`, 'content-type': 'application/json' },
        body: BODY,
      })
    ).json();
    const text = (x: unknown) =>
      (x as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message?.content;
    if (!text(a) || text(a) !== text(b))
      throw new Error(`different answers: ${JSON.stringify(a)} / ${JSON.stringify(b)}`);

    // --- latency: sequential, one connection each ---
    const lat = await sequential(direct, gateway, LATENCY_CALLS, BODY);
    const added50 = lat.gateway.p50 - lat.direct.p50;
    const added99 = lat.gateway.p99 - lat.direct.p99;

    // --- throughput: autocannon, alternating order per round ---
    const rows: string[][] = [];
    const ratios: number[] = [];
    const all = new Map<Target, Load[]>([
      [direct, []],
      [proxy, []],
      [gateway, []],
    ]);
    const cpuRatios: number[] = [];
    // a remote gateway's vault works for it too: its CPU per gateway call, over the throughput rounds
    const vaultCpu0 = sr.vault ? cpuSeconds(sr.vault.child.pid) : 0;
    const gatewayCalls0 = served.get(gateway) ?? 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const got = new Map<Target, Load>();
      for (const t of round % 2 ? [direct, proxy, gateway] : [gateway, proxy, direct]) {
        if (WARMUP > 0) await load(t, WARMUP);
        const m = await load(t, DURATION);
        got.set(t, m);
        all.get(t)!.push(m);
      }
      const ratio = got.get(gateway)!.rps / got.get(direct)!.rps;
      ratios.push(ratio);
      cpuRatios.push(got.get(gateway)!.cpuUs / got.get(proxy)!.cpuUs);
      for (const t of [direct, proxy, gateway]) {
        const m = got.get(t)!;
        rows.push([
          String(round),
          t.name,
          fmt(m.rps),
          m.cpuUs.toFixed(0),
          m.p50.toFixed(1),
          m.p99.toFixed(1),
          String(m.bad),
          t === direct ? '' : `${(m.rps / got.get(direct)!.rps).toFixed(2)}x`,
          t === gateway ? `${(m.cpuUs / got.get(proxy)!.cpuUs).toFixed(2)}x` : '',
        ]);
      }
    }
    for (const t of [direct, proxy, gateway]) {
      const ms = all.get(t)!;
      const rps = median(ms.map((m) => m.rps));
      rows.push([
        'median',
        t.name,
        fmt(rps),
        median(ms.map((m) => m.cpuUs)).toFixed(0),
        median(ms.map((m) => m.p50)).toFixed(1),
        median(ms.map((m) => m.p99)).toFixed(1),
        String(ms.reduce((n, m) => n + m.bad, 0)),
        t === direct ? '' : `${(rps / median(all.get(direct)!.map((m) => m.rps))).toFixed(2)}x`,
        t === gateway ? `${median(cpuRatios).toFixed(2)}x` : '',
      ]);
    }

    // --- streaming: time to first byte and to the last ---
    const st = await sequential(direct, gateway, STREAM_CALLS, STREAM_BODY);

    const ms = (n: number) => n.toFixed(3);
    if (LATENCY_CALLS > 0)
      process.stdout.write(
        `\nlatency, ${fmt(LATENCY_CALLS)} sequential calls each (undici, one kept-alive connection, interleaved), ms:\n` +
          `${table(
            ['target', 'p50', 'p99', 'server CPU µs/call', 'non-200'],
            [
              [
                'direct (fake upstream)',
                ms(lat.direct.p50),
                ms(lat.direct.p99),
                lat.direct.cpuUs.toFixed(0),
                String(lat.direct.bad),
              ],
              [
                'through the gateway',
                ms(lat.gateway.p50),
                ms(lat.gateway.p99),
                lat.gateway.cpuUs.toFixed(0),
                String(lat.gateway.bad),
              ],
              ['added by the gateway', ms(added50), ms(added99), '', ''],
            ],
          )}\n`,
      );
    process.stdout.write(
      `\nthroughput, ${loaderName()}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s, ${ROUNDS} rounds:\n` +
        `${table(['round', 'target', 'req/s', 'server CPU µs/req', 'p50 ms', 'p99 ms', 'non-2xx+err', 'req/s vs direct', 'CPU vs bare proxy'], rows)}\n`,
    );
    if (STREAM_CALLS > 0)
      process.stdout.write(
        `\nstreaming (stream: true, ${fmt(STREAM_CALLS)} sequential calls each), ms:\n` +
          `${table(
            ['target', 'first byte p50', 'first byte p99', 'total p50', 'total p99', 'non-200'],
            [
              [
                'direct (fake upstream)',
                ms(st.direct.ttfb50),
                ms(st.direct.ttfb99),
                ms(st.direct.p50),
                ms(st.direct.p99),
                String(st.direct.bad),
              ],
              [
                'through the gateway',
                ms(st.gateway.ttfb50),
                ms(st.gateway.ttfb99),
                ms(st.gateway.p50),
                ms(st.gateway.p99),
                String(st.gateway.bad),
              ],
              [
                'added by the gateway',
                ms(st.gateway.ttfb50 - st.direct.ttfb50),
                ms(st.gateway.ttfb99 - st.direct.ttfb99),
                ms(st.gateway.p50 - st.direct.p50),
                ms(st.gateway.p99 - st.direct.p99),
                '',
              ],
            ],
          )}\n`,
      );
    if (sr.vault && ROUNDS > 0) {
      const perCall =
        ((cpuSeconds(sr.vault.child.pid) - vaultCpu0) * 1e6) / ((served.get(gateway) ?? 0) - gatewayCalls0);
      process.stdout.write(
        `remote vault: ${perCall.toFixed(0)} µs of the vault's CPU per gateway call (its 4-5 calls over mTLS)\n`,
      );
    }
    const ratio = median(ratios);
    const cpuRatio = median(cpuRatios);
    const verdict = (ok: boolean, n: number) => (Number.isNaN(n) ? 'not measured' : ok ? 'MET' : 'NOT MET');
    process.stdout.write(
      `\ntargets: added latency at p50 < 0.8 ms: ${verdict(added50 < 0.8, added50)} (${ms(added50)} ms), p99 < 2 ms: ${verdict(added99 < 2, added99)} (${ms(added99)} ms); ` +
        `CPU per call <= ${CPU_RATIO_TARGET.toFixed(2)}x the bare undici proxy's (issue 15: 150 µs against its 53 µs): ${verdict(cpuRatio <= CPU_RATIO_TARGET, cpuRatio)} (${cpuRatio.toFixed(2)}x); ` +
        `throughput vs direct ${ratio.toFixed(2)}x\n`,
    );
    if (AUDIT) {
      const entries = readFileSync(sr.auditFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"gateway.invoke"')).length;
      process.stdout.write(`audit: ${fmt(entries)} gateway.invoke entries written\n`);
    }
    if (
      [lat.direct.bad, lat.gateway.bad, st.direct.bad, st.gateway.bad].some((n) => n > 0) ||
      rows.some((r) => r[6] !== '0')
    ) {
      failed = true;
      notes.push('some requests failed (non-2xx, errors or timeouts): the figures are not valid');
    }
  } catch (err) {
    failed = true;
    notes.push(`FAILED: ${(err as Error).stack ?? err}`);
  } finally {
    // the gateway child writes its profile as it exits (SIGTERM: a clean shutdown)
    for (const c of children.reverse()) await c.stop(30_000);
    removeTempDir(dir);
  }
  if (CPU_PROF) {
    const prof = newestProfile(CPU_PROF, started);
    const n = gatewayTarget ? served.get(gatewayTarget) : undefined;
    notes.push(
      prof
        ? `\ngateway's strongroom child (${fmt(n ?? 0)} gateway calls, setup traffic aside):\n${stepTable(prof, n ?? 0)}\n\n${summarize(prof, 25, n)}`
        : 'no .cpuprofile was written',
    );
  }
  if (notes.length) process.stdout.write(`\n${notes.join('\n')}\n`);
  process.exitCode = failed ? 1 : 0;
}

/** CPU per gateway call by step, from the profile (profiled, so slower than unprofiled runs). */
function stepTable(prof: string, calls: number): string {
  if (calls === 0) return '(no calls counted: no per-call budget)';
  const { rows, total } = stepBudget(prof, calls, GATEWAY_STEPS);
  return table(
    ['gateway step (from the profile)', 'µs/call', 'share'],
    [
      ...rows
        .filter((r) => r.us >= 0.5)
        .map((r) => [r.step, r.us.toFixed(1), `${((100 * r.us) / total).toFixed(0)}%`]),
      ['total (profiled)', total.toFixed(1), '100%'],
    ],
  );
}

await main();
