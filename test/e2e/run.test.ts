import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { createClient } from '../../src/sdk/client.ts';
import { tempDir } from '../helpers/app.ts';
import { NODE, ROOT, startServerProcess } from '../helpers/process.ts';

const ENTRY = resolve(ROOT, 'bin/strongroom.js');

const OPENAI = `sk-proj-${'r4'.repeat(20)}`;
const OPENAI_ORG = 'org-runtest-0123456789';
const ANTHROPIC = `sk-ant-api03-${'q7'.repeat(40)}`;
const NEXT_OPENAI = `sk-proj-${'n5'.repeat(20)}`;
const NEXT_ORG = 'org-runtest-changed-999';

interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number>;
}

function start(args: string[], env: Record<string, string>, cwd: string): Proc {
  const child = spawn(NODE, [ENTRY, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = once(child, 'exit').then(([code, signal]) => (code as number | null) ?? `signal ${signal}`);
  return { child, stdout: () => out, stderr: () => err, exited: exited as Promise<number> };
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every file under `dir` that contains `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

test('strongroom run: secrets reach the child and nowhere else', { timeout: 90_000 }, async (t) => {
  const dataDir = tempDir(t);
  const cwd = tempDir(t, 'strongroom-run-cwd-');
  const server = await startServerProcess(t, ['--dev', '--data', dataDir, '--listen', '127.0.0.1:0']);
  await until('the dev token', () => /STRONGROOM_TOKEN=(\S+)/.test(server.output()), 15_000);
  const root = /STRONGROOM_TOKEN=(\S+)/.exec(server.output())![1]!;
  const env = { STRONGROOM_ADDR: server.address, STRONGROOM_TOKEN: root };
  const sr = createClient({ addr: server.address, token: root });
  await sr.createProject('demo');
  await sr.putSecret('demo', 'dev', 'OPENAI_API_KEY', OPENAI);
  await sr.putSecret('demo', 'dev', 'OPENAI_ORG_ID', OPENAI_ORG);
  await sr.putSecret('demo', 'dev', 'ANTHROPIC_API_KEY', ANTHROPIC);

  const run = async (args: string[], extra: Record<string, string> = {}) => {
    const p = start(['run', ...args], { ...env, ...extra }, cwd);
    const code = await p.exited;
    return { code, stdout: p.stdout(), stderr: p.stderr() };
  };

  await t.test('the child sees the value; the parent prints nothing of its own', async () => {
    const r = await run([
      '--project',
      'demo',
      '--env',
      'dev',
      '--',
      NODE,
      '-e',
      'console.log(process.env.OPENAI_API_KEY)',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${OPENAI}\n`);
    assert.equal(r.stderr, '');
  });

  await t.test('a child printing its whole environment: values only in its output', async () => {
    const r = await run([
      '--project',
      'demo',
      '--env',
      'dev',
      '--',
      NODE,
      '-e',
      'process.stdout.write(JSON.stringify(process.env))',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const childEnv = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(childEnv.OPENAI_API_KEY, OPENAI);
    assert.equal(childEnv.OPENAI_ORG_ID, OPENAI_ORG);
    assert.equal(childEnv.ANTHROPIC_API_KEY, ANTHROPIC);
    assert.equal(childEnv.STRONGROOM_ADDR, server.address, 'the current environment is kept');
    assert.doesNotMatch(r.stderr, /sk-|org-runtest/);
    // the server's own output (logs, audit to stdout) never carries the values either
    for (const v of [OPENAI, OPENAI_ORG, ANTHROPIC]) assert.ok(!server.output().includes(v));
  });

  await t.test('the parent does not carry the values in its own argv or environment', async () => {
    const p = start(
      ['run', '--project', 'demo', '--env', 'dev', '--', NODE, '-e', 'setTimeout(() => {}, 1500)'],
      env,
      cwd,
    );
    await until('the parent to start', () => p.child.pid !== undefined);
    await new Promise((r) => setTimeout(r, 700));
    const pid = p.child.pid!;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    for (const v of [OPENAI, OPENAI_ORG, ANTHROPIC]) {
      assert.ok(!cmdline.includes(v));
      assert.ok(!environ.includes(v));
    }
    assert.equal(await p.exited, 0, p.stderr());
  });

  await t.test("the child's exit code passes through", async () => {
    const r = await run(['--project', 'demo', '--env', 'dev', '--', NODE, '-e', 'process.exit(7)']);
    assert.equal(r.code, 7);
    const killed = await run([
      '--project',
      'demo',
      '--env',
      'dev',
      '--',
      NODE,
      '-e',
      "process.kill(process.pid, 'SIGKILL')",
    ]);
    assert.equal(killed.code, 128 + 9);
    const missing = await run(['--project', 'demo', '--env', 'dev', '--', 'no-such-command-strongroom']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /command not found/);
  });

  await t.test('a scoped token gets only the secrets its scope reaches', async () => {
    const res = await fetch(`${server.address}/v1/auth/token/create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: JSON.stringify({ roles: ['developer'], scope: { paths: ['demo/dev/OPENAI_*'] } }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const scoped = ((await res.json()) as { auth: { client_token: string } }).auth.client_token;
    const r = await run(
      [
        '--project',
        'demo',
        '--env',
        'dev',
        '--',
        NODE,
        '-e',
        'process.stdout.write(JSON.stringify(process.env))',
      ],
      { STRONGROOM_TOKEN: scoped },
    );
    assert.equal(r.code, 0, r.stderr);
    const childEnv = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(childEnv.OPENAI_API_KEY, OPENAI);
    assert.equal(childEnv.OPENAI_ORG_ID, OPENAI_ORG);
    assert.equal(childEnv.ANTHROPIC_API_KEY, undefined);
    assert.doesNotMatch(r.stderr, /sk-/);
  });

  await t.test('a secret listed but forbidden (403) is skipped with a note naming it', async () => {
    await sr.putPolicy(
      'no-anthropic-for-developers',
      'forbid (principal in Strongroom::Role::"developer", action == Strongroom::Action::"secret.read", resource is Strongroom::Secret) when { resource.name == "ANTHROPIC_API_KEY" };\n',
    );
    t.after(() => sr.deletePolicy('no-anthropic-for-developers').catch(() => {}));
    const dev = await sr.createToken({ roles: ['developer'] });
    const r = await run(
      [
        '--project',
        'demo',
        '--env',
        'dev',
        '--',
        NODE,
        '-e',
        'process.stdout.write(JSON.stringify(process.env))',
      ],
      { STRONGROOM_TOKEN: dev.auth.client_token },
    );
    assert.equal(r.code, 0, r.stderr);
    const childEnv = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(childEnv.OPENAI_API_KEY, OPENAI);
    assert.equal(childEnv.ANTHROPIC_API_KEY, undefined);
    assert.match(r.stderr, /skipped demo\/dev\/ANTHROPIC_API_KEY: permission denied/);
    assert.doesNotMatch(r.stderr, /sk-/);
    await sr.deletePolicy('no-anthropic-for-developers');
  });

  await t.test('--only limits the secrets', async () => {
    const r = await run([
      '--project',
      'demo',
      '--env',
      'dev',
      '--only',
      'OPENAI_API_KEY,NOT_THERE',
      '--',
      NODE,
      '-e',
      'process.stdout.write(JSON.stringify(process.env))',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const childEnv = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(childEnv.OPENAI_API_KEY, OPENAI);
    assert.equal(childEnv.OPENAI_ORG_ID, undefined);
    assert.equal(childEnv.ANTHROPIC_API_KEY, undefined);
    assert.match(r.stderr, /NOT_THERE not found/);
    const bad = await run(['--project', 'demo', '--env', 'dev', '--only', 'not-a-var', '--', NODE]);
    assert.equal(bad.code, 2);
  });

  await t.test('--watch restarts the child on a change; SIGTERM stops it', async () => {
    const child = 'console.log(process.pid + " " + process.env.OPENAI_API_KEY); setInterval(() => {}, 1000)';
    const p = start(
      ['run', '--project', 'demo', '--env', 'dev', '--watch', '--', NODE, '-e', child],
      env,
      cwd,
    );
    await until('the first child', () => p.stdout().includes(OPENAI));
    const firstPid = Number(p.stdout().split(' ')[0]);
    const next = NEXT_OPENAI;
    const changedAt = Date.now();
    await sr.putSecret('demo', 'dev', 'OPENAI_API_KEY', next);
    await until('the restarted child', () => p.stdout().includes(next), 5_000);
    assert.ok(Date.now() - changedAt < 3_000, 'restarted within a couple of seconds');
    const lines = p.stdout().trim().split('\n');
    assert.equal(lines.length, 2, p.stdout());
    const secondPid = Number(lines[1]!.split(' ')[0]);
    assert.notEqual(secondPid, firstPid);
    assert.throws(() => process.kill(firstPid, 0), /ESRCH/, 'the old child is gone');
    assert.match(p.stderr(), /a secret changed: restarting/);
    assert.doesNotMatch(p.stderr(), /sk-/);

    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 128 + 15);
    assert.throws(() => process.kill(secondPid, 0), /ESRCH/, 'the child is gone');
  });

  await t.test('--watch with --only ignores other secrets; SIGKILL after --grace', async () => {
    const child =
      'process.on("SIGTERM", () => {}); console.log(process.pid + " " + process.env.OPENAI_ORG_ID); setInterval(() => {}, 1000)';
    const p = start(
      [
        'run',
        '--project',
        'demo',
        '--env',
        'dev',
        '--watch',
        '--only',
        'OPENAI_ORG_ID',
        '--grace',
        '500ms',
        '--',
        NODE,
        '-e',
        child,
      ],
      env,
      cwd,
    );
    await until('the first child', () => p.stdout().includes(OPENAI_ORG));
    await sr.putSecret('demo', 'dev', 'ANTHROPIC_API_KEY', `sk-ant-api03-${'z8'.repeat(40)}`);
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(p.stdout().trim().split('\n').length, 1, 'no restart for a secret outside --only');
    const org2 = NEXT_ORG;
    await sr.putSecret('demo', 'dev', 'OPENAI_ORG_ID', org2);
    await until('the restarted child', () => p.stdout().includes(org2), 5_000);
    assert.match(p.stderr(), /did not stop within 500ms: SIGKILL/);
    const pid = Number(p.stdout().trim().split('\n')[1]!.split(' ')[0]);
    p.child.kill('SIGINT');
    // the child ignores only SIGTERM: SIGINT ends it
    assert.equal(await p.exited, 128 + 2);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });

  await t.test('after all the runs, nothing on disk holds a value in plaintext', () => {
    for (const v of [OPENAI, OPENAI_ORG, ANTHROPIC, NEXT_OPENAI, NEXT_ORG]) {
      assert.deepEqual(filesContaining(dataDir, v), []);
      assert.deepEqual(filesContaining(cwd, v), []);
    }
  });
});
