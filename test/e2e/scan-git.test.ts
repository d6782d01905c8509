import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { expand, prng } from '../fixtures/scan/corpus.ts';
import { runCli } from '../helpers/process.ts';

/**
 * Issue 13 item 9: `strongroom scan PATH --git` reads the history of the repository that holds PATH,
 * not of the one the command runs in, and says which repository it read. Run as a real process from a
 * working folder that is another git repository (with its own key in its history), and from a folder
 * outside any repository.
 */

const rand = prng(913);
const KEYS = {
  target: expand('hf_{A:34}', rand),
  targetCurrent: expand('gsk_{A:52}', rand),
  other: expand('sk-ant-api03-{B:93}AA', rand),
};

const git = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'commit.gpgsign=false', ...args],
    { cwd, stdio: 'pipe' },
  )
    .toString()
    .trim();

function write(root: string, files: Record<string, string>): void {
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), c);
  }
}

/** A repository whose history holds `key` in `file` (added, then deleted) and whose tree holds `current`. */
function repoWithHistory(prefix: string, file: string, key: string, current: Record<string, string>) {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  git(dir, 'init', '-q');
  write(dir, { [file]: `TOKEN=${key}\n`, 'README.md': '# hi\n', ...current });
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'add');
  const added = git(dir, 'rev-parse', 'HEAD');
  rmSync(join(dir, file));
  git(dir, 'add', '-A');
  git(dir, 'commit', '-qm', 'remove');
  return { dir, added };
}

interface Json {
  findings: { file: string; ruleId: string; commit?: string; fingerprint: string }[];
  summary: { files: number; blobs?: number; repositories?: string[] };
}

let target: { dir: string; added: string };
let other: { dir: string; added: string };
let outside = '';

before(() => {
  target = repoWithHistory('sr-scan-target-', 'old/hf.env', KEYS.target, {
    'app/.env': `GROQ_API_KEY=${KEYS.targetCurrent}\n`,
    'sub/README.md': 'nothing here\n',
  });
  other = repoWithHistory('sr-scan-other-', 'secrets/anthropic.env', KEYS.other, {});
  outside = realpathSync(mkdtempSync(join(tmpdir(), 'sr-scan-outside-')));
  // not a repository: make sure no parent folder is one either
  assert.throws(() => git(outside, 'rev-parse', '--git-dir'));
});
after(() => {
  for (const d of [target?.dir, other?.dir, outside]) if (d) rmSync(d, { recursive: true, force: true });
});

async function scanJson(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = await runCli(['scan', '--format', 'json', ...args], { cwd, env });
  assert.equal(r.code, 1, `exit 1 (findings) expected:\n${r.stdout}\n${r.stderr}`);
  for (const k of Object.values(KEYS)) assert.ok(!(r.stdout + r.stderr).includes(k), 'no full key printed');
  return JSON.parse(r.stdout) as Json;
}

const historyFindings = (j: Json) =>
  j.findings.filter((f) => f.commit !== undefined && f.commit !== '').map((f) => `${f.file} ${f.commit}`);

describe('strongroom scan PATH --git (CLI)', () => {
  test("run from inside another repository, it reads PATH's history (and none of the other's), and names it", async () => {
    const j = await scanJson([target.dir, '--git'], other.dir);
    // paths are relative to the folder the scan runs in, as working-tree findings are
    assert.deepEqual(historyFindings(j), [
      `${relative(other.dir, join(target.dir, 'old/hf.env'))} ${target.added}`,
    ]);
    assert.ok(
      !j.findings.some((f) => f.ruleId === 'anthropic-key'),
      "the working folder's history is not scanned",
    );
    assert.deepEqual(j.summary.repositories, [target.dir]);
    assert.equal(
      j.findings.filter((f) => f.ruleId === 'groq-key').length,
      1,
      'a key in the working tree is reported once, not again from history',
    );
  });

  test('run from a folder outside any repository, it reads PATH’s history', async () => {
    const j = await scanJson([target.dir, '--git'], outside);
    assert.deepEqual(historyFindings(j), [
      `${relative(outside, join(target.dir, 'old/hf.env'))} ${target.added}`,
    ]);
    assert.deepEqual(j.summary.repositories, [target.dir]);
  });

  test('a subfolder or a file names its repository, whose whole history is read', async () => {
    for (const p of [join(target.dir, 'sub'), join(target.dir, 'sub/README.md')]) {
      const j = await scanJson([p, '--git'], outside);
      assert.deepEqual(j.summary.repositories, [target.dir], p);
      assert.deepEqual(
        j.findings.map((f) => f.ruleId).sort(),
        ['groq-key', 'huggingface-token'],
        `${p}: the key outside the subfolder, still in every clone, is reported from history`,
      );
    }
  });

  test('two PATHs in two repositories: both histories, both named', async () => {
    const j = await scanJson([target.dir, other.dir, '--git'], outside);
    assert.deepEqual(j.summary.repositories, [target.dir, other.dir]);
    assert.deepEqual(historyFindings(j).sort(), [
      `${relative(outside, join(other.dir, 'secrets/anthropic.env'))} ${other.added}`,
      `${relative(outside, join(target.dir, 'old/hf.env'))} ${target.added}`,
    ]);
  });

  test('GIT_DIR pointing at another repository (as in a git hook) does not change which history is read', async () => {
    const j = await scanJson([target.dir, '--git'], outside, { GIT_DIR: join(other.dir, '.git') });
    assert.deepEqual(j.summary.repositories, [target.dir]);
    assert.deepEqual(historyFindings(j), [
      `${relative(outside, join(target.dir, 'old/hf.env'))} ${target.added}`,
    ]);
  });

  test('the table summary names the repository; a PATH outside any repository is a usage error naming it', async () => {
    const r = await runCli(['scan', target.dir, '--git'], { cwd: other.dir });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`\\d+ blobs in the history of ${target.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} scanned`),
    );
    const bad = await runCli(['scan', outside, '--git'], { cwd: target.dir });
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(
      bad.stderr,
      new RegExp(`${outside.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not inside a git repository`),
    );
  });
});
