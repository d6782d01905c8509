import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tempDir } from '../helpers/app.ts';
import { BIN, ROOT, runCli } from '../helpers/process.ts';

/** Runs a shell command line the way a user types it in the project folder. */
function sh(
  line: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-c', line], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return once(child, 'exit').then(([code]) => ({ code: code as number, stdout, stderr }));
}

async function startDev(
  args: string[],
): Promise<{ child: ChildProcess; out: () => string; addr: string; token: string }> {
  // exactly what `npm start` runs, with a free port and a temporary data folder
  const child = spawn('npm', ['start', '--silent', '--', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!/STRONGROOM_TOKEN=(\S+)/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`dev server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    out: () => out,
    addr: /STRONGROOM_ADDR=(\S+)/.exec(out)![1]!,
    token: /STRONGROOM_TOKEN=(\S+)/.exec(out)![1]!,
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<unknown> {
  const exited =
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit');
  try {
    process.kill(-child.pid!, signal);
  } catch {}
  return exited;
}

describe('the README quick start', () => {
  test('npm start runs a dev server; the CLI stores and reads a secret exactly as the README says', {
    timeout: 120_000,
  }, async (t) => {
    const data = tempDir(t);
    const dev = await startDev(['--listen', '127.0.0.1:0', '--data', data]);
    t.after(() => killGroup(dev.child, 'SIGKILL'));
    assert.match(dev.out(), /WARNING: DEVELOPMENT MODE/);
    assert.match(dev.token, /^srt_/);
    const env = { STRONGROOM_ADDR: dev.addr, STRONGROOM_TOKEN: dev.token };

    const created = await sh('npx strongroom project create demo', env);
    assert.equal(created.code, 0, created.stderr);
    const put = await sh(
      `printf '%s' "sk-your-openai-key" | npx strongroom secret put demo/dev/OPENAI_API_KEY`,
      env,
    );
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /Version\s+1/);
    const got = await sh('npx strongroom secret get demo/dev/OPENAI_API_KEY', env);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /sk-your-openai-key/);
    const field = await sh('npx strongroom secret get demo/dev/OPENAI_API_KEY --field value', env);
    assert.equal(field.stdout, 'sk-your-openai-key\n');
    const list = await sh('npx strongroom secret list demo/dev --format json', env);
    const listed = JSON.parse(list.stdout) as { secrets: { name: string; version: number }[] };
    assert.deepEqual(
      listed.secrets.map((s) => [s.name, s.version]),
      [['OPENAI_API_KEY', 1]],
    );
    assert.doesNotMatch(list.stdout, /sk-your-openai-key/);

    // the data lives in the dev folder, with private permissions
    assert.ok(existsSync(join(data, 'strongroom.db')));
    assert.equal(statSync(join(data, 'unseal.key')).mode & 0o777, 0o600);

    // a restart keeps the data, auto-unseals, and revokes the previous root token
    await killGroup(dev.child);
    const again = await startDev(['--listen', '127.0.0.1:0', '--data', data]);
    t.after(() => killGroup(again.child, 'SIGKILL'));
    assert.notEqual(again.token, dev.token);
    const env2 = { STRONGROOM_ADDR: again.addr, STRONGROOM_TOKEN: again.token };
    const after = await runCli(['secret', 'get', 'demo/dev/OPENAI_API_KEY', '--field', 'value'], {
      env: env2,
    });
    assert.equal(after.stdout, 'sk-your-openai-key\n');
    const old = await runCli(['secret', 'get', 'demo/dev/OPENAI_API_KEY'], {
      env: { ...env2, STRONGROOM_TOKEN: dev.token },
    });
    assert.equal(old.code, 1);
    assert.match(old.stderr, /invalid_token/);
    await killGroup(again.child);
  });
});

describe('the CLI', () => {
  test('--help lists the command groups', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['server', 'status', 'operator', 'project', 'secret'])
      assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
  });

  test('a usage error exits 2 with a readable message, not a stack trace', async () => {
    const r = await runCli(['secret', 'get', 'not-an-address'], {
      env: { STRONGROOM_ADDR: 'http://127.0.0.1:9' },
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expected PROJECT\/ENV\/NAME/);
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/);
  });

  test('an unreachable server is explained, with what to check', async () => {
    const r = await runCli(['status'], { env: { STRONGROOM_ADDR: 'http://127.0.0.1:9' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach Strongroom at http:\/\/127\.0\.0\.1:9.*STRONGROOM_ADDR/);
  });

  test('a bad server config is a clear startup error', async (t) => {
    const dir = tempDir(t);
    const r = await runCli(['server', '--config', join(dir, 'missing.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read the config file/);
  });

  const systemNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p));
  const systemMajor = systemNode
    ? Number(execFileSync(systemNode, ['-p', 'process.versions.node.split(".")[0]']).toString())
    : 99;
  test('started on a Node older than 24, the CLI says which Node it needs instead of crashing', {
    skip: systemMajor >= 24 ? 'no Node older than 24 on this machine' : false,
  }, async () => {
    const child = spawn(systemNode!, [BIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 1);
    assert.match(err, /strongroom needs Node\.js 24 or newer; this is Node\.js \d+/);
    assert.doesNotMatch(err, /ERR_|\n\s+at /);
  });
});
