// `strongroom scan` as a real process on a temporary git repository with planted keys:
// some in files, one only in an old commit since deleted, look-alikes, ignored and vendored files.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildProgram } from '../../src/cli/program.ts';
import { expand, negatives, prng } from '../fixtures/scan/corpus.ts';
import { NODE, ROOT, runCli } from '../helpers/process.ts';

// Until `scan` is wired into src/cli/program.ts, run the command through a minimal program of the same shape.
const io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {}, cwd: ROOT };
const wired = buildProgram(io, async () => {}).commands.some((c) => c.name() === 'scan');
const DRIVER = `
import { Command } from ${JSON.stringify(import.meta.resolve('commander'))};
import { scanCommand } from ${JSON.stringify(join(ROOT, 'src/cli/scan.ts'))};
import { describeError, UsageError } from ${JSON.stringify(join(ROOT, 'src/cli/context.ts'))};
const io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() };
const program = new Command('strongroom').option('--format <format>', '', 'table').exitOverride();
scanCommand(program, io);
try { await program.parseAsync(process.argv.slice(1), { from: 'user' }); process.exitCode = io.exitCode ?? 0; }
catch (err) { process.stderr.write(describeError(err) + '\\n'); process.exitCode = err instanceof UsageError ? 2 : 1; }
`;
async function scan(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  if (wired) return runCli(['scan', ...args], { cwd });
  const child = spawn(NODE, ['--input-type=module', '-e', DRIVER, 'scan', ...args], { cwd });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stdout, stderr };
}

const rand = prng(42);
const KEYS = {
  openai: expand('sk-proj-{B:74}T3BlbkFJ{B:74}', rand),
  anthropic: expand('sk-ant-api03-{B:93}AA', rand),
  groq: expand('gsk_{A:52}', rand),
  aws: expand('AKIA{K:16}', rand),
  strongroom: expand('{srt}', rand),
  deleted: expand('hf_{A:34}', rand),
  ignored: expand('gsk_{A:52}', rand),
  vendored: expand('sk-ant-api03-{B:93}AA', rand),
};
const ALL = Object.values(KEYS);

let repo = '';
let clean = '';
let removedIn = '';
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

before(() => {
  repo = mkdtempSync(join(tmpdir(), 'sr-scan-e2e-'));
  git(repo, 'init', '-q');
  write(repo, {
    '.gitignore': 'local.env\nnode_modules/\n',
    'app/config.py': `import os\nOPENAI_API_KEY = "${KEYS.openai}"\n`,
    'app/client.ts': `export const anthropic = new Anthropic({ apiKey: '${KEYS.anthropic}' });\n`,
    '.env': `GROQ_API_KEY=${KEYS.groq}\nSTRONGROOM_TOKEN=${KEYS.strongroom}\n`,
    'deploy/aws.ini': `[default]\naws_access_key_id = ${KEYS.aws}\n`,
    'old/hf.env': `HF_TOKEN=${KEYS.deleted}\n`,
    'docs/look-alikes.md': `${negatives()
      .map((n) => n.line)
      .join('\n')}\n`,
    'local.env': `GROQ_API_KEY=${KEYS.ignored}\n`,
    'node_modules/pkg/index.js': `module.exports = '${KEYS.vendored}';\n`,
  });
  git(repo, 'add', '.');
  git(repo, 'commit', '-qm', 'initial');
  rmSync(join(repo, 'old/hf.env'));
  git(repo, 'add', '-A');
  git(repo, 'commit', '-qm', 'remove the hugging face token');
  removedIn = git(repo, 'rev-parse', 'HEAD~1');
  clean = mkdtempSync(join(tmpdir(), 'sr-scan-clean-'));
  write(clean, {
    'README.md': '# nothing to see\n',
    'docs/look-alikes.md': negatives()
      .map((n) => n.line)
      .join('\n'),
  });
});
after(() => {
  for (const d of [repo, clean]) if (d) rmSync(d, { recursive: true, force: true });
});

function assertNoFullKey(out: string): void {
  for (const k of ALL) assert.ok(!out.includes(k), `output contains a full key (${k.slice(0, 4)}…)`);
}

describe('strongroom scan (CLI)', () => {
  test('without --git: the keys in the current tree, no look-alikes, nothing ignored or vendored, exit 1', async () => {
    const r = await scan(['--format', 'json'], repo);
    assert.equal(r.code, 1, r.stderr);
    const { findings } = JSON.parse(r.stdout) as {
      findings: { file: string; ruleId: string; line: number }[];
    };
    assert.deepEqual(findings.map((f) => `${f.file}:${f.line} ${f.ruleId}`).sort(), [
      '.env:1 groq-key',
      '.env:2 strongroom-token',
      'app/client.ts:1 anthropic-key',
      'app/config.py:2 openai-project-key',
      'deploy/aws.ini:2 aws-access-key-id',
    ]);
    assertNoFullKey(r.stdout + r.stderr);
  });

  test('with --git: also the deleted key, with the commit that added it', async () => {
    const r = await scan(['--git', '--format', 'json'], repo);
    assert.equal(r.code, 1, r.stderr);
    const { findings } = JSON.parse(r.stdout) as {
      findings: { file: string; ruleId: string; commit?: string }[];
    };
    const hf = findings.filter((f) => f.ruleId === 'huggingface-token');
    assert.deepEqual(hf, [{ ...hf[0]!, file: 'old/hf.env', commit: removedIn }]);
    assert.equal(findings.length, 6, JSON.stringify(findings.map((f) => f.file)));
    assertNoFullKey(r.stdout + r.stderr);
  });

  test('no full key in table, json or sarif output', async () => {
    for (const format of ['table', 'json', 'sarif']) {
      const r = await scan(['--git', '--format', format], repo);
      assert.equal(r.code, 1, r.stderr);
      assertNoFullKey(r.stdout + r.stderr);
      if (format === 'table')
        assert.match(r.stdout, /old\/hf\.env:1:10\s+huggingface-token\s+huggingface\s+hf_\S…\S\S/);
      if (format === 'sarif') assert.equal(JSON.parse(r.stdout).runs[0].results.length, 6);
    }
  });

  test('exit 0 on a clean tree (look-alikes included)', async () => {
    const r = await scan([], clean);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /No hard-coded credentials found/);
  });

  test('an allow-list suppresses a finding; a PATH limits the scan', async () => {
    const first = JSON.parse((await scan(['--format', 'json', '.env'], repo)).stdout) as {
      findings: { fingerprint: string; ruleId: string }[];
    };
    assert.equal(first.findings.length, 2);
    const groq = first.findings.find((f) => f.ruleId === 'groq-key')!;
    const allow = join(clean, 'allow.txt');
    writeFileSync(allow, `# rotated already\n${groq.fingerprint}\n`);
    const r = await scan(['--format', 'json', '--allow', allow, '.env'], repo);
    assert.equal(r.code, 1);
    assert.deepEqual(
      (JSON.parse(r.stdout).findings as { ruleId: string }[]).map((f) => f.ruleId),
      ['strongroom-token'],
    );
    writeFileSync(allow, `${groq.fingerprint}\nrule:strongroom-token\n`);
    assert.equal((await scan(['--allow', allow, '.env'], repo)).code, 0);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await scan(['--format', 'xml'], clean)).code, 2);
    assert.equal((await scan(['--allow', 'missing.txt'], clean)).code, 2);
    assert.equal((await scan(['--git'], clean)).code, 2);
  });
});
