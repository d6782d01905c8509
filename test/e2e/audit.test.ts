import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CORE_MODULES } from '../../src/assemble/vault.ts';
import { createAudit } from '../../src/audit/module.ts';
import { createCore } from '../../src/core/core.ts';
import { secretsModule } from '../../src/engines/kv/kv.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';
import { runCli } from '../helpers/process.ts';

/**
 * A real audit file, written by the real broker behind a real core (several
 * hundred entries, checkpoints every 50 lines, a closing checkpoint), then
 * tampered with in every way that matters. `strongroom audit verify`, run as a
 * CLI process, must fail with exit code 1 and name the first bad entry.
 */

let dir: string;
let original: string[];
let pub: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strongroom-audit-e2e-'));
  const keyFile = join(dir, 'unseal.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const path = join(dir, 'audit.log');
  const audit = createAudit([{ file: { path } }], { checkpoint: { every: 50, interval_seconds: 0 } });
  const secrets = secretsModule();
  const core = createCore({
    storage: createMemoryStorage(),
    seal: { static: { key_file: keyFile } },
    clock: systemClock,
    audit: audit.broker,
    modules: [...CORE_MODULES, audit.module, secrets.module],
    ports: secrets.ports,
  });
  await core.start();
  const req = (i: number) => ({ request_id: `req-${i}`, client_address: '192.0.2.7' });
  const { root_token: token } = await core.invoke<{ root_token: string }>('sys.init', {}, req(0));
  const as = (i: number) => ({ ...req(i), token });
  await core.invoke('project.create', { name: 'demo' }, as(1));
  for (let i = 0; i < 200; i++) {
    const name = `KEY_${i % 40}`;
    if (i % 3 === 0)
      await core.invoke('secret.write', { project: 'demo', env: 'dev', name, value: `v-${i}` }, as(i + 2));
    else await core.invoke('secret.read', { project: 'demo', env: 'dev', name }, as(i + 2)).catch(() => {});
  }
  await audit.close();
  core.sealNow();
  original = readFileSync(path, 'utf8').split('\n').slice(0, -1);
  pub = readFileSync(`${path}.pub`, 'utf8');
  assert.ok(original.length > 400, `${original.length} lines`);
});

after(() => rmSync(dir, { recursive: true, force: true }));

const parsed = (i: number) => JSON.parse(original[i]!) as { seq: number; type: string; signature?: string };
const isCheckpoint = (i: number) => parsed(i).type === 'checkpoint';
/** 0-based index of an entry line in the middle whose neighbour is an entry too. */
function middleEntry(from: number): number {
  let i = from;
  while (isCheckpoint(i) || isCheckpoint(i + 1) || isCheckpoint(i - 1)) i++;
  return i;
}

let n = 0;
/** Writes a tampered copy (and the public key next to it), returns its path. */
function tampered(lines: string[], opts: { ending?: string; pub?: string } = {}): string {
  const path = join(dir, `tampered-${++n}.log`);
  writeFileSync(path, lines.join('\n') + (opts.ending ?? '\n'));
  writeFileSync(`${path}.pub`, opts.pub ?? pub);
  return path;
}

interface Problem {
  line: number;
  seq: number | null;
  kind: string;
  message: string;
}

async function verify(path: string, ...extra: string[]) {
  const [text, json] = await Promise.all([
    runCli(['audit', 'verify', path, ...extra]),
    runCli(['--format', 'json', 'audit', 'verify', path, ...extra]),
  ]);
  const report = JSON.parse(json.stdout) as { ok: boolean; problem: Problem | null; entries: number };
  assert.equal(text.code, json.code);
  return { code: text.code, stdout: text.stdout, stderr: text.stderr, report };
}

async function expectProblem(
  path: string,
  want: { line: number; kind: string; seq?: number },
  ...extra: string[]
) {
  const r = await verify(path, ...extra);
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.report.ok, false);
  assert.equal(r.report.problem?.kind, want.kind, r.report.problem?.message);
  assert.equal(r.report.problem?.line, want.line, r.report.problem?.message);
  if (want.seq !== undefined) assert.equal(r.report.problem?.seq, want.seq);
  assert.match(r.stdout, new RegExp(`^FAILED .*\\n[\\s\\S]*First bad entry\\s+line ${want.line}\\b`));
  assert.match(r.stderr, /the audit log failed verification/);
  return r.report.problem!;
}

test('the untouched file verifies: chain intact, every checkpoint signed, nothing uncovered', async () => {
  const r = await verify(tampered(original));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^OK /);
  assert.equal(r.report.ok, true);
  assert.ok(r.report.entries > 400);
  assert.equal(parsed(original.length - 1).type, 'checkpoint', 'a clean shutdown ends with a checkpoint');
});

test('an edited field of one entry is named as that entry', async () => {
  const k = middleEntry(137);
  const lines = [...original];
  lines[k] = lines[k]!.replace(/"client_address":"[^"]*"/, '"client_address":"203.0.113.66"');
  assert.notEqual(lines[k], original[k]);
  const p = await expectProblem(tampered(lines), { line: k + 1, kind: 'edited', seq: parsed(k).seq });
  assert.match(p.message, /was changed after it was written/);
});

test('an edited seq is named as that entry', async () => {
  const k = middleEntry(60);
  const lines = [...original];
  lines[k] = lines[k]!.replace(/^\{"seq":\d+/, '{"seq":99999');
  await expectProblem(tampered(lines), { line: k + 1, kind: 'edited' });
});

test('a deleted entry is named by the line where the gap is', async () => {
  const k = middleEntry(211);
  const lines = original.filter((_, i) => i !== k);
  const p = await expectProblem(tampered(lines), { line: k + 1, kind: 'removed', seq: parsed(k + 1).seq });
  assert.match(p.message, new RegExp(`seq ${parsed(k).seq} is missing`));
});

test('a deleted first entry is found', async () => {
  await expectProblem(tampered(original.slice(1)), { line: 1, kind: 'removed' });
});

test('two swapped entries are named as reordered at the first of them', async () => {
  const k = middleEntry(300);
  const lines = [...original];
  [lines[k], lines[k + 1]] = [lines[k + 1]!, lines[k]!];
  const p = await expectProblem(tampered(lines), { line: k + 1, kind: 'reordered', seq: parsed(k + 1).seq });
  assert.match(p.message, /entries were reordered/);
});

test('a tail truncated past a checkpoint is reported: the entries after the last checkpoint are not covered', async () => {
  // drop the closing checkpoint and the last few entries
  const lines = original.slice(0, -6);
  let last = lines.length - 1;
  while (JSON.parse(lines[last]!).type !== 'checkpoint') last--;
  const r = await verify(tampered(lines));
  assert.equal(r.code, 1);
  const p = r.report.problem!;
  assert.equal(p.kind, 'uncovered');
  assert.equal(p.line, last + 2, 'the first entry after the last checkpoint');
  assert.match(
    p.message,
    new RegExp(`^${lines.length - last - 1} entries after the last checkpoint \\(line ${last + 1}`),
  );
  assert.match(p.message, /not covered by a signature/);
  // a log still being written may have such a tail: --live makes it a warning
  const live = await verify(tampered(lines), '--live');
  assert.equal(live.code, 0);
  assert.match(
    live.stderr,
    /warning: \d+ entries after the last checkpoint .* are not covered by a signature/,
  );
});

test('a file cut in the middle of a line is reported as truncated', async () => {
  const lines = original.slice(0, 250);
  const path = tampered([...lines, original[250]!.slice(0, 40)], { ending: '' });
  await expectProblem(path, { line: 251, kind: 'truncated' });
});

test('an edited checkpoint signature is named as a bad signature', async () => {
  const k = original.findIndex((_, i) => isCheckpoint(i));
  const lines = [...original];
  const sig = parsed(k).signature!;
  const flipped = (sig[5] === 'A' ? 'B' : 'A') + sig.slice(6);
  lines[k] = lines[k]!.replace(sig, sig.slice(0, 5) + flipped);
  await expectProblem(tampered(lines), { line: k + 1, kind: 'bad_signature' });
});

test('an edited checkpoint field is caught by its signature', async () => {
  const k = original.findIndex((_, i) => i > 200 && isCheckpoint(i));
  const lines = [...original];
  lines[k] = lines[k]!.replace(/"signed_at":"[^"]*"/, '"signed_at":"2020-01-01T00:00:00.000Z"');
  await expectProblem(tampered(lines), { line: k + 1, kind: 'bad_signature' });
});

test('an entry edited and the chain recomputed after it is caught by the next checkpoint', async () => {
  const { createHash } = await import('node:crypto');
  const k = middleEntry(120);
  const lines = [...original];
  lines[k] = lines[k]!.replace(/"client_address":"[^"]*"/, '"client_address":"203.0.113.66"');
  // the attacker rewrites every later prev (and chain_head) so the links hold again
  for (let i = k + 1; i < lines.length; i++) {
    const prev = createHash('sha256')
      .update(lines[i - 1]!)
      .digest('hex');
    lines[i] = lines[i]!.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${prev}"`).replace(
      /"chain_head":"[0-9a-f]{64}"/,
      `"chain_head":"${prev}"`,
    );
  }
  let cp = k + 1;
  while (!isCheckpoint(cp)) cp++;
  await expectProblem(tampered(lines), { line: cp + 1, kind: 'bad_signature' });
});

test('a replaced public key file makes the first checkpoint fail', async () => {
  const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const first = original.findIndex((_, i) => isCheckpoint(i));
  const p = await expectProblem(tampered(original, { pub: other }), {
    line: first + 1,
    kind: 'bad_signature',
  });
  assert.match(p.message, /not among the public keys given/);
});

test('--public-key overrides the file next to the log', async () => {
  const keyPath = join(dir, 'server.pub');
  writeFileSync(keyPath, pub);
  const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const path = tampered(original, { pub: other });
  const ok = await verify(path, '--public-key', keyPath);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const copy = join(dir, 'nokey.log');
  copyFileSync(path, copy);
  const r = await verify(copy);
  assert.equal(r.code, 1);
  assert.equal(r.report.problem?.kind, 'no_public_key');
});

test('a file that is not an audit log fails with a clear message; a missing file is an error', async () => {
  const junk = join(dir, 'junk.log');
  writeFileSync(junk, 'hello\n');
  await expectProblem(junk, { line: 1, kind: 'malformed' });
  const missing = await runCli(['audit', 'verify', join(dir, 'missing.log')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ENOENT|no such file/);
});
