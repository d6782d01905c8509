import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { runCli } from '../helpers/process.ts';

const SECRET = '/v1/secrets/p/dev/OPENAI_API_KEY';

test('with the audit file unwritable, reads and writes answer 503 and change nothing; they work again once it is writable', async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'audit.log');
  const a = await buildTestApp(t, { audit: [{ file: { path: log } }] });
  assert.equal((await a.call('POST', '/v1/projects', { name: 'p' })).statusCode, 201);
  assert.equal((await a.call('PUT', SECRET, { value: 'sk-proj-before' })).statusCode, 200);

  chmodSync(log, 0o400);
  const write = await a.call('PUT', SECRET, { value: 'sk-proj-during' });
  assert.equal(write.statusCode, 503);
  assert.equal(write.json().error.code, 'audit_unavailable');
  const read = await a.call('GET', SECRET);
  assert.equal(read.statusCode, 503);
  assert.doesNotMatch(read.body, /sk-proj-before/);
  const create = await a.call('POST', '/v1/projects', { name: 'q' });
  assert.equal(create.statusCode, 503);

  chmodSync(log, 0o600);
  const after = await a.call('GET', SECRET);
  assert.equal(after.statusCode, 200);
  // the refused write changed nothing
  assert.equal(after.json().value, 'sk-proj-before');
  assert.equal(after.json().version, 1);
  assert.equal((await a.call('GET', '/v1/projects/q')).json().error.code, 'project_not_found');
  assert.equal((await a.call('PUT', SECRET, { value: 'sk-proj-after' })).json().version, 2);

  // what was served is all in the log, and the chain verifies
  await a.app.close();
  const text = readFileSync(log, 'utf8');
  assert.doesNotMatch(text, /sk-proj-(before|during|after)/);
  const verify = await runCli(['audit', 'verify', log, '--live']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

test('with the disk full (/dev/full as the audit file) every request that needs a record is refused with 503', async (t) => {
  const a = await buildTestApp(t, { audit: [{ file: { path: '/dev/full' } }], uninitialized: true });
  const res = await a.inject({ method: 'POST', url: '/v1/sys/init', payload: {} });
  assert.equal(res.statusCode, 503);
  assert.equal(res.json().error.code, 'audit_unavailable');
});

test('every request and response is recorded with actor, action, resource, decision, client address, request and trace ids', async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'audit.log');
  const a = await buildTestApp(t, { audit: [{ file: { path: log } }] });
  await a.call('POST', '/v1/projects', { name: 'p' });
  const dev = (await a.call('POST', '/v1/auth/token/create', { roles: ['developer'] })).json().auth
    .client_token as string;
  const denied = await a.inject({
    method: 'PUT',
    url: '/v1/secrets/p/prod/KEY',
    headers: {
      authorization: `Bearer ${dev}`,
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
    payload: { value: 'sk-proj-denied-value' },
  });
  assert.equal(denied.statusCode, 403);
  const entries = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const mine = entries.filter((e) => e.request_id === denied.headers['x-request-id']);
  assert.deepEqual(
    mine.map((e) => e.type),
    ['request', 'response'],
  );
  type Entry = {
    action: string;
    resource: string;
    decision: { allowed: boolean; reason: string };
    actor: { type: string; accessor?: string };
    trace_id: string;
    client_address: string;
    request: unknown;
    error_code?: string;
  };
  const [req, res] = mine as unknown as [Entry, Entry];
  assert.equal(req.action, 'secret.write');
  assert.equal(req.resource, 'Secret::p/prod/KEY');
  assert.equal(req.decision.allowed, false);
  assert.match(req.decision.reason, /no policy permits it|forbidden/);
  assert.equal(req.actor.type, 'token');
  assert.ok(req.actor.accessor);
  assert.equal(req.trace_id, '0af7651916cd43dd8448eb211c80319c');
  assert.ok(req.client_address);
  assert.match(JSON.stringify(req.request), /hmac-sha256:/);
  assert.doesNotMatch(JSON.stringify(entries), /sk-proj-denied-value/);
  assert.doesNotMatch(JSON.stringify(entries), new RegExp(dev));
  assert.equal(res.error_code, 'permission_denied');
});
