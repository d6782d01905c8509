import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../src/sdk/client.ts';
import { tempDir } from '../helpers/app.ts';
import { BIN, NODE, ROOT, startDevServer, startServerProcess } from '../helpers/process.ts';

/**
 * Issue 13 item 10, on real processes started as an operator starts them (`node bin/strongroom.js ROLE`):
 * SIGUSR1 — which any process of the same user may send — opens no inspector in the server, the gateway
 * or the agent, which stay up and serving; core dumps are off (RLIMIT_CORE 0); and outside dev mode a
 * role refuses to start when NODE_OPTIONS or the node command line asks for an inspector, unless
 * STRONGROOM_ALLOW_INSPECTOR=1.
 */

const linux = process.platform === 'linux';

/** The TCP ports `pid` listens on, from its socket descriptors and /proc/net/tcp{,6}. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && inodes.has(cols[9]!)) ports.add(Number.parseInt(cols[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends SIGUSR1 twice, and checks that no new port listens (9229 least of all) and the process lives on. */
async function assertSigusr1OpensNothing(pid: number, label: string): Promise<void> {
  const before = listeningPorts(pid);
  assert.ok(!before.includes(9229), `${label}: no inspector before`);
  for (let i = 0; i < 2; i++) {
    process.kill(pid, 'SIGUSR1');
    await sleep(400);
  }
  assert.ok(alive(pid), `${label}: still running after SIGUSR1 twice`);
  const after = listeningPorts(pid);
  assert.ok(!after.includes(9229), `${label}: nothing listens on 9229 after SIGUSR1 (listening: ${after})`);
  assert.deepEqual(after, before, `${label}: no new listener after SIGUSR1`);
}

function coreLimit(pid: number): string {
  return /^Max core file size\s+(\S+)\s+(\S+)/m
    .exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))!
    .slice(1)
    .join(' ');
}

/** A production-shaped config: SQLite, a static key file, loopback HTTP. */
function productionConfig(t: TestContext, extra: string[] = []): string {
  const dir = tempDir(t);
  const key = join(dir, 'unseal.key');
  writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
  const file = join(dir, 'strongroom.yaml');
  writeFileSync(
    file,
    [
      'listen: 127.0.0.1:0',
      `storage: {sqlite: {path: ${join(dir, 'sr.db')}}}`,
      `seal: {static: {key_file: ${key}}}`,
      ...extra,
      '',
    ].join('\n'),
  );
  return file;
}

/** Runs `node [nodeArgs] bin/strongroom.js args` until it exits or lives `ms` (then it is killed). */
async function runRole(
  args: string[],
  opts: { env?: Record<string, string>; nodeArgs?: string[]; ms?: number } = {},
): Promise<{ code: number | null; output: string; pid: number }> {
  const child = spawn(NODE, [...(opts.nodeArgs ?? []), BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, STRONGROOM_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = once(child, 'exit');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.ms ?? 15_000);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  return { code, output, pid: child.pid! };
}

test('a dev server (npm start): SIGUSR1 twice opens no inspector, the server serves on; core dumps are off', {
  skip: !linux,
}, async (t) => {
  const server = await startDevServer(t, tempDir(t));
  const pid = server.child.pid!;
  await assertSigusr1OpensNothing(pid, 'dev server');
  const res = await fetch(`${server.address}/v1/sys/health`);
  assert.equal(res.status, 200);
  assert.equal(coreLimit(pid), '0 0', 'RLIMIT_CORE soft and hard');
});

test('a production server: SIGUSR1 twice opens no inspector, it serves on; core dumps are off', {
  skip: !linux,
}, async (t) => {
  const server = await startServerProcess(t, ['--config', productionConfig(t)]);
  const pid = server.child.pid!;
  await assertSigusr1OpensNothing(pid, 'server');
  assert.equal(coreLimit(pid), '0 0');
  assert.equal((await fetch(`${server.address}/v1/sys/seal-status`)).status, 200);
  assert.match(server.output(), /listening/);
});

test('the gateway role: SIGUSR1 opens no inspector in the process that serves the gateway', {
  skip: !linux,
}, async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'gw.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      'gateway:',
      '  listen: 127.0.0.1:0',
      '  routes:',
      '    - provider: openai',
      '      models: ["gpt-*"]',
      '      base_url: http://127.0.0.1:9',
      '      keys: [llm/dev/OPENAI_API_KEY]',
      '',
    ].join('\n'),
  );
  const gw = await startServerProcess(
    t,
    ['--dev', '--data', join(dir, 'data'), '--config', config],
    {},
    'gateway',
  );
  const pid = gw.child.pid!;
  const until = Date.now() + 15_000;
  while (!/Gateway listening on http:\/\/\S+/.test(gw.output())) {
    assert.ok(Date.now() < until, `the gateway did not start:\n${gw.output()}`);
    await sleep(50);
  }
  await assertSigusr1OpensNothing(pid, 'gateway');
  assert.equal(coreLimit(pid), '0 0');
  assert.equal((await fetch(`${gw.address}/v1/sys/health`)).status, 200);
});

test('the agent: SIGUSR1 opens no inspector, the agent serves on; core dumps are off', {
  skip: !linux,
}, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const admin = createClient({ addr: server.address, token: server.root });
  await admin.createProject('demo');
  const app = (await admin.request('POST', '/v1/auth/apps', {
    name: 'agent',
    roles: ['app'],
    scope: { paths: ['demo/dev'] },
  })) as { client_id: string; client_secret: string };
  writeFileSync(join(dir, 'client-id'), `${app.client_id}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'client-secret'), `${app.client_secret}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'agent.yaml'),
    [
      'vault:',
      `  addrs: ["${server.address}"]`,
      'auth:',
      '  app:',
      '    client_id_file: client-id',
      '    client_secret_file: client-secret',
      'listen:',
      '  socket: run/agent.sock',
      '  http: 127.0.0.1:0',
      '',
    ].join('\n'),
  );
  const child = spawn(NODE, [BIN, 'agent', '--config', join(dir, 'agent.yaml')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const until = Date.now() + 15_000;
  while (!/"serving health and metrics"/.test(out)) {
    assert.ok(Date.now() < until && child.exitCode === null, `the agent did not start:\n${out}`);
    await sleep(50);
  }
  const port = Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(out)![1]);
  const pid = child.pid!;
  await assertSigusr1OpensNothing(pid, 'agent');
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  assert.equal(coreLimit(pid), '0 0');
});

/** Every way of asking for an inspector, on the node command line or in NODE_OPTIONS. */
const ASKS: { name: string; nodeArgs?: string[]; nodeOptions?: string }[] = [
  { name: '--inspect=0 on the command line', nodeArgs: ['--inspect=0'] },
  { name: '--inspect-port=0 on the command line', nodeArgs: ['--inspect-port=0'] },
  { name: 'NODE_OPTIONS=--inspect=127.0.0.1:0', nodeOptions: '--inspect=127.0.0.1:0' },
  { name: 'NODE_OPTIONS=--inspect_port=0 (underscore spelling)', nodeOptions: '--inspect_port=0' },
  {
    name: 'NODE_OPTIONS with a quoted --inspect-port among other flags',
    nodeOptions: '--max-old-space-size=512 "--inspect-port=0"',
  },
  { name: 'NODE_OPTIONS=--debug-port=0', nodeOptions: '--debug-port=0' },
];

test('outside dev mode, a server asked for an inspector refuses to start (exit 2) and says why and how to override', async (t) => {
  const config = productionConfig(t);
  for (const ask of ASKS) {
    const r = await runRole(['server', '--config', config], {
      ...(ask.nodeArgs ? { nodeArgs: ask.nodeArgs } : {}),
      env: ask.nodeOptions ? { NODE_OPTIONS: ask.nodeOptions } : {},
    });
    assert.equal(r.code, 2, `${ask.name}:\n${r.output}`);
    assert.match(r.output, /refusing to start the server: .* asks for the Node inspector/, ask.name);
    assert.match(r.output, /STRONGROOM_ALLOW_INSPECTOR=1/, ask.name);
    assert.doesNotMatch(r.output, /listening on https?:|"address":"http/, `${ask.name}: nothing listened`);
  }
});

test('--inspect-brk: once a debugger lets it run, the server refuses to start', async (t) => {
  const config = productionConfig(t);
  const child = spawn(NODE, ['--inspect-brk=0', BIN, 'server', '--config', config], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = once(child, 'exit');
  // each process image stops at its first line until a debugger says go (the launcher's, then the hardened one)
  const released = new Set<string>();
  const deadline = Date.now() + 20_000;
  while (child.exitCode === null && Date.now() < deadline) {
    for (const m of out.matchAll(/Debugger listening on (ws:\/\/\S+)/g)) {
      if (released.has(m[1]!)) continue;
      released.add(m[1]!);
      const ws = new WebSocket(m[1]!);
      await new Promise((r) => ws.addEventListener('open', r, { once: true }));
      ws.send(JSON.stringify({ id: 1, method: 'Runtime.runIfWaitingForDebugger' }));
      await sleep(200);
      ws.close();
    }
    await sleep(50);
  }
  const done = await Promise.race([exited, sleep(5_000).then(() => undefined)]);
  assert.ok(done, `the server was still running after the debugger let it go:\n${out}`);
  assert.equal(child.exitCode, 2, out);
  assert.match(
    out,
    /refusing to start the server: --inspect-brk=0 on the node command line asks for the Node inspector/,
  );
});

test('the agent, which has no dev mode, refuses an inspector in NODE_OPTIONS too', async () => {
  const r = await runRole(['agent', '--config', '/nonexistent/agent.yaml'], {
    env: { NODE_OPTIONS: '--inspect=0' },
  });
  assert.equal(r.code, 2, r.output);
  assert.match(r.output, /refusing to start the agent: --inspect=0 in NODE_OPTIONS/);
});

test('STRONGROOM_ALLOW_INSPECTOR=1 lets a server start with an inspector, with a warning; dev mode allows it', async (t) => {
  const allowed = await startServerProcess(t, ['--config', productionConfig(t)], {
    NODE_OPTIONS: '--inspect=127.0.0.1:0',
    STRONGROOM_ALLOW_INSPECTOR: '1',
  });
  assert.match(allowed.output(), /WARNING: the server runs with a Node inspector/);
  await allowed.stop();
  const dev = await startServerProcess(t, ['--dev', '--data', tempDir(t), '--listen', '127.0.0.1:0'], {
    NODE_OPTIONS: '--inspect=127.0.0.1:0',
  });
  assert.equal((await fetch(`${dev.address}/v1/sys/health`)).status, 200);
  await dev.stop();
  const bad = await runRole(['server', '--config', productionConfig(t)], {
    env: { STRONGROOM_ALLOW_INSPECTOR: 'maybe' },
  });
  assert.equal(bad.code, 2);
  assert.match(bad.output, /STRONGROOM_ALLOW_INSPECTOR must be true or false/);
});
