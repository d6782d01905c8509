import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/app.ts';
import { runCli, startDevServer } from '../helpers/process.ts';

test('CLI: transit keys, encryption of a binary file, and a signature openssl verifies', {
  timeout: 60_000,
}, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, dir);
  const root = server.root;
  const env = { STRONGROOM_ADDR: server.address, STRONGROOM_TOKEN: root };
  const cli = (args: string[], input?: string) =>
    runCli(args, { env, ...(input === undefined ? {} : { input }) });

  const made = await cli(['transit', 'key', 'create', 'files', '--format', 'json']);
  assert.equal(made.code, 0, made.stderr);
  assert.equal(JSON.parse(made.stdout).type, 'aes256-gcm96');

  // a binary file: every byte value, and more than one read's worth
  const file = join(dir, 'weights.bin');
  const bytes = randomBytes(300_000);
  writeFileSync(file, bytes);
  const enc = await cli(['transit', 'encrypt', 'files', '--file', file, '--aad', 'weights.bin']);
  assert.equal(enc.code, 0, enc.stderr);
  const ciphertext = enc.stdout.trim();
  assert.match(ciphertext, /^vault:v1:/);
  const dec = await cli(
    ['transit', 'decrypt', 'files', '--aad', 'weights.bin', '--format', 'json'],
    enc.stdout,
  );
  assert.equal(dec.code, 0, dec.stderr);
  assert.ok(Buffer.from(JSON.parse(dec.stdout).plaintext, 'base64').equals(bytes));
  const wrongAad = await cli(['transit', 'decrypt', 'files', '--aad', 'other.bin'], ciphertext);
  assert.equal(wrongAad.code, 1);
  assert.match(wrongAad.stderr, /could not be decrypted/);
  // text through standard input comes back as it went in
  const small = await cli(['transit', 'encrypt', 'files'], 'hello transit\n');
  const back = await cli(['transit', 'decrypt', 'files', small.stdout.trim()]);
  assert.equal(back.stdout, 'hello transit\n');

  const rot = await cli(['transit', 'key', 'rotate', 'files']);
  assert.equal(rot.code, 0, rot.stderr);
  assert.match(rot.stdout, /Latest version\s+2/);
  const rw = await cli(['transit', 'rewrap', 'files', small.stdout.trim()]);
  assert.match(rw.stdout.trim(), /^vault:v2:/);

  // a signature made by the vault, checked by openssl with the public key the vault shows
  assert.equal((await cli(['transit', 'key', 'create', 'release', '--type', 'ecdsa-p256'])).code, 0);
  const info = JSON.parse((await cli(['transit', 'key', 'read', 'release', '--format', 'json'])).stdout);
  const pub = join(dir, 'release.pub.pem');
  writeFileSync(pub, info.keys['1'].public_key);
  const signed = await cli(['transit', 'sign', 'release', '--file', file]);
  assert.equal(signed.code, 0, signed.stderr);
  const sig = join(dir, 'weights.sig');
  writeFileSync(sig, Buffer.from(signed.stdout.trim().slice('vault:v1:'.length), 'base64'));
  const out = execFileSync('openssl', [
    'dgst',
    '-sha256',
    '-verify',
    pub,
    '-signature',
    sig,
    file,
  ]).toString();
  assert.match(out, /Verified OK/);
  const ok = await cli(['transit', 'verify', 'release', signed.stdout.trim(), '--file', file]);
  assert.equal(ok.code, 0, ok.stderr);
  writeFileSync(file, Buffer.concat([bytes, Buffer.from([0])]));
  const bad = await cli(['transit', 'verify', 'release', signed.stdout.trim(), '--file', file]);
  assert.equal(bad.code, 1, 'a changed file does not verify');
  assert.match(bad.stdout, /NOT valid/);

  const del = await cli(['transit', 'key', 'delete', 'files']);
  assert.equal(del.code, 1);
  assert.match(del.stderr, /deletion_allowed/);
});
