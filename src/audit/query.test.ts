import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createAuditBroker } from './broker.ts';
import type { AuditEntry } from './entry.ts';
import { createFileSink } from './file.ts';
import { queryAuditFile } from './query.ts';

async function writeLog(t: TestContext, entries: AuditEntry[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-q-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  for (const e of entries) await broker.log(e);
  await broker.close();
  return path;
}

const at = (minute: number, over: Partial<AuditEntry> = {}): AuditEntry => ({
  type: 'request',
  time: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString(),
  request_id: `r${minute}`,
  operation: 'secret.read',
  action: minute % 2 ? 'secret.read' : 'secret.write',
  resource: 'Secret::a/b/c',
  actor: { id: minute % 3 ? 'alice' : 'bob', display_name: 'x' },
  client_address: '127.0.0.1',
  ...over,
});

test('a query reads from the end: the newest matches, oldest first, and whether there are more', async (t) => {
  const path = await writeLog(
    t,
    Array.from({ length: 300 }, (_, i) => at(i)),
  );
  const r = await queryAuditFile(path, { limit: 5, action: 'secret.read' });
  assert.deepEqual(
    r.entries.map((e) => e.request_id),
    ['r291', 'r293', 'r295', 'r297', 'r299'],
  );
  assert.equal(r.more, true);
  const bob = await queryAuditFile(path, { limit: 1000, actor: 'bob' });
  assert.equal(bob.entries.length, 100);
  assert.equal(bob.more, false);
  const window = await queryAuditFile(path, {
    limit: 1000,
    since: Date.UTC(2026, 0, 1, 0, 10),
    until: Date.UTC(2026, 0, 1, 0, 20),
  });
  assert.deepEqual(
    window.entries.map((e) => e.request_id),
    Array.from({ length: 10 }, (_, i) => `r${10 + i}`),
  );
  const prefix = await queryAuditFile(path, { limit: 1000, action: 'secret.*', request_id: 'r7' });
  assert.deepEqual(
    prefix.entries.map((e) => e.request_id),
    ['r7'],
  );
});

test('a query skips a line being written and copes with lines longer than a read', async (t) => {
  const long = 'y'.repeat(600_000);
  const path = await writeLog(t, [at(1), at(2, { request: { note: long } }), at(3)]);
  appendFileSync(path, '{"seq":99,"prev":"ab","type":"request","ti');
  const r = await queryAuditFile(path, { limit: 10 });
  assert.deepEqual(
    r.entries.map((e) => e.request_id),
    ['r1', 'r2', 'r3'],
  );
  assert.equal((r.entries[1]!.request as { note: string }).note.length, long.length);
});

test('a query stops at its byte budget and says the result is partial', async (t) => {
  const path = await writeLog(
    t,
    Array.from({ length: 3000 }, (_, i) => at(i)),
  );
  const r = await queryAuditFile(path, { limit: 1000, actor: 'nobody' }, { maxScanBytes: 256 * 1024 });
  assert.deepEqual(r.entries, []);
  assert.equal(r.partial, true);
});
