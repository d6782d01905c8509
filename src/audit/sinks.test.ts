import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { createBarrier } from '../barrier/barrier.ts';
import { verifyAuditFile } from '../cli/audit.ts';
import { systemClock } from '../lib/clock.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import { createAuditBroker } from './broker.ts';
import { AuditConfigSchema, createSinks, defaultAuditConfig } from './config.ts';
import { type AuditEntry, GENESIS_HASH, lineHash } from './entry.ts';
import { createFileSink } from './file.ts';
import { type AuditKeys, createAuditKeys } from './keys.ts';
import type { AuditSink } from './sink.ts';
import { createSocketSink, createStdoutSink } from './stream.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-'));
  t.after(() => {
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  });
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

function entry(i: number): AuditEntry {
  return {
    type: 'request',
    time: new Date().toISOString(),
    request_id: `req-${i}`,
    operation: 'secret.read',
    action: 'secret.read',
    resource: 'Secret::demo/dev/KEY',
    actor: { type: 'token', id: 'acc', accessor: 'acc' },
    client_address: '127.0.0.1',
  };
}

const failingSink: AuditSink = {
  name: 'broken',
  write: async () => {
    throw new Error('disk on fire');
  },
};

const requestIds = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.type !== 'checkpoint')
    .map((e) => e.request_id);

test('the audit file is created with mode 0600 in a folder created with mode 0700', async (t) => {
  const dir = join(tempDir(t), 'data');
  const path = join(dir, 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  await broker.log(entry(0));
  await broker.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});

test('with the audit file made read-only, log fails with audit_unavailable and recovers once it is writable', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const keys = await loadedKeys();
  const errors: string[] = [];
  const broker = createAuditBroker([createFileSink({ path })], {
    keys,
    checkpointIntervalMs: 0,
    onSinkError: (sink, err) => errors.push(`${sink}: ${(err as Error).message}`),
  });
  await broker.log(entry(0));
  chmodSync(path, 0o000);
  await assert.rejects(broker.log(entry(1)), { name: 'StrongroomError', code: 'audit_unavailable' });
  await assert.rejects(broker.log(entry(2)), { code: 'audit_unavailable' });
  assert.match(errors[0]!, /^file:.*audit\.log: the audit file .* is not writable \(mode 0000\)/);
  chmodSync(path, 0o600);
  await broker.log(entry(3));
  await broker.close();
  // entries that failed are not part of the chain: it is unbroken without them
  assert.deepEqual(requestIds(path), ['req-0', 'req-3']);
  const report = await verifyAuditFile(path);
  assert.equal(report.problem, null);
});

test('with the audit folder deleted, log fails until the folder exists again, then a new file starts', async (t) => {
  const dir = join(tempDir(t), 'logs');
  const path = join(dir, 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  await broker.log(entry(0));
  rmSync(dir, { recursive: true });
  await assert.rejects(broker.log(entry(1)), { code: 'audit_unavailable' });
  assert.equal(existsSync(dir), false, 'the sink does not quietly recreate a deleted folder');
  mkdirSync(dir);
  await broker.log(entry(2));
  await broker.close();
  const first = JSON.parse(readFileSync(path, 'utf8').split('\n')[0]!);
  assert.equal(first.seq, 1);
  assert.equal(first.prev, GENESIS_HASH);
  assert.deepEqual(requestIds(path), ['req-2']);
});

test('with a folder that cannot be entered, log fails and recovers', async (t) => {
  const dir = join(tempDir(t), 'logs');
  const path = join(dir, 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  await broker.log(entry(0));
  chmodSync(path, 0o400);
  chmodSync(dir, 0o000);
  await assert.rejects(broker.log(entry(1)), { code: 'audit_unavailable' });
  chmodSync(dir, 0o700);
  chmodSync(path, 0o600);
  await broker.log(entry(2));
  await broker.close();
  assert.deepEqual(requestIds(path), ['req-0', 'req-2']);
});

test('a full disk (/dev/full) fails the write with audit_unavailable', async () => {
  const broker = createAuditBroker([createFileSink({ path: '/dev/full' })], { checkpointIntervalMs: 0 });
  const err = await broker.log(entry(0)).catch((e) => e);
  assert.equal(err.code, 'audit_unavailable');
  await broker.close();
});

test('with two sinks, one failing, the entry is accepted and the failure reported', async (t) => {
  const path = join(tempDir(t), 'audit.log');
  const failures: string[] = [];
  const broker = createAuditBroker([failingSink, createFileSink({ path })], {
    checkpointIntervalMs: 0,
    onSinkError: (sink) => failures.push(sink),
  });
  await broker.log(entry(0));
  await broker.close();
  assert.deepEqual(failures, ['broken']);
  assert.deepEqual(requestIds(path), ['req-0']);
});

test('with every sink failing (file on a full disk and another), the entry is refused', async () => {
  const broker = createAuditBroker([failingSink, createFileSink({ path: '/dev/full' })], {
    checkpointIntervalMs: 0,
  });
  await assert.rejects(broker.log(entry(0)), {
    code: 'audit_unavailable',
    message: 'no audit sink accepted the entry; the request was not performed',
  });
  await broker.close();
});

test('a closed broker refuses entries', async (t) => {
  const broker = createAuditBroker([createFileSink({ path: join(tempDir(t), 'a.log') })]);
  await broker.close();
  await assert.rejects(broker.log(entry(0)), { code: 'audit_unavailable' });
});

test('a broker without sinks is disabled and accepts everything (auditing off)', async () => {
  const broker = createAuditBroker([]);
  assert.equal(broker.enabled, false);
  await broker.log(entry(0));
  await broker.close();
});

test('the stdout sink writes chained JSON lines', async () => {
  let out = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out += chunk;
      cb();
    },
  });
  const broker = createAuditBroker([createStdoutSink(stream)], { checkpointIntervalMs: 0 });
  await broker.log(entry(0));
  await broker.log(entry(1));
  const [a, b] = out.trim().split('\n');
  assert.equal(JSON.parse(a!).seq, 1);
  assert.equal(JSON.parse(b!).prev, lineHash(a!));
});

test('a stdout sink whose stream fails makes the entry fail', async () => {
  const stream = new Writable({
    write(_chunk, _enc, cb) {
      cb(new Error('EPIPE'));
    },
  });
  const broker = createAuditBroker([createStdoutSink(stream)], { checkpointIntervalMs: 0 });
  await assert.rejects(broker.log(entry(0)), { code: 'audit_unavailable' });
});

interface Collector {
  server: Server;
  text(): string;
  close(): Promise<void>;
}

async function collector(listenOn: string | number): Promise<Collector> {
  let text = '';
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', (d) => (text += d));
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(listenOn as number, '127.0.0.1', r));
  return {
    server,
    text: () => text,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('the TCP socket sink sends newline-delimited chained lines and reconnects after the receiver restarts', async (t) => {
  const first = await collector(0);
  const port = (first.server.address() as { port: number }).port;
  const broker = createAuditBroker(
    [createSocketSink({ address: `127.0.0.1:${port}`, connectTimeoutMs: 500 })],
    { checkpointIntervalMs: 0 },
  );
  t.after(() => broker.close());
  await broker.log(entry(0));
  await broker.log(entry(1));
  await until(() => first.text().split('\n').length === 3);
  await first.close();
  await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(broker.log(entry(2)), { code: 'audit_unavailable' });
  const second = await collector(port);
  t.after(() => second.close());
  await broker.log(entry(3));
  await until(() => second.text().includes('\n'));
  const a = first.text().trim().split('\n');
  const b = JSON.parse(second.text().trim());
  // the chain continues across the reconnection; the failed entry is not in it
  assert.equal(b.seq, 3);
  assert.equal(b.prev, lineHash(a[1]!));
  assert.equal(b.request_id, 'req-3');
});

test('the Unix socket sink frames lines as RFC 5424 syslog messages when asked', async (t) => {
  const path = join(tempDir(t), 'audit.sock');
  let text = '';
  const server = createServer((s) => s.on('data', (d) => (text += d)));
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const broker = createAuditBroker([createSocketSink({ address: path, syslog: true })], {
    checkpointIntervalMs: 0,
  });
  await broker.log(entry(0));
  await broker.close();
  await until(() => text.endsWith('\n'));
  assert.match(
    text,
    /^<110>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ strongroom \d+ audit - \{"seq":1,"prev":"[0-9a-f]{64}",/,
  );
});

test('an unreachable socket fails the entry rather than waiting forever', async () => {
  const broker = createAuditBroker([createSocketSink({ address: '127.0.0.1:1', connectTimeoutMs: 300 })], {
    checkpointIntervalMs: 0,
  });
  await assert.rejects(broker.log(entry(0)), { code: 'audit_unavailable' });
  await broker.close();
});

test('the config defaults to one file in the data folder; an empty list means no sink', () => {
  assert.deepEqual(defaultAuditConfig('/var/lib/strongroom'), [
    { file: { path: '/var/lib/strongroom/audit.log' } },
  ]);
  assert.deepEqual(createSinks([]), []);
  const sinks = createSinks([
    { file: { path: '/tmp/x/audit.log' } },
    { stdout: {} },
    { socket: { address: '127.0.0.1:514', type: 'tcp' } },
    { socket: { address: '/run/audit.sock' } },
  ]);
  assert.deepEqual(
    sinks.map((s) => s.name),
    ['file:/tmp/x/audit.log', 'stdout', 'socket:127.0.0.1:514', 'socket:/run/audit.sock'],
  );
  assert.throws(() => createSinks([{ socket: { address: 'nowhere', type: 'tcp' } }]), TypeError);
  assert.throws(
    () => createSinks([{ file: { path: '/tmp/a.log' } }, { file: { path: '/tmp/a.log' } }]),
    /configured twice/,
  );
  assert.equal(AuditConfigSchema.type, 'array');
});

/** A tiny tmpfs, where mounting is allowed (root with CAP_SYS_ADMIN); undefined elsewhere. */
function smallFilesystem(t: TestContext, bytes: number): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-fs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  t.after(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test('a really full disk: the write fails, no partial line is left, and it recovers once there is space', async (t) => {
  const dir = smallFilesystem(t, 64 * 1024);
  if (!dir) return t.skip('mounting a tmpfs is not permitted here');
  const path = join(dir, 'audit.log');
  const filler = join(dir, 'filler');
  writeFileSync(filler, Buffer.alloc(40 * 1024));
  const broker = createAuditBroker([createFileSink({ path })], {
    keys: await loadedKeys(),
    checkpointEvery: 5,
    checkpointIntervalMs: 0,
  });
  const big = (i: number): AuditEntry => ({ ...entry(i), request: { note: 'x'.repeat(1500) } });
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 40; i++) {
    try {
      await broker.log(big(i));
      accepted++;
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'audit_unavailable');
      refused++;
    }
  }
  assert.ok(accepted > 0 && refused > 0, `${accepted} accepted, ${refused} refused`);
  assert.ok(readFileSync(path).at(-1) === 0x0a, 'the file ends with a whole line');
  rmSync(filler);
  await broker.log(big(99));
  await broker.close();
  const report = await verifyAuditFile(path);
  assert.equal(report.problem, null);
  assert.equal(report.entries, accepted + 1);
});
