import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/app.ts';
import { runCli, startDevServer } from '../helpers/process.ts';

/** A CA (a trust domain's) and a workload's SVID with its SPIFFE ID, made by openssl, not by us. */
function pki(dir: string, name: string, spiffeId: string): { ca: string; cert: string; key: string } {
  const f = (x: string) => join(dir, `${name}-${x}`);
  const ssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key')]);
  ssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-subj',
    `/CN=${name} CA`,
    '-days',
    '2',
    '-out',
    f('ca.pem'),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  ssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('leaf.key')]);
  ssl(['req', '-new', '-key', f('leaf.key'), '-subj', '/O=SPIFFE', '-out', f('leaf.csr')]);
  writeFileSync(
    f('ext.cnf'),
    `subjectAltName=URI:${spiffeId}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n`,
  );
  ssl([
    'x509',
    '-req',
    '-in',
    f('leaf.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    f('leaf.pem'),
    '-extfile',
    f('ext.cnf'),
  ]);
  return { ca: f('ca.pem'), cert: f('leaf.pem'), key: f('leaf.key') };
}

test('a model signed with a workload’s X.509-SVID verifies against the trust bundle and the allowed SPIFFE IDs, locally and in the vault', {
  timeout: 90_000,
}, async (t) => {
  const dir = tempDir(t);
  const trainer = pki(dir, 'prod', 'spiffe://prod.example/ml/trainer');
  const other = pki(dir, 'dev', 'spiffe://dev.example/ml/trainer');
  const model = join(dir, 'tiny');
  mkdirSync(model);
  writeFileSync(join(model, 'config.json'), '{"model_type":"llama"}');
  writeFileSync(join(model, 'model.safetensors'), randomBytes(50_000));

  const signed = await runCli([
    'model',
    'sign',
    model,
    '--svid',
    trainer.cert,
    '--svid-key',
    trainer.key,
    '--name',
    'tiny',
  ]);
  assert.equal(signed.code, 0, signed.stderr);
  const bundle = JSON.parse(readFileSync(join(model, 'model.sig'), 'utf8'));
  assert.equal(bundle.verificationMaterial.x509CertificateChain.certificates.length, 1);
  // the chain carries the openssl-made certificate as it is
  const pem = readFileSync(trainer.cert, 'utf8').replace(/-----[^-]+-----|\s/g, '');
  assert.equal(bundle.verificationMaterial.x509CertificateChain.certificates[0].rawBytes, pem);

  const verify = (args: string[]) => runCli(['model', 'verify', model, '--format', 'json', ...args]);
  const ok = await verify(['--trust-bundle', trainer.ca, '--signer', 'spiffe://prod.example/ml/trainer']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal(JSON.parse(ok.stdout).signer, 'spiffe://prod.example/ml/trainer');
  const prefix = await verify(['--trust-bundle', trainer.ca, '--signer', 'spiffe://prod.example/ml/*']);
  assert.equal(prefix.code, 0, prefix.stdout);
  for (const [what, args, reason] of [
    [
      'another SPIFFE ID',
      ['--trust-bundle', trainer.ca, '--signer', 'spiffe://prod.example/ml/evaluator'],
      /signed by spiffe:\/\/prod\.example\/ml\/trainer, which is not an allowed signer/,
    ],
    ['another trust domain’s bundle', ['--trust-bundle', other.ca], /does not lead to the trust bundle/],
    ['a public key only', ['--key', trainer.ca], /no trust bundle was given/],
  ] as const) {
    const r = await verify([...args]);
    assert.equal(r.code, 1, `${what}: ${r.stdout}`);
    assert.match(JSON.parse(r.stdout).reason, reason, what);
  }
  // a changed file is still named
  writeFileSync(join(model, 'config.json'), '{"model_type":"evil"}');
  const changed = await verify(['--trust-bundle', trainer.ca]);
  assert.match(JSON.parse(changed.stdout).reason, /config\.json differs/);
  writeFileSync(join(model, 'config.json'), '{"model_type":"llama"}');
  // a key that is not the certificate's is refused when signing
  const mismatch = await runCli(['model', 'sign', model, '--svid', trainer.cert, '--svid-key', other.key]);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /not the SVID certificate’s/);

  // the vault: a policy that trusts the prod bundle for the trainer's SPIFFE ID releases the keys
  const server = await startDevServer(t, join(dir, 'data'));
  const env = {
    STRONGROOM_ADDR: server.address,
    STRONGROOM_TOKEN: server.root,
  };
  const cli = (args: string[]) => runCli(args, { env });
  assert.equal((await cli(['transit', 'key', 'create', 'weights'])).code, 0);
  const enc = join(dir, 'tiny.enc');
  const e = await cli(['model', 'encrypt', model, '--key', 'transit/weights', '--out', enc]);
  assert.equal(e.code, 0, e.stderr);
  const policy = (name: string, id: string) =>
    cli([
      'model',
      'policy',
      'write',
      name,
      '--model',
      'tiny',
      '--key',
      'transit/weights',
      '--trust-bundle',
      trainer.ca,
      '--spiffe-id',
      id,
    ]);
  assert.equal((await policy('tiny', 'spiffe://prod.example/ml/trainer')).code, 0);
  assert.equal((await policy('tiny-evaluated', 'spiffe://prod.example/ml/evaluator')).code, 0);
  const fetched = await cli(['model', 'fetch', enc, '--policy', 'tiny', '--out', join(dir, 'out')]);
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.ok(
    readFileSync(join(dir, 'out', 'model.safetensors')).equals(
      readFileSync(join(model, 'model.safetensors')),
    ),
  );
  const refused = await cli([
    'model',
    'fetch',
    enc,
    '--policy',
    'tiny-evaluated',
    '--out',
    join(dir, 'out2'),
  ]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /model refused: the signature: the model was signed by spiffe:\/\/prod\.example\/ml\/trainer, which is not an allowed signer/,
  );
});
