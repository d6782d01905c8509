import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { type TestContext, test } from 'node:test';
import { stringify } from 'yaml';
import { staticKeyFile, tempDir } from '../helpers/app.ts';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';

/**
 * Tampering with the real SQLite file of a stopped server: every record the
 * barrier wrote is bound to its path and key term, so a value copied, swapped,
 * bit-flipped, truncated or moved must be refused with `integrity_error`, never
 * served (and never as someone else's plaintext).
 */

const PROJECT = 'acme';
const ENV = 'prod';
const KV = 'logical/kv/';
const dataKey = (name: string, version: number) =>
  `${KV}data/${PROJECT}/${ENV}/${name}/${String(version).padStart(10, '0')}`;
const metaKey = (name: string) => `${KV}meta/${PROJECT}/${ENV}/${name}`;

interface Fixture {
  dbPath: string;
  configPath: string;
  token: string;
  /** Plaintext values, by secret name and version. */
  values: Map<string, string[]>;
  everyValue: string[];
}

interface Reply {
  status: number;
  text: string;
  json: { value?: string; version?: number; error?: { code?: string } } | undefined;
}

async function call(
  server: ServerProcess,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Reply> {
  const res = await fetch(`${server.address}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: Reply['json'];
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

const secretUrl = (name: string, version?: number) =>
  `/v1/secrets/${PROJECT}/${ENV}/${name}${version === undefined ? '' : `?version=${version}`}`;

async function start(t: TestContext, fx: Fixture): Promise<ServerProcess> {
  return startServerProcess(t, ['--config', fx.configPath, '--listen', '127.0.0.1:0']);
}

/** A stopped server whose SQLite file holds A (two versions) and B (one version). */
async function prepare(t: TestContext): Promise<Fixture> {
  const dir = tempDir(t, 'strongroom-tamper-');
  const dbPath = join(dir, 'data', 'strongroom.db');
  const configPath = join(dir, 'strongroom.yaml');
  writeFileSync(
    configPath,
    stringify({
      listen: '127.0.0.1:0',
      storage: { sqlite: { path: dbPath } },
      seal: { static: { key_file: staticKeyFile(t) } },
      log_level: 'warn',
    }),
  );
  const fx: Fixture = { dbPath, configPath, token: '', values: new Map(), everyValue: [] };
  const server = await start(t, fx);
  const init = await fetch(`${server.address}/v1/sys/init`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(init.status, 200, await init.clone().text());
  fx.token = ((await init.json()) as { root_token: string }).root_token;
  assert.equal((await call(server, fx.token, 'POST', '/v1/projects', { name: PROJECT })).status, 201);
  const plan: [string, number][] = [
    ['A', 2],
    ['B', 1],
  ];
  for (const [name, versions] of plan) {
    const list: string[] = [];
    for (let v = 1; v <= versions; v++) {
      const value = `sk-${name}${v}-PLAINTEXT-${randomBytes(12).toString('hex')}`;
      const put = await call(server, fx.token, 'PUT', secretUrl(name), { value });
      assert.equal(put.status, 200, put.text);
      assert.equal(put.json?.version, v);
      list.push(value);
      fx.everyValue.push(value);
    }
    fx.values.set(name, list);
  }
  await server.stop();
  return fx;
}

/** Runs `fn` on the stopped server's database file, through its own connection. */
function withDb<T>(fx: Fixture, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(fx.dbPath);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function writeBlob(db: DatabaseSync, key: string, value: Uint8Array): void {
  db.prepare(
    'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  ).run(key, value);
}

function deleteKey(db: DatabaseSync, key: string): void {
  db.prepare('DELETE FROM kv WHERE key = ?').run(key);
}

/** Records the server itself writes while it serves (see snapshot): never deleted by restore. */
const outsideSnapshot = (key: string) => key.startsWith('sys/usage/') || key.startsWith('core/index/');

function snapshot(fx: Fixture): Map<string, Buffer> {
  return withDb(fx, (db) => {
    const rows = db.prepare('SELECT key, value FROM kv ORDER BY key').all() as {
      key: string;
      value: Uint8Array;
    }[];
    // usage counters are written by the server as it serves reads, and the version index changes with
    // every write (test/e2e/storage-replay.test.ts tampers with it): not part of what is tampered with here
    return new Map(rows.filter((r) => !outsideSnapshot(r.key)).map((r) => [r.key, Buffer.from(r.value)]));
  });
}

function restore(fx: Fixture, original: Map<string, Buffer>): void {
  withDb(fx, (db) => {
    db.exec('BEGIN');
    for (const { key } of db.prepare('SELECT key FROM kv').all() as { key: string }[]) {
      if (!original.has(key) && !outsideSnapshot(key)) deleteKey(db, key);
    }
    for (const [key, value] of original) writeBlob(db, key, value);
    db.exec('COMMIT');
  });
}

function flipBit(buf: Buffer, byte: number, bit: number): Buffer {
  const out = Buffer.from(buf);
  out[byte]! ^= 1 << bit;
  return out;
}

interface Attack {
  name: string;
  /** Changes the stored records; the server is stopped. */
  tamper(db: DatabaseSync): void;
  /** The reads (secret, version) that must now fail with integrity_error. */
  reads: { name: string; version?: number }[];
  /** The reads that must work again once the original bytes are back. */
  restored: { name: string; version?: number; value: string }[];
  /** Reads untouched by the attack, which must keep working while it is in place. */
  intact: { name: string; version?: number; value: string }[];
}

test('tampering with the SQLite file of a stopped server is detected on read, and never leaks plaintext', async (t) => {
  const fx = await prepare(t);
  const original = snapshot(fx);
  const [a1, a2] = fx.values.get('A')!;
  const [b1] = fx.values.get('B')!;

  await t.test(
    'the storage layout is the documented one: keys in clear under logical/kv/, values sealed',
    () => {
      const keys = [...original.keys()];
      for (const key of [
        dataKey('A', 1),
        dataKey('A', 2),
        dataKey('B', 1),
        metaKey('A'),
        metaKey('B'),
        `${KV}projects/${PROJECT}`,
      ]) {
        assert.ok(keys.includes(key), `the table has ${key}; it has ${keys.join(', ')}`);
      }
      for (const [key, value] of original) {
        for (const plain of fx.everyValue) {
          assert.equal(value.includes(Buffer.from(plain)), false, `${key} holds no plaintext`);
        }
        if (key.startsWith(KV)) {
          assert.equal(value[0], 2, `${key} is a format 2 record (versioned, decision 0012)`);
          assert.equal(value.readUInt32BE(1), 1, `${key} is sealed under key term 1`);
        }
      }
    },
  );

  const blobA2 = original.get(dataKey('A', 2))!;
  const attacks: Attack[] = [
    {
      name: "(a) B's ciphertext copied over A's current version",
      tamper: (db) => writeBlob(db, dataKey('A', 2), original.get(dataKey('B', 1))!),
      reads: [{ name: 'A' }, { name: 'A', version: 2 }],
      restored: [{ name: 'A', value: a2! }],
      intact: [
        { name: 'A', version: 1, value: a1! },
        { name: 'B', value: b1! },
      ],
    },
    {
      name: "(a') B's metadata record copied over A's",
      tamper: (db) => writeBlob(db, metaKey('A'), original.get(metaKey('B'))!),
      reads: [{ name: 'A' }],
      restored: [{ name: 'A', value: a2! }],
      intact: [{ name: 'B', value: b1! }],
    },
    {
      name: '(b) the value records of two versions swapped',
      tamper: (db) => {
        writeBlob(db, dataKey('A', 1), original.get(dataKey('A', 2))!);
        writeBlob(db, dataKey('A', 2), original.get(dataKey('A', 1))!);
      },
      reads: [{ name: 'A' }, { name: 'A', version: 1 }, { name: 'A', version: 2 }],
      restored: [
        { name: 'A', version: 1, value: a1! },
        { name: 'A', version: 2, value: a2! },
      ],
      intact: [{ name: 'B', value: b1! }],
    },
    {
      name: '(c) one bit flipped in the middle of a value blob',
      tamper: (db) => writeBlob(db, dataKey('A', 2), flipBit(blobA2, Math.floor(blobA2.byteLength / 2), 3)),
      reads: [{ name: 'A' }],
      restored: [{ name: 'A', value: a2! }],
      intact: [
        { name: 'A', version: 1, value: a1! },
        { name: 'B', value: b1! },
      ],
    },
    {
      name: "(c') one bit flipped in the nonce and one in the tag",
      tamper: (db) => {
        writeBlob(db, dataKey('A', 1), flipBit(original.get(dataKey('A', 1))!, 5, 0));
        writeBlob(db, dataKey('A', 2), flipBit(blobA2, blobA2.byteLength - 1, 7));
      },
      reads: [
        { name: 'A', version: 1 },
        { name: 'A', version: 2 },
      ],
      restored: [
        { name: 'A', version: 1, value: a1! },
        { name: 'A', version: 2, value: a2! },
      ],
      intact: [{ name: 'B', value: b1! }],
    },
    {
      name: "(d) the key term in the header changed: to 0 (the term of the seal's own records), to 3 (unknown) and to 2^31+1",
      tamper: (db) => {
        writeBlob(db, dataKey('A', 1), flipBit(original.get(dataKey('A', 1))!, 4, 0)); // term 1 -> 0
        writeBlob(db, dataKey('A', 2), flipBit(blobA2, 4, 1)); // term 1 -> 3
        writeBlob(db, dataKey('B', 1), flipBit(original.get(dataKey('B', 1))!, 1, 7)); // term 1 -> 2^31 + 1
      },
      reads: [{ name: 'A', version: 1 }, { name: 'A', version: 2 }, { name: 'B' }],
      restored: [
        { name: 'A', version: 1, value: a1! },
        { name: 'A', version: 2, value: a2! },
        { name: 'B', value: b1! },
      ],
      intact: [],
    },
    {
      name: "(d') the record format byte changed",
      tamper: (db) => writeBlob(db, dataKey('A', 2), flipBit(blobA2, 0, 1)),
      reads: [{ name: 'A' }],
      restored: [{ name: 'A', value: a2! }],
      intact: [
        { name: 'A', version: 1, value: a1! },
        { name: 'B', value: b1! },
      ],
    },
    {
      name: '(e) a value blob truncated by one byte',
      tamper: (db) => writeBlob(db, dataKey('A', 2), blobA2.subarray(0, blobA2.byteLength - 1)),
      reads: [{ name: 'A' }],
      restored: [{ name: 'A', value: a2! }],
      intact: [
        { name: 'A', version: 1, value: a1! },
        { name: 'B', value: b1! },
      ],
    },
    {
      name: "(e') value blobs truncated to the 5 header bytes, to 3 bytes and to nothing",
      tamper: (db) => {
        writeBlob(db, dataKey('A', 2), blobA2.subarray(0, 5));
        writeBlob(db, dataKey('A', 1), original.get(dataKey('A', 1))!.subarray(0, 3));
        writeBlob(db, dataKey('B', 1), Buffer.alloc(0));
      },
      reads: [{ name: 'A', version: 2 }, { name: 'A', version: 1 }, { name: 'B' }],
      restored: [
        { name: 'A', version: 1, value: a1! },
        { name: 'A', version: 2, value: a2! },
        { name: 'B', value: b1! },
      ],
      intact: [],
    },
    {
      name: "(f) A's value and metadata rows copied to a new path C",
      tamper: (db) => {
        writeBlob(db, dataKey('C', 1), original.get(dataKey('A', 1))!);
        writeBlob(db, dataKey('C', 2), original.get(dataKey('A', 2))!);
        writeBlob(db, metaKey('C'), original.get(metaKey('A'))!);
      },
      reads: [{ name: 'C' }, { name: 'C', version: 1 }],
      restored: [{ name: 'A', value: a2! }],
      intact: [
        { name: 'A', value: a2! },
        { name: 'A', version: 1, value: a1! },
        { name: 'B', value: b1! },
      ],
    },
    {
      name: "(f') A's value blob moved into B's (valid) history as B version 1",
      tamper: (db) => {
        writeBlob(db, dataKey('B', 1), original.get(dataKey('A', 1))!);
        deleteKey(db, dataKey('A', 1));
      },
      reads: [{ name: 'B' }, { name: 'B', version: 1 }],
      restored: [
        { name: 'B', value: b1! },
        { name: 'A', version: 1, value: a1! },
      ],
      intact: [{ name: 'A', value: a2! }],
    },
  ];

  for (const attack of attacks) {
    await t.test(
      `${attack.name}: the read answers 500 integrity_error without plaintext, and works again once restored`,
      async (t) => {
        withDb(fx, (db) => attack.tamper(db));
        const server = await start(t, fx);
        try {
          for (const read of attack.reads) {
            const res = await call(server, fx.token, 'GET', secretUrl(read.name, read.version));
            const what = `${read.name}${read.version === undefined ? '' : ` v${read.version}`}`;
            assert.equal(res.status, 500, `reading ${what} answers 500, not ${res.status}: ${res.text}`);
            assert.equal(res.json?.error?.code, 'integrity_error', `reading ${what}: ${res.text}`);
            for (const plain of fx.everyValue) {
              assert.equal(res.text.includes(plain), false, `the error body for ${what} holds no plaintext`);
            }
          }
          // only what was tampered with fails: the rest of the vault still reads
          for (const read of attack.intact) {
            const res = await call(server, fx.token, 'GET', secretUrl(read.name, read.version));
            assert.equal(res.status, 200, `${read.name} is untouched and still reads: ${res.text}`);
            assert.equal(res.json?.value, read.value);
          }

          // put the original bytes back (the server reads storage afresh on every request: no restart needed)
          restore(fx, original);
          assert.deepEqual(snapshot(fx), original, 'the database holds exactly its original records again');
          for (const read of attack.restored) {
            const res = await call(server, fx.token, 'GET', secretUrl(read.name, read.version));
            assert.equal(res.status, 200, `after restoring, ${read.name} reads again: ${res.text}`);
            assert.equal(res.json?.value, read.value);
          }
          if (attack.reads.some((r) => r.name === 'C')) {
            const res = await call(server, fx.token, 'GET', secretUrl('C'));
            assert.equal(res.status, 404, 'after restoring, the moved copy is gone');
          }
        } finally {
          await server.stop();
        }
        for (const plain of fx.everyValue) {
          assert.equal(server.output().includes(plain), false, 'the server log holds no plaintext');
        }
      },
    );
  }

  await t.test(
    'with the original bytes back, a restarted server reads every version of every secret exactly',
    async (t) => {
      assert.deepEqual(snapshot(fx), original);
      const server = await start(t, fx);
      try {
        assert.equal((await call(server, fx.token, 'GET', secretUrl('C'))).status, 404);
        for (const [name, list] of fx.values) {
          for (const [i, value] of list.entries()) {
            const res = await call(server, fx.token, 'GET', secretUrl(name, i + 1));
            assert.equal(res.status, 200, res.text);
            assert.equal(res.json?.value, value);
          }
        }
      } finally {
        await server.stop();
      }
    },
  );
});
