import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { CORE_MODULES } from '../assemble/vault.ts';
import { auditCommands, verifyAuditFile } from '../cli/audit.ts';
import type { ServerConfig } from '../config/config.ts';
import { createCore } from '../core/core.ts';
import { secretsModule } from '../engines/kv/kv.ts';
import { type Clock, manualClock } from '../lib/clock.ts';
import { buildServer } from '../server/app.ts';
import { createLogger } from '../server/logger.ts';
import { auditRoutes } from '../server/routes/v1/audit.ts';
import { v1Routes } from '../server/routes/v1/routes.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import type { AuditLine } from './entry.ts';
import { type AuditSetup, createAudit } from './module.ts';

interface Harness {
  app: FastifyInstance;
  audit: AuditSetup;
  path: string;
  root: string;
  call(
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    body?: unknown,
    token?: string,
    // biome-ignore lint/suspicious/noExplicitAny: replies are checked field by field
  ): Promise<{ status: number; json: any }>;
}

/** A real core and HTTP server with the audit module wired the way the server wires it. */
async function harness(t: TestContext, clock?: Clock): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-ops-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'unseal.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const path = join(dir, 'audit.log');
  const audit = createAudit([{ file: { path } }], {
    checkpoint: { every: 20, interval_seconds: 0 },
    ...(clock ? { clock } : {}),
  });
  const seal = { static: { key_file: keyFile } };
  const storage = createMemoryStorage();
  const secrets = secretsModule();
  const core = createCore({
    storage,
    seal,
    clock: clock ?? { now: () => Date.now() },
    audit: audit.broker,
    modules: [...CORE_MODULES, audit.module, secrets.module],
    ports: secrets.ports,
  });
  await core.start();
  const config = {
    listen: '127.0.0.1:0',
    storage: { memory: {} },
    seal,
    allow_insecure_http: false,
    max_request_bytes: 1024 * 1024,
    log_level: 'silent',
    dev: false,
  } as unknown as ServerConfig;
  const logger = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
  const app = await buildServer({ config, core, logger, routes: [...v1Routes, ...auditRoutes] });
  await app.ready();
  t.after(async () => {
    await app.close();
    await audit.close();
    core.sealNow();
  });
  const call: Harness['call'] = async (method, url, body, token) => {
    const res = await app.inject({
      method,
      url,
      headers: token === '' ? {} : { authorization: `Bearer ${token ?? h.root}` },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, json: res.body ? res.json() : undefined };
  };
  const h: Harness = { app, audit, path, root: '', call };
  const init = await call('POST', '/v1/sys/init', {}, '');
  assert.equal(init.status, 200, JSON.stringify(init.json));
  h.root = init.json.root_token;
  return h;
}

test('POST /v1/sys/audit-hash answers the HMAC the audit log uses for that value', async (t) => {
  const h = await harness(t);
  const res = await h.call('POST', '/v1/sys/audit-hash', { input: 'sk-proj-abc123' });
  assert.equal(res.status, 200);
  assert.equal(res.json.hash, h.audit.keys!.hasher!.hmacField('sk-proj-abc123'));
  assert.match(res.json.hash, /^hmac-sha256:[0-9a-f]{64}$/);
});

test('audit-hash refuses unknown fields, a missing input and a too-large one', async (t) => {
  const h = await harness(t);
  for (const [body, code] of [
    [{ input: 'x', extra: 1 }, 'unknown_field'],
    [{}, 'validation_failed'],
    [{ input: 'x'.repeat(64 * 1024 + 1) }, 'validation_failed'],
  ] as const) {
    const res = await h.call('POST', '/v1/sys/audit-hash', body);
    assert.equal(res.status, 400, JSON.stringify(body).slice(0, 50));
    assert.equal(res.json.error.code, code);
  }
});

test('the audit routes need a token', async (t) => {
  const h = await harness(t);
  assert.equal((await h.call('GET', '/v1/audit', undefined, '')).status, 401);
  assert.equal((await h.call('POST', '/v1/sys/audit-hash', { input: 'x' }, '')).status, 401);
});

test('GET /v1/audit finds entries by action, actor and time, newest last, within the limit', async (t) => {
  const clock = manualClock(Date.UTC(2026, 0, 1, 12));
  const h = await harness(t, clock);
  await h.call('POST', '/v1/projects', { name: 'demo' });
  clock.advance(3600_000);
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    await h.call('PUT', `/v1/secrets/demo/dev/KEY_${i}`, { value: `v${i}` });
  }
  const writes = await h.call('GET', '/v1/audit?action=secret.write');
  assert.equal(writes.status, 200, JSON.stringify(writes.json));
  const requests = (writes.json.entries as AuditLine[]).filter((e) => e.type === 'request');
  assert.deepEqual(
    requests.map((e) => e.resource),
    [0, 1, 2, 3, 4].map((i) => `Secret::demo/dev/KEY_${i}`),
  );
  assert.ok(writes.json.entries.every((e: AuditLine) => e.action === 'secret.write'));

  const limited = await h.call('GET', '/v1/audit?action=secret.*&limit=2');
  assert.equal(limited.json.entries.length, 2);
  assert.equal(limited.json.more, true);
  assert.equal(limited.json.entries[1].resource, 'Secret::demo/dev/KEY_4', 'the newest, last');

  const recent = await h.call('GET', '/v1/audit?since=30m');
  assert.ok(recent.json.entries.length > 0);
  assert.ok(
    recent.json.entries.every((e: AuditLine) => e.action !== 'project.create'),
    'an hour ago',
  );

  const byActor = await h.call('GET', '/v1/audit?actor=root&limit=1000');
  assert.ok(byActor.json.entries.length >= 12);
  const nobody = await h.call('GET', '/v1/audit?actor=mallory');
  assert.deepEqual(nobody.json.entries, []);

  const bad = await h.call('GET', '/v1/audit?since=yesterday');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'validation_failed');
  assert.equal((await h.call('GET', '/v1/audit?limit=1001')).status, 400);
  assert.equal((await h.call('GET', '/v1/audit?limit=0')).status, 400);
});

test('the vault audits through the module: keys from the barrier, checkpoints, a verifiable file', async (t) => {
  const h = await harness(t);
  await h.call('POST', '/v1/projects', { name: 'demo' });
  for (let i = 0; i < 30; i++)
    await h.call('PUT', `/v1/secrets/demo/dev/K${i}`, { value: `canary-value-${i}` });
  await h.audit.close();
  const text = readFileSync(h.path, 'utf8');
  assert.ok(!text.includes('canary-value-'), 'no secret value in the audit file');
  const report = await verifyAuditFile(h.path);
  assert.equal(report.problem, null);
  assert.ok(report.checkpoints >= 3);
  assert.equal(report.key_ids[0], h.audit.keys!.keyId);
});

test('`strongroom audit query` and `audit hash` go through the SDK to the API', async (t) => {
  const h = await harness(t);
  await h.call('POST', '/v1/projects', { name: 'demo' });
  await h.call('PUT', '/v1/secrets/demo/dev/OPENAI_API_KEY', { value: 'sk-live-1' });
  const addr = await h.app.listen({ host: '127.0.0.1', port: 0 });
  const run = async (args: string[], stdin = '') => {
    let out = '';
    const io = {
      stdout: new Writable({
        write(c, _e, cb) {
          out += c;
          cb();
        },
      }),
      stderr: new Writable({ write: (_c, _e, cb) => cb() }),
      stdin: Object.assign(Readable.from([stdin]), { isTTY: false }),
      env: {},
      cwd: process.cwd(),
    };
    const program = new Command()
      .option('--addr <url>')
      .option('--token <token>')
      .option('--format <format>', '', 'table')
      .exitOverride();
    auditCommands(program, io);
    await program.parseAsync(['--addr', addr, '--token', h.root, ...args], { from: 'user' });
    return out;
  };
  const table = await run(['audit', 'query', '--action', 'secret.*', '--since', '1h']);
  assert.match(table, /^TIME\s+TYPE\s+ACTOR\s+ACTION\s+RESOURCE\s+RESULT\s+REQUEST\n/);
  assert.match(table, /request\s+root\s+secret\.write\s+Secret::demo\/dev\/OPENAI_API_KEY\s+allowed/);
  assert.match(table, /response\s+root\s+secret\.write\s+Secret::demo\/dev\/OPENAI_API_KEY\s+ok/);
  const json = JSON.parse(await run(['--format', 'json', 'audit', 'query', '--limit', '1']));
  assert.equal(json.entries.length, 1);
  const hash = await run(['audit', 'hash'], 'sk-live-1\n');
  assert.equal(hash.trim(), h.audit.keys!.hasher!.hmacField('sk-live-1'));
  await assert.rejects(run(['audit', 'query', '--since', 'last tuesday']), /--since takes a duration/);
});
