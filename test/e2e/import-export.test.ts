import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import type { ExportResponse, ImportResponse } from '../../src/api/bulk.ts';
import type { AuthResponse } from '../../src/api/v1.ts';
import { buildTestApp, type TestApp, tempDir } from '../helpers/app.ts';
import { runCli, type ServerProcess, startServerProcess } from '../helpers/process.ts';

/**
 * Bulk import and export (issue 4, item 5). Must show: "Importing a
 * 10,000-line .env file shows progress, writes every entry as a new version,
 * and an interrupted or partly invalid import leaves nothing half-written."
 */
const IMPORT = '/v1/secrets/llm/dev/import';

async function fixture(t: TestContext): Promise<TestApp> {
  const a = await buildTestApp(t);
  const res = await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev', 'other', 'prod'] });
  assert.equal(res.statusCode, 201, res.body);
  return a;
}

const entries = (n: number, prefix = 'KEY', value = (k: number) => `value-${k}`) =>
  Array.from({ length: n }, (_, k) => ({ name: `${prefix}_${k}`, value: value(k) }));

async function names(a: TestApp, env = 'dev'): Promise<string[]> {
  const res = await a.call('GET', `/v1/secrets/llm/${env}`);
  return (res.json() as { secrets: { name: string }[] }).secrets.map((s) => s.name);
}

async function mint(a: TestApp, body: Record<string, unknown>): Promise<string> {
  const res = await a.call('POST', '/v1/auth/token/create', body);
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as AuthResponse).auth.client_token;
}

describe('the import API', () => {
  test('writes every entry as version 1, then overwrite makes version 2 of changed ones only', async (t) => {
    const a = await fixture(t);
    const first = await a.call('POST', IMPORT, { secrets: entries(50) });
    assert.equal(first.statusCode, 200, first.body);
    const r1 = first.json() as ImportResponse;
    assert.equal(r1.committed, true);
    assert.deepEqual(r1.counts, { total: 50, create: 50, update: 0, skip: 0, unchanged: 0 });
    assert.ok(r1.entries.every((e) => e.action === 'create' && e.version === 1));

    const next = entries(50, 'KEY', (k) => (k % 10 === 0 ? `changed-${k}` : `value-${k}`));
    const second = await a.call('POST', IMPORT, { secrets: next, on_conflict: 'overwrite' });
    const r2 = second.json() as ImportResponse;
    assert.deepEqual(r2.counts, { total: 50, create: 0, update: 5, skip: 0, unchanged: 45 });
    assert.deepEqual(r2.entries[10], { name: 'KEY_10', action: 'update', version: 2 });
    assert.deepEqual(r2.entries[11], { name: 'KEY_11', action: 'unchanged', version: 1 });
    const read = await a.call('GET', '/v1/secrets/llm/dev/KEY_10');
    assert.equal(read.json().value, 'changed-10');
    assert.equal(read.json().version, 2);

    const third = await a.call('POST', IMPORT, {
      secrets: entries(50, 'KEY', () => 'x'),
      on_conflict: 'skip',
    });
    assert.deepEqual((third.json() as ImportResponse).counts, {
      total: 50,
      create: 0,
      update: 0,
      skip: 50,
      unchanged: 0,
    });
    assert.equal((await a.call('GET', '/v1/secrets/llm/dev/KEY_3')).json().value, 'value-3');
  });

  test('fields travel with the entries (provider, owner, tags, rotation)', async (t) => {
    const a = await fixture(t);
    const key = `sk-proj-${'a'.repeat(40)}`;
    const res = await a.call('POST', IMPORT, {
      secrets: [
        {
          name: 'OPENAI_API_KEY',
          value: key,
          provider: 'openai',
          owner: 'ml',
          tags: ['b', 'a'],
          rotation: { interval: '30d' },
        },
      ],
    });
    assert.equal(res.statusCode, 200, res.body);
    const s = (await a.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY')).json();
    assert.equal(s.provider, 'openai');
    assert.equal(s.owner, 'ml');
    assert.deepEqual(s.tags, ['a', 'b']);
    assert.equal(s.rotation.interval, 30 * 86400);
  });

  test('on_conflict fail with one existing name writes nothing and names it', async (t) => {
    const a = await fixture(t);
    await a.call('PUT', '/v1/secrets/llm/dev/KEY_7', { value: 'already here' });
    const res = await a.call('POST', IMPORT, { secrets: entries(100), on_conflict: 'fail' });
    assert.equal(res.statusCode, 409, res.body);
    const err = res.json().error;
    assert.equal(err.code, 'already_exists');
    assert.match(err.message, /nothing was written/);
    assert.deepEqual(
      err.details.problems.map((p: { index: number; name: string; code: string }) => [
        p.index,
        p.name,
        p.code,
      ]),
      [[7, 'KEY_7', 'conflict']],
    );
    assert.deepEqual(await names(a), ['KEY_7']);
  });

  test('one invalid entry among many writes nothing and says which', async (t) => {
    const a = await fixture(t);
    const secrets: { name: string; value: string; provider?: string }[] = entries(1000);
    secrets[500] = { name: 'OPENAI_API_KEY', value: 'not-an-openai-key', provider: 'openai' };
    secrets[700] = { name: 'bad name', value: 'x' };
    const res = await a.call('POST', IMPORT, { secrets });
    assert.equal(res.statusCode, 400, res.body);
    const err = res.json().error;
    assert.deepEqual(
      err.details.problems.map((p: { index: number; code: string }) => [p.index, p.code]),
      [
        [500, 'invalid_value'],
        [700, 'invalid_name'],
      ],
    );
    assert.deepEqual(await names(a), []);
  });

  test("a value that breaks an existing secret's provider format is caught in the write phase: nothing written", async (t) => {
    const a = await fixture(t);
    const key = `sk-proj-${'a'.repeat(40)}`;
    await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: key, provider: 'openai' });
    const res = await a.call('POST', IMPORT, {
      secrets: [...entries(20), { name: 'OPENAI_API_KEY', value: 'oops' }],
      on_conflict: 'overwrite',
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.details.problems[0].index, 20);
    assert.deepEqual(await names(a), ['OPENAI_API_KEY']);
    assert.equal((await a.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY')).json().value, key);
  });

  test('a duplicate name in one request is refused', async (t) => {
    const a = await fixture(t);
    const res = await a.call('POST', IMPORT, { secrets: [...entries(3), { name: 'KEY_1', value: 'again' }] });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.details.problems[0].code, 'duplicate');
    assert.deepEqual(await names(a), []);
  });

  test('a dry run writes nothing and reports the plan', async (t) => {
    const a = await fixture(t);
    await a.call('PUT', '/v1/secrets/llm/dev/KEY_1', { value: 'old' });
    await a.call('PUT', '/v1/secrets/llm/dev/KEY_2', { value: 'value-2' });
    const before = await a.storage.list('');
    const res = await a.call('POST', IMPORT, {
      secrets: entries(4),
      on_conflict: 'overwrite',
      dry_run: true,
    });
    assert.equal(res.statusCode, 200, res.body);
    const r = res.json() as ImportResponse;
    assert.equal(r.dry_run, true);
    assert.equal(r.committed, false);
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.action, e.version]),
      [
        ['KEY_0', 'create', 1],
        ['KEY_1', 'update', 2],
        ['KEY_2', 'unchanged', 1],
        ['KEY_3', 'create', 1],
      ],
    );
    assert.deepEqual(await a.storage.list(''), before);
  });

  test('a body larger than 1 MiB is accepted (the route allows 32 MiB)', async (t) => {
    const a = await fixture(t);
    const big = entries(100, 'BIG', () => 'x'.repeat(20_000));
    const res = await a.call('POST', IMPORT, { secrets: big });
    assert.equal(res.statusCode, 200, res.body.slice(0, 300));
    const other = await a.call('PUT', '/v1/secrets/llm/dev/ONE', {
      value: 'x'.repeat(64 * 1024),
      metadata: { a: 'x'.repeat(1000) },
    });
    assert.equal(other.statusCode, 200, 'other routes keep their limit and still work');
  });

  test('progress streams as NDJSON when asked, ending with the result', async (t) => {
    const a = await fixture(t);
    const res = await a.inject({
      method: 'POST',
      url: IMPORT,
      headers: { authorization: `Bearer ${a.rootToken}`, accept: 'application/x-ndjson' },
      payload: { secrets: entries(3000) },
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /application\/x-ndjson/);
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(lines[0], { phase: 'validate', done: 0, total: 3000 });
    assert.ok(lines.some((l) => l.phase === 'write' && l.done === 3000));
    assert.ok(lines.some((l) => l.phase === 'commit'));
    assert.equal(lines.at(-1).result.counts.create, 3000);
  });

  test('a refused streamed import is a plain HTTP error; a failed one ends with an error line', async (t) => {
    const a = await fixture(t);
    const auditor = await mint(a, { roles: ['auditor'] });
    const denied = await a.inject({
      method: 'POST',
      url: IMPORT,
      headers: { authorization: `Bearer ${auditor}`, accept: 'application/x-ndjson' },
      payload: { secrets: entries(2) },
    });
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().error.code, 'permission_denied');
    const failed = await a.inject({
      method: 'POST',
      url: IMPORT,
      headers: { authorization: `Bearer ${a.rootToken}`, accept: 'application/x-ndjson' },
      payload: { secrets: [...entries(2), { name: '9bad', value: 'x' }] },
    });
    const last = JSON.parse(failed.body.trim().split('\n').at(-1)!);
    assert.equal(last.error.code, 'validation_failed');
    assert.equal(last.error.details.problems[0].index, 2);
    assert.deepEqual(await names(a), []);
  });

  test('an HTTP request aborted in the middle of the write phase writes nothing', async (t) => {
    const a = await fixture(t);
    await a.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = a.app.server.address() as { port: number };
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}${IMPORT}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${a.rootToken}`,
        accept: 'application/x-ndjson',
        'content-type': 'application/json',
      },
      body: JSON.stringify({ secrets: entries(20_000) }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    let text = '';
    let seen: { phase: string; done: number; total: number } | undefined;
    while (!seen) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the stream ended before the write phase was under way:\n${text}`);
      text += Buffer.from(value).toString();
      seen = text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .find((l) => l.phase === 'write' && l.done > 0 && l.done < l.total);
    }
    ac.abort();
    // the server notices, rolls back, and the next write is not blocked
    const deadline = Date.now() + 10_000;
    for (;;) {
      const put = await a.call('PUT', '/v1/secrets/llm/dev/AFTER', { value: 'x' });
      if (put.statusCode === 200) break;
      assert.ok(Date.now() < deadline);
    }
    // long enough for the 20,000 writes to have finished had they not been rolled back
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await names(a), ['AFTER']);
    assert.ok(!(await a.storage.list('')).some((k) => k.includes('KEY_')));
  });

  test('an import reaching beyond a scoped token is refused and writes nothing', async (t) => {
    const a = await fixture(t);
    const scoped = await mint(a, { roles: ['admin'], scope: { paths: ['llm/dev/OPENAI_*'] } });
    const inside = await a.call('POST', IMPORT, { secrets: [{ name: 'OPENAI_A', value: 'x' }] }, scoped);
    assert.equal(inside.statusCode, 200, inside.body);
    const res = await a.call(
      'POST',
      IMPORT,
      {
        secrets: [
          { name: 'OPENAI_B', value: 'x' },
          { name: 'ANTHROPIC_KEY', value: 'y' },
        ],
      },
      scoped,
    );
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json().error.details.problems[0].name, 'ANTHROPIC_KEY');
    const other = await a.call('POST', '/v1/secrets/llm/other/import', { secrets: entries(1) }, scoped);
    assert.equal(other.statusCode, 403);
    assert.deepEqual(await names(a), ['OPENAI_A']);
    const providers = await mint(a, { roles: ['admin'], scope: { providers: ['openai'] } });
    const wrong = await a.call('POST', IMPORT, { secrets: [{ name: 'X', value: 'y' }] }, providers);
    assert.equal(
      wrong.statusCode,
      403,
      'a provider-scoped token cannot create a secret without that provider',
    );
  });
});

describe('the export API', () => {
  test('names and fields without values (secret.list); values only with values=true (secret.export)', async (t) => {
    const a = await fixture(t);
    await a.call('POST', IMPORT, { secrets: [{ name: 'A', value: 'secret-a', owner: 'me' }, ...entries(2)] });
    const names = await a.call('GET', '/v1/secrets/llm/dev/export');
    assert.equal(names.statusCode, 200);
    assert.ok(!names.body.includes('secret-a') && !names.body.includes('value-0'));
    const n = names.json() as ExportResponse;
    assert.equal(n.values, false);
    assert.deepEqual(
      n.secrets.map((s) => [s.name, s.owner, 'value' in s]),
      [
        ['A', 'me', false],
        ['KEY_0', null, false],
        ['KEY_1', null, false],
      ],
    );
    const values = (await a.call('GET', '/v1/secrets/llm/dev/export?values=true')).json() as ExportResponse;
    assert.deepEqual(
      values.secrets.map((s) => s.value),
      ['secret-a', 'value-0', 'value-1'],
    );
  });

  test('an auditor cannot export values (403) but can export names', async (t) => {
    const a = await fixture(t);
    await a.call('POST', IMPORT, { secrets: entries(2) });
    const auditor = await mint(a, { roles: ['auditor'] });
    const denied = await a.call('GET', '/v1/secrets/llm/dev/export?values=true', undefined, auditor);
    assert.equal(denied.statusCode, 403);
    assert.ok(!denied.body.includes('value-0'));
    const ok = await a.call('GET', '/v1/secrets/llm/dev/export', undefined, auditor);
    assert.equal(ok.statusCode, 200);
    assert.equal((ok.json() as ExportResponse).secrets.length, 2);
  });

  test('a scoped token exports only what its scope reaches; deleted secrets are left out', async (t) => {
    const a = await fixture(t);
    await a.call('POST', IMPORT, {
      secrets: [...entries(2), { name: 'OPENAI_X', value: 'o' }, { name: 'OPENAI_GONE', value: 'g' }],
    });
    await a.call('DELETE', '/v1/secrets/llm/dev/OPENAI_GONE');
    const scoped = await mint(a, { roles: ['admin'], scope: { paths: ['llm/dev/OPENAI_*'] } });
    const r = (
      await a.call('GET', '/v1/secrets/llm/dev/export?values=true', undefined, scoped)
    ).json() as ExportResponse;
    assert.deepEqual(
      r.secrets.map((s) => [s.name, s.value]),
      [['OPENAI_X', 'o']],
    );
  });

  test('an export with values is audited, without the values', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'audit.log');
    const a = await buildTestApp(t, { audit: [{ file: { path } }] });
    await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev'] });
    const canary = `CANARY-${randomBytes(8).toString('hex')}`;
    await a.call('POST', IMPORT, { secrets: [{ name: 'C', value: canary }] });
    const res = await a.call('GET', '/v1/secrets/llm/dev/export?values=true');
    assert.equal(res.statusCode, 200);
    const log = readFileSync(path, 'utf8');
    assert.ok(!log.includes(canary), 'no value in the audit log');
    const lines = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(
      lines.some((l) => l.operation === 'secret.export' && l.type === 'response' && l.status === 'ok'),
    );
    assert.ok(lines.some((l) => l.operation === 'secret.import' && l.type === 'request'));
  });
});

// ---- the CLI against a real server process (SQLite) ----

async function devServer(t: TestContext): Promise<{ server: ServerProcess; env: Record<string, string> }> {
  const data = tempDir(t);
  const server = await startServerProcess(t, ['--dev', '--data', data, '--listen', '127.0.0.1:0']);
  const deadline = Date.now() + 15_000;
  while (!/STRONGROOM_TOKEN=(\S+)/.test(server.output())) {
    assert.ok(Date.now() < deadline, server.output());
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = /STRONGROOM_TOKEN=(\S+)/.exec(server.output())![1]!;
  const env = { STRONGROOM_ADDR: server.address, STRONGROOM_TOKEN: token };
  const p = await runCli(['project', 'create', 'demo'], { env });
  assert.equal(p.code, 0, p.stderr);
  return { server, env };
}

async function api(env: Record<string, string>, path: string) {
  const res = await fetch(`${env.STRONGROOM_ADDR}${path}`, {
    headers: { authorization: `Bearer ${env.STRONGROOM_TOKEN}` },
  });
  return (await res.json()) as Record<string, unknown>;
}

const listed = async (env: Record<string, string>, e = 'dev') =>
  (await api(env, `/v1/secrets/demo/${e}`)).secrets as { name: string; version: number }[];

function dotenv(n: number, line: (k: number) => string): string {
  return `${Array.from({ length: n }, (_, k) => line(k)).join('\n')}\n`;
}

describe('strongroom import and export (CLI and server processes)', () => {
  test('a 10,000-line .env imports with progress as version 1 of every entry; overwrite makes version 2 of changed ones', {
    timeout: 180_000,
  }, async (t) => {
    const { env } = await devServer(t);
    const dir = tempDir(t);
    const file = join(dir, 'big.env');
    writeFileSync(
      file,
      dotenv(10_000, (k) => `SECRET_${k}="value ${k} with \\"quotes\\" # and = signs"`),
    );
    const started = performance.now();
    const r = await runCli(['import', 'demo/dev', file], { env });
    const ms = performance.now() - started;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /validating/);
    assert.match(r.stderr, /writing/);
    assert.match(r.stdout, /created\s+10000/);
    t.diagnostic(`10,000-entry import via the CLI (SQLite, process start included): ${ms.toFixed(0)} ms`);
    const all = await listed(env);
    assert.equal(all.length, 10_000);
    assert.ok(all.every((s) => s.version === 1));
    const one = await api(env, '/v1/secrets/demo/dev/SECRET_4321');
    assert.equal(one.value, 'value 4321 with "quotes" # and = signs');

    writeFileSync(
      file,
      dotenv(10_000, (k) =>
        k % 1000 === 0
          ? `SECRET_${k}=changed-${k}`
          : `SECRET_${k}="value ${k} with \\"quotes\\" # and = signs"`,
      ),
    );
    const again = await runCli(
      ['--format', 'json', 'import', 'demo/dev', file, '--on-conflict', 'overwrite'],
      { env },
    );
    assert.equal(again.code, 0, again.stderr);
    const res = JSON.parse(again.stdout) as ImportResponse;
    assert.deepEqual(res.counts, { total: 10_000, create: 0, update: 10, skip: 0, unchanged: 9_990 });
    const after = await listed(env);
    assert.equal(after.filter((s) => s.version === 2).length, 10);
    assert.equal((await api(env, '/v1/secrets/demo/dev/SECRET_3000')).value, 'changed-3000');
  });

  test('one invalid line among 10,000 writes nothing and names the line', { timeout: 60_000 }, async (t) => {
    const { env } = await devServer(t);
    const file = join(tempDir(t), 'bad.env');
    writeFileSync(
      file,
      dotenv(10_000, (k) => (k === 6789 ? 'THIS LINE IS BROKEN' : `S_${k}=v${k}`)),
    );
    const r = await runCli(['import', 'demo/dev', file], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nothing was written/);
    assert.match(r.stderr, /line 6790/);
    assert.deepEqual(await listed(env), []);

    const dry = await runCli(['import', 'demo/dev', file, '--dry-run'], { env });
    assert.equal(dry.code, 1);
    assert.match(dry.stdout, /Dry run: nothing was written/);
    assert.match(dry.stdout, /create\s+9999/);
    assert.match(dry.stdout, /line 6790/);
    assert.deepEqual(await listed(env), []);
  });

  test('on-conflict fail with one existing name writes nothing and says which', {
    timeout: 60_000,
  }, async (t) => {
    const { env } = await devServer(t);
    const put = await runCli(['secret', 'put', 'demo/dev/S_5'], { env, input: 'existing' });
    assert.equal(put.code, 0, put.stderr);
    const file = join(tempDir(t), 'x.env');
    writeFileSync(
      file,
      dotenv(100, (k) => `S_${k}=v${k}`),
    );
    const r = await runCli(['import', 'demo/dev', file, '--on-conflict', 'fail'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nothing was written/);
    assert.match(r.stderr, /line 6: S_5: exists/);
    assert.deepEqual(
      (await listed(env)).map((s) => s.name),
      ['S_5'],
    );
  });

  test('export then import reproduces values exactly, in env, JSON and YAML', {
    timeout: 90_000,
  }, async (t) => {
    const { env } = await devServer(t);
    for (const e of ['env', 'json', 'yaml']) {
      const c = await runCli(['project', 'create', `copy-${e}`, '--env', 'dev'], { env });
      assert.equal(c.code, 0, c.stderr);
    }
    const tricky: Record<string, string> = {
      UNICODE: 'héllo→世界🔑',
      QUOTES: `it's "quoted" \`too\``,
      NEWLINES: 'line1\nline2\n',
      EQUALS: 'a=b==c',
      HASH: 'p#ss #word',
      SPACES: '  padded  ',
      BACKSLASH: 'C:\\path\\n',
      NUMBERISH: '0123',
    };
    const json = join(tempDir(t), 'in.json');
    writeFileSync(json, JSON.stringify(tricky));
    const imp = await runCli(['import', 'demo/dev', json], { env });
    assert.equal(imp.code, 0, imp.stderr);
    const dir = tempDir(t);
    for (const format of ['env', 'json', 'yaml']) {
      const out = join(dir, `export.${format}`);
      const ex = await runCli(['--format', format, 'export', 'demo/dev', '--values', '--output', out], {
        env,
      });
      assert.equal(ex.code, 0, ex.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const again = await runCli(['--format', format, 'export', 'demo/dev', '--values', '--output', out], {
        env,
      });
      assert.equal(again.code, 2, 'an existing file is not overwritten without --force');
      assert.match(again.stderr, /--force/);
      const target = `copy-${format}/dev`;
      const back = await runCli(['import', target, out], { env });
      assert.equal(back.code, 0, `${format}: ${back.stderr}`);
      for (const [name, value] of Object.entries(tricky)) {
        const got = await api(env, `/v1/secrets/copy-${format}/dev/${name}`);
        assert.equal(got.value, value, `${format}: ${name}`);
      }
    }
    const names = await runCli(['--format', 'json', 'export', 'demo/dev'], { env });
    assert.equal(names.code, 0, names.stderr);
    for (const v of Object.values(tricky)) assert.ok(!names.stdout.includes(v), 'no values without --values');
    const envNames = await runCli(['export', 'demo/dev'], { env });
    assert.match(envNames.stdout, /^UNICODE=$/m);
  });
});
