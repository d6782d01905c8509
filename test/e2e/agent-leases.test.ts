import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createClient } from '../../src/sdk/client.ts';
import { tenantDb } from '../fixtures/pg-tenants.ts';
import { tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';
import { BIN, NODE, ROOT, startDevServer } from '../helpers/process.ts';
import { until } from '../helpers/wait.ts';

const url = await postgresTestUrl();

test('the agent renders a leased database credential, replaces it before its lease can no longer be renewed, and revokes it when it stops', {
  skip: url ? false : postgresSkipReason(),
  timeout: 120_000,
}, async (t) => {
  const db = await tenantDb(t, url!);
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const admin = createClient({ addr: server.address, token: server.root });
  const cfg = (await admin.request('POST', '/v1/database/config/docs', {
    plugin: 'postgresql',
    connection_url: db.adminUrl,
    username: 'postgres',
    password: 'unused-with-trust-auth',
    allowed_roles: ['reader'],
  })) as { role_prefix: string };
  t.after(() => db.dropRoles(cfg.role_prefix));
  // a short lease that can be renewed once: the agent must replace the credential
  await admin.request('POST', '/v1/database/roles/reader', {
    db_name: 'docs',
    creation_statements: [
      'CREATE ROLE {{name}} LOGIN PASSWORD {{password}}',
      'GRANT SELECT ON docs TO {{name}}',
      'GRANT "t_{{tenant}}" TO {{name}}',
    ],
    default_ttl: 3,
    max_ttl: 5,
    tenant: { setting: 'app.tenant' },
  });
  writeFileSync(join(dir, 'token'), `${server.root}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'agent.yaml'),
    `vault:
  addrs: ["${server.address}"]
auth:
  token_file: token
templates:
  - destination: out/db.env
    contents: |
      PGUSER={{ lease "database/creds/reader?tenant=${db.tenants.acme}" "username" }}
      PGPASSWORD={{ lease "database/creds/reader?tenant=${db.tenants.acme}" "password" | shell }}
`,
  );
  const agent = spawn(NODE, [BIN, 'agent', '--config', join(dir, 'agent.yaml')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  agent.stdout.on('data', (d) => (out += d));
  agent.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number>((r) => agent.on('exit', (code) => r(code ?? -1)));
  t.after(() => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
  });
  const file = join(dir, 'out', 'db.env');
  const read = () => {
    try {
      const text = readFileSync(file, 'utf8');
      const user = /^PGUSER=(.*)$/m.exec(text)?.[1];
      const password = /^PGPASSWORD='(.*)'$/m.exec(text)?.[1];
      return user && password ? { user, password } : undefined;
    } catch {
      return undefined;
    }
  };
  await until('the first render', () => read() !== undefined, 20_000);
  const first = read()!;
  assert.ok(first.user.startsWith(cfg.role_prefix), out);
  const rows = await db.psql(first.user, first.password, 'SELECT body FROM docs ORDER BY body');
  assert.deepEqual(rows.out.split('\n'), ['acme notes', 'acme plan']);

  await until(
    'a new credential is rendered before the first lease ends',
    () => read()?.user !== first.user,
    15_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${out}`);
  });
  const second = read()!;
  assert.ok((await db.psql(second.user, second.password, 'SELECT 1')).ok, 'the new credential works');
  await until('the replaced role is dropped', async () => (await db.roles(first.user)).length === 0, 5_000);

  agent.kill('SIGTERM');
  assert.equal(await exited, 0, out);
  const now = read()!;
  assert.deepEqual(await db.roles(now.user), [], 'the agent revoked its lease when it stopped');
  assert.doesNotMatch(
    out,
    new RegExp(second.password.replace(/[-_]/g, '.')),
    'no password in the agent’s log',
  );
});
