import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { tenantDb } from '../fixtures/pg-tenants.ts';
import { staticKeyFile, tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';

const url = await postgresTestUrl();
const ISSUANCES = 200;
const CONCURRENCY = 8;

async function call(server: ServerProcess, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.address}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** Every lease id under `prefix`, page by page. */
async function leaseKeys(server: ServerProcess, token: string, prefix: string): Promise<Set<string>> {
  const keys = new Set<string>();
  let after = '';
  for (;;) {
    const q = new URLSearchParams({ prefix, limit: '1000', ...(after ? { after } : {}) });
    const r = await call(server, token, 'GET', `/v1/sys/leases?${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const page = r.json as { leases: { lease_id: string }[]; next: string | null };
    for (const l of page.leases) keys.add(l.lease_id.slice(l.lease_id.lastIndexOf('/') + 1));
    if (!page.next) return keys;
    after = page.next;
  }
}

test('kill -9 at random points during 200 credential issuances leaves no PostgreSQL role without a lease', {
  skip: url ? false : postgresSkipReason(),
  timeout: 240_000,
}, async (t: TestContext) => {
  const db = await tenantDb(t, url!);
  const dir = tempDir(t, 'strongroom-lease-crash-');
  const config = join(dir, 'strongroom.yaml');
  writeFileSync(
    config,
    stringify({
      listen: '127.0.0.1:0',
      storage: { sqlite: { path: join(dir, 'strongroom.db') } },
      seal: { static: { key_file: staticKeyFile(t) } },
      log_level: 'warn',
    }),
  );
  const start = () => startServerProcess(t, ['--config', config, '--listen', '127.0.0.1:0']);
  let server = await start();
  const init = await fetch(`${server.address}/v1/sys/init`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  const token = ((await init.json()) as { root_token: string }).root_token;
  const cfg = await call(server, token, 'POST', '/v1/database/config/docs', {
    plugin: 'postgresql',
    connection_url: db.adminUrl,
    username: 'postgres',
    password: 'unused-with-trust-auth',
    allowed_roles: ['reader'],
  });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.json));
  const prefix = cfg.json.role_prefix as string;
  t.after(() => db.dropRoles(prefix));
  const role = await call(server, token, 'POST', '/v1/database/roles/reader', {
    db_name: 'docs',
    creation_statements: [
      'CREATE ROLE {{name}} LOGIN PASSWORD {{password}}',
      'GRANT SELECT ON docs TO {{name}}',
    ],
    default_ttl: '1h',
  });
  assert.equal(role.status, 200, JSON.stringify(role.json));

  let sent = 0;
  let issued = 0;
  let rounds = 0;
  let maxRoles = 0;
  while (sent < ISSUANCES) {
    rounds++;
    const killAfter = 30 + Math.floor(Math.random() * 400);
    const killAt = Date.now() + killAfter;
    const current = server;
    const workers = Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < killAt && sent < ISSUANCES) {
        sent++;
        const r = await call(current, token, 'POST', '/v1/database/creds/reader', {}).catch(() => undefined);
        if (r?.status === 200) issued++;
      }
    });
    await Promise.race([sleep(killAfter), Promise.all(workers)]);
    await current.kill9();
    await Promise.allSettled(workers);
    server = await start(); // static seal: back unsealed by itself
    // right after the restart, before any sweep could tidy: every role has its lease
    const roles = await db.roles(prefix);
    const leases = await leaseKeys(server, token, 'database/creds/reader/');
    const orphans = roles.filter((r) => !leases.has(r.slice(prefix.length)));
    assert.deepEqual(orphans, [], `round ${rounds}: roles without a lease after kill -9`);
    maxRoles = Math.max(maxRoles, roles.length);
  }
  t.diagnostic(
    `${rounds} kill -9 rounds, ${sent} issuances sent, ${issued} answered; up to ${maxRoles} live roles, none without a lease`,
  );
  assert.ok(issued >= 20, `enough issuances completed to mean something (${issued})`);

  // and every lease, the ones a crash left half-made included, can be ended: no role is left
  const r = await call(server, token, 'POST', '/v1/sys/leases/revoke-prefix', {
    prefix: 'database/creds/reader/',
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  if (r.json.pending !== 0) {
    const left = await call(server, token, 'GET', '/v1/sys/leases?prefix=database/creds/reader/&limit=3');
    assert.fail(`revocations pending: ${JSON.stringify(r.json)} ${JSON.stringify(left.json)}`);
  }
  assert.deepEqual(await db.roles(prefix), []);
  await server.stop();
});
