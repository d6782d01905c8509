import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type TenantDb, tenantDb } from '../fixtures/pg-tenants.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { cliInProcess } from '../helpers/cli.ts';
import { postgresSkipReason, postgresTestUrl } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';

const url = await postgresTestUrl();

interface Creds {
  lease_id: string;
  lease_duration: number;
  renewable: boolean;
  data: { username: string; password: string };
}

/** A vault with a connection to a fresh database and a per-tenant reader role, over HTTP (inject). */
async function setup(t: TestContext): Promise<{ a: TestApp; db: TenantDb; prefix: string }> {
  const db = await tenantDb(t, url!);
  const a = await buildTestApp(t, { leases: { sweep_interval_ms: 100 } });
  const cfg = await a.call('POST', '/v1/database/config/docs', {
    plugin: 'postgresql',
    connection_url: db.adminUrl,
    username: 'postgres',
    password: 'unused-with-trust-auth',
    allowed_roles: ['rag-reader', 'short'],
  });
  assert.equal(cfg.statusCode, 200, cfg.body);
  const prefix = (cfg.json() as { role_prefix: string }).role_prefix;
  assert.match(prefix, /^sr_[0-9a-f]{8}_$/);
  t.after(() => db.dropRoles(prefix));
  const role = await a.call('POST', '/v1/database/roles/rag-reader', {
    db_name: 'docs',
    creation_statements: [
      'CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}',
      'GRANT SELECT ON docs TO {{name}}',
      'GRANT "t_{{tenant}}" TO {{name}}',
    ],
    default_ttl: '1h',
    max_ttl: '2h',
    tenant: { setting: 'app.tenant' },
  });
  assert.equal(role.statusCode, 200, role.body);
  const short = await a.call('POST', '/v1/database/roles/short', {
    db_name: 'docs',
    creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}'],
    default_ttl: 2,
    max_ttl: 2,
  });
  assert.equal(short.statusCode, 200, short.body);
  return { a, db, prefix };
}

async function creds(a: TestApp, role: string, body: unknown, token?: string): Promise<Creds> {
  const r = await a.call('POST', `/v1/database/creds/${role}`, body, token);
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as Creds;
}

test('dynamic PostgreSQL credentials under leases', {
  skip: url ? false : postgresSkipReason(),
}, async (t) => {
  const { a, db, prefix } = await setup(t);
  const addr = await a.app.listen({ host: '127.0.0.1', port: 0 });

  await t.test(
    'a minted role logs in with psql and sees only its tenant’s rows, even after SET app.tenant',
    async () => {
      const c = await creds(a, 'rag-reader', { tenant: db.tenants.acme });
      assert.ok(c.data.username.startsWith(prefix));
      assert.match(c.lease_id, /^database\/creds\/rag-reader\/[0-9a-f]{24}$/);
      assert.ok(c.lease_duration > 3500 && c.lease_duration <= 3600);
      const rows = await db.psql(c.data.username, c.data.password, 'SELECT body FROM docs ORDER BY body');
      assert.ok(rows.ok, rows.out);
      assert.deepEqual(rows.out.split('\n'), ['acme notes', 'acme plan']);
      const setting = await db.psql(c.data.username, c.data.password, "SELECT current_setting('app.tenant')");
      assert.equal(setting.out, db.tenants.acme);
      // the session setting is the role's to change: row-level security must not rest on it
      const forged = await db.psql(
        c.data.username,
        c.data.password,
        `SET app.tenant = '${db.tenants.globex}'; SELECT body FROM docs ORDER BY body`,
      );
      assert.ok(forged.ok, forged.out);
      assert.ok(!forged.out.includes('globex secret'), 'another tenant’s rows were visible');
    },
  );

  await t.test('revoke: the role can no longer log in within 1 s, and is gone from the server', async () => {
    const c = await creds(a, 'rag-reader', { tenant: db.tenants.globex });
    assert.ok((await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
    const started = Date.now();
    const r = await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { revoked: 1, forced: 0, pending: 0 });
    const after = await db.psql(c.data.username, c.data.password, 'SELECT 1');
    assert.ok(!after.ok, 'the role still logs in after revoke');
    assert.ok(Date.now() - started < 1000, `revocation took ${Date.now() - started} ms`);
    assert.deepEqual(await db.roles(c.data.username), []);
    const look = await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id });
    assert.equal(look.statusCode, 404);
  });

  await t.test('expiry: the role fails within 1 s of its lease’s end', async () => {
    const c = await creds(a, 'short', {});
    assert.ok((await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
    const look = (await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id })).json() as {
      expires_at: string;
    };
    const end = Date.parse(look.expires_at);
    await until('the role is dropped', async () => (await db.roles(c.data.username)).length === 0, 5_000);
    const gone = Date.now();
    assert.ok(gone - end < 1000, `dropped ${gone - end} ms after expiry`);
    assert.ok(!(await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
  });

  await t.test('revoking the holder token revokes its leases', async () => {
    const child = await a.call('POST', '/v1/auth/token/create', { ttl: '1h', policies: ['admin'] });
    assert.equal(child.statusCode, 200, child.body);
    const token = (child.json() as { auth: { client_token: string } }).auth.client_token;
    const c = await creds(a, 'rag-reader', { tenant: db.tenants.acme }, token);
    assert.ok((await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
    const revoked = await a.call('POST', '/v1/auth/token/revoke-self', undefined, token);
    assert.ok(revoked.statusCode < 300, revoked.body);
    await until(
      'the role of the revoked token’s lease is dropped',
      async () => (await db.roles(c.data.username)).length === 0,
      3_000,
    );
    assert.ok(!(await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
  });

  await t.test(
    'renew moves the expiry (capped by max_ttl); another token cannot see or touch the lease',
    async () => {
      const c = await creds(a, 'rag-reader', { tenant: db.tenants.acme, ttl: '10m' });
      const r = await a.call('PUT', '/v1/sys/leases/renew', { lease_id: c.lease_id, increment: '5h' });
      assert.equal(r.statusCode, 200, r.body);
      const l = r.json() as { expires_at: string; max_expires_at: string; ttl: number };
      assert.equal(l.expires_at, l.max_expires_at, 'capped at max_ttl');
      assert.ok(l.ttl > 7000 && l.ttl <= 7200);
      const other = await a.call('POST', '/v1/auth/token/create', { ttl: '1h', policies: ['developer'] });
      const otherToken = (other.json() as { auth: { client_token: string } }).auth.client_token;
      for (const op of ['lookup', 'renew', 'revoke']) {
        const res = await a.call('PUT', `/v1/sys/leases/${op}`, { lease_id: c.lease_id }, otherToken);
        assert.equal(res.statusCode, 404, `${op}: ${res.body}`);
      }
      assert.ok((await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok, 'still usable');
    },
  );

  await t.test(
    'bad input: unknown role, a tenant missing or malformed, a placeholder the engine does not know',
    async () => {
      assert.equal((await a.call('POST', '/v1/database/creds/nope', {})).statusCode, 404);
      assert.equal((await a.call('POST', '/v1/database/creds/rag-reader', {})).statusCode, 400);
      const evil = await a.call('POST', '/v1/database/creds/rag-reader', {
        tenant: "acme'; DROP TABLE docs; --",
      });
      assert.equal(evil.statusCode, 400);
      const bad = await a.call('POST', '/v1/database/roles/bad', {
        db_name: 'docs',
        creation_statements: ['CREATE ROLE {{name}} {{oops}}'],
      });
      assert.equal(bad.statusCode, 400);
      assert.match(bad.body, /oops/);
      const pw = await a.call('POST', '/v1/database/config/x', {
        plugin: 'postgresql',
        connection_url: 'postgres://postgres:hunter2@127.0.0.1/db',
        username: 'postgres',
        password: 'p',
        allowed_roles: ['*'],
      });
      assert.equal(pw.statusCode, 400);
      assert.ok(!pw.body.includes('hunter2'));
      const read = await a.call('GET', '/v1/database/config/docs');
      assert.equal(read.statusCode, 200);
      assert.ok(!read.body.includes('unused-with-trust-auth'), 'the admin password is never shown');
    },
  );

  await t.test('the CLI: creds, lease lookup, renew and revoke, with --format json', async () => {
    const env = { STRONGROOM_TOKEN: a.rootToken };
    const cli = (args: string[]) => cliInProcess(addr, args, { env });
    const got = await cli([
      'database',
      'creds',
      'rag-reader',
      '--tenant',
      db.tenants.globex,
      '--format',
      'json',
    ]);
    assert.equal(got.code, 0, got.stderr);
    const c = JSON.parse(got.stdout) as Creds;
    const rows = await db.psql(c.data.username, c.data.password, 'SELECT body FROM docs');
    assert.equal(rows.out, 'globex secret');
    const look = await cli(['lease', 'lookup', c.lease_id, '--format', 'json']);
    assert.equal(look.code, 0, look.stderr);
    assert.equal((JSON.parse(look.stdout) as { state: string }).state, 'active');
    const renew = await cli(['lease', 'renew', c.lease_id, '--increment', '30m']);
    assert.equal(renew.code, 0, renew.stderr);
    assert.match(renew.stdout, /Expires/);
    const list = await cli(['lease', 'list', '--prefix', 'database/creds/rag-reader/']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.includes(c.lease_id));
    const revoke = await cli(['lease', 'revoke', c.lease_id]);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /Revoked\s+1/);
    assert.ok(!(await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
    const both = await cli(['lease', 'revoke', c.lease_id, '--prefix', 'x/']);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /not both/);
  });

  await t.test(
    'strongroom run --lease: the command gets a role for its run, revoked when it ends',
    async () => {
      const path = `database/creds/rag-reader?tenant=${db.tenants.globex}`;
      const before = new Set(await db.roles(prefix));
      const r = await cliInProcess(
        addr,
        [
          'run',
          '--lease',
          `PGUSER=${path}#username`,
          '--lease',
          `PGPASSWORD=${path}#password`,
          '--',
          'psql',
          '-X',
          '-A',
          '-t',
          '-h',
          '127.0.0.1',
          '-d',
          db.database,
          '-c',
          'SELECT current_user, body FROM docs',
        ],
        { env: { STRONGROOM_TOKEN: a.rootToken, PATH: process.env.PATH ?? '' } },
      );
      assert.equal(r.code, 0, r.stderr);
      const [user, body] = r.stdout.trim().split('|');
      assert.ok(user?.startsWith(prefix), r.stdout);
      assert.equal(body, 'globex secret');
      assert.ok(!before.has(user!));
      assert.deepEqual(await db.roles(user!), [], 'the role ended with the command');
    },
  );

  await t.test('a connection or role its live leases depend on cannot be deleted (409 in_use)', async () => {
    const c = await creds(a, 'rag-reader', { tenant: db.tenants.acme });
    for (const path of ['/v1/database/roles/rag-reader', '/v1/database/config/docs']) {
      const r = await a.call('DELETE', path);
      assert.equal(r.statusCode, 409, r.body);
      assert.match(r.body, /in_use/);
    }
    await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
    // a prefix matches whole segments: `…/rag-read` revokes nothing of `…/rag-reader/…`
    const none = await a.call('POST', '/v1/sys/leases/revoke-prefix', { prefix: 'database/creds/rag-read' });
    assert.deepEqual(none.json(), { revoked: 0, forced: 0, pending: 0 });
  });

  await t.test(
    'rotate-root: the admin role gets a password only the vault knows, and credentials keep coming',
    async () => {
      const admin = `sradmin_${db.database.slice(-8)}`;
      await db.sql(`CREATE ROLE ${admin} LOGIN CREATEROLE PASSWORD 'initial-admin-password'`);
      await db.sql(`GRANT SELECT ON docs TO ${admin} WITH GRANT OPTION`);
      t.after(() => db.sql(`DROP OWNED BY ${admin}; DROP ROLE IF EXISTS ${admin}`).catch(() => {}));
      const hash = async () =>
        (
          await db.sql<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [
            admin,
          ])
        )[0]!.rolpassword;
      const cfg = await a.call('POST', '/v1/database/config/rotating', {
        plugin: 'postgresql',
        connection_url: db.adminUrl,
        username: admin,
        password: 'initial-admin-password',
        allowed_roles: ['r2'],
      });
      assert.equal(cfg.statusCode, 200, cfg.body);
      const rolePrefix = (cfg.json() as { role_prefix: string }).role_prefix;
      t.after(() => db.dropRoles(rolePrefix));
      await a.call('POST', '/v1/database/roles/r2', {
        db_name: 'rotating',
        creation_statements: [
          'CREATE ROLE {{name}} LOGIN PASSWORD {{password}}',
          'GRANT SELECT ON docs TO {{name}}',
        ],
      });
      const before = await hash();
      const r = await a.call('POST', '/v1/database/rotate-root/rotating');
      assert.equal(r.statusCode, 200, r.body);
      assert.notEqual(await hash(), before, 'the admin password changed in PostgreSQL');
      assert.ok(!r.body.includes('password'), 'the new password is never answered');
      const c = await creds(a, 'r2', {});
      assert.ok((await db.psql(c.data.username, c.data.password, 'SELECT count(*) FROM docs')).ok);
      assert.equal((await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id })).statusCode, 200);
    },
  );

  await t.test(
    'a holder that makes its role impossible to drop still loses its login at revoke',
    async () => {
      const c = await creds(a, 'rag-reader', { tenant: db.tenants.acme });
      // as the leased role, in another database of the server (CONNECT is PUBLIC's by default): default
      // privileges there depend on the role, so DROP OWNED in the connection's database cannot remove them
      const other = new URL(url!);
      other.pathname = '/test';
      other.username = c.data.username;
      other.password = c.data.password;
      const s = new pg.Client({ connectionString: other.toString() });
      await s.connect();
      await s.query('ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC');
      await s.end();
      t.after(async () => {
        const admin = new pg.Client({ connectionString: url! });
        await admin.connect();
        await admin.query(`DROP OWNED BY ${pg.escapeIdentifier(c.data.username)}`).catch(() => {});
        await admin.end();
      });
      const r = await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
      assert.deepEqual(r.json(), { revoked: 0, forced: 0, pending: 1 });
      // the drop failed, but the login is gone and stays gone
      assert.ok(!(await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok, 'the role still logs in');
      const look = (await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id })).json() as {
        state: string;
      };
      assert.equal(look.state, 'revoking');
      const forced = await a.call('POST', '/v1/sys/leases/revoke-prefix', {
        prefix: c.lease_id,
        force: true,
      });
      assert.equal((forced.json() as { forced: number }).forced, 1);
      assert.ok(!(await db.psql(c.data.username, c.data.password, 'SELECT 1')).ok);
    },
  );

  await t.test(
    'a backend that is down: revocation is retried with backoff, force drops the record and says so',
    async () => {
      const c = await creds(a, 'short', {});
      // point the connection somewhere that refuses, keeping its role prefix
      const cfg = await a.call('POST', '/v1/database/config/docs', {
        plugin: 'postgresql',
        connection_url: 'postgres://127.0.0.1:1/nowhere',
        username: 'postgres',
        password: 'x',
        allowed_roles: ['rag-reader', 'short'],
        verify_connection: false,
      });
      assert.equal(cfg.statusCode, 200, cfg.body);
      assert.equal((cfg.json() as { role_prefix: string }).role_prefix, prefix);
      const r = await a.call('PUT', '/v1/sys/leases/revoke', { lease_id: c.lease_id });
      assert.deepEqual(r.json(), { revoked: 0, forced: 0, pending: 1 });
      const look = (await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id })).json() as {
        state: string;
        revoke_attempts: number;
        last_error: string;
      };
      assert.equal(look.state, 'revoking');
      assert.ok(look.revoke_attempts >= 1);
      assert.ok(!look.last_error.includes('"x"'));
      await sleep(300);
      const forced = await a.call('POST', '/v1/sys/leases/revoke-prefix', {
        prefix: 'database/creds/short/',
        force: true,
      });
      assert.equal(forced.statusCode, 200, forced.body);
      assert.equal((forced.json() as { forced: number }).forced, 1);
      assert.equal((await a.call('PUT', '/v1/sys/leases/lookup', { lease_id: c.lease_id })).statusCode, 404);
      // the connection back: the role the forced lease left behind is dropped by reconciliation
      const back = await a.call('POST', '/v1/database/config/docs', {
        plugin: 'postgresql',
        connection_url: db.adminUrl,
        username: 'postgres',
        password: 'unused-with-trust-auth',
        allowed_roles: ['rag-reader', 'short'],
      });
      assert.equal(back.statusCode, 200);
    },
  );
});
