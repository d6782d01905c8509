import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { type TestContext, test } from 'node:test';
import pg from 'pg';
import { stringify } from 'yaml';
import { staticKeyFile, tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';

/**
 * Storage is untrusted. An attacker who can write it and kept older copies of
 * its rows (a backup, a replica, a disk snapshot) puts one row back at its own
 * path: a secret's metadata from before its last write, or a token's rows from
 * before its revocation. The real server must answer an integrity error (or
 * behave as if nothing happened), never the older state: a rolled-back secret
 * is never served and a revoked token stays revoked. SQLite is tampered while
 * the server is stopped and checked after a restart; PostgreSQL is tampered
 * under the running server, as another host with database access would.
 */

type StorageSection = { sqlite: { path: string } } | { postgres: { url: string; table: string } };

interface Reply {
  status: number;
  json: Record<string, unknown>;
  text: string;
}

async function api(server: ServerProcess, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.address}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  return { status: res.status, json, text } satisfies Reply;
}

function start(t: TestContext, storage: StorageSection, keyFile: string): Promise<ServerProcess> {
  const path = join(tempDir(t, 'strongroom-replay-'), 'strongroom.yaml');
  writeFileSync(path, stringify({ listen: '127.0.0.1:0', storage, seal: { static: { key_file: keyFile } } }));
  return startServerProcess(t, ['--config', path, '--listen', '127.0.0.1:0']);
}

interface Rows {
  read(): Promise<Map<string, Buffer>>;
  put(key: string, value: Buffer): Promise<void>;
}

/** The rows that changed between two snapshots and existed in the first: what an attacker can put back. */
function olderCopies(before: Map<string, Buffer>, after: Map<string, Buffer>, match: RegExp) {
  return [...before].filter(([k, v]) => match.test(k) && !after.get(k)?.equals(v));
}

interface Setup {
  token: string;
  victim: string;
}

async function setUp(server: ServerProcess): Promise<Setup> {
  const init = await api(server, '', 'POST', '/v1/sys/init', {});
  assert.equal(init.status, 200, init.text);
  const token = init.json.root_token as string;
  assert.equal((await api(server, token, 'POST', '/v1/projects', { name: 'demo' })).status, 201);
  const put = await api(server, token, 'PUT', '/v1/secrets/demo/prod/OPENAI_API_KEY', { value: 'sk-old-1' });
  assert.equal(put.status, 200, put.text);
  const child = await api(server, token, 'POST', '/v1/auth/token/create', { roles: ['developer'] });
  assert.equal(child.status, 200, child.text);
  const victim = (child.json.auth as { client_token: string }).client_token;
  assert.equal((await api(server, victim, 'GET', '/v1/auth/token/lookup-self')).status, 200);
  return { token, victim };
}

/** Writes version 2 and revokes the victim token. */
async function moveOn(server: ServerProcess, s: Setup): Promise<void> {
  const put = await api(server, s.token, 'PUT', '/v1/secrets/demo/prod/OPENAI_API_KEY', {
    value: 'sk-new-2',
  });
  assert.equal(put.status, 200, put.text);
  assert.equal((await api(server, s.victim, 'POST', '/v1/auth/token/revoke-self')).status, 200);
  assert.equal((await api(server, s.victim, 'GET', '/v1/auth/token/lookup-self')).status, 401);
}

async function assertNoRollback(server: ServerProcess, s: Setup): Promise<void> {
  const read = await api(server, s.token, 'GET', '/v1/secrets/demo/prod/OPENAI_API_KEY');
  assert.ok(!read.text.includes('sk-old-1'), `the older version was served: ${read.text}`);
  if (read.status === 200) {
    assert.equal((read.json as { value?: string }).value, 'sk-new-2');
  } else {
    assert.equal(read.status, 500, read.text);
    assert.equal((read.json.error as { code: string }).code, 'integrity_error', read.text);
  }
  const revived = await api(server, s.victim, 'GET', '/v1/auth/token/lookup-self');
  assert.notEqual(revived.status, 200, `a revoked token works again: ${revived.text}`);
  const use = await api(server, s.victim, 'GET', '/v1/secrets/demo/prod');
  assert.notEqual(use.status, 200, `a revoked token reads secrets again: ${use.text}`);
}

test('sqlite: rows put back from before a write and a revocation are caught after a restart', async (t) => {
  const dir = tempDir(t, 'strongroom-replay-db-');
  const file = join(dir, 'vault.db');
  const keyFile = staticKeyFile(t);
  const storage: StorageSection = { sqlite: { path: file } };
  const rows: Rows = {
    async read() {
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        const all = db.prepare('SELECT key, value FROM kv').all() as { key: string; value: Uint8Array }[];
        return new Map(all.map((r) => [r.key, Buffer.from(r.value)]));
      } finally {
        db.close();
      }
    },
    async put(key, value) {
      const db = new DatabaseSync(file);
      try {
        db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)').run(key, value);
      } finally {
        db.close();
      }
    },
  };

  let server = await start(t, storage, keyFile);
  const s = await setUp(server);
  const before = await rows.read();
  await moveOn(server, s);
  await server.stop();
  const after = await rows.read();

  // one record at a time: the secret's metadata, then the token's own record
  const meta = olderCopies(before, after, /^logical\/kv\/meta\/demo\/prod\/OPENAI_API_KEY$/);
  assert.equal(meta.length, 1, 'the metadata record changed');
  await rows.put(meta[0]![0], meta[0]![1]);
  server = await start(t, storage, keyFile);
  await assertNoRollback(server, s);
  await server.stop();

  // every token row the revocation removed, put back together
  for (const [k, v] of olderCopies(before, after, /^sys\/token\//)) await rows.put(k, v);
  server = await start(t, storage, keyFile);
  await assertNoRollback(server, s);
});

test('postgres: rows put back under a running server from before a write and a revocation are caught', {
  skip: (await postgresTestUrl()) ? false : postgresSkipReason(),
}, async (t) => {
  const url = (await postgresTestUrl())!;
  const table = await uniqueTable(url, t);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  const rows: Rows = {
    async read() {
      const r = await client.query<{ key: string; value: Buffer }>(`SELECT key, value FROM "${table}"`);
      return new Map(r.rows.map((row) => [row.key, row.value]));
    },
    async put(key, value) {
      await client.query(
        `INSERT INTO "${table}" (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [key, value],
      );
    },
  };
  const server = await start(t, { postgres: { url, table } }, staticKeyFile(t));
  const s = await setUp(server);
  const before = await rows.read();
  await moveOn(server, s);
  const after = await rows.read();

  const meta = olderCopies(before, after, /^logical\/kv\/meta\/demo\/prod\/OPENAI_API_KEY$/);
  assert.equal(meta.length, 1, 'the metadata record changed');
  await rows.put(meta[0]![0], meta[0]![1]);
  await assertNoRollback(server, s);

  for (const [k, v] of olderCopies(before, after, /^sys\/token\//)) await rows.put(k, v);
  await assertNoRollback(server, s);
});

test('postgres: a child-token link put back after the child was revoked cannot block revoking the parent', {
  skip: (await postgresTestUrl()) ? false : postgresSkipReason(),
}, async (t) => {
  const url = (await postgresTestUrl())!;
  const table = await uniqueTable(url, t);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  const server = await start(t, { postgres: { url, table } }, staticKeyFile(t));
  const init = await api(server, '', 'POST', '/v1/sys/init', {});
  const root = init.json.root_token as string;
  const mint = async (token: string) =>
    (
      (await api(server, token, 'POST', '/v1/auth/token/create', { roles: ['developer'] })).json.auth as {
        client_token: string;
      }
    ).client_token;
  const parent = await mint(root);
  const child = await mint(parent);
  const tokenRows = async () =>
    new Map(
      (
        await client.query<{ key: string; value: Buffer }>(
          `SELECT key, value FROM "${table}" WHERE key LIKE 'sys/token/%'`,
        )
      ).rows.map((r) => [r.key, r.value]),
    );
  const before = await tokenRows();
  assert.equal((await api(server, child, 'POST', '/v1/auth/token/revoke-self')).status, 200);
  // the attacker puts back every row the child's revocation removed: its entry, accessor and its link
  const after = await tokenRows();
  const removed = [...before].filter(([k]) => !after.has(k));
  assert.ok(
    removed.some(([k]) => k.startsWith('sys/token/children/')),
    'the link was removed',
  );
  for (const [key, value] of removed) {
    await client.query(
      `INSERT INTO "${table}" (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [key, value],
    );
  }
  assert.notEqual(
    (await api(server, child, 'GET', '/v1/auth/token/lookup-self')).status,
    200,
    'the child stays revoked',
  );
  const revoked = await api(server, parent, 'POST', '/v1/auth/token/revoke-self');
  assert.equal(revoked.status, 200, `revoking the parent: ${revoked.text}`);
  assert.equal((await api(server, parent, 'GET', '/v1/auth/token/lookup-self')).status, 401);
});
