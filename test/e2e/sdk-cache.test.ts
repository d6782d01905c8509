import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createClient, StrongroomApiError } from '../../src/sdk/client.ts';
import { createSecretsCache } from '../../src/sdk/secrets.ts';
import { tempDir } from '../helpers/app.ts';
import { startServerProcess } from '../helpers/process.ts';

const TOKEN_RE = /STRONGROOM_TOKEN=(\S+)/;

async function devServer(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const server = await startServerProcess(t, ['--dev', '--data', dir, '--listen', '127.0.0.1:0']);
  while (!TOKEN_RE.test(server.output())) await new Promise((r) => setTimeout(r, 50));
  const root = TOKEN_RE.exec(server.output())![1]!;
  const sr = createClient({ addr: server.address, token: root });
  await sr.createProject('demo');
  await sr.putSecret('demo', 'dev', 'API_KEY', 'value-1');
  return { server, root, sr };
}

/** A fetch that counts secret reads per origin. */
function countingFetch() {
  const reads: string[] = [];
  const f: typeof fetch = (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (/^\/v1\/secrets\/[^/]+\/[^/]+\/[^/]+$/.test(url.pathname) && (init?.method ?? 'GET') === 'GET') {
      reads.push(url.origin);
    }
    return fetch(input, init);
  };
  return { reads, fetch: f };
}

test('SDK cache against a real server', { timeout: 60_000 }, async (t) => {
  const { server, root, sr } = await devServer(t);

  await t.test('a second get within the TTL makes no request', async () => {
    const counter = countingFetch();
    const cache = createSecretsCache({ addrs: [server.address], token: root, fetch: counter.fetch });
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-1');
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-1');
    assert.equal(counter.reads.length, 1);
    cache.invalidate('demo', 'dev', 'API_KEY');
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-1');
    assert.equal(counter.reads.length, 2);
    cache.close();
  });

  await t.test('failover: a dead first address, then the real server', async () => {
    const counter = countingFetch();
    let now = 0;
    const cache = createSecretsCache({
      addrs: ['http://127.0.0.1:9', server.address],
      token: root,
      fetch: counter.fetch,
      clock: () => now,
      ttlMs: 1_000,
    });
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-1');
    now = 2_000;
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-1');
    // the healthy server is remembered: the dead one was tried only once
    assert.deepEqual(counter.reads, ['http://127.0.0.1:9', server.address, server.address]);
    cache.close();
  });

  await t.test('with watch, a new value is seen within 1 s', async () => {
    const cache = createSecretsCache({
      addrs: [server.address],
      token: root,
      watch: { project: 'demo', env: 'dev' },
    });
    t.after(() => cache.close());
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-1');
    await new Promise((r) => setTimeout(r, 200));
    await sr.putSecret('demo', 'dev', 'API_KEY', 'value-2');
    const until = Date.now() + 1_000;
    let seen = await cache.get('demo', 'dev', 'API_KEY');
    while (seen !== 'value-2' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 25));
      seen = await cache.get('demo', 'dev', 'API_KEY');
    }
    assert.equal(seen, 'value-2');
    cache.close();
  });

  await t.test('a revoked token: 401, and the stale value is not served', async () => {
    const child = await sr.createToken({ roles: ['developer'], ttl: '15m' });
    let now = 0;
    const cache = createSecretsCache({
      addrs: [server.address],
      token: child.auth.client_token,
      clock: () => now,
      ttlMs: 1_000,
    });
    const before = await cache.get('demo', 'dev', 'API_KEY');
    assert.equal(before, 'value-2');
    await sr.revokeAccessor(child.auth.accessor);
    now = 2_000;
    await assert.rejects(cache.get('demo', 'dev', 'API_KEY'), (err: unknown) => {
      assert.ok(err instanceof StrongroomApiError);
      assert.equal(err.status, 401);
      return true;
    });
    await assert.rejects(cache.get('demo', 'dev', 'API_KEY'), { status: 401 });
    cache.close();
  });

  await t.test('server stopped: stale within the window, an error after it', async () => {
    let now = 0;
    const cache = createSecretsCache({
      addrs: [server.address],
      token: root,
      clock: () => now,
      ttlMs: 1_000,
      staleIfErrorMs: 10_000,
      deadlineMs: 300,
    });
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-2');
    await server.stop();
    now = 5_000;
    assert.equal(await cache.get('demo', 'dev', 'API_KEY'), 'value-2');
    now = 11_000;
    await assert.rejects(cache.get('demo', 'dev', 'API_KEY'), { status: 0, code: 'unreachable' });
    cache.close();
  });
});
