import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { createClient } from '../../src/sdk/client.ts';
import { tempDir } from '../helpers/app.ts';
import { BIN, NODE, ROOT, runCli, startDevServer } from '../helpers/process.ts';
import { sleep, until } from '../helpers/wait.ts';

/** GET over a Unix socket or host:port. */
function get(target: { socketPath: string } | { host: string; port: number }, path: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ ...target, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function startAgentProcess(t: { after(fn: () => unknown): void }, args: string[]) {
  const child = spawn(NODE, [BIN, 'agent', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number>((r) => child.on('exit', (code) => r(code ?? -1)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => out, exited };
}

test('the sidecar agent', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const root = server.root;
  const admin = createClient({ addr: server.address, token: root });
  await admin.createProject('demo');
  await admin.putSecret('demo', 'dev', 'OPENAI_API_KEY', 'sk-agent-first "quoted" $HOME', { force: true });
  await admin.putSecret('demo', 'dev', 'OTHER', 'other-1');
  const app = (await admin.request('POST', '/v1/auth/apps', {
    name: 'agent',
    roles: ['app'],
    scope: { paths: ['demo/dev'] },
  })) as { client_id: string; client_secret: string };
  writeFileSync(join(dir, 'client-id'), `${app.client_id}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'client-secret'), `${app.client_secret}\n`, { mode: 0o600 });

  const out = join(dir, 'secrets');
  const socketPath = join(dir, 'run', 'agent.sock');
  // the child prints its pid and the key it was given, then waits
  const childScript = 'console.log(process.pid, process.env.OPENAI_API_KEY); setInterval(() => {}, 1000)';
  writeFileSync(
    join(dir, 'agent.yaml'),
    `vault:
  addrs: ["${server.address}"]
auth:
  app:
    client_id_file: client-id
    client_secret_file: client-secret
cache:
  stale_if_error: 10m
templates:
  - destination: secrets/app.env
    contents: |
      OPENAI_API_KEY={{ secret "demo/dev/OPENAI_API_KEY" | dotenv }}
      OTHER={{ secret "demo/dev/OTHER" }}
exec:
  command: ["${NODE}", "-e", ${JSON.stringify(childScript)}]
  env:
    OPENAI_API_KEY: demo/dev/OPENAI_API_KEY
  grace: 2s
listen:
  socket: run/agent.sock
  http: 127.0.0.1:0
`,
  );

  const agent = startAgentProcess(t, ['--config', join(dir, 'agent.yaml')]);
  await until('the health listener', () => /"serving health and metrics"/.test(agent.output()));
  const port = Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(agent.output())![1]);
  const http = { host: '127.0.0.1', port };
  await until('the child', () => /^\d+ sk-agent-first/m.test(agent.output()));

  await t.test('renders the template, 0600, with the filter applied', () => {
    const file = join(out, 'app.env');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(
      readFileSync(file, 'utf8'),
      'OPENAI_API_KEY="sk-agent-first \\"quoted\\" \\$HOME"\nOTHER=other-1\n',
    );
  });

  await t.test('health is 200 and metrics count the render; neither shows a value', async () => {
    const h = await get(http, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(JSON.parse(h.body).status, 'ok');
    const m = await get(http, '/metrics');
    assert.match(m.body, /strongroom_agent_renders_total 1/);
    assert.match(m.body, /strongroom_agent_up 1/);
    assert.doesNotMatch(m.body + h.body, /sk-agent/);
    // the TCP listener never serves secrets
    assert.equal((await get(http, '/v1/secrets/demo/dev/OPENAI_API_KEY')).status, 404);
  });

  await t.test('the socket is private and answers reads', async () => {
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const r = await get({ socketPath }, '/v1/secrets/demo/dev/OTHER');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).value, 'other-1');
    const denied = await get({ socketPath }, '/v1/secrets/other/dev/X');
    assert.equal(denied.status, 403, 'the agent can read only what its app may');
    const bad = await get({ socketPath }, '/v1/secrets/demo/dev/..%2F..');
    assert.equal(bad.status, 400);
  });

  await t.test('a rotation re-renders the file and restarts the child with the new value', async () => {
    const firstPid = Number(/^(\d+) sk-agent-first/m.exec(agent.output())![1]);
    const started = Date.now();
    await admin.putSecret('demo', 'dev', 'OPENAI_API_KEY', 'sk-agent-second', { force: true });
    await until(
      'the new file',
      () => readFileSync(join(out, 'app.env'), 'utf8').includes('sk-agent-second'),
      5_000,
    );
    const took = Date.now() - started;
    await until('the restarted child', () => /^\d+ sk-agent-second/m.test(agent.output()), 5_000);
    const secondPid = Number(/^(\d+) sk-agent-second/m.exec(agent.output())![1]);
    assert.notEqual(secondPid, firstPid);
    assert.throws(() => process.kill(firstPid, 0), 'the old child is gone');
    assert.equal(statSync(join(out, 'app.env')).mode & 0o777, 0o600);
    assert.deepEqual(
      readdirSync(out).filter((f) => f.endsWith('.tmp')),
      [],
      'no temporary file left behind',
    );
    t.diagnostic(`rotation reached the file in ${took} ms`);
    assert.ok(took < 2_000, `the file changed within 2 s (${took} ms)`);
  });

  await t.test('a change to a secret nothing uses does not restart the child', async () => {
    const before = agent.output().match(/^\d+ sk-agent/gm)!.length;
    await admin.putSecret('demo', 'dev', 'UNUSED', 'u');
    await sleep(800);
    assert.equal(agent.output().match(/^\d+ sk-agent/gm)!.length, before);
  });

  await t.test('with the server down, the socket still answers from the cache', async () => {
    await server.stop();
    const r = await get({ socketPath }, '/v1/secrets/demo/dev/OPENAI_API_KEY');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).value, 'sk-agent-second');
    // a secret it never fetched cannot be served: 503, not a guess
    const unknown = await get({ socketPath }, '/v1/secrets/demo/dev/NEVER_READ');
    assert.equal(unknown.status, 503);
    assert.equal(JSON.parse(unknown.body).error.code, 'unreachable');
    assert.equal(readFileSync(join(out, 'app.env'), 'utf8').includes('sk-agent-second'), true, 'files kept');
  });

  await t.test('SIGTERM stops the child and the agent; the socket is removed', async () => {
    const pid = Number(/^(\d+) sk-agent-second/m.exec(agent.output())![1]);
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
    assert.throws(() => process.kill(pid, 0), 'the child was stopped');
    assert.throws(() => statSync(socketPath));
  });

  await t.test('nothing the agent logged holds a value', () => {
    const logs = agent.output().replace(/^\d+ sk-agent-.*\n/gm, '');
    assert.doesNotMatch(logs, /sk-agent|other-1/);
    assert.doesNotMatch(logs, new RegExp(app.client_secret));
  });
});

test('agent --once renders and exits; --check finds template mistakes', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const root = server.root;
  const admin = createClient({ addr: server.address, token: root });
  await admin.createProject('demo');
  await admin.putSecret('demo', 'dev', 'KEY', 'once-value');
  writeFileSync(join(dir, 'token'), root, { mode: 0o600 });
  const config = (template: string) =>
    `vault:\n  addrs: ["${server.address}"]\nauth:\n  token_file: token\ntemplates:\n  - destination: out/key.json\n    contents: ${JSON.stringify(template)}\n`;

  writeFileSync(join(dir, 'ok.yaml'), config('{"key": {{ secret "demo/dev/KEY" | json }}}'));
  const ok = await runCli(['agent', '--config', join(dir, 'ok.yaml'), '--once']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'out', 'key.json'), 'utf8')), { key: 'once-value' });

  writeFileSync(join(dir, 'missing.yaml'), config('{{ secret "demo/dev/NOPE" }}'));
  const missing = await runCli(['agent', '--config', join(dir, 'missing.yaml'), '--once']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot render/);

  writeFileSync(join(dir, 'bad.yaml'), config('line one\n{{ secrte "demo/dev/KEY" }}'));
  const bad = await runCli(['agent', '--config', join(dir, 'bad.yaml'), '--check']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /line 2: .*not a placeholder/);

  writeFileSync(join(dir, 'mode.yaml'), `${config('x')}    mode: "0666"\n`);
  const mode = await runCli(['agent', '--config', join(dir, 'mode.yaml'), '--check']);
  assert.equal(mode.code, 2);
  assert.match(mode.stderr, /lets group or others write/);

  const good = await runCli(['agent', '--config', join(dir, 'ok.yaml'), '--check']);
  assert.equal(good.code, 0, good.stderr);
});
