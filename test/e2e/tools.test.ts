import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tenantDb } from '../fixtures/pg-tenants.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';

const url = await postgresTestUrl();

interface ToolCred {
  tool: string;
  operation: string;
  lease_id: string;
  lease_duration: number;
  data: { username: string; password: string };
}

test('per-tool credentials: one tool, one operation, minutes, decided by Cedar', {
  skip: url ? false : postgresSkipReason(),
}, async (t) => {
  const db = await tenantDb(t, url!);
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 100 } });
  const cfg = await a.call('POST', '/v1/database/config/docs', {
    plugin: 'postgresql',
    connection_url: db.adminUrl,
    username: 'postgres',
    password: 'unused-with-trust-auth',
    allowed_roles: ['*'],
  });
  assert.equal(cfg.statusCode, 200, cfg.body);
  t.after(() => db.dropRoles((cfg.json() as { role_prefix: string }).role_prefix));
  for (const [name, statements] of [
    [
      'docs-reader',
      [
        'CREATE ROLE {{name}} LOGIN PASSWORD {{password}}',
        'GRANT SELECT ON docs TO {{name}}',
        'GRANT "t_{{tenant}}" TO {{name}}',
      ],
    ],
    [
      'docs-writer',
      [
        'CREATE ROLE {{name}} LOGIN PASSWORD {{password}}',
        'GRANT SELECT, INSERT ON docs TO {{name}}',
        'GRANT "t_{{tenant}}" TO {{name}}',
      ],
    ],
  ] as const) {
    const r = await a.call('POST', `/v1/database/roles/${name}`, {
      db_name: 'docs',
      creation_statements: statements,
      tenant: { setting: 'app.tenant' },
    });
    assert.equal(r.statusCode, 200, r.body);
  }
  const tool = await a.call('POST', '/v1/tools/rag-search', {
    operations: {
      search: { engine: 'database', role: 'docs-reader' },
      ingest: { engine: 'database', role: 'docs-writer' },
    },
    ttl: 120,
  });
  assert.equal(tool.statusCode, 200, tool.body);
  // apps may ask for rag-search credentials, for the search operation only
  const policy = await a.call('PUT', '/v1/sys/policies/agents-search', {
    policy:
      'permit (principal in Strongroom::Role::"app", action == Strongroom::Action::"tool.credential", resource == Strongroom::Tool::"rag-search") when { context has operation && context.operation == "search" };',
  });
  assert.equal(policy.statusCode, 200, policy.body);
  const agent = await scopedApp(a, 'agent', { paths: ['llm/dev'], credentials: ['tools/rag-search'] });

  await t.test(
    'the allowed operation gets a short-lived credential that works, for that tool’s role only',
    async () => {
      const r = await a.call(
        'POST',
        '/v1/tools/rag-search/credentials',
        { operation: 'search', tenant: db.tenants.acme },
        agent,
      );
      assert.equal(r.statusCode, 200, r.body);
      const c = r.json() as ToolCred;
      assert.equal(c.tool, 'rag-search');
      assert.equal(c.operation, 'search');
      assert.ok(c.lease_duration <= 120 && c.lease_duration > 100, String(c.lease_duration));
      const rows = await db.psql(c.data.username, c.data.password, 'SELECT body FROM docs ORDER BY body');
      assert.deepEqual(rows.out.split('\n'), ['acme notes', 'acme plan']);
      const write = await db.psql(
        c.data.username,
        c.data.password,
        `INSERT INTO docs VALUES ('${db.tenants.acme}', 'x')`,
      );
      assert.ok(!write.ok, 'the search credential cannot write');
      // renewals stay within the tool's minutes
      const renewed = await a.call(
        'PUT',
        '/v1/sys/leases/renew',
        { lease_id: c.lease_id, increment: '1h' },
        agent,
      );
      assert.equal(renewed.statusCode, 200, renewed.body);
      assert.ok((renewed.json() as { ttl: number }).ttl <= 120, renewed.body);
      // the lease is the agent's: it can end it
      assert.equal(
        (await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id }, agent)).statusCode,
        200,
      );
      assert.ok(!(await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
    },
  );

  await t.test('another operation, another tool, or no tool: refused before anything is made', async () => {
    const before = (await a.call('GET', '/v1/sys/leases?prefix=database/')).json() as { leases: unknown[] };
    const ingest = await a.call(
      'POST',
      '/v1/tools/rag-search/credentials',
      { operation: 'ingest', tenant: db.tenants.acme },
      agent,
    );
    assert.equal(ingest.statusCode, 403, ingest.body);
    assert.match(ingest.body, /tool\.credential on Tool::rag-search/);
    const other = await a.call('POST', '/v1/tools/other/credentials', { operation: 'search' }, agent);
    assert.equal(other.statusCode, 403);
    // directly asking the engine for the role is not granted by the tool policy
    assert.equal(
      (await a.call('POST', '/v1/database/creds/docs-reader', { tenant: db.tenants.acme }, agent)).statusCode,
      403,
    );
    const after = (await a.call('GET', '/v1/sys/leases?prefix=database/')).json() as { leases: unknown[] };
    assert.equal(after.leases.length, before.leases.length, 'no lease was made for a refused call');
    // a policy binds the tenant a caller may ask for (context.tenant): the agent is acme's, not globex's
    const bind = await a.call('PUT', '/v1/sys/policies/agent-acme-only', {
      policy: `forbid (principal in Strongroom::Role::"app", action == Strongroom::Action::"tool.credential", resource) when { context has tenant && context.tenant != "${db.tenants.acme}" };`,
    });
    assert.equal(bind.statusCode, 200, bind.body);
    const globex = await a.call(
      'POST',
      '/v1/tools/rag-search/credentials',
      { operation: 'search', tenant: db.tenants.globex },
      agent,
    );
    assert.equal(globex.statusCode, 403, globex.body);
    const acme = (
      await a.call(
        'POST',
        '/v1/tools/rag-search/credentials',
        { operation: 'search', tenant: db.tenants.acme },
        agent,
      )
    ).json() as ToolCred;
    assert.ok(acme.lease_id, 'the tenant the policy allows is still served');
    await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: acme.lease_id }, agent);
    // a scope that names no credentials reaches none, whatever Cedar would allow
    const narrow = await scopedApp(a, 'narrow-agent', { paths: ['llm/dev'] });
    const refused = await a.call(
      'POST',
      '/v1/tools/rag-search/credentials',
      { operation: 'search', tenant: db.tenants.acme },
      narrow,
    );
    assert.equal(refused.statusCode, 403, refused.body);
    assert.match(refused.body, /outside the token's scope/);
    // an operation the tool does not have, for a caller Cedar lets through (root): a clear 400
    const none = await a.call('POST', '/v1/tools/rag-search/credentials', { operation: 'delete' });
    assert.equal(none.statusCode, 400);
    assert.match(none.body, /no operation/);
  });
});

/** An app with role `app` and `scope`, logged in: its token. */
async function scopedApp(a: TestApp, name: string, scope: unknown): Promise<string> {
  const created = await a.call('POST', '/v1/auth/apps', { name, roles: ['app'], scope });
  assert.equal(created.statusCode, 201, created.body);
  const c = created.json() as { client_id: string; client_secret: string };
  const login = await a.inject({
    method: 'POST',
    url: '/v1/auth/app/login',
    payload: { client_id: c.client_id, client_secret: c.client_secret },
  });
  assert.equal(login.statusCode, 200, login.body);
  return (login.json() as { auth: { client_token: string } }).auth.client_token;
}
