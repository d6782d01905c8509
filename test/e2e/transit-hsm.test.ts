import assert from 'node:assert/strict';
import { test } from 'node:test';
import { softHsmToken, softhsmSkipReason } from '../fixtures/softhsm.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function ok<T>(a: TestApp, method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) {
  const r = await a.call(method, url, body);
  assert.equal(r.statusCode, 200, `${method} ${url}: ${r.body}`);
  return (r.json() as { data: T }).data;
}

test('a transit key held in the HSM: made and used inside SoftHSM through PKCS#11, never exportable, destroyed with the key', {
  skip: softhsmSkipReason(),
  timeout: 60_000,
}, async (t) => {
  const hsm = softHsmToken(t);
  // the PKCS#11 library reads its configuration from the environment of the process that loads it
  const before = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = hsm.env.SOFTHSM2_CONF;
  t.after(() => {
    if (before === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = before;
  });
  const a = await buildTestApp(t, {
    sealSettings: {
      pkcs11: { lib: hsm.lib, token_label: hsm.label, key_label: 'strongroom-root', pin: hsm.pin },
    },
  });
  const made = await ok<{ hsm: boolean; exportable: boolean }>(a, 'POST', '/v1/transit/keys/payments', {
    hsm: true,
  });
  assert.equal(made.hsm, true);
  const { ciphertext } = await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/encrypt/payments', {
    plaintext: b64('card 4111'),
    associated_data: b64('order 7'),
  });
  assert.match(ciphertext, /^vault:v1:/);
  const p = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/payments', {
    ciphertext,
    associated_data: b64('order 7'),
  });
  assert.equal(Buffer.from(p.plaintext, 'base64').toString(), 'card 4111');
  // a tampered ciphertext, or other associated data, gets the same answer as in software
  const raw = Buffer.from(ciphertext.slice(9), 'base64');
  raw[13]! ^= 1;
  for (const body of [
    { ciphertext: `vault:v1:${raw.toString('base64')}`, associated_data: b64('order 7') },
    { ciphertext, associated_data: b64('order 8') },
  ]) {
    const r = await a.call('POST', '/v1/transit/decrypt/payments', body);
    assert.equal(r.statusCode, 400, r.body);
    assert.equal((r.json() as { error: { code: string } }).error.code, 'invalid_ciphertext');
  }
  // rotation makes a second key on the token; both versions decrypt, rewrap moves to the new one
  await ok(a, 'POST', '/v1/transit/keys/payments/rotate');
  const rewrapped = await ok<{ ciphertext: string }>(a, 'POST', '/v1/transit/rewrap/payments', {
    ciphertext,
    associated_data: b64('order 7'),
  });
  assert.match(rewrapped.ciphertext, /^vault:v2:/);
  const dk = await ok<{ plaintext: string; ciphertext: string }>(
    a,
    'POST',
    '/v1/transit/datakey/plaintext/payments',
    {},
  );
  const back = await ok<{ plaintext: string }>(a, 'POST', '/v1/transit/decrypt/payments', {
    ciphertext: dk.ciphertext,
  });
  assert.equal(back.plaintext, dk.plaintext);
  // the token's own listing: two AES keys for this transit key, sensitive and never extractable
  const list = () => hsm.secretKeys();
  const objects = list();
  assert.equal(objects.match(/label:\s+strongroom-transit\/payments\//g)?.length, 2, objects);
  assert.match(objects, /never extractable/);
  // its material never leaves: not exportable, and cannot be made so
  assert.equal((await a.call('GET', '/v1/transit/export/encryption-key/payments')).statusCode, 400);
  assert.equal(
    (await a.call('POST', '/v1/transit/keys/payments/config', { exportable: true })).statusCode,
    400,
  );
  assert.equal(
    (await a.call('POST', '/v1/transit/keys/other', { hsm: true, type: 'ed25519' })).statusCode,
    400,
  );
  // deleting the key destroys its keys on the token
  await ok(a, 'POST', '/v1/transit/keys/payments/config', { deletion_allowed: true });
  assert.equal((await a.call('DELETE', '/v1/transit/keys/payments')).statusCode, 200);
  assert.equal(list().match(/strongroom-transit\/payments\//g), null, 'no key of it is left on the token');
});

test('hsm: true on a vault without an HSM is refused, not silently made in software', async (t) => {
  const a = await buildTestApp(t);
  const r = await a.call('POST', '/v1/transit/keys/x', { hsm: true });
  assert.equal(r.statusCode, 400);
  assert.match(r.body, /needs a vault sealed by an HSM/);
});
