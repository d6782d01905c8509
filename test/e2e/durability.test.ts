import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { staticKeyFile, tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';

/**
 * Crash durability of the real server process: writers hammer it, it is killed
 * with SIGKILL at a random moment, restarted on the same storage, and every
 * write it acknowledged must read back exactly. A write in flight at the kill
 * may be there or not, but only whole: any version that exists must hold one
 * of the values that was sent for that secret.
 */

const PROJECT = 'crash';
const ENV = 'prod';
const WRITERS = 16;
const ROUNDS = 5;

type StorageSection = { sqlite: { path: string } } | { postgres: { url: string; table: string } };
type SealSection = { static: { key_file: string } } | { shamir: Record<string, never> };

interface Reply {
  status: number;
  text: string;
  json: Record<string, unknown> | undefined;
}

interface Tracked {
  name: string;
  /** Every value ever sent for this secret (each one unique). */
  sent: Set<string>;
  /** Versions whose 200 response arrived, with the value written. */
  acked: Map<number, string>;
  /** Values whose write was answered with an error: they must never appear. */
  refused: Set<string>;
}

interface Fleet {
  token: string;
  secrets: Tracked[];
}

function writeConfig(t: TestContext, storage: StorageSection, seal: SealSection): string {
  const path = join(tempDir(t, 'strongroom-durability-'), 'strongroom.yaml');
  // log_level warn as an operator would run it; note that startServerProcess sets
  // STRONGROOM_LOG_LEVEL=info (the environment beats the file) to see the "listening" line
  writeFileSync(path, stringify({ listen: '127.0.0.1:0', storage, seal, log_level: 'warn' }));
  return path;
}

function start(t: TestContext, configPath: string): Promise<ServerProcess> {
  return startServerProcess(t, ['--config', configPath, '--listen', '127.0.0.1:0']);
}

async function api(
  server: ServerProcess,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Reply> {
  const res = await fetch(`${server.address}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: Reply['json'];
  try {
    json = JSON.parse(text) as Reply['json'];
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

const secretUrl = (name: string, version?: number) =>
  `/v1/secrets/${PROJECT}/${ENV}/${name}${version === undefined ? '' : `?version=${version}`}`;

/** Initialises a fresh server (unsealing a Shamir one), creates the project and the tracked secrets' bookkeeping. */
async function setUp(
  server: ServerProcess,
  shamir: boolean,
): Promise<Fleet & { keys: string[]; keysBase64: string[] }> {
  const init = await api(
    server,
    '',
    'POST',
    '/v1/sys/init',
    shamir ? { secret_shares: 3, secret_threshold: 2 } : {},
  );
  assert.equal(init.status, 200, init.text);
  const { root_token, keys, keys_base64 } = init.json as {
    root_token: string;
    keys: string[];
    keys_base64: string[];
  };
  if (shamir) {
    for (const key of keys.slice(0, 2))
      assert.equal((await api(server, '', 'POST', '/v1/sys/unseal', { key })).status, 200);
  }
  const created = await api(server, root_token, 'POST', '/v1/projects', { name: PROJECT });
  assert.equal(created.status, 201, created.text);
  const secrets = Array.from({ length: WRITERS }, (_, i) => ({
    name: `KEY_${String(i).padStart(2, '0')}`,
    sent: new Set<string>(),
    acked: new Map<number, string>(),
    refused: new Set<string>(),
  }));
  return { token: root_token, secrets, keys, keysBase64: keys_base64 };
}

/**
 * One round: WRITERS concurrent writers each put successive versions of their
 * own secret until the server is killed with SIGKILL at a random moment
 * 100-600 ms in. Returns how many writes were acknowledged in the round.
 */
async function writeUntilKilled(
  server: ServerProcess,
  fleet: Fleet,
): Promise<{ acked: number; sent: number; refused: number; killAfterMs: number }> {
  let acked = 0;
  let sent = 0;
  let refused = 0;
  const unexpected: string[] = [];
  const writer = async (s: Tracked) => {
    for (;;) {
      const value = `v-${s.name}-${randomBytes(16).toString('hex')}`;
      s.sent.add(value);
      sent++;
      let res: Reply;
      try {
        res = await api(server, fleet.token, 'PUT', secretUrl(s.name), { value });
      } catch {
        return; // the server is gone: this write may or may not have landed
      }
      const error = res.json?.error as { code?: string; message?: string } | undefined;
      if (
        res.status === 503 &&
        error?.code === 'storage_unavailable' &&
        /kept conflicting/.test(error.message ?? '')
      ) {
        // PostgreSQL gave up retrying serialization failures: the write was rolled back, so it is
        // not acknowledged and must never show up; keep going
        s.refused.add(value);
        refused++;
        continue;
      }
      if (res.status !== 200) {
        unexpected.push(`${s.name}: HTTP ${res.status} ${res.text}`);
        return;
      }
      const version = (res.json as { version: number }).version;
      assert.equal(s.acked.has(version), false, `${s.name} v${version} was acknowledged twice`);
      s.acked.set(version, value);
      acked++;
    }
  };
  const running = fleet.secrets.map(writer);
  const killAfterMs = randomInt(100, 601);
  await sleep(killAfterMs);
  await server.kill9();
  await Promise.all(running);
  assert.deepEqual(unexpected, [], 'before the kill every write is answered 200');
  return { acked, sent, refused, killAfterMs };
}

/** Runs `fn` over `items` with at most `width` at a time. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/**
 * Checks, against a freshly restarted server, that every acknowledged
 * (secret, version, value) reads back exactly, that no secret went back below
 * its highest acknowledged version, and that every version present holds a
 * value that was sent for that secret, whole. Returns the counts checked.
 */
async function verify(
  server: ServerProcess,
  fleet: Fleet,
): Promise<{ acked: number; versions: number; unacked: number }> {
  let ackedChecked = 0;
  let versionsChecked = 0;
  let unackedPresent = 0;
  const reads: { s: Tracked; version: number }[] = [];
  for (const s of fleet.secrets) {
    const highest = Math.max(0, ...s.acked.keys());
    const cur = await api(server, fleet.token, 'GET', secretUrl(s.name));
    if (cur.status === 404 && highest === 0) continue; // never written, or no write landed yet
    assert.equal(cur.status, 200, `${s.name} reads after the restart: ${cur.text}`);
    const current = (cur.json as { current_version: number }).current_version;
    assert.ok(
      current >= highest,
      `${s.name} is at version ${current}, but version ${highest} was acknowledged`,
    );
    const history = await api(server, fleet.token, 'GET', `${secretUrl(s.name)}/versions`);
    assert.equal(history.status, 200, history.text);
    const versions = (history.json as { versions: { version: number; destroyed: boolean }[] }).versions;
    assert.deepEqual(
      versions.map((v) => v.version),
      Array.from({ length: current }, (_, i) => i + 1),
      `${s.name}'s history lists every version 1..${current} once`,
    );
    assert.ok(
      versions.every((v) => !v.destroyed),
      `${s.name}: no version lost its value record`,
    );
    for (let v = 1; v <= current; v++) reads.push({ s, version: v });
  }
  const seen = new Map<string, string>();
  await pool(reads, WRITERS, async ({ s, version }) => {
    const res = await api(server, fleet.token, 'GET', secretUrl(s.name, version));
    assert.equal(res.status, 200, `${s.name} v${version} reads: ${res.text}`);
    const value = (res.json as { value: string }).value;
    versionsChecked++;
    const expected = s.acked.get(version);
    if (expected !== undefined) {
      assert.equal(value, expected, `${s.name} v${version} holds exactly the acknowledged value`);
      ackedChecked++;
    } else {
      // written by a request cut off by the kill: allowed, but only as one whole value that was sent
      assert.ok(s.sent.has(value), `${s.name} v${version} holds a value that was sent for ${s.name}, whole`);
      assert.equal(
        s.refused.has(value),
        false,
        `${s.name} v${version} holds a write that was refused with 503`,
      );
      unackedPresent++;
    }
    const where = `${s.name} v${version}`;
    assert.equal(seen.get(value), undefined, `${where} repeats the value of ${seen.get(value)}`);
    seen.set(value, where);
  });
  const totalAcked = fleet.secrets.reduce((n, s) => n + s.acked.size, 0);
  assert.equal(ackedChecked, totalAcked, 'every acknowledged write was found and checked');
  return { acked: ackedChecked, versions: versionsChecked, unacked: unackedPresent };
}

async function crashRounds(t: TestContext, storage: StorageSection): Promise<void> {
  const configPath = writeConfig(t, storage, { static: { key_file: staticKeyFile(t) } });
  const began = Date.now();
  let server = await start(t, configPath);
  const fleet = await setUp(server, false);
  let totalAcked = 0;
  let totalSent = 0;
  let last = { acked: 0, versions: 0, unacked: 0 };
  for (let round = 1; round <= ROUNDS; round++) {
    const r = await writeUntilKilled(server, fleet);
    totalAcked += r.acked;
    totalSent += r.sent;
    server = await start(t, configPath); // static seal: comes back unsealed by itself
    last = await verify(server, fleet);
    t.diagnostic(
      `round ${round}: killed after ${r.killAfterMs} ms; ${r.acked} writes acknowledged of ${r.sent} sent (${r.refused} refused with 503); ` +
        `${last.acked} acknowledged writes checked so far, ${last.unacked} unacknowledged versions present (whole)`,
    );
  }
  await server.stop();
  assert.ok(totalAcked >= WRITERS, `the run acknowledged enough writes to mean something (${totalAcked})`);
  t.diagnostic(
    `${ROUNDS} kill -9 rounds in ${Date.now() - began} ms: ${totalAcked} acknowledged writes of ${totalSent} sent, ` +
      `all ${last.acked} read back exactly; ${last.versions} versions read in the final check`,
  );
}

test('kill -9 of the server in the middle of a write-heavy run loses no write that was acknowledged (SQLite)', async (t) => {
  const dir = tempDir(t, 'strongroom-durability-data-');
  await crashRounds(t, { sqlite: { path: join(dir, 'strongroom.db') } });
});

const pgUrl = await postgresTestUrl();

test('kill -9 of the server in the middle of a write-heavy run loses no write that was acknowledged (PostgreSQL)', {
  skip: pgUrl === undefined ? postgresSkipReason() : false,
}, async (t) => {
  await crashRounds(t, { postgres: { url: pgUrl!, table: await uniqueTable(pgUrl!, t) } });
});

test('after a kill -9, a Shamir-sealed server comes back sealed, refuses reads, and unseals with the threshold of shares to find every acknowledged write', async (t) => {
  const dir = tempDir(t, 'strongroom-durability-data-');
  const configPath = writeConfig(t, { sqlite: { path: join(dir, 'strongroom.db') } }, { shamir: {} });
  let server = await start(t, configPath);
  const fleet = await setUp(server, true);
  const round = await writeUntilKilled(server, fleet);
  assert.ok(round.acked > 0, 'some writes were acknowledged before the kill');

  server = await start(t, configPath);
  const status = await api(server, '', 'GET', '/v1/sys/seal-status');
  assert.equal(status.status, 200);
  assert.deepEqual(
    { ...status.json, progress: undefined },
    {
      type: 'shamir',
      initialized: true,
      sealed: true,
      t: 2,
      n: 3,
      progress: undefined,
      recovery_seal: false,
    },
  );
  const name = fleet.secrets.find((s) => s.acked.size > 0)!.name;
  for (const [method, body] of [
    ['GET', undefined],
    ['PUT', { value: 'written-while-sealed' }],
  ] as const) {
    const res = await api(server, fleet.token, method, secretUrl(name), body);
    assert.equal(res.status, 503, `${method} while sealed answers 503: ${res.text}`);
    assert.equal((res.json as { error: { code: string } }).error.code, 'sealed');
  }

  // one share is not enough; the threshold (2 of 3, one given as base64) is
  const first = await api(server, '', 'POST', '/v1/sys/unseal', { key: fleet.keysBase64[2] });
  assert.equal(first.status, 200, first.text);
  assert.equal((first.json as { sealed: boolean; progress: number }).sealed, true);
  assert.equal((first.json as { progress: number }).progress, 1);
  assert.equal(
    (await api(server, fleet.token, 'GET', secretUrl(name))).status,
    503,
    'still sealed after one share',
  );
  const second = await api(server, '', 'POST', '/v1/sys/unseal', { key: fleet.keys[0] });
  assert.equal(second.status, 200, second.text);
  assert.equal((second.json as { sealed: boolean }).sealed, false);

  const checked = await verify(server, fleet);
  await server.stop();
  t.diagnostic(
    `killed after ${round.killAfterMs} ms; ${round.acked} of ${round.sent} writes acknowledged; ` +
      `all ${checked.acked} read back after unsealing (${checked.unacked} unacknowledged versions present, whole)`,
  );
});
