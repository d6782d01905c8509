import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateToken } from '../crypto/token.ts';
import { createAuditBroker } from './broker.ts';
import { createFileSink } from './file.ts';
import { createAuditHasher, REDACTED, SENSITIVE_FIELDS, sanitize, sensitiveFields } from './hmac.ts';

const canary = () => `CANARY-${randomBytes(12).toString('hex')}`;

test('hmacField is HMAC-SHA256 under the audit key, written as hmac-sha256:<hex>', () => {
  const key = randomBytes(32);
  const h = createAuditHasher(key);
  const expected = createHmac('sha256', key).update('sk-live-123').digest('hex');
  assert.equal(h.hmacField('sk-live-123'), `hmac-sha256:${expected}`);
  assert.equal(h.hmacField(Buffer.from('sk-live-123')), `hmac-sha256:${expected}`);
  assert.notEqual(createAuditHasher(randomBytes(32)).hmacField('sk-live-123'), h.hmacField('sk-live-123'));
});

test('sanitize never leaves a sensitive value in the JSON, at any depth or spelling', () => {
  const c = Array.from({ length: 16 }, canary);
  const token = generateToken('srt');
  const input = {
    project: 'demo',
    value: c[0],
    metadata: { owner: 'team-a', Password: c[1] },
    auth: { client_token: c[2], CLIENT_SECRET: c[3], 'client-secret': c[4], clientSecret: c[5] },
    keys: [c[6], c[7]],
    unseal_key: c[8],
    users: [{ name: 'bob', password: c[9], totp_code: c[10] }],
    nested: { deeper: { deepest: { token: c[11], recovery_codes: [c[12]] } } },
    note: `the token is ${token}`,
    blob: Buffer.from(c[13]!),
    private_key: { pem: c[14] },
    input: c[15],
  };
  const hasher = createAuditHasher(randomBytes(32));
  for (const h of [hasher, undefined]) {
    const json = JSON.stringify(sanitize(input, SENSITIVE_FIELDS, h));
    for (const v of c) assert.ok(!json.includes(v), `${v} leaked: ${json}`);
    assert.ok(!json.includes(token), 'a Strongroom token leaked');
    assert.ok(!json.includes(Buffer.from(c[13]!).toString('base64')));
    assert.ok(json.includes('"project":"demo"') && json.includes('"owner":"team-a"'), 'other fields stay');
  }
  const out = sanitize(input, SENSITIVE_FIELDS, hasher) as typeof input;
  assert.equal(out.value, hasher.hmacField(c[0]!), 'searchable: the same HMAC as audit-hash gives');
  assert.deepEqual(out.keys, [hasher.hmacField(c[6]!), hasher.hmacField(c[7]!)]);
  assert.equal((sanitize(input) as typeof input).value, REDACTED, 'no key (sealed): redacted');
});

test('sanitize copies: the input is left as it was', () => {
  const input = { value: 's3cret', list: [{ token: 't' }] };
  sanitize(input, sensitiveFields(), createAuditHasher(randomBytes(32)));
  assert.deepEqual(input, { value: 's3cret', list: [{ token: 't' }] });
});

test('sanitize survives cycles and very deep inputs', () => {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  let deep: Record<string, unknown> = { password: 'p' };
  for (let i = 0; i < 100; i++) deep = { next: deep };
  const json = JSON.stringify(sanitize({ a, deep }));
  assert.ok(json.includes('[elided]'));
  assert.ok(!json.includes('"p"'));
});

test('canary: the broker writes no sensitive value of an entry to the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const secret = canary();
  const password = canary();
  const token = generateToken('srt');
  const broker = createAuditBroker([createFileSink({ path })], { checkpointIntervalMs: 0 });
  await broker.log({
    type: 'request',
    time: new Date().toISOString(),
    request_id: 'r1',
    operation: 'secret.write',
    action: 'secret.write',
    resource: 'Secret::demo/dev/KEY',
    actor: null,
    client_address: '127.0.0.1',
    request: { value: secret, metadata: { password }, comment: `Bearer ${token}` },
  });
  await broker.close();
  const text = readFileSync(path, 'utf8');
  for (const v of [secret, password, token]) assert.ok(!text.includes(v), `${v} reached the audit file`);
});
