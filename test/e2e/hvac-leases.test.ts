import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { tenantDb } from '../fixtures/pg-tenants.ts';
import { buildTestApp } from '../helpers/app.ts';
import { hasHvac, PYTHON } from '../helpers/hvac.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';

const url = await postgresTestUrl();

const SCRIPT = `
import json, os, sys, hvac
c = hvac.Client(url=os.environ['VAULT_ADDR'], token=os.environ['VAULT_TOKEN'])
out = {}
creds = c.secrets.database.generate_credentials('reader')
out['creds'] = creds
lease = creds['lease_id']
out['lookup'] = c.sys.read_lease(lease)
out['renew'] = c.sys.renew_lease(lease, increment=600)
wrapped = c.read('database/creds/reader', wrap_ttl='60s')
out['wrap_info'] = wrapped['wrap_info']
out['unwrapped'] = c.sys.unwrap(wrapped['wrap_info']['token'])
try:
    c.sys.unwrap(wrapped['wrap_info']['token'])
    out['second_unwrap'] = 'succeeded'
except hvac.exceptions.InvalidRequest as e:
    out['second_unwrap'] = 'refused'
c.sys.revoke_lease(lease)
c.sys.revoke_lease(out['unwrapped']['lease_id'])
print(json.dumps(out))
`;

test('Vault’s Python client (hvac) uses database credentials, leases and wrapping unchanged', {
  skip: !url
    ? postgresSkipReason()
    : !hasHvac
      ? 'python3-hvac is not installed (.ci/run installs it)'
      : false,
}, async (t) => {
  const db = await tenantDb(t, url!);
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 100 } });
  const cfg = await a.call('POST', '/v1/database/config/docs', {
    plugin: 'postgresql',
    connection_url: db.adminUrl,
    username: 'postgres',
    password: 'unused-with-trust-auth',
    allowed_roles: ['reader'],
  });
  assert.equal(cfg.statusCode, 200, cfg.body);
  const prefix = (cfg.json() as { role_prefix: string }).role_prefix;
  t.after(() => db.dropRoles(prefix));
  const role = await a.call('POST', '/v1/database/roles/reader', {
    db_name: 'docs',
    creation_statements: [
      'CREATE ROLE {{name}} LOGIN PASSWORD {{password}}',
      'GRANT SELECT ON docs TO {{name}}',
    ],
    default_ttl: '15m',
  });
  assert.equal(role.statusCode, 200, role.body);
  const addr = await a.app.listen({ host: '127.0.0.1', port: 0 });
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      PYTHON,
      ['-c', SCRIPT],
      { env: { ...process.env, VAULT_ADDR: addr, VAULT_TOKEN: a.rootToken }, timeout: 30_000 },
      (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
    ),
  );
  const r = JSON.parse(stdout) as {
    creds: { lease_id: string; lease_duration: number; data: { username: string; password: string } };
    lookup: { data: { id: string; ttl: number; renewable: boolean } };
    renew: { lease_id: string; lease_duration: number };
    wrap_info: { token: string; ttl: number; creation_path: string };
    unwrapped: { lease_id: string; data: { username: string; password: string } };
    second_unwrap: string;
  };
  assert.match(r.creds.lease_id, /^database\/creds\/reader\//);
  assert.ok(r.creds.data.username.startsWith(prefix));
  assert.equal(r.lookup.data.id, r.creds.lease_id);
  assert.equal(r.lookup.data.renewable, true);
  assert.ok(r.renew.lease_duration > 590 && r.renew.lease_duration <= 600, String(r.renew.lease_duration));
  assert.equal(r.wrap_info.ttl, 60);
  assert.equal(r.wrap_info.creation_path, '/v1/database/creds/reader');
  assert.ok(r.unwrapped.data.password.length > 20);
  assert.equal(r.second_unwrap, 'refused');
  // both roles were dropped by the revocations hvac made
  for (const user of [r.creds.data.username, r.unwrapped.data.username]) {
    assert.deepEqual(await db.roles(user), [], `${user} still exists`);
  }
});
