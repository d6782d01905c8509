import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AppCredentials, LoginResponse } from '../../src/api/auth.ts';
import { buildTestApp, type TestApp, tempDir } from '../helpers/app.ts';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
type Data<T> = { data: T };

async function ok<T>(
  a: TestApp,
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: unknown,
  token?: string,
) {
  const r = await a.call(method, url, body, token);
  assert.equal(r.statusCode, 200, `${method} ${url}: ${r.body}`);
  return (r.json() as Data<T>).data;
}

async function refused(
  a: TestApp,
  url: string,
  body: unknown,
  code: string,
  status = 400,
  token?: string,
): Promise<string> {
  const r = await a.call('POST', url, body, token);
  assert.equal(r.statusCode, status, `${url}: ${r.body}`);
  const e = (r.json() as { error: { code: string; message: string } }).error;
  assert.equal(e.code, code, r.body);
  return e.message;
}

test('an aes256-gcm96 key encrypts, decrypts, rotates and rewraps, and old versions stop opening once retired', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/orders', {});
  const c1 = await ok<{ ciphertext: string; key_version: number }>(a, 'POST', '/v1/transit/encrypt/orders', {
    plaintext: b64('card 4111'),
  });
  assert.match(c1.ciphertext, /^vault:v1:[A-Za-z0-9+/]+={0,2}$/);
  assert.equal(c1.key_version, 1);
  // nonce (12) + 9 bytes + tag (16)
  assert.equal(Buffer.from(c1.ciphertext.slice(9), 'base64').length, 12 + 9 + 16);
  const p1 = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/orders', {
    ciphertext: c1.ciphertext,
  });
  assert.equal(Buffer.from(p1.plaintext, 'base64').toString(), 'card 4111');

  const rotated = await ok<{ latest_version: number; keys: Record<string, number> }>(
    a,
    'POST',
    '/v1/transit/keys/orders/rotate',
  );
  assert.equal(rotated.latest_version, 2);
  assert.deepEqual(Object.keys(rotated.keys), ['1', '2']);
  const c2 = await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/encrypt/orders', {
    plaintext: b64('x'),
  });
  assert.match(c2.ciphertext, /^vault:v2:/);
  const rewrapped = await ok<{ ciphertext: string; key_version: number }>(
    a,
    'POST',
    '/v1/transit/rewrap/orders',
    {
      ciphertext: c1.ciphertext,
    },
  );
  assert.match(rewrapped.ciphertext, /^vault:v2:/);
  assert.equal(rewrapped.key_version, 2);

  // retiring version 1: its ciphertexts are refused, the rewrapped one still opens
  await ok(a, 'POST', '/v1/transit/keys/orders/config', { min_decryption_version: 2 });
  await refused(a, '/v1/transit/decrypt/orders', { ciphertext: c1.ciphertext }, 'key_version_disallowed');
  const p2 = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/orders', {
    ciphertext: rewrapped.ciphertext,
  });
  assert.equal(Buffer.from(p2.plaintext, 'base64').toString(), 'card 4111');
  // a retired version makes nothing new: not a ciphertext, a data key, an HMAC, nor a rewrap into it
  for (const [url, body] of [
    ['/v1/transit/encrypt/orders', { plaintext: b64('y'), key_version: 1 }],
    ['/v1/transit/datakey/plaintext/orders', { key_version: 1 }],
    ['/v1/transit/hmac/orders', { input: b64('y'), key_version: 1 }],
    ['/v1/transit/rewrap/orders', { ciphertext: rewrapped.ciphertext, key_version: 1 }],
  ] as const) {
    await refused(a, url, body, 'key_version_disallowed');
  }
  // an encryption may not ask for a version below min_encryption_version
  await ok(a, 'POST', '/v1/transit/keys/orders/config', { min_encryption_version: 2 });
  await refused(
    a,
    '/v1/transit/encrypt/orders',
    { plaintext: b64('y'), key_version: 1 },
    'key_version_disallowed',
  );
  // trimming removes version 1 for good
  const trimmed = await ok<{ keys: Record<string, number>; min_available_version: number }>(
    a,
    'POST',
    '/v1/transit/keys/orders/trim',
    { min_available_version: 2 },
  );
  assert.deepEqual(Object.keys(trimmed.keys), ['2']);
  await refused(a, '/v1/transit/keys/orders/config', { min_decryption_version: 1 }, 'invalid_value');
});

test('a tampered, truncated, re-versioned or foreign ciphertext is refused with one answer', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/k1', {});
  await ok(a, 'POST', '/v1/transit/keys/k2', { type: 'chacha20-poly1305' });
  const { ciphertext } = await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/encrypt/k1', {
    plaintext: b64('secret'),
    associated_data: b64('row 7'),
  });
  const raw = Buffer.from(ciphertext.slice('vault:v1:'.length), 'base64');
  const flipped = Buffer.from(raw);
  flipped[14]! ^= 1;
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    [
      'one bit flipped',
      { ciphertext: `vault:v1:${flipped.toString('base64')}`, associated_data: b64('row 7') },
      'k1',
      'invalid_ciphertext',
    ],
    [
      'truncated',
      { ciphertext: `vault:v1:${raw.subarray(0, 20).toString('base64')}`, associated_data: b64('row 7') },
      'k1',
      'invalid_ciphertext',
    ],
    ['another associated data', { ciphertext, associated_data: b64('row 8') }, 'k1', 'invalid_ciphertext'],
    ['no associated data', { ciphertext }, 'k1', 'invalid_ciphertext'],
    ['under another key', { ciphertext, associated_data: b64('row 7') }, 'k2', 'invalid_ciphertext'],
    [
      'a version the key does not have',
      { ciphertext: ciphertext.replace('vault:v1:', 'vault:v9:'), associated_data: b64('row 7') },
      'k1',
      'key_version_disallowed',
    ],
    ['no vault prefix', { ciphertext: raw.toString('base64') }, 'k1', 'invalid_ciphertext'],
  ];
  for (const [what, body, key, code] of cases) {
    const msg = await refused(a, `/v1/transit/decrypt/${key}`, body, code);
    assert.ok(!msg.includes('secret'), `${what}: ${msg}`);
  }
  const good = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/k1', {
    ciphertext,
    associated_data: b64('row 7'),
  });
  assert.equal(Buffer.from(good.plaintext, 'base64').toString(), 'secret');
});

test('a derived key needs its context, and a context opens only what it sealed', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/tenants', { derived: true });
  await refused(a, '/v1/transit/encrypt/tenants', { plaintext: b64('x') }, 'invalid_value');
  const { ciphertext } = await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/encrypt/tenants', {
    plaintext: b64('acme data'),
    context: b64('acme'),
  });
  await refused(
    a,
    '/v1/transit/decrypt/tenants',
    { ciphertext, context: b64('globex') },
    'invalid_ciphertext',
  );
  const p = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/tenants', {
    ciphertext,
    context: b64('acme'),
  });
  assert.equal(Buffer.from(p.plaintext, 'base64').toString(), 'acme data');
  await refused(a, '/v1/transit/keys/sig', { type: 'ed25519', derived: true }, 'unsupported_operation');
  // a context longer than HKDF takes is a 400, in a batch too, never a 500
  const long = Buffer.alloc(1100, 1).toString('base64');
  await refused(
    a,
    '/v1/transit/encrypt/tenants',
    { plaintext: b64('x'), context: long },
    'validation_failed',
  );
  const mid = Buffer.alloc(1024, 1).toString('base64');
  const okBatch = await ok<{ batch_results: Array<{ ciphertext?: string; error?: string }> }>(
    a,
    'POST',
    '/v1/transit/encrypt/tenants',
    {
      batch_input: [{ plaintext: b64('x'), context: mid }],
    },
  );
  assert.match(okBatch.batch_results[0]!.ciphertext!, /^vault:v1:/);
  await refused(
    a,
    '/v1/transit/keys/conv',
    { derived: true, convergent_encryption: true },
    'unsupported_operation',
  );
});

test('signatures verify with node:crypto and openssl-compatible public keys, for every signing key type', async (t) => {
  const a = await buildTestApp(t);
  const input = Buffer.from('model manifest sha256:abc');
  for (const type of ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048']) {
    const name = `sig-${type}`;
    const info = await ok<{ keys: Record<string, { public_key: string }> }>(
      a,
      'POST',
      `/v1/transit/keys/${name}`,
      { type },
    );
    const pub = info.keys['1']!.public_key;
    const key =
      type === 'ed25519'
        ? createPublicKey({
            key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub, 'base64').toString('base64url') },
            format: 'jwk',
          })
        : createPublicKey(pub);
    const { signature } = await ok<{ signature: string }>(a, 'POST', `/v1/transit/sign/${name}/sha2-384`, {
      input: input.toString('base64'),
    });
    assert.match(signature, /^vault:v1:/);
    const sig = Buffer.from(signature.slice('vault:v1:'.length), 'base64');
    const alg = type === 'ed25519' ? null : 'sha384';
    const opts = type.startsWith('rsa') ? { key, padding: 6 /* PSS */, saltLength: -2 /* auto */ } : { key };
    assert.ok(nodeVerify(alg, input, opts, sig), `${type}: an independent verifier accepts the signature`);
    const good = await ok<{ valid: boolean }>(a, 'POST', `/v1/transit/verify/${name}/sha2-384`, {
      input: input.toString('base64'),
      signature,
    });
    assert.equal(good.valid, true, type);
    const other = await ok<{ valid: boolean }>(a, 'POST', `/v1/transit/verify/${name}/sha2-384`, {
      input: b64('model manifest sha256:abd'),
      signature,
    });
    assert.equal(other.valid, false, `${type}: another input does not verify`);
  }
  // ECDSA with JWS marshaling: r‖s, base64url
  const jws = await ok<{ signature: string }>(a, 'POST', '/v1/transit/sign/sig-ecdsa-p256', {
    input: input.toString('base64'),
    marshaling_algorithm: 'jws',
  });
  assert.equal(Buffer.from(jws.signature.slice('vault:v1:'.length), 'base64url').length, 64);
  const v = await ok<{ valid: boolean }>(a, 'POST', '/v1/transit/verify/sig-ecdsa-p256', {
    input: input.toString('base64'),
    signature: jws.signature,
    marshaling_algorithm: 'jws',
  });
  assert.equal(v.valid, true);
  // an AES key cannot sign; a signing key cannot encrypt
  await ok(a, 'POST', '/v1/transit/keys/aes', {});
  await refused(a, '/v1/transit/sign/aes', { input: b64('x') }, 'unsupported_operation');
  await refused(a, '/v1/transit/encrypt/sig-ed25519', { plaintext: b64('x') }, 'unsupported_operation');
});

test('hmac, datakey, random and hash answer in Vault’s forms', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/mac', { type: 'hmac', key_size: 64 });
  const h = await ok<{ hmac: string }>(a, 'POST', '/v1/transit/hmac/mac/sha2-512', { input: b64('hello') });
  assert.match(h.hmac, /^vault:v1:/);
  assert.equal(Buffer.from(h.hmac.slice(9), 'base64').length, 64);
  const yes = await ok<{ valid: boolean }>(a, 'POST', '/v1/transit/verify/mac/sha2-512', {
    input: b64('hello'),
    hmac: h.hmac,
  });
  assert.equal(yes.valid, true);
  const no = await ok<{ valid: boolean }>(a, 'POST', '/v1/transit/verify/mac/sha2-256', {
    input: b64('hello'),
    hmac: h.hmac,
  });
  assert.equal(no.valid, false, 'another hash algorithm does not verify');

  await ok(a, 'POST', '/v1/transit/keys/wrap', {});
  const dk = await ok<{ plaintext: string; ciphertext: string }>(
    a,
    'POST',
    '/v1/transit/datakey/plaintext/wrap',
    { bits: 512 },
  );
  assert.equal(Buffer.from(dk.plaintext, 'base64').length, 64);
  const opened = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/wrap', {
    ciphertext: dk.ciphertext,
  });
  assert.equal(opened.plaintext, dk.plaintext);
  const wrapped = await ok<Record<string, unknown>>(a, 'POST', '/v1/transit/datakey/wrapped/wrap', {});
  assert.equal(wrapped.plaintext, undefined, 'a wrapped data key comes without its plaintext');

  const rnd = await ok<{ random_bytes: string }>(a, 'POST', '/v1/transit/random/48', { format: 'hex' });
  assert.match(rnd.random_bytes, /^[0-9a-f]{96}$/);
  const sum = await ok<{ sum: string }>(a, 'POST', '/v1/transit/hash', {
    input: b64('abc'),
    algorithm: 'sha2-256',
  });
  assert.equal(sum.sum, createHash('sha256').update('abc').digest('hex'));
});

test('batches answer item by item; a bad item gets its own error and the rest are done', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/b', {});
  const enc = await ok<{ batch_results: Array<{ ciphertext: string; reference: string }> }>(
    a,
    'POST',
    '/v1/transit/encrypt/b',
    {
      plaintext: null,
      batch_input: [
        { plaintext: b64('one'), reference: 'r1' },
        { plaintext: b64('two'), reference: 'r2' },
      ],
    },
  );
  assert.deepEqual(
    enc.batch_results.map((r) => r.reference),
    ['r1', 'r2'],
  );
  const dec = await ok<{ batch_results: Array<{ plaintext?: string; error?: string }> }>(
    a,
    'POST',
    '/v1/transit/decrypt/b',
    {
      batch_input: [
        { ciphertext: enc.batch_results[1]!.ciphertext },
        { ciphertext: 'vault:v1:AAAA' },
        { ciphertext: enc.batch_results[0]!.ciphertext },
      ],
    },
  );
  assert.equal(Buffer.from(dec.batch_results[0]!.plaintext!, 'base64').toString(), 'two');
  assert.match(dec.batch_results[1]!.error!, /could not be decrypted/);
  assert.equal(Buffer.from(dec.batch_results[2]!.plaintext!, 'base64').toString(), 'one');
  await refused(
    a,
    '/v1/transit/encrypt/b',
    { batch_input: Array.from({ length: 1001 }, () => ({ plaintext: '' })) },
    'validation_failed',
  );
});

test('keys stay in the vault: not exportable unless made so, protected from deletion, and an exported key works elsewhere', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/keep', {});
  const r = await a.call('GET', '/v1/transit/export/encryption-key/keep');
  assert.equal(r.statusCode, 400, r.body);
  assert.equal((r.json() as { error: { code: string } }).error.code, 'not_exportable');
  const del = await a.call('DELETE', '/v1/transit/keys/keep');
  assert.equal(del.statusCode, 400);
  assert.equal((del.json() as { error: { code: string } }).error.code, 'deletion_not_allowed');
  await ok(a, 'POST', '/v1/transit/keys/keep/config', { deletion_allowed: true });
  const deleted = await a.call('DELETE', '/v1/transit/keys/keep');
  assert.equal(deleted.statusCode, 200, deleted.body);
  assert.equal((await a.call('DELETE', '/v1/transit/keys/keep')).statusCode, 404);
  const gone = await a.call('GET', '/v1/transit/keys/keep');
  assert.equal(gone.statusCode, 404);

  await ok(a, 'POST', '/v1/transit/keys/out', { type: 'ecdsa-p256', exportable: true });
  await refused(a, '/v1/transit/keys/out/config', { exportable: false }, 'invalid_value');
  const ex = await ok<{ keys: Record<string, string> }>(
    a,
    'GET',
    '/v1/transit/export/signing-key/out/latest',
  );
  assert.match(ex.keys['1']!, /BEGIN EC PRIVATE KEY/);
  const pub = await ok<{ keys: Record<string, string> }>(a, 'GET', '/v1/transit/export/public-key/out');
  assert.match(pub.keys['1']!, /BEGIN PUBLIC KEY/);
});

test('a scoped token uses only the transit keys its scope names, and only as Cedar allows', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/orders', {});
  await ok(a, 'POST', '/v1/transit/keys/payroll', {});
  const policy = await a.call('PUT', '/v1/sys/policies/orders-encrypt', {
    policy:
      'permit (principal in Strongroom::Role::"app", action == Strongroom::Action::"transit.encrypt", resource == Strongroom::TransitKey::"orders");\n' +
      'permit (principal in Strongroom::Role::"app", action == Strongroom::Action::"transit.encrypt", resource == Strongroom::TransitKey::"payroll");',
  });
  assert.equal(policy.statusCode, 200, policy.body);
  const created = await a.call('POST', '/v1/auth/apps', {
    name: 'shop',
    roles: ['app'],
    scope: { paths: ['shop/prod'], credentials: ['transit/orders'] },
  });
  assert.equal(created.statusCode, 201, created.body);
  const c = created.json() as AppCredentials;
  const login = await a.inject({
    method: 'POST',
    url: '/v1/auth/app/login',
    payload: { client_id: c.client_id, client_secret: c.client_secret },
  });
  const token = (login.json() as LoginResponse).auth.client_token;

  const enc = await a.call('POST', '/v1/transit/encrypt/orders', { plaintext: b64('x') }, token);
  assert.equal(enc.statusCode, 200, enc.body);
  const { ciphertext } = (enc.json() as Data<{ ciphertext: string }>).data;
  // encrypting is not decrypting
  await refused(a, '/v1/transit/decrypt/orders', { ciphertext }, 'permission_denied', 403, token);
  // Cedar allows payroll, the scope does not name it
  await refused(a, '/v1/transit/encrypt/payroll', { plaintext: b64('x') }, 'permission_denied', 403, token);
  // and no key management
  await refused(a, '/v1/transit/keys/orders/rotate', {}, 'permission_denied', 403, token);
});

test('every transit call is audited, and no plaintext, data key or input reaches the audit log', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'audit.log');
  const a = await buildTestApp(t, { audit: [{ file: { path } }] });
  await ok(a, 'POST', '/v1/transit/keys/aud', {});
  await ok(a, 'POST', '/v1/transit/keys/aud-sig', { type: 'ed25519' });
  const secret = 'PLAINTEXT-MARKER-7d1e';
  const { ciphertext } = await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/encrypt/aud', {
    plaintext: b64(secret),
  });
  await ok(a, 'POST', '/v1/transit/decrypt/aud', { ciphertext });
  await ok(a, 'POST', '/v1/transit/encrypt/aud', { batch_input: [{ plaintext: b64(secret) }] });
  await ok(a, 'POST', '/v1/transit/sign/aud-sig', { input: b64(secret) });
  const dk = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/datakey/plaintext/aud', {});
  const log = readFileSync(path, 'utf8');
  for (const needle of [secret, b64(secret), dk.plaintext])
    assert.ok(!log.includes(needle), `the audit log holds ${needle}`);
  for (const op of ['transit.encrypt', 'transit.decrypt', 'transit.sign', 'transit.datakey']) {
    assert.match(log, new RegExp(`"operation":"${op.replace('.', '\\.')}"`), op);
  }
  assert.ok(!a.logs().includes(b64(secret)), 'nor the server log');
});

test('two rotations at once make two versions: no ciphertext is made under a version that is then lost', async (t) => {
  const a = await buildTestApp(t);
  await ok(a, 'POST', '/v1/transit/keys/race', {});
  const made: string[] = [];
  await Promise.all(
    Array.from({ length: 20 }, async (_, n) => {
      if (n % 2) await ok(a, 'POST', '/v1/transit/keys/race/rotate');
      else
        made.push(
          (
            await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/encrypt/race', {
              plaintext: b64(`m${n}`),
            })
          ).ciphertext,
        );
    }),
  );
  const info = await ok<{ latest_version: number; keys: Record<string, number> }>(
    a,
    'GET',
    '/v1/transit/keys/race',
  );
  assert.equal(info.latest_version, 11);
  assert.equal(Object.keys(info.keys).length, 11);
  for (const c of made) await ok(a, 'POST', '/v1/transit/decrypt/race', { ciphertext: c });
});
