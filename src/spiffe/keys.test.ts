import assert from 'node:assert/strict';
import { generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { test } from 'node:test';
import { SpiffeError } from './errors.ts';
import {
  assertAcceptablePublicKey,
  describeKey,
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateEcKeyPair,
  importPrivateKeyPem,
  importPublicKeyPem,
  toCryptoKey,
  toKeyObject,
} from './keys.ts';

test('a generated P-256 pair survives a PEM round trip and converts between CryptoKey and KeyObject', async () => {
  const { privateKey, publicKey } = await generateEcKeyPair();
  assert.equal(describeKey(privateKey), 'EC P-256');
  const priv = importPrivateKeyPem(exportPrivateKeyPem(privateKey));
  const pub = importPublicKeyPem(exportPublicKeyPem(publicKey));
  assert.equal(exportPublicKeyPem(priv), exportPublicKeyPem(publicKey));
  const sig = sign('sha256', Buffer.from('hello'), toKeyObject(priv));
  assert.ok(verify('sha256', Buffer.from('hello'), toKeyObject(pub), sig));
  const ko = toKeyObject(privateKey);
  assert.ok(ko instanceof KeyObject);
  assert.equal(toCryptoKey(ko).type, 'private');
  assert.equal(toCryptoKey(toKeyObject(publicKey)).usages.join(), 'verify');
});

test('P-384 keys are supported, weak or odd keys are not', async () => {
  assert.equal(describeKey((await generateEcKeyPair('P-384')).publicKey), 'EC P-384');
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.throws(() => assertAcceptablePublicKey(rsa1024.publicKey), /at least 2048/);
  const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  assert.throws(
    () => assertAcceptablePublicKey(secp256k1.publicKey),
    (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_key',
  );
  assert.throws(
    () => assertAcceptablePublicKey(generateKeyPairSync('ed25519').privateKey),
    /public key is required/,
  );
  assertAcceptablePublicKey(generateKeyPairSync('ed25519').publicKey);
});

test('bad PEM is an invalid_key error that does not echo the input', () => {
  assert.throws(
    () => importPrivateKeyPem('-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----'),
    (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_key' && !e.message.includes('c2VjcmV0'),
  );
});
