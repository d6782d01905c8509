// `strongroom scan --import PROJECT/ENV` as a real process against a real dev server, on a temporary
// git repository with planted keys: in files (one value in several places), one only in an old commit
// since deleted, a Strongroom token, and two different keys that want the same name.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient, type StrongroomClient } from '../../src/sdk/client.ts';
import { expand, prng } from '../fixtures/scan/corpus.ts';
import { runCli, type ServerProcess, startServerProcess } from '../helpers/process.ts';

const rand = prng(4242);
const KEYS = {
  openai: expand('sk-proj-{B:74}T3BlbkFJ{B:74}', rand),
  openai2: expand('sk-proj-{B:74}T3BlbkFJ{B:74}', rand),
  anthropic: expand('sk-ant-api03-{B:93}AA', rand),
  groq: expand('gsk_{A:52}', rand),
  aws: expand('AKIA{K:16}', rand),
  strongroom: expand('{srt}', rand),
  deleted: expand('hf_{A:34}', rand),
};
const ALL = Object.values(KEYS);
const OTHER_GROQ = expand('gsk_{A:52}', rand);

/** Where each planted key must end up in demo/dev. */
const EXPECTED: Record<string, { key: string; provider: string }> = {
  OPENAI_API_KEY: { key: KEYS.openai, provider: 'openai' },
  OPENAI_API_KEY_2: { key: KEYS.openai2, provider: 'openai' },
  ANTHROPIC_API_KEY: { key: KEYS.anthropic, provider: 'anthropic' },
  GROQ_API_KEY: { key: KEYS.groq, provider: 'groq' },
  AWS_ACCESS_KEY_ID: { key: KEYS.aws, provider: 'aws-bedrock' },
  HF_TOKEN: { key: KEYS.deleted, provider: 'huggingface' },
};

interface JsonReport {
  ok: boolean;
  dryRun: boolean;
  secrets: {
    name: string;
    provider: string | null;
    status: string;
    count: number;
    inHistory: boolean;
    version?: number;
    message?: string;
    occurrences: { file: string; line: number; commit?: string; replace: string }[];
  }[];
  skipped: { file: string; ruleId: string; advice: string }[];
  warnings: string[];
}

let server: ServerProcess;
let sr: StrongroomClient;
let env: Record<string, string> = {};
let repo = '';
let dataDir = '';

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

function assertNoFullKey(out: string): void {
  for (const k of [...ALL, OTHER_GROQ])
    assert.ok(!out.includes(k), `output contains a full key (${k.slice(0, 4)}…)`);
}

async function scan(args: string[], extraEnv: Record<string, string> = {}) {
  const r = await runCli(['scan', ...args], { cwd: repo, env: { ...env, ...extraEnv } });
  assertNoFullKey(r.stdout + r.stderr);
  return r;
}

async function scanJson(args: string[], extraEnv: Record<string, string> = {}) {
  const r = await scan(['--format', 'json', ...args], extraEnv);
  let report: JsonReport;
  try {
    report = JSON.parse(r.stdout) as JsonReport;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ...r, report };
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'sr-scan-import-data-'));
  server = await startServerProcess(undefined, ['--dev', '--data', dataDir, '--listen', '127.0.0.1:0']);
  await until('the dev token', () => /STRONGROOM_TOKEN=(\S+)/.test(server.output()));
  const root = /STRONGROOM_TOKEN=(\S+)/.exec(server.output())![1]!;
  env = { STRONGROOM_ADDR: server.address, STRONGROOM_TOKEN: root };
  sr = createClient({ addr: server.address, token: root });
  await sr.createProject('demo', ['dev', 'staging', 'prod']);

  repo = mkdtempSync(join(tmpdir(), 'sr-scan-import-'));
  git(repo, 'init', '-q');
  write(repo, {
    '.env': `OPENAI_API_KEY=${KEYS.openai}\nGROQ_API_KEY=${KEYS.groq}\nSTRONGROOM_TOKEN=${KEYS.strongroom}\n`,
    'app/config.py': `import os\nOPENAI_API_KEY = "${KEYS.openai}"\n`,
    'app/client.ts': `export const anthropic = new Anthropic({ apiKey: '${KEYS.anthropic}' });\n`,
    'deploy/aws.ini': `[default]\naws_access_key_id = ${KEYS.aws}\n`,
    'scripts/batch.py': `OPENAI_API_KEY = "${KEYS.openai2}"\n`,
    'old/hf.env': `HF_TOKEN=${KEYS.deleted}\n`,
  });
  git(repo, 'add', '.');
  git(repo, 'commit', '-qm', 'initial');
  rmSync(join(repo, 'old/hf.env'));
  git(repo, 'add', '-A');
  git(repo, 'commit', '-qm', 'remove the hugging face token');
});

after(async () => {
  await server?.kill9();
  for (const d of [repo, dataDir]) if (d) rmSync(d, { recursive: true, force: true });
});

async function versionOf(project: string, envName: string, name: string): Promise<number> {
  return (await sr.secretVersions(project, envName, name)).current_version;
}

describe('strongroom scan --import (CLI against a dev server)', { timeout: 120_000 }, () => {
  test('--dry-run shows the plan and writes nothing', async () => {
    const { code, report, stderr } = await scanJson(['--git', '--import', 'demo/staging', '--dry-run']);
    assert.equal(code, 0, stderr);
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.secrets.map((s) => s.name).sort(), Object.keys(EXPECTED).sort());
    assert.ok(report.secrets.every((s) => s.status === 'would_create'));
    assert.deepEqual((await sr.listSecrets('demo', 'staging')).secrets, []);
  });

  test('imports every key (history too), one secret per value, and says how to replace each', async () => {
    const { code, report, stderr } = await scanJson(['--git', '--import', 'demo/dev']);
    assert.equal(code, 0, `${stderr}\n${JSON.stringify(report, null, 2)}`);
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.secrets.map((s) => [s.name, s.provider, s.status, s.version]).sort(),
      Object.entries(EXPECTED)
        .map(([name, e]) => [name, e.provider, 'created', 1])
        .sort(),
    );
    for (const [name, e] of Object.entries(EXPECTED)) {
      const s = await sr.getSecret('demo', 'dev', name);
      assert.equal(s.value, e.key, `${name} holds the planted key`);
      assert.equal(s.provider, e.provider, `${name}'s provider`);
      assert.equal(s.current_version, 1);
    }
    // only these secrets exist: the duplicate value is one secret, the Strongroom token none
    assert.deepEqual(
      (await sr.listSecrets('demo', 'dev')).secrets.map((s) => s.name).sort(),
      Object.keys(EXPECTED).sort(),
    );
    const openai = report.secrets.find((s) => s.name === 'OPENAI_API_KEY')!;
    assert.equal(openai.count, 2);
    assert.deepEqual(
      openai.occurrences.map((o) => `${o.file}:${o.line}`),
      ['.env:1', 'app/config.py:2'],
    );
    assert.match(
      openai.occurrences[0]!.replace,
      /^\.env:1 → delete this line; `strongroom run --project demo --env dev -- <your command>` sets OPENAI_API_KEY$/,
    );
    assert.match(
      openai.occurrences[1]!.replace,
      /^app\/config\.py:2 → read OPENAI_API_KEY from the environment \(os\.environ\["OPENAI_API_KEY"\]\).*strongroom run --project demo --env dev -- <your command>$/,
    );
    const hf = report.secrets.find((s) => s.name === 'HF_TOKEN')!;
    assert.equal(hf.inHistory, true);
    assert.match(hf.occurrences[0]!.commit ?? '', /^[0-9a-f]{40}$/);
    assert.match(report.warnings.join('\n'), /found in git history \(HF_TOKEN\).*Rotate it at the provider/);
    assert.match(stderr, /warning: 1 key was found in git history \(HF_TOKEN\)/);
    assert.deepEqual(
      report.skipped.map((s) => [s.file, s.ruleId]),
      [['.env', 'strongroom-token']],
    );
    assert.match(report.skipped[0]!.advice, /revoke this token/);
  });

  test('a second run finds everything already in the vault and writes no new version', async () => {
    const r = await scan(['--git', '--import', 'demo/dev']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /demo\/dev\/OPENAI_API_KEY\s+openai\s+sk-p…\S\S\s+\.env:1 \(\+1 more\)\s+2\s+already in vault \(version 1\)/,
    );
    assert.match(r.stdout, /6 keys to import into demo\/dev: 6 already in vault\./);
    assert.match(r.stdout, /app\/config\.py:2 → read OPENAI_API_KEY from the environment/);
    assert.match(r.stdout, /Not imported:\n {2}\.env:3 strongroom-token srt_…\S\S → .*revoke this token/);
    for (const name of Object.keys(EXPECTED)) assert.equal(await versionOf('demo', 'dev', name), 1, name);
  });

  test('a different stored value is left alone without --overwrite (exit 1), replaced with it', async () => {
    await sr.putSecret('demo', 'dev', 'GROQ_API_KEY', OTHER_GROQ);
    const first = await scanJson(['--git', '--import', 'demo/dev']);
    assert.equal(first.code, 1);
    assert.equal(first.report.ok, false);
    const groq = first.report.secrets.find((s) => s.name === 'GROQ_API_KEY')!;
    assert.equal(groq.status, 'conflict');
    assert.match(groq.message ?? '', /already holds a different value \(version 2\).*--overwrite/);
    assert.ok(first.report.secrets.filter((s) => s !== groq).every((s) => s.status === 'already_in_vault'));
    assert.equal((await sr.getSecret('demo', 'dev', 'GROQ_API_KEY')).value, OTHER_GROQ);
    assert.equal(await versionOf('demo', 'dev', 'GROQ_API_KEY'), 2);

    const dry = await scanJson(['--git', '--import', 'demo/dev', '--overwrite', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.report.secrets.find((s) => s.name === 'GROQ_API_KEY')!.status, 'would_overwrite');
    assert.equal(await versionOf('demo', 'dev', 'GROQ_API_KEY'), 2);

    const forced = await scanJson(['--git', '--import', 'demo/dev', '--overwrite']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(
      forced.report.secrets
        .filter((s) => s.status !== 'already_in_vault')
        .map((s) => [s.name, s.status, s.version]),
      [['GROQ_API_KEY', 'overwritten', 3]],
    );
    const now = await sr.getSecret('demo', 'dev', 'GROQ_API_KEY');
    assert.equal(now.value, KEYS.groq);
    assert.equal(now.provider, 'groq');
  });

  test('a missing project or environment: an error naming the command that creates it', async () => {
    const noProject = await scan(['--import', 'nope/dev']);
    assert.equal(noProject.code, 1);
    assert.match(
      noProject.stderr,
      /project "nope" does not exist: create it with `strongroom project create nope`/,
    );
    const noEnv = await scan(['--import', 'demo/qa']);
    assert.equal(noEnv.code, 1);
    assert.match(
      noEnv.stderr,
      /environment "qa" does not exist in project "demo": add it with `strongroom project add-env demo qa`/,
    );
  });

  test('a token that may not write: each key fails naming the permission, exit 1', async () => {
    const app = await sr.createToken({ roles: ['app'], scope: { paths: ['demo/staging'] } });
    const r = await scanJson(['--import', 'demo/staging'], { STRONGROOM_TOKEN: app.auth.client_token });
    assert.equal(r.code, 1);
    assert.ok(r.report.secrets.length > 0);
    for (const s of r.report.secrets) {
      assert.equal(s.status, 'failed');
      assert.match(s.message ?? '', /permission denied: the token may not secret\.write demo\/staging\//);
    }
    assert.deepEqual((await sr.listSecrets('demo', 'staging')).secrets, []);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await scan(['--import', 'demo'])).code, 2);
    assert.equal((await scan(['--dry-run'])).code, 2);
    assert.equal((await scan(['--import', 'demo/dev', '--format', 'sarif'])).code, 2);
  });
});
