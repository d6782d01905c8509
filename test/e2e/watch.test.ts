import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { WatchMessage } from '../../src/api/watch.ts';
import { parseEventStream, watchSecrets } from '../../src/sdk/watch.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { buildTestApp, staticKeyFile, type TestApp } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';

/**
 * The watch stream (issue 4, item 3): consumers learn of changes within a
 * second, never see values, see only what they may read, and lose the stream
 * as soon as their token stops being valid. Real sockets: inject() cannot stream.
 */
const CANARY = 'sk-proj-CANARYwatchVALUEmustNEVERappear0123456789abcdef';

async function listen(t: TestContext, a: TestApp): Promise<string> {
  await a.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = a.app.server.address();
  assert.ok(addr && typeof addr === 'object');
  void t;
  return `http://127.0.0.1:${addr.port}`;
}

async function setUp(t: TestContext, opts: Parameters<typeof buildTestApp>[1] = {}) {
  const a = await buildTestApp(t, opts);
  assert.equal(
    (await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev', 'prod'] })).statusCode,
    201,
  );
  const addr = await listen(t, a);
  return { a, addr };
}

async function mint(a: TestApp, body: Record<string, unknown>): Promise<string> {
  const res = await a.call('POST', '/v1/auth/token/create', { ttl: '1h', ...body });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { auth: { client_token: string } }).auth.client_token;
}

/** A watcher over a real socket that records the raw bytes and the parsed messages. */
async function watcher(addr: string, token: string, query = '', path = '/v1/secrets/llm/dev/watch') {
  const ctl = new AbortController();
  const res = await fetch(`${addr}${path}${query}`, {
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), accept: 'text/event-stream' },
    signal: ctl.signal,
  });
  const w = {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    raw: '',
    messages: [] as (WatchMessage & { receivedAt: number })[],
    ended: false,
    close: () => ctl.abort(),
    async waitFor(
      pred: (m: WatchMessage) => boolean,
      ms = 3000,
    ): Promise<WatchMessage & { receivedAt: number }> {
      const until = Date.now() + ms;
      for (;;) {
        const m = w.messages.find(pred);
        if (m) return m;
        if (Date.now() > until) throw new Error(`no matching message in ${ms} ms; got ${w.raw}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async waitEnded(ms = 3000) {
      const until = Date.now() + ms;
      while (!w.ended) {
        if (Date.now() > until) throw new Error(`stream still open after ${ms} ms; got ${w.raw}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
  if (res.status !== 200 || !res.body) {
    w.raw = await res.text();
    w.ended = true;
    return w;
  }
  const [forRaw, forParse] = res.body.tee();
  void (async () => {
    const dec = new TextDecoder();
    try {
      for await (const chunk of forRaw) w.raw += dec.decode(chunk, { stream: true });
    } catch {}
  })();
  void (async () => {
    try {
      for await (const m of parseEventStream(forParse)) {
        const data = JSON.parse(m.data);
        w.messages.push({
          event: m.event,
          data,
          ...(m.id ? { id: m.id } : {}),
          receivedAt: Date.now(),
        } as never);
      }
    } catch {}
    w.ended = true;
  })();
  await w.waitFor((m) => m.event === 'ready');
  return w;
}

const isChange = (name: string, kind?: string) => (m: WatchMessage) =>
  m.event === 'change' && m.data.name === name && (kind === undefined || m.data.kind === kind);

test('a write, a rollback and a delete by another client reach a watcher within a second, without the value', async (t) => {
  const { a, addr } = await setUp(t);
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'first-value' });
  const w = await watcher(addr, a.rootToken);
  assert.equal(w.status, 200);
  assert.match(w.contentType, /^text\/event-stream/);
  const ready = w.messages[0]!;
  assert.equal(ready.event, 'ready');
  assert.deepEqual(ready.event === 'ready' && ready.data.secrets, [
    { name: 'OPENAI_API_KEY', version: 1, deleted: false },
  ]);

  const latencies: number[] = [];
  const steps: [string, () => Promise<unknown>, number][] = [
    ['write', () => a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: CANARY }), 2],
    ['rollback', () => a.call('POST', '/v1/secrets/llm/dev/OPENAI_API_KEY/rollback', { version: 1 }), 3],
    ['delete', () => a.call('DELETE', '/v1/secrets/llm/dev/OPENAI_API_KEY'), 3],
    ['restore', () => a.call('POST', '/v1/secrets/llm/dev/OPENAI_API_KEY/restore'), 3],
  ];
  for (const [kind, act, version] of steps) {
    const started = Date.now();
    await act();
    const m = await w.waitFor(isChange('OPENAI_API_KEY', kind), 1000);
    const latency = m.receivedAt - started;
    latencies.push(latency);
    assert.ok(latency < 1000, `${kind} arrived after ${latency} ms`);
    assert.ok(m.event === 'change');
    assert.deepEqual(Object.keys(m.data).sort(), ['at', 'env', 'kind', 'name', 'project', 'version']);
    assert.equal(m.data.version, version);
    assert.match((m as { id?: string }).id ?? '', /^\d+$/);
  }
  assert.ok(!w.raw.includes(CANARY), 'the stream never carries a value');
  assert.ok(!w.raw.includes('first-value'));
  w.close();
  t.diagnostic(`event latency (ms) write/rollback/delete/restore: ${latencies.join('/')}`);
});

test('a scoped token sees only the secrets its scope reaches, in the ready event and after', async (t) => {
  const { a, addr } = await setUp(t);
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'v' });
  await a.call('PUT', '/v1/secrets/llm/dev/OTHER_KEY', { value: 'v' });
  const scoped = await mint(a, { roles: ['app'], scope: { paths: ['llm/dev/OPENAI*'] } });
  const w = await watcher(addr, scoped);
  const ready = w.messages[0]!;
  assert.deepEqual(ready.event === 'ready' && ready.data.secrets.map((s) => s.name), ['OPENAI_API_KEY']);
  await a.call('PUT', '/v1/secrets/llm/dev/OTHER_KEY', { value: 'v2' });
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'v2' });
  await w.waitFor(isChange('OPENAI_API_KEY', 'write'));
  // events are delivered in order, so OTHER_KEY's (written first) would be here by now
  assert.equal(w.messages.filter(isChange('OTHER_KEY')).length, 0);
  assert.ok(!w.raw.includes('OTHER_KEY'));

  // a token scoped to another environment cannot open the stream at all
  const elsewhere = await mint(a, { roles: ['app'], scope: { paths: ['llm/prod'] } });
  const denied = await watcher(addr, elsewhere);
  assert.equal(denied.status, 403);
  w.close();
});

test('an unauthorised or missing token gets 401/403 as JSON before any stream starts; a missing environment is 404', async (t) => {
  const { a, addr } = await setUp(t);
  const nobody = await mint(a, { roles: ['nobody'] });
  for (const [token, status, code] of [
    [nobody, 403, 'permission_denied'],
    ['', 401, 'unauthenticated'],
    ['srt_not_a_real_token', 401, undefined],
  ] as const) {
    const w = await watcher(addr, token);
    assert.equal(w.status, status, w.raw);
    assert.match(w.contentType, /application\/json/);
    if (code) assert.equal((JSON.parse(w.raw) as { error: { code: string } }).error.code, code);
  }
  const missing = await watcher(addr, a.rootToken, '', '/v1/secrets/llm/nope/watch');
  assert.equal(missing.status, 404);
  // the SDK throws the same error before yielding anything
  await assert.rejects(
    async () => {
      for await (const _ of watchSecrets({ addr, token: nobody, project: 'llm', env: 'dev' })) break;
    },
    { status: 403, code: 'permission_denied' },
  );
});

test('a revoked token loses its stream at the next event, and at the next heartbeat when nothing changes', async (t) => {
  const { a, addr } = await setUp(t);
  const byEvent = await mint(a, { roles: ['admin'] });
  const byHeartbeat = await mint(a, { roles: ['admin'] });
  const w1 = await watcher(addr, byEvent, '?heartbeat=60');
  // w2 filters on a name nothing writes, so only its heartbeat can notice the revocation
  const w2 = await watcher(addr, byHeartbeat, '?heartbeat=1&name=NOTHING_WRITES_THIS');
  assert.equal((await a.call('POST', '/v1/auth/token/revoke', { token: byEvent })).statusCode, 200);
  assert.equal((await a.call('POST', '/v1/auth/token/revoke', { token: byHeartbeat })).statusCode, 200);
  await a.call('PUT', '/v1/secrets/llm/prod/UNRELATED', { value: 'x' }); // another environment: no event for w1
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: CANARY });
  const closed = await w1.waitFor((m) => m.event === 'close', 1000);
  assert.equal(closed.event === 'close' && closed.data.reason, 'token_invalid');
  await w1.waitEnded(1000);
  assert.equal(w1.messages.filter((m) => m.event === 'change').length, 0, 'no event after revocation');
  const started = Date.now();
  await w2.waitEnded(2500);
  assert.ok(w2.messages.some((m) => m.event === 'close' && m.data.reason === 'token_invalid'));
  t.diagnostic(`heartbeat-closed stream ended ${Date.now() - started} ms after the write`);
  assert.ok(!w1.raw.includes(CANARY) && !w2.raw.includes(CANARY));
});

test('an expiring token loses its stream when it expires', async (t) => {
  const { a, addr } = await setUp(t);
  const res = await a.call('POST', '/v1/auth/token/create', { ttl: '2s', roles: ['admin'] });
  const token = (res.json() as { auth: { client_token: string } }).auth.client_token;
  const w = await watcher(addr, token, '?heartbeat=60');
  await w.waitEnded(3500);
  assert.ok(w.messages.some((m) => m.event === 'close' && m.data.reason === 'token_invalid'));
});

test('disconnecting clients leaves no listener behind, and closing the server ends open streams', async (t) => {
  const { a, addr } = await setUp(t);
  const baseline = a.vault.secrets.events.listenerCount('change');
  const ws = await Promise.all([
    watcher(addr, a.rootToken),
    watcher(addr, a.rootToken),
    watcher(addr, a.rootToken),
  ]);
  assert.ok(a.vault.secrets.events.listenerCount('change') > baseline);
  for (const w of ws) w.close();
  const until = Date.now() + 2000;
  while (a.vault.secrets.events.listenerCount('change') !== baseline && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(a.vault.secrets.events.listenerCount('change'), baseline);
  // a stream left open does not keep the server from closing
  const open = await watcher(addr, a.rootToken);
  const started = Date.now();
  await a.app.close();
  await open.waitEnded(2000);
  assert.ok(Date.now() - started < 2000);
  assert.equal(a.vault.secrets.events.listenerCount('change'), baseline);
});

test('Last-Event-ID resumes: changes made while disconnected are replayed after the ready event', async (t) => {
  const { a, addr } = await setUp(t);
  const w = await watcher(addr, a.rootToken, '?name=OPENAI_API_KEY');
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'one' });
  const first = await w.waitFor(isChange('OPENAI_API_KEY'));
  w.close();
  await new Promise((r) => setTimeout(r, 5));
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'two' });
  await a.call('DELETE', '/v1/secrets/llm/dev/OPENAI_API_KEY');
  const lastId = (first as { id: string }).id;
  const ctl = new AbortController();
  const seen: WatchMessage[] = [];
  for await (const m of watchSecrets({
    addr,
    token: a.rootToken,
    project: 'llm',
    env: 'dev',
    since: lastId,
    signal: ctl.signal,
  })) {
    seen.push(m);
    if (m.event === 'change' && m.data.kind === 'delete') break;
  }
  ctl.abort();
  assert.equal(seen[0]!.event, 'ready');
  const replayed = seen
    .filter((m) => m.event === 'change')
    .map((m) => m.event === 'change' && [m.data.kind, m.data.version, m.data.replayed]);
  // the version whose id we resumed from may be repeated (at-least-once), never skipped
  assert.deepEqual(replayed.slice(-2), [
    ['write', 2, true],
    ['delete', 2, true],
  ]);
});

const pgUrl = await postgresTestUrl();

test('with two servers on one PostgreSQL storage, a write on one reaches a watcher on the other within 1.5 s', {
  skip: pgUrl === undefined ? postgresSkipReason() : false,
}, async (t) => {
  const table = await uniqueTable(pgUrl!, t);
  const s1 = await createPostgresStorage({ url: pgUrl!, table });
  const s2 = await createPostgresStorage({ url: pgUrl!, table });
  const keyFile = staticKeyFile(t);
  const A = await buildTestApp(t, { storage: s1, keyFile });
  const B = await buildTestApp(t, { storage: s2, keyFile, uninitialized: true });
  t.after(async () => {
    await s1.close();
    await s2.close();
  });
  assert.equal(
    (await A.call('POST', '/v1/projects', { name: 'llm', environments: ['dev'] })).statusCode,
    201,
  );
  const addrB = await listen(t, B);
  const w = await watcher(addrB, A.rootToken);
  // let B's first snapshot of the environment finish
  await new Promise((r) => setTimeout(r, 300));
  const latencies: number[] = [];
  for (const [kind, act] of [
    ['write', () => A.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: CANARY })],
    ['write', () => A.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: `${CANARY}2` })],
    ['delete', () => A.call('DELETE', '/v1/secrets/llm/dev/OPENAI_API_KEY')],
  ] as const) {
    const before = w.messages.length;
    const started = Date.now();
    const res = await act();
    assert.ok(res.statusCode < 300, res.body);
    const m = await w.waitFor(
      (x) => w.messages.indexOf(x as never) >= before && isChange('OPENAI_API_KEY', kind)(x),
      1500,
    );
    latencies.push(m.receivedAt - started);
    assert.ok(m.receivedAt - started < 1500, `${kind} took ${m.receivedAt - started} ms`);
  }
  // each change is delivered once, even though B polls
  assert.equal(w.messages.filter(isChange('OPENAI_API_KEY')).length, 3);
  assert.ok(!w.raw.includes(CANARY));
  w.close();
  t.diagnostic(`cross-server latency (ms): ${latencies.join('/')}`);
});

test('`strongroom secret get --watch` prints the value, then each new value, and JSON lines with --format json', async (t) => {
  const { a, addr } = await setUp(t);
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'value-one' });
  const { runCli } = await import('../../src/cli/program.ts');
  const start = async (args: string[]) => {
    const token = await mint(a, { roles: ['admin'] });
    const out = { stdout: '', stderr: '', code: undefined as number | undefined };
    const io = {
      stdout: {
        write: (s: string) => {
          out.stdout += s;
          return true;
        },
      } as never,
      stderr: {
        write: (s: string) => {
          out.stderr += s;
          return true;
        },
      } as never,
      stdin: process.stdin,
      env: { STRONGROOM_ADDR: addr, STRONGROOM_TOKEN: token },
      cwd: process.cwd(),
    };
    const done = runCli(args, io, async () => {}).then((c) => {
      out.code = c;
    });
    return { out, token, done };
  };
  const until = async (pred: () => boolean, what: string) => {
    const end = Date.now() + 3000;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const raw = await start(['secret', 'get', 'llm/dev/OPENAI_API_KEY', '--watch', '--field', 'value']);
  const json = await start(['--format', 'json', 'secret', 'get', 'llm/dev/OPENAI_API_KEY', '--watch']);
  await until(
    () => raw.out.stdout.includes('value-one') && json.out.stdout.includes('value-one'),
    'first value',
  );
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'value-two' });
  await until(
    () => raw.out.stdout.includes('value-two') && json.out.stdout.split('\n').length >= 3,
    'second value',
  );
  await a.call('DELETE', '/v1/secrets/llm/dev/OPENAI_API_KEY');
  await until(() => json.out.stdout.split('\n').length >= 4, 'delete event');
  assert.match(raw.out.stdout, /^value-one\n# \S+ write llm\/dev\/OPENAI_API_KEY version 2\nvalue-two\n/);
  const lines = json.out.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines[0].event, null);
  assert.equal(lines[0].secret.value, 'value-one');
  assert.deepEqual([lines[1].event.kind, lines[1].secret.value], ['write', 'value-two']);
  assert.deepEqual([lines[2].event.kind, lines[2].secret], ['delete', null]);
  // revoking the token ends the command with an error
  for (const c of [raw, json]) await a.call('POST', '/v1/auth/token/revoke', { token: c.token });
  await a.call('POST', '/v1/secrets/llm/dev/OPENAI_API_KEY/restore');
  await Promise.all([raw.done, json.done]);
  assert.equal(raw.out.code, 1);
  assert.match(raw.out.stderr, /the server ended the watch/);
});
