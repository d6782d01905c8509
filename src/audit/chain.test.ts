import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createBarrier } from '../barrier/barrier.ts';
import * as cli from '../cli/audit.ts';
import { manualClock, systemClock } from '../lib/clock.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import { createAuditBroker } from './broker.ts';
import {
  type AuditEntry,
  type AuditLine,
  type CheckpointLine,
  checkpointMessage,
  GENESIS_HASH,
  lineHash,
} from './entry.ts';
import { createFileSink, publicKeyPath } from './file.ts';
import { type AuditKeys, createAuditKeys, createCheckpointSigner, keyIdOf } from './keys.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function loadedKeys(): Promise<AuditKeys> {
  const root = randomBytes(32);
  const barrier = createBarrier(createMemoryStorage(), systemClock);
  await barrier.initialize(root);
  await barrier.unseal(root);
  const keys = createAuditKeys(barrier.view('sys/audit/'));
  await keys.load();
  return keys;
}

function entry(i: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    type: i % 2 ? 'response' : 'request',
    time: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
    request_id: `req-${i}`,
    operation: 'secret.read',
    action: 'secret.read',
    resource: 'Secret::demo/dev/OPENAI_API_KEY',
    actor: { type: 'user', id: 'alice', accessor: 'acc-1', display_name: 'alice' },
    client_address: '127.0.0.1',
    ...over,
  };
}

const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '');

test('every line carries seq and the hash of the line before it, starting from the genesis hash', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  for (let i = 0; i < 5; i++) await broker.log(entry(i));
  await broker.close();
  const raw = lines(path);
  assert.equal(raw.length, 5);
  let prev = GENESIS_HASH;
  for (const [i, l] of raw.entries()) {
    const e = JSON.parse(l) as AuditLine;
    assert.equal(e.seq, i + 1);
    assert.equal(e.prev, prev);
    assert.match(l, /^\{"seq":\d+,"prev":"[0-9a-f]{64}","type":/);
    assert.equal(e.request_id, `req-${i}`);
    prev = lineHash(l);
  }
});

test('a signed checkpoint follows every N entries and covers the chain head', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const keys = await loadedKeys();
  const clock = manualClock();
  const broker = createAuditBroker([createFileSink({ path })], {
    keys,
    clock,
    checkpointEvery: 10,
    checkpointIntervalMs: 0,
  });
  for (let i = 0; i < 25; i++) await broker.log(entry(i));
  const raw = lines(path);
  assert.equal(raw.length, 27);
  const cps = raw.map((l) => JSON.parse(l)).filter((e) => e.type === 'checkpoint') as CheckpointLine[];
  assert.deepEqual(
    cps.map((c) => c.seq),
    [11, 22],
  );
  const pub = createPublicKey(keys.publicKeyPem());
  for (const cp of cps) {
    const line = raw[cp.seq - 1]!;
    assert.equal(cp.prev, lineHash(raw[cp.seq - 2]!));
    assert.equal(cp.chain_head, cp.prev);
    assert.equal(cp.reason, 'count');
    assert.equal(cp.key_id, keys.keyId);
    assert.equal(cp.signed_at, new Date(clock.now()).toISOString());
    const unsigned = `${line.slice(0, line.lastIndexOf(',"signature":'))}}`;
    assert.ok(verify(null, checkpointMessage(unsigned), pub, Buffer.from(cp.signature, 'base64')));
  }
  // the public key is next to the file, for verification without unsealing
  assert.equal(readFileSync(publicKeyPath(path), 'utf8').trim(), keys.publicKeyPem().trim());
  await broker.close();
  const last = JSON.parse(lines(path).at(-1)!) as CheckpointLine;
  assert.equal(last.type, 'checkpoint');
  assert.equal(last.reason, 'shutdown');
  assert.equal(last.seq, 28);
});

test('the CLI verifier restates the format exactly (genesis, checkpoint message, key id)', () => {
  assert.equal(cli.GENESIS_HASH, GENESIS_HASH);
  const json = '{"seq":3,"prev":"ab","type":"checkpoint"}';
  assert.deepEqual(cli.checkpointMessage(json), checkpointMessage(json));
  const { publicKey } = generateKeyPairSync('ed25519');
  assert.equal(cli.keyIdOf(publicKey), keyIdOf(publicKey));
});

test('no checkpoint is written without a signer, and none twice for the same chain head', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], {
    checkpointEvery: 2,
    checkpointIntervalMs: 0,
  });
  for (let i = 0; i < 5; i++) await broker.log(entry(i));
  await broker.checkpoint();
  assert.equal(lines(path).length, 5, 'sealed: no key, no checkpoint');
  broker.useKeys(await loadedKeys());
  await broker.checkpoint();
  await broker.checkpoint();
  await broker.close();
  const types = lines(path).map((l) => JSON.parse(l).type);
  assert.deepEqual(types.slice(5), ['checkpoint']);
});

test('the interval checkpoint covers entries that wait for one', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], {
    keys: await loadedKeys(),
    checkpointEvery: 0,
    checkpointIntervalMs: 20,
  });
  t.after(() => broker.close());
  await broker.log(entry(0));
  const deadline = Date.now() + 2000;
  while (lines(path).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const cp = JSON.parse(lines(path)[1]!) as CheckpointLine;
  assert.equal(cp.type, 'checkpoint');
  assert.equal(cp.reason, 'interval');
});

test('concurrent writes are chained in one order, with no seq twice and no gap', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], {
    keys: await loadedKeys(),
    checkpointEvery: 50,
    checkpointIntervalMs: 0,
  });
  await Promise.all(Array.from({ length: 400 }, (_, i) => broker.log(entry(i))));
  await broker.close();
  const report = await cli.verifyAuditFile(path);
  assert.equal(report.problem, null);
  assert.equal(report.entries, 400);
  assert.equal(report.checkpoints, 8, 'one per 50 entries; the last one leaves nothing for shutdown');
  assert.equal(report.uncovered, 0);
  const ids = new Set(lines(path).map((l) => JSON.parse(l).request_id));
  for (let i = 0; i < 400; i++) assert.ok(ids.has(`req-${i}`));
});

test('a restarted broker continues the chain of the existing file', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const keys = await loadedKeys();
  for (let round = 0; round < 3; round++) {
    const broker = createAuditBroker([createFileSink({ path })], { keys, checkpointIntervalMs: 0 });
    for (let i = 0; i < 4; i++) await broker.log(entry(round * 10 + i));
    await broker.close();
  }
  const report = await cli.verifyAuditFile(path);
  assert.equal(report.problem, null);
  assert.equal(report.lines, 15);
  assert.equal(report.entries, 12);
  assert.equal(report.checkpoints, 3);
});

test('a half-written last line (a crash mid-write) is cut off when the file is reopened', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const keys = await loadedKeys();
  let broker = createAuditBroker([createFileSink({ path })], { keys, checkpointIntervalMs: 0 });
  for (let i = 0; i < 3; i++) await broker.log(entry(i));
  await broker.close();
  appendFileSync(path, '{"seq":5,"prev":"00');
  broker = createAuditBroker([createFileSink({ path })], { keys, checkpointIntervalMs: 0 });
  await broker.log(entry(9));
  await broker.close();
  const report = await cli.verifyAuditFile(path);
  assert.equal(report.problem, null);
  assert.equal(report.entries, 4);
});

test('a file whose last line is not an entry is refused rather than chained onto', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  writeFileSync(path, 'this is not an audit entry\n', { mode: 0o600 });
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  await assert.rejects(broker.log(entry(0)), { code: 'audit_unavailable' });
});

test('a rotated file is closed with a checkpoint and a new file starts its own chain', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'audit.log');
  const keys = await loadedKeys();
  const broker = createAuditBroker([createFileSink({ path })], { keys, checkpointIntervalMs: 0 });
  for (let i = 0; i < 3; i++) await broker.log(entry(i));
  renameSync(path, join(dir, 'audit.log.1'));
  for (let i = 3; i < 5; i++) await broker.log(entry(i));
  await broker.close();
  const old = await cli.verifyAuditFile(join(dir, 'audit.log.1'), { publicKeys: keys.publicKeyPem() });
  assert.equal(old.problem, null);
  assert.equal(old.entries, 3);
  assert.equal(old.last_checkpoint?.reason, 'rotate');
  const fresh = await cli.verifyAuditFile(path);
  assert.equal(fresh.problem, null);
  assert.equal(fresh.entries, 2);
  assert.equal(JSON.parse(lines(path)[0]!).seq, 1);
});

test('a checkpoint asked for just before sealing is signed with the key being unloaded', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const keys = await loadedKeys();
  const broker = createAuditBroker([createFileSink({ path })], { keys, checkpointIntervalMs: 0 });
  await broker.log(entry(0));
  const done = broker.checkpoint('seal');
  keys.unload();
  await done;
  await broker.log(entry(1));
  await broker.close();
  const types = lines(path).map((l) => JSON.parse(l).type);
  assert.deepEqual(types, ['request', 'checkpoint', 'response']);
  assert.equal(JSON.parse(lines(path)[1]!).reason, 'seal');
});

test('a signer made from any Ed25519 key names it by the hash of its public key', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const s = createCheckpointSigner(privateKey);
  assert.equal(s.keyId, keyIdOf(publicKey));
  assert.match(s.keyId, /^[0-9a-f]{32}$/);
  assert.ok(verify(null, Buffer.from('m'), createPublicKey(s.publicKeyPem), s.sign(Buffer.from('m'))));
});

test('a restarted broker finds the last line even when it is longer than one read', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  for (const size of [10, 200_000]) {
    const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
    await broker.log(entry(size, { request: { note: 'n'.repeat(size) } }));
    await broker.close();
  }
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  await broker.log(entry(1));
  await broker.close();
  const report = await cli.verifyAuditFile(path, { live: true });
  assert.equal(report.problem, null);
  assert.equal(report.entries, 3);
});
