import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, createClient, StrongroomApiError } from '../../src/sdk/index.ts';
import { tempDir } from '../helpers/app.ts';
import { startServerProcess } from '../helpers/process.ts';

const TOKEN_RE = /STRONGROOM_TOKEN=(\S+)/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('SDK sessions: app login, renewal, revocation', { timeout: 90_000 }, async (t) => {
  const dir = tempDir(t);
  const server = await startServerProcess(t, ['--dev', '--data', dir, '--listen', '127.0.0.1:0']);
  await until('the dev token', () => TOKEN_RE.test(server.output()));
  const root = TOKEN_RE.exec(server.output())![1]!;
  const admin = createClient({ addr: server.address, token: root });
  await admin.createProject('demo');
  await admin.putSecret('demo', 'dev', 'API_KEY', 'value-1');

  await t.test('an app logs in, and logs in again before its token reaches its maximum', async () => {
    const app = (await admin.request('POST', '/v1/auth/apps', {
      name: 'worker',
      roles: ['app'],
      scope: { paths: ['demo/*'] },
      token_ttl: '60s',
    })) as { client_id: string; client_secret: string };
    const renewals: (number | null)[] = [];
    // renewAt 0.1 of a 60 s token: the next login is due in about 6 s.
    const sr = await connect({
      addrs: [server.address],
      app: { client_id: app.client_id, client_secret: app.client_secret },
      session: { renewAt: 0.1, onRenew: (e) => renewals.push(e) },
    });
    t.after(() => sr.close());
    const first = sr.session.token();
    assert.match(first, /^srt_/);
    assert.equal(await sr.secrets.get('demo', 'dev', 'API_KEY'), 'value-1');
    await until('a fresh login', () => renewals.length > 0, 15_000);
    const second = sr.session.token();
    assert.notEqual(second, first, 'the app logged in again');
    assert.ok(renewals[0]! > Date.now() + 50_000, 'the new token has a fresh hour… of 60 s');
    const self = await sr.lookupSelf();
    assert.equal(self.data.owner.type, 'app');
    assert.equal(self.data.owner.name, 'worker');
  });

  await t.test('a renewable token is renewed past its first TTL', async () => {
    const child = await admin.createToken({
      roles: ['app'],
      scope: { paths: ['demo/*'] },
      ttl: '3s',
      explicit_max_ttl: '1h',
    });
    const sr = await connect({
      addrs: [server.address],
      token: child.auth.client_token,
      session: { renewAt: 0.3 },
      cache: { ttlMs: 0 },
    });
    t.after(() => sr.close());
    await sleep(4_500);
    assert.equal(sr.session.state, 'active');
    assert.equal(await sr.secrets.get('demo', 'dev', 'API_KEY'), 'value-1', 'still valid after 1.5 TTLs');
    assert.ok(sr.session.expiresAt! > Date.now(), 'the expiry moved forward');
  });

  await t.test('a revoked app token stops reads at once, cached or not, and is not replaced', async () => {
    const app = (await admin.request('POST', '/v1/auth/apps', {
      name: 'revoked-worker',
      roles: ['app'],
      scope: { paths: ['demo/*'] },
    })) as { client_id: string; client_secret: string };
    const errors: Error[] = [];
    const sr = await connect({
      addrs: [server.address],
      app: { client_id: app.client_id, client_secret: app.client_secret },
      watch: { project: 'demo', env: 'dev' },
      cache: { ttlMs: 60_000 },
      session: { onError: (e) => errors.push(e) },
    });
    t.after(() => sr.close());
    assert.equal(await sr.secrets.get('demo', 'dev', 'API_KEY'), 'value-1');
    const { data } = await sr.lookupSelf();
    await admin.revokeAccessor(data.accessor);
    // The watch stream closes on revocation and the cache forgets what it held.
    await until(
      'the cached value to be dropped',
      async () => {
        try {
          await sr.secrets.get('demo', 'dev', 'API_KEY');
          return false;
        } catch (err) {
          assert.ok(err instanceof StrongroomApiError);
          assert.equal(err.status, 401);
          return true;
        }
      },
      3_000,
    );
  });

  await t.test('revoking the app itself ends a session for good', async () => {
    const app = (await admin.request('POST', '/v1/auth/apps', {
      name: 'gone',
      roles: ['app'],
      scope: { paths: ['demo/*'] },
      token_ttl: '60s',
    })) as { client_id: string; client_secret: string };
    const sr = await connect({
      addrs: [server.address],
      app: { client_id: app.client_id, client_secret: app.client_secret },
      session: { renewAt: 0.1 },
    });
    t.after(() => sr.close());
    await admin.request('DELETE', '/v1/auth/apps/gone');
    await until('the session to notice', () => sr.session.state === 'revoked', 15_000);
    assert.throws(() => sr.session.token(), { code: 'token_revoked' });
    await assert.rejects(sr.getSecret('demo', 'dev', 'API_KEY'), { status: 401 });
  });

  await t.test('the typed client fails over to the next address', async () => {
    const sr = await connect({ addrs: ['http://127.0.0.1:1', server.address], token: root });
    t.after(() => sr.close());
    const { projects } = await sr.listProjects();
    assert.ok(projects.some((p) => p.name === 'demo'));
    // A POST whose connection never opened is safe to send to the next server.
    await sr.putSecret('demo', 'dev', 'FAILOVER', 'x');
    assert.equal((await sr.getSecret('demo', 'dev', 'FAILOVER')).value, 'x');
  });

  await t.test('connect refuses both or neither of token and app', async () => {
    await assert.rejects(connect({ addrs: [server.address] }), TypeError);
    await assert.rejects(
      connect({ addrs: [server.address], token: root, app: { client_id: 'a', client_secret: 'b' } }),
      TypeError,
    );
  });

  // last: it seals the server
  await t.test('a sealed server (503) is an outage: the cached value is served stale', async () => {
    const sr = await connect({
      addrs: [server.address],
      token: root,
      cache: { ttlMs: 0, staleIfErrorMs: 60_000, deadlineMs: 500 },
    });
    t.after(() => sr.close());
    assert.equal(await sr.secrets.get('demo', 'dev', 'API_KEY'), 'value-1');
    await admin.seal();
    await assert.rejects(admin.getSecret('demo', 'dev', 'API_KEY'), { status: 503 });
    assert.equal(await sr.secrets.get('demo', 'dev', 'API_KEY'), 'value-1', 'served stale');
    assert.equal(sr.secrets.stats().stale, 1);
    await assert.rejects(sr.secrets.get('demo', 'dev', 'NEVER_CACHED'), { status: 503 });
  });
});
