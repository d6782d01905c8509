import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { expand, prng } from '../../test/fixtures/scan/corpus.ts';
import { scanGitHistory } from './git.ts';
import { render } from './report.ts';
import { globToRegExp, isBinary, listFiles, parseAllowList, scanPaths, scanText } from './scan.ts';

const rand = prng(7);
const groq = () => expand('gsk_{A:52}', rand);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tree(files: Record<string, string | Buffer>): string {
  const root = mkdtempSync(join(tmpdir(), 'sr-scan-'));
  dirs.push(root);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), c);
  }
  return root;
}
const gitIn = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'commit.gpgsign=false', ...args],
    {
      cwd,
      stdio: 'pipe',
    },
  ).toString();

describe('scan: files', () => {
  test('line and column are 1-based', () => {
    const key = groq();
    const [f] = scanText(`a\nb\n  GROQ=${key}\n`, 'x.env');
    assert.deepEqual([f!.line, f!.column, f!.ruleId, f!.file], [3, 8, 'groq-key', 'x.env']);
    assert.ok(!JSON.stringify(f).includes(key));
  });

  test('binary files, vendored folders and oversized files are skipped', () => {
    const key = groq();
    const root = tree({
      'app.env': `GROQ_API_KEY=${key}\n`,
      'img.bin': Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(key)]),
      'node_modules/pkg/index.js': `k="${key}"`,
      'vendor/x.py': `k="${key}"`,
      'dist/app.js': `k="${key}"`,
      'big.txt': `${'a'.repeat(5 * 1024 * 1024 + 1)}${key}`,
    });
    const { findings, stats } = scanPaths([], { cwd: root });
    assert.deepEqual(
      findings.map((f) => f.file),
      ['app.env'],
    );
    assert.equal(stats.skipped, 2); // img.bin and big.txt
    assert.ok(isBinary(Buffer.from([65, 0])));
  });

  test('inside a git work tree .gitignore is respected, untracked files are scanned', () => {
    const key = groq();
    const root = tree({
      '.gitignore': 'secrets/\n*.local\n',
      'secrets/prod.env': `GROQ=${key}`,
      'dev.local': `GROQ=${key}`,
      'untracked.env': `GROQ=${key}`,
    });
    gitIn(root, 'init', '-q');
    assert.deepEqual(
      listFiles(['.'], root).map((f) => f.slice(root.length + 1)),
      ['.gitignore', 'untracked.env'],
    );
  });

  test('allow-list: fingerprints, rules and path globs', () => {
    const a = groq();
    const b = groq();
    const root = tree({ 'a.env': `GROQ=${a}`, 'docs/b.md': `GROQ=${b}`, 'c.env': `GROQ=${b}` });
    const all = scanPaths([], { cwd: root }).findings;
    assert.equal(all.length, 3);
    const byFp = scanPaths([], { cwd: root, allow: parseAllowList(`# known\n${all[0]!.fingerprint}\n`) });
    assert.deepEqual(byFp.findings.map((f) => f.file).sort(), ['c.env', 'docs/b.md']);
    const byPath = scanPaths([], { cwd: root, allow: parseAllowList('docs/**\n') });
    assert.deepEqual(byPath.findings.map((f) => f.file).sort(), ['a.env', 'c.env']);
    assert.equal(scanPaths([], { cwd: root, allow: parseAllowList('rule:groq-key') }).findings.length, 0);
    assert.ok(globToRegExp('*.env').test('a.env'));
    assert.ok(!globToRegExp('*.env').test('x/a.env'));
    assert.ok(globToRegExp('test/fixtures').test('test/fixtures/scan/x.txt'));
  });
});

describe('scan: git history', () => {
  test('finds a key deleted in a later commit, once per blob, with the commit that added it', async () => {
    const gone = groq();
    const kept = groq();
    const root = tree({ 'old.env': `GROQ=${gone}\n`, 'keep.env': `GROQ=${kept}\n` });
    gitIn(root, 'init', '-q');
    gitIn(root, 'add', '.');
    gitIn(root, 'commit', '-qm', 'add keys');
    const added = gitIn(root, 'rev-parse', 'HEAD').trim();
    rmSync(join(root, 'old.env'));
    writeFileSync(join(root, 'other.txt'), 'nothing here\n');
    gitIn(root, 'add', '-A');
    gitIn(root, 'commit', '-qm', 'remove key');
    const { findings, stats } = await scanGitHistory(root);
    assert.equal(stats.blobs, 3);
    assert.deepEqual(findings.map((f) => [f.file, f.commit, f.line]).sort(), [
      ['keep.env', added, 1],
      ['old.env', added, 1],
    ]);
    for (const fmt of ['table', 'json', 'sarif'] as const) {
      const out = render(fmt, findings, { files: 0, bytes: 0, skipped: 0, blobs: 3 });
      assert.ok(!out.includes(gone) && !out.includes(kept), fmt);
    }
  });

  test('outside a repository it says so', async () => {
    await assert.rejects(scanGitHistory(tree({})), /not inside a git repository/);
  });
});

describe('scan: SARIF', () => {
  test('2.1.0 with ruleId, level, location and partialFingerprints', () => {
    const findings = scanText(`x\nGROQ=${groq()}`, 'src/a.ts');
    const sarif = JSON.parse(render('sarif', findings, { files: 1, bytes: 1, skipped: 0 }));
    assert.equal(sarif.version, '2.1.0');
    const r = sarif.runs[0].results[0];
    assert.equal(r.ruleId, 'groq-key');
    assert.equal(r.level, 'error');
    assert.deepEqual(r.locations[0].physicalLocation, {
      artifactLocation: { uri: 'src/a.ts' },
      region: { startLine: 2, startColumn: 6 },
    });
    assert.equal(r.partialFingerprints['strongroomSecret/v1'], findings[0]!.fingerprint);
    assert.equal(sarif.runs[0].tool.driver.rules[r.ruleIndex].id, 'groq-key');
  });
});
