import assert from 'node:assert/strict';
import { createPublicKey, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  cpSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { keyHint } from '../../src/api/model-signing.ts';
import { tempDir } from '../helpers/app.ts';
import { runCli, startDevServer } from '../helpers/process.ts';

function makeModel(dir: string): void {
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64 }));
  writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), randomBytes(200_000));
  writeFileSync(join(dir, 'model-00002-of-00002.safetensors'), randomBytes(150_000));
  writeFileSync(join(dir, 'tokenizer', 'tokenizer.json'), '{"vocab":{}}');
}

test('a model signed through a transit key verifies with the independent sigstore-js verifier, and every tampering is named', {
  timeout: 90_000,
}, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const env = {
    STRONGROOM_ADDR: server.address,
    STRONGROOM_TOKEN: server.root,
  };
  const cli = (args: string[]) => runCli(args, { env });
  assert.equal((await cli(['transit', 'key', 'create', 'release', '--type', 'ecdsa-p256'])).code, 0);
  assert.equal((await cli(['transit', 'key', 'create', 'other', '--type', 'ecdsa-p256'])).code, 0);
  const pemOf = async (k: string) =>
    JSON.parse((await cli(['transit', 'key', 'read', k, '--format', 'json'])).stdout).keys['1']
      .public_key as string;
  const pub = join(dir, 'release.pub.pem');
  writeFileSync(pub, await pemOf('release'));

  const model = join(dir, 'llama-tiny');
  makeModel(model);
  const signed = await cli(['model', 'sign', model, '--key', 'transit/release', '--format', 'json']);
  assert.equal(signed.code, 0, signed.stderr);
  assert.equal(JSON.parse(signed.stdout).files, 4);
  const sigFile = join(model, 'model.sig');
  const bundle = JSON.parse(readFileSync(sigFile, 'utf8'));
  assert.equal(bundle.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
  assert.equal(statement.predicateType, 'https://model_signing/signature/v1.0');
  assert.deepEqual(
    statement.predicate.resources.map((r: { name: string }) => r.name),
    [
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'tokenizer/tokenizer.json',
    ],
  );

  // the independent verifier (sigstore-js) accepts what we signed, with the key as its only trust
  const key = createPublicKey(readFileSync(pub, 'utf8'));
  const trust = toTrustMaterial(
    {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [],
      certificateAuthorities: [],
      ctlogs: [],
      timestampAuthorities: [],
    } as never,
    (hint: string) => {
      if (hint !== keyHint(key)) throw new Error(`unknown key ${hint}`);
      return { publicKey: key, validFor: () => true };
    },
  );
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  assert.ok(verifier.verify(toSignedEntity(bundleFromJSON(bundle))).key, 'sigstore-js verifies the bundle');
  const forged = structuredClone(bundle);
  forged.dsseEnvelope.payload = Buffer.from(
    JSON.stringify({ ...statement, subject: [{ ...statement.subject[0], name: 'evil' }] }),
  ).toString('base64');
  assert.throws(
    () => verifier.verify(toSignedEntity(bundleFromJSON(forged))),
    'sigstore-js refuses a changed statement',
  );

  const ok = await cli(['model', 'verify', model, '--key', pub]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /Verified\s+true/);
  const viaVault = await cli(['model', 'verify', model, '--key', 'transit/release']);
  assert.equal(viaVault.code, 0, viaVault.stdout + viaVault.stderr);

  // the tamper matrix, each on a fresh copy: the reason names the file
  const cases: Array<[string, (d: string) => void, RegExp, string[]?]> = [
    [
      'one byte of a shard',
      (d) => {
        const f = join(d, 'model-00002-of-00002.safetensors');
        const b = readFileSync(f);
        b[b.length - 1]! ^= 1;
        writeFileSync(f, b);
      },
      /model-00002-of-00002\.safetensors differs from the signed file/,
    ],
    ['a file added', (d) => writeFileSync(join(d, 'extra.bin'), 'x'), /extra\.bin was added/],
    ['a file removed', (d) => rmSync(join(d, 'config.json')), /config\.json is signed but missing/],
    [
      'a file renamed',
      (d) => renameSync(join(d, 'tokenizer', 'tokenizer.json'), join(d, 'tokenizer', 'vocab.json')),
      /tokenizer\/tokenizer\.json was renamed to tokenizer\/vocab\.json/,
    ],
    [
      'a symlink leaving the directory',
      (d) => symlinkSync('/etc/passwd', join(d, 'tokenizer', 'special.json')),
      /tokenizer\/special\.json is a symbolic link that leaves the model directory/,
    ],
    ['a byte appended', (d) => appendFileSync(join(d, 'config.json'), ' '), /config\.json differs/],
    ['a key not allowed', () => {}, /signed by a key that is not allowed/, ['--key', 'transit/other']],
  ];
  for (const [what, change, reason, keyArgs] of cases) {
    const copy = join(dir, `copy-${what.replaceAll(' ', '-')}`);
    cpSync(model, copy, { recursive: true });
    change(copy);
    const r = await cli(['model', 'verify', copy, ...(keyArgs ?? ['--key', pub]), '--format', 'json']);
    assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(JSON.parse(r.stdout).reason, reason, what);
  }
  // the signature of another model, signed by the same key
  const other = join(dir, 'other-model');
  makeModel(other);
  assert.equal((await cli(['model', 'sign', other, '--key', 'transit/release'])).code, 0);
  const swapped = await cli([
    'model',
    'verify',
    model,
    '--signature',
    join(other, 'model.sig'),
    '--key',
    pub,
    '--format',
    'json',
  ]);
  assert.equal(swapped.code, 1);
  assert.match(JSON.parse(swapped.stdout).reason, /differs from the signed file/);
});
