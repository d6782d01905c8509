import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '../../src/sdk/index.ts';
import { tempDir } from '../helpers/app.ts';
import { runCli, startDevServer } from '../helpers/process.ts';

const CHUNK = 4096;

function makeModel(dir: string, extra: Record<string, Buffer | string> = {}): void {
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64 }));
  writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), randomBytes(5 * CHUNK + 100));
  writeFileSync(join(dir, 'model-00002-of-00002.safetensors'), randomBytes(3 * CHUNK));
  writeFileSync(join(dir, 'tokenizer', 'tokenizer.json'), '{"vocab":{}}');
  for (const [name, body] of Object.entries(extra)) writeFileSync(join(dir, name), body);
}

type Manifest = { files: Array<{ path: string; sha256: string; size: number; wrapped_key: string }> };
const manifestOf = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'strongroom-model.json'), 'utf8')) as Manifest;
/** Rewrites the manifest's files, keeping the rest of it. */
const writeManifest = (dir: string, m: Manifest) =>
  writeFileSync(join(dir, 'strongroom-model.json'), JSON.stringify({ ...manifestOf(dir), files: m.files }));

async function refusedByGate(
  cli: (args: string[]) => Promise<{ code: number; all: string }>,
  enc: string,
  reason: RegExp,
): Promise<void> {
  const r = await cli(['model', 'fetch', enc, '--policy', 'gated', '--out', `${enc}-gated-out`]);
  assert.equal(r.code, 1, r.all);
  assert.match(r.all, reason);
}

test('verify, then unwrap: a model’s data keys are released only for the signed files, and every tampering is refused and named', {
  timeout: 180_000,
}, async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const server = await startDevServer(t, data);
  const env = {
    STRONGROOM_ADDR: server.address,
    STRONGROOM_TOKEN: server.root,
  };
  const cli = async (args: string[]) => {
    const r = await runCli(args, { env });
    return { ...r, all: r.stdout + r.stderr };
  };
  const must = async (args: string[]) => {
    const r = await cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.all}`);
    return r;
  };
  await must(['transit', 'key', 'create', 'weights']);
  await must(['transit', 'key', 'create', 'release', '--type', 'ecdsa-p256']);
  await must(['transit', 'key', 'create', 'intruder', '--type', 'ecdsa-p256']);
  await must([
    'model',
    'policy',
    'write',
    'llama',
    '--model',
    'llama-tiny',
    '--key',
    'transit/weights',
    '--signer',
    'transit/release',
  ]);

  /** A model, signed by `signer`, encrypted: its encrypted directory. */
  const prepare = async (
    name: string,
    opts: { signer?: string; extra?: Record<string, Buffer | string>; afterSign?: (d: string) => void } = {},
  ) => {
    const src = join(dir, `${name}-src`);
    makeModel(src, opts.extra);
    await must([
      'model',
      'sign',
      src,
      '--name',
      'llama-tiny',
      '--key',
      `transit/${opts.signer ?? 'release'}`,
    ]);
    opts.afterSign?.(src);
    const enc = join(dir, `${name}-enc`);
    await must([
      'model',
      'encrypt',
      src,
      '--key',
      'transit/weights',
      '--out',
      enc,
      '--chunk-size',
      String(CHUNK),
    ]);
    return { src, enc };
  };

  const good = await prepare('good');
  // the encrypted model holds no plaintext
  const shard = readFileSync(join(good.src, 'model-00001-of-00002.safetensors'));
  assert.ok(
    !readFileSync(join(good.enc, 'model-00001-of-00002.safetensors.enc')).includes(shard.subarray(0, 64)),
  );
  const out = join(dir, 'good-out');
  const fetched = await must([
    'model',
    'fetch',
    good.enc,
    '--policy',
    'llama',
    '--out',
    out,
    '--format',
    'json',
  ]);
  assert.equal(JSON.parse(fetched.stdout).files, 4);
  for (const f of [
    'config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'tokenizer/tokenizer.json',
  ]) {
    assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(good.src, f))), f);
  }

  const refusedByVault = async (what: string, enc: string, reason: RegExp) => {
    const o = join(dir, `out-${what.replaceAll(' ', '-')}`);
    const r = await cli(['model', 'fetch', enc, '--policy', 'llama', '--out', o]);
    assert.equal(r.code, 1, `${what}: ${r.all}`);
    assert.match(r.all, /model refused/, what);
    assert.match(r.all, reason, what);
    assert.match(r.all, /no data key was released/, what);
    assert.ok(
      !existsSync(o) || readdirSync(o, { recursive: true }).length === 0,
      `${what}: nothing was written`,
    );
  };
  const copy = (name: string) => {
    const c = join(dir, `tamper-${name}`);
    cpSync(good.enc, c, { recursive: true });
    return c;
  };

  // 1. one byte of a shard changed after it was signed (then encrypted): its digest is not the signed one
  const changed = await prepare('changed', {
    afterSign: (d) => {
      const f = join(d, 'model-00002-of-00002.safetensors');
      const b = readFileSync(f);
      b[7]! ^= 1;
      writeFileSync(f, b);
    },
  });
  await refusedByVault(
    'one byte of a shard',
    changed.enc,
    /model-00002-of-00002\.safetensors differs from the signed file/,
  );
  // 2. a file added after signing
  const added = await prepare('added', {
    afterSign: (d) => writeFileSync(join(d, 'adapter.safetensors'), 'x'),
  });
  await refusedByVault(
    'a file added',
    added.enc,
    /adapter\.safetensors is in the encrypted model but not signed/,
  );
  // 3. a file removed from the encrypted model
  const removed = copy('removed');
  writeManifest(removed, { files: manifestOf(removed).files.filter((f) => f.path !== 'config.json') });
  await refusedByVault('a file removed', removed, /config\.json is signed but not in the encrypted model/);
  // 4. a file renamed (its entry and its file)
  const renamed = copy('renamed');
  writeManifest(renamed, {
    files: manifestOf(renamed).files.map((f) =>
      f.path === 'tokenizer/tokenizer.json' ? { ...f, path: 'tokenizer/vocab.json' } : f,
    ),
  });
  renameSync(join(renamed, 'tokenizer', 'tokenizer.json.enc'), join(renamed, 'tokenizer', 'vocab.json.enc'));
  await refusedByVault(
    'a file renamed',
    renamed,
    /tokenizer\/tokenizer\.json is signed but not in the encrypted model/,
  );
  // 5. the signature of another model (same signer)
  const otherModel = await prepare('other-model');
  const swapped = copy('swapped-signature');
  cpSync(join(otherModel.enc, 'model.sig'), join(swapped, 'model.sig'));
  await refusedByVault(
    'the signature of another model',
    swapped,
    /config\.json differs from the signed file|model-00001-of-00002\.safetensors differs/,
  );
  // 6. a signer the policy does not allow
  const intruder = await prepare('intruder', { signer: 'intruder' });
  await refusedByVault('a signer not allowed', intruder.enc, /signed by a key that is not allowed/);
  // 7. a pickle-based file
  const pickled = await prepare('pickled', {
    extra: { 'pytorch_model.bin': Buffer.from([0x80, 0x04, 0x95]) },
  });
  await refusedByVault('a pickle file', pickled.enc, /pytorch_model\.bin is a pickle-based file/);
  // 8. two files' data keys swapped in the manifest: each key opens only for its own file
  const keySwap = copy('key-swap');
  const ks = manifestOf(keySwap);
  const [a, b] = [
    ks.files.find((f) => f.path === 'model-00001-of-00002.safetensors')!,
    ks.files.find((f) => f.path === 'model-00002-of-00002.safetensors')!,
  ];
  [a.wrapped_key, b.wrapped_key] = [b.wrapped_key, a.wrapped_key];
  writeManifest(keySwap, ks);
  await refusedByVault(
    'data keys swapped',
    keySwap,
    /model-00001-of-00002\.safetensors: its data key does not open for this file/,
  );
  // 9. a tampered file with its manifest digest edited to the signed one: the key is bound to the real digest
  const forgedDigest = copy('forged-digest');
  const fd = manifestOf(changed.enc);
  const signedDigest = manifestOf(good.enc).files.find(
    (f) => f.path === 'model-00002-of-00002.safetensors',
  )!.sha256;
  writeManifest(forgedDigest, {
    files: manifestOf(forgedDigest).files.map((f) =>
      f.path === 'model-00002-of-00002.safetensors'
        ? { ...fd.files.find((x) => x.path === f.path)!, sha256: signedDigest }
        : f,
    ),
  });
  cpSync(
    join(changed.enc, 'model-00002-of-00002.safetensors.enc'),
    join(forgedDigest, 'model-00002-of-00002.safetensors.enc'),
  );
  await refusedByVault(
    'a forged digest',
    forgedDigest,
    /model-00002-of-00002\.safetensors: its data key does not open for this file/,
  );

  // the ciphertext itself, which the vault never sees: the client hashes the encrypted files it holds and
  // each data key is bound to its file's encrypted digest, so a changed file gets no key either
  const record = CHUNK + 16;
  const encFile = 'model-00001-of-00002.safetensors.enc';
  const chunks = (d: string) => {
    const buf = readFileSync(join(d, encFile));
    const header = buf.subarray(0, 12);
    const list: Buffer[] = [];
    for (let o = 12; o < buf.length; o += record)
      list.push(buf.subarray(o, Math.min(o + record, buf.length)));
    return { header, list };
  };
  // 10-13. one byte of a shard's ciphertext changed, two chunks reordered, a chunk duplicated, the last dropped
  const rewrites: Array<[string, (c: { header: Buffer; list: Buffer[] }, all: Buffer) => Buffer]> = [
    [
      'flipped',
      (_c, all) => {
        const b = Buffer.from(all);
        b[100]! ^= 1;
        return b;
      },
    ],
    ['reordered', (c) => Buffer.concat([c.header, c.list[1]!, c.list[0]!, ...c.list.slice(2)])],
    ['duplicated', (c) => Buffer.concat([c.header, c.list[0]!, c.list[0]!, ...c.list.slice(1)])],
    ['truncated', (c) => Buffer.concat([c.header, ...c.list.slice(0, -1)])],
  ];
  const rewritten = new Map<string, string>();
  for (const [what, rewrite] of rewrites) {
    const d = copy(what);
    writeFileSync(join(d, encFile), rewrite(chunks(d), readFileSync(join(d, encFile))));
    rewritten.set(what, d);
    await refusedByVault(
      what,
      d,
      /model-00001-of-00002\.safetensors: its data key does not open for this file as it is now/,
    );
  }
  const flipped = rewritten.get('flipped')!;
  // 14. a symbolic link that leaves the model directory: never signed nor encrypted
  const linked = join(dir, 'linked-src');
  makeModel(linked);
  symlinkSync('/etc/passwd', join(linked, 'tokenizer', 'special.json'));
  const sign = await cli(['model', 'sign', linked, '--key', 'transit/release']);
  assert.equal(sign.code, 1);
  assert.match(sign.all, /tokenizer\/special\.json is a symbolic link that leaves the model directory/);

  // 16. a policy for another model, with the same key and signer: the signed name is this one's
  await must([
    'model',
    'policy',
    'write',
    'other',
    '--model',
    'other-model',
    '--key',
    'transit/weights',
    '--signer',
    'transit/release',
  ]);
  const elsewhere = await cli([
    'model',
    'fetch',
    good.enc,
    '--policy',
    'other',
    '--out',
    join(dir, 'out-elsewhere'),
  ]);
  assert.equal(elsewhere.code, 1, elsewhere.all);
  assert.match(
    elsewhere.all,
    /the signature is for the model "llama-tiny", and this policy is for "other-model"/,
  );

  // 15. an SBOM gate: a signed SBOM whose library has a critical advisory (an OSV export of our own)
  const osv = join(dir, 'osv');
  mkdirSync(osv);
  writeFileSync(
    join(osv, 'GHSA-test-0001.json'),
    JSON.stringify({
      id: 'GHSA-test-0001',
      summary: 'remote code execution when loading a tokenizer',
      affected: [
        {
          package: { ecosystem: 'PyPI', name: 'tokenizer-tools' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.0.0' }] }],
        },
      ],
      database_specific: { severity: 'CRITICAL' },
    }),
  );
  await must(['model', 'advisories', 'load', '--osv', osv]);
  await must([
    'model',
    'policy',
    'write',
    'gated',
    '--model',
    'llama-tiny',
    '--key',
    'transit/weights',
    '--signer',
    'transit/release',
    '--sbom-fail-on',
    'critical',
  ]);
  const withSbom = async (name: string, requirement: string) => {
    const src = join(dir, `${name}-src`);
    makeModel(src, { 'requirements.txt': `${requirement}\n` });
    await must(['sbom', src, '--out', join(src, 'sbom.cdx.json')]);
    await must(['model', 'sign', src, '--name', 'llama-tiny', '--key', 'transit/release']);
    const enc = join(dir, `${name}-enc`);
    await must([
      'model',
      'encrypt',
      src,
      '--key',
      'transit/weights',
      '--out',
      enc,
      '--chunk-size',
      String(CHUNK),
    ]);
    return enc;
  };
  const vulnerable = await withSbom('vulnerable', 'tokenizer-tools==1.4.2');
  const gated = await cli([
    'model',
    'fetch',
    vulnerable,
    '--policy',
    'gated',
    '--out',
    join(dir, 'out-vulnerable'),
  ]);
  assert.equal(gated.code, 1, gated.all);
  assert.match(
    gated.all,
    /model refused: sbom\.cdx\.json: pkg:pypi\/tokenizer-tools@1\.4\.2 is affected by GHSA-test-0001 \(critical/,
  );
  const patched = await withSbom('patched', 'tokenizer-tools==2.0.0');
  await must(['model', 'fetch', patched, '--policy', 'gated', '--out', join(dir, 'out-patched')]);
  // a model without a signed SBOM does not pass a gate that needs one; an SBOM changed after signing neither
  await refusedByGate(
    cli,
    good.enc,
    /sbom\.cdx\.json: the policy needs a signed SBOM and the model has none/,
  );
  writeFileSync(join(vulnerable, 'sbom.cdx.json'), readFileSync(join(patched, 'sbom.cdx.json')));
  await refusedByGate(cli, vulnerable, /sbom\.cdx\.json differs from the signed file/);

  // every refusal was audited, with its code
  const audit = readFileSync(join(data, 'audit.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; operation?: string; error_code?: string });
  const refusals = audit.filter(
    (e) => e.type === 'response' && e.operation === 'model.release' && e.error_code === 'model_refused',
  );
  assert.equal(refusals.length, 17, 'each refusal by the vault is in the audit log');
  assert.ok(
    !readFileSync(join(data, 'audit.log'), 'utf8').includes('data_key":"'),
    'no data key is in the audit log',
  );
  rmSync(out, { recursive: true });

  // the SDK: models.open streams a file decrypted, never written; a tampered one ends in an error, its
  // last chunk withheld
  const sr = await connect({ addrs: [server.address], token: env.STRONGROOM_TOKEN });
  try {
    const m = await sr.models.open(good.enc, 'llama');
    assert.equal(m.files.length, 4);
    const streamed: Buffer[] = [];
    for await (const c of m.open('model-00001-of-00002.safetensors')) streamed.push(c as Buffer);
    assert.ok(Buffer.concat(streamed).equals(shard));
    m.close();
    await assert.rejects(
      sr.models.open(flipped, 'llama'),
      /model-00001-of-00002\.safetensors: its data key does not open/,
    );
    await assert.rejects(sr.models.open(pickled.enc, 'llama'), /pytorch_model\.bin is a pickle-based file/);
  } finally {
    await sr.session.close?.();
  }
});
