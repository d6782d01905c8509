// The SDK's cached-read cost (issue 5): what `cache.get()` costs an
// application per call, against baselines measured in the same run:
//
//  - baseline: a plain `Map.get` of the same key, wrapped in a resolved
//    promise (what the cheapest possible async cache costs);
//  - cached: `createSecretsCache().get()` within the TTL (the common case);
//  - agent socket: a read from the sidecar agent's Unix socket (node:http
//    client, keep-alive), for applications that read through the agent;
//  - uncached: `client.getSecret()` over HTTP to a real `strongroom server`
//    (SQLite, dev mode, audit to a file), i.e. what an application pays with
//    no cache at all.
//
// Knobs: BENCH_ITERATIONS (200000 in-memory gets), BENCH_HTTP_ITERATIONS (2000).
import { writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { join } from 'node:path';
import { createClient } from '../src/sdk/client.ts';
import { createSecretsCache } from '../src/sdk/secrets.ts';
import { BIN, fmt, removeTempDir, spawnChild, table, tempDir, waitFor, watchdog } from './lib/proc.ts';

watchdog(5 * 60_000, 'bench/sdk.ts');
const N = Number(process.env.BENCH_ITERATIONS ?? 200_000);
const NH = Number(process.env.BENCH_HTTP_ITERATIONS ?? 2_000);
const dir = tempDir('sr-bench-sdk-');

const server = spawnChild([BIN, 'server', '--dev', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0']);
let addr = '';
let token = '';
await waitFor(server, 'the server', async () => {
  const a = /listening on (http:\/\/\S+)|"address":"(http:\/\/[^"]+)"/.exec(server.output());
  const tk = /STRONGROOM_TOKEN=(\S+)/.exec(server.output());
  if (a && tk) {
    addr = a[1] ?? a[2]!;
    token = tk[1]!;
  }
  return !!(a && tk);
});
const sr = createClient({ addr, token });
await sr.createProject('bench');
await sr.putSecret('bench', 'dev', 'OPENAI_API_KEY', `sk-bench-${'x'.repeat(48)}`, { force: true });

async function time(label: string, n: number, fn: () => Promise<unknown>) {
  for (let i = 0; i < Math.min(n, 1000); i++) await fn(); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  const ns = Number(process.hrtime.bigint() - t0) / n;
  return { label, ns };
}

const map = new Map([['bench/dev/OPENAI_API_KEY', 'v']]);
const baseline = await time('Map.get + resolved promise (baseline)', N, () =>
  Promise.resolve(map.get('bench/dev/OPENAI_API_KEY')),
);
const cache = createSecretsCache({ addrs: [addr], token, ttlMs: 3_600_000 });
await cache.get('bench', 'dev', 'OPENAI_API_KEY');
const cached = await time('SDK cache.get (within TTL)', N, () => cache.get('bench', 'dev', 'OPENAI_API_KEY'));

// the agent, serving the same secret on a Unix socket
writeFileSync(join(dir, 'token'), token, { mode: 0o600 });
writeFileSync(
  join(dir, 'agent.yaml'),
  `vault:\n  addrs: ["${addr}"]\nauth:\n  token_file: token\ncache:\n  ttl: 1h\nlisten:\n  socket: agent.sock\n`,
);
const agent = spawnChild([BIN, 'agent', '--config', join(dir, 'agent.yaml')]);
await waitFor(agent, 'the agent', async () => /serving the local API/.test(agent.output()));
const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
const viaSocket = (socketPath: string) =>
  new Promise<string>((resolve, reject) => {
    const req = request(
      { socketPath, path: '/v1/secrets/bench/dev/OPENAI_API_KEY', agent: keepAlive },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    req.end();
  });
const socket = await time('agent Unix socket (keep-alive)', NH, () => viaSocket(join(dir, 'agent.sock')));
// the same client against a bare node:http server on a Unix socket in this process
const bare = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ project: 'bench', env: 'dev', name: 'OPENAI_API_KEY', value: 'v'.repeat(56) }));
});
await new Promise<void>((r) => bare.listen(join(dir, 'bare.sock'), r));
const bareSocket = await time('bare node:http on a Unix socket', NH, () => viaSocket(join(dir, 'bare.sock')));
bare.close();
const uncached = await time('client.getSecret over HTTP (no cache)', NH, () =>
  sr.getSecret('bench', 'dev', 'OPENAI_API_KEY'),
);

keepAlive.destroy();
cache.close();
await agent.stop();
await server.stop();
removeTempDir(dir);

const rows = [baseline, cached, bareSocket, socket, uncached].map((r) => [
  r.label,
  r.ns < 10_000 ? `${fmt(r.ns, 0)} ns` : `${fmt(r.ns / 1000, 1)} µs`,
  fmt(1e9 / r.ns, 0),
  `${fmt(r.ns / baseline.ns, 1)}x`,
]);
process.stdout.write(`${table(['read', 'per call', 'calls/s', 'vs baseline'], rows)}\n`);
process.stdout.write(
  `cached read is ${fmt(uncached.ns / cached.ns, 0)}x cheaper than an HTTP read; the agent socket ${fmt(uncached.ns / socket.ns, 1)}x;\nthe agent socket costs ${fmt(socket.ns / bareSocket.ns, 2)}x a bare node:http answer on a Unix socket\n`,
);
