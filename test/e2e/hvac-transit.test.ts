import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { buildTestApp } from '../helpers/app.ts';
import { hasHvac, PYTHON } from '../helpers/hvac.ts';

/** What a Vault user's script does with the transit engine, through hvac's own methods only. */
const SCRIPT = `
import base64, json, os, hvac
c = hvac.Client(url=os.environ['VAULT_ADDR'], token=os.environ['VAULT_TOKEN'])
t = c.secrets.transit
b64 = lambda s: base64.b64encode(s.encode()).decode()
out = {}
t.create_key('orders')
enc = t.encrypt_data('orders', plaintext=b64('card 4111 1111'))
out['ciphertext'] = enc['data']['ciphertext']
out['decrypted'] = base64.b64decode(t.decrypt_data('orders', ciphertext=out['ciphertext'])['data']['plaintext']).decode()
t.rotate_key('orders')
out['latest_version'] = t.read_key('orders')['data']['latest_version']
rw = t.rewrap_data('orders', ciphertext=out['ciphertext'])
out['rewrapped'] = rw['data']['ciphertext']
out['rewrapped_decrypted'] = base64.b64decode(t.decrypt_data('orders', ciphertext=out['rewrapped'])['data']['plaintext']).decode()
t.update_key_configuration('orders', min_decryption_version=2)
try:
    t.decrypt_data('orders', ciphertext=out['ciphertext'])
    out['old_version'] = 'decrypted'
except hvac.exceptions.InvalidRequest:
    out['old_version'] = 'refused'
dk = t.generate_data_key('orders', key_type='plaintext', bits=256)['data']
out['datakey_bytes'] = len(base64.b64decode(dk['plaintext']))
out['datakey_roundtrip'] = t.decrypt_data('orders', ciphertext=dk['ciphertext'])['data']['plaintext'] == dk['plaintext']
wrapped = t.generate_data_key('orders', key_type='wrapped')['data']
out['wrapped_has_plaintext'] = 'plaintext' in wrapped
batch = t.encrypt_data('orders', plaintext=None, batch_input=[{'plaintext': b64('a')}, {'plaintext': b64('b')}])
out['batch'] = len(batch['data']['batch_results'])
for key_type in ['ed25519', 'ecdsa-p256', 'rsa-3072']:
    name = 'signer-' + key_type
    t.create_key(name, key_type=key_type)
    sig = t.sign_data(name, hash_input=b64('release v1'), hash_algorithm='sha2-256')['data']['signature']
    good = t.verify_signed_data(name, hash_input=b64('release v1'), signature=sig, hash_algorithm='sha2-256')['data']['valid']
    bad = t.verify_signed_data(name, hash_input=b64('release v2'), signature=sig, hash_algorithm='sha2-256')['data']['valid']
    out['sign_' + key_type] = [sig.split(':')[1], good, bad]
pss = t.sign_data('signer-rsa-3072', hash_input=b64('x'), signature_algorithm='pkcs1v15')['data']['signature']
out['pkcs1v15'] = t.verify_signed_data('signer-rsa-3072', hash_input=b64('x'), signature=pss, signature_algorithm='pkcs1v15')['data']['valid']
mac = t.generate_hmac('orders', hash_input=b64('m'), algorithm='sha2-512')['data']['hmac']
out['hmac'] = t.verify_signed_data('orders', hash_input=b64('m'), hmac=mac, hash_algorithm='sha2-512')['data']['valid']
out['hash'] = t.hash_data(b64('abc'), algorithm='sha2-256')['data']['sum']
out['random'] = len(base64.b64decode(t.generate_random_bytes(n_bytes=24)['data']['random_bytes']))
try:
    t.export_key('orders', key_type='encryption-key')
    out['export'] = 'exported'
except hvac.exceptions.InvalidRequest:
    out['export'] = 'refused'
try:
    t.delete_key('orders')
    out['delete'] = 'deleted'
except hvac.exceptions.InvalidRequest:
    out['delete'] = 'refused'
print(json.dumps(out))
`;

test('Vault’s Python client (hvac) encrypts, decrypts, rotates, rewraps, makes data keys, signs and verifies unchanged', {
  skip: hasHvac ? false : 'python3-hvac is not installed (.ci/run installs it)',
}, async (t) => {
  const a = await buildTestApp(t);
  const addr = await a.app.listen({ host: '127.0.0.1', port: 0 });
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      PYTHON,
      ['-c', SCRIPT],
      { env: { ...process.env, VAULT_ADDR: addr, VAULT_TOKEN: a.rootToken }, timeout: 60_000 },
      (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
    ),
  );
  const r = JSON.parse(stdout) as Record<string, unknown>;
  assert.match(r.ciphertext as string, /^vault:v1:/);
  assert.equal(r.decrypted, 'card 4111 1111');
  assert.equal(r.latest_version, 2);
  assert.match(r.rewrapped as string, /^vault:v2:/);
  assert.equal(r.rewrapped_decrypted, 'card 4111 1111');
  assert.equal(r.old_version, 'refused', 'min_decryption_version retires version 1');
  assert.equal(r.datakey_bytes, 32);
  assert.equal(r.datakey_roundtrip, true);
  assert.equal(r.wrapped_has_plaintext, false);
  assert.equal(r.batch, 2);
  for (const k of ['ed25519', 'ecdsa-p256', 'rsa-3072']) {
    assert.deepEqual(r[`sign_${k}`], ['v1', true, false], k);
  }
  assert.equal(r.pkcs1v15, true);
  assert.equal(r.hmac, true);
  assert.equal(r.hash, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(r.random, 24);
  assert.equal(r.export, 'refused', 'a key is not exportable by default');
  assert.equal(r.delete, 'refused', 'a key is protected from deletion by default');
});
