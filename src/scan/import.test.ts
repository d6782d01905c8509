import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { expand, positives, prng } from '../../test/fixtures/scan/corpus.ts';
import { formatProblem, provider } from '../engines/provider-catalog.ts';
import {
  envName,
  type ImportFinding,
  type ImportReport,
  importSucceeded,
  importWarnings,
  planImport,
  RULE_IMPORT,
  readKeys,
  renderImportJson,
  renderImportTable,
  replacementAdvice,
  variableAt,
  wantedName,
} from './import.ts';
import { detect, fingerprint, RULES, redact } from './rules.ts';
import { scanPaths, scanText } from './scan.ts';

const target = { project: 'demo', env: 'dev' };
const rand = prng(99);
const groq = () => expand('gsk_{A:52}', rand);
const openai = () => expand('sk-proj-{B:74}T3BlbkFJ{B:74}', rand);

function finding(key: string, file: string, line: number, extra: Partial<ImportFinding> = {}): ImportFinding {
  const [m] = detect(key);
  assert.ok(m, `no rule matches ${key.slice(0, 4)}…`);
  return {
    file,
    line,
    column: 1,
    ruleId: m.ruleId,
    provider: m.provider,
    preview: redact(key),
    fingerprint: fingerprint(key),
    ...extra,
  };
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('scan --import: rules → vault providers', () => {
  test('every rule has an import mapping, to a provider the vault knows', () => {
    for (const r of RULES) {
      assert.ok(r.id in RULE_IMPORT, `no import mapping for ${r.id}`);
      const kind = RULE_IMPORT[r.id];
      if (kind?.provider)
        assert.ok(provider(kind.provider), `${r.id} maps to unknown provider ${kind.provider}`);
      if (kind) assert.match(kind.name, /^[A-Z][A-Z0-9_]*$/);
    }
    assert.equal(RULE_IMPORT['strongroom-token'], null);
  });

  test("the corpus's keys pass their provider's format check", () => {
    for (const seed of [1, 2, 3]) {
      for (const p of positives(seed)) {
        const kind = RULE_IMPORT[p.ruleId];
        if (!kind?.provider) continue;
        const [m] = detect(p.line);
        assert.equal(formatProblem(kind.provider, m!.secret), undefined, `${p.ruleId}: ${p.template}`);
      }
    }
  });
});

describe('scan --import: names', () => {
  test('the assignment on the line', () => {
    const at = (line: string, value: string) => variableAt(line, line.indexOf(value) + 1);
    assert.equal(at('GROQ_API_KEY=VALUE', 'VALUE'), 'GROQ_API_KEY');
    assert.equal(at('export GROQ_API_KEY="VALUE"', 'VALUE'), 'GROQ_API_KEY');
    assert.equal(at('OPENAI_API_KEY = "VALUE"', 'VALUE'), 'OPENAI_API_KEY');
    assert.equal(at('  openai_api_key: VALUE', 'VALUE'), 'openai_api_key');
    assert.equal(at('{"ANTHROPIC_API_KEY": "VALUE"}', 'VALUE'), 'ANTHROPIC_API_KEY');
    assert.equal(at("new Anthropic({ apiKey: 'VALUE' })", 'VALUE'), 'apiKey');
    assert.equal(at('os.environ["HF_TOKEN"] = "VALUE"', 'VALUE'), 'HF_TOKEN');
    assert.equal(at('key := "VALUE"', 'VALUE'), 'key');
    assert.equal(at('curl -H "Authorization: Bearer VALUE"', 'VALUE'), undefined);
    assert.equal(at('call(VALUE)', 'VALUE'), undefined);
  });

  test('env-var style names', () => {
    assert.equal(envName('openaiApiKey'), 'OPENAI_API_KEY');
    assert.equal(envName('openai-api-key'), 'OPENAI_API_KEY');
    assert.equal(envName('settings.groq_key'), 'GROQ_KEY');
    assert.equal(envName('9lives'), undefined);
    assert.equal(envName('---'), undefined);
  });

  test('a provider key keeps an informative env-style name, else gets the provider convention', () => {
    assert.deepEqual(wantedName('groq-key', 'GROQ_API_KEY'), { name: 'GROQ_API_KEY', fromLine: true });
    assert.deepEqual(wantedName('groq-key', 'groq_prod_key'), { name: 'GROQ_PROD_KEY', fromLine: true });
    assert.deepEqual(wantedName('anthropic-key', 'apiKey'), { name: 'ANTHROPIC_API_KEY', fromLine: false });
    assert.deepEqual(wantedName('openai-project-key', 'api_key'), {
      name: 'OPENAI_API_KEY',
      fromLine: false,
    });
    assert.deepEqual(wantedName('huggingface-token', undefined), { name: 'HF_TOKEN', fromLine: false });
    assert.deepEqual(wantedName('generic-high-entropy', 'clientSecret'), {
      name: 'CLIENT_SECRET',
      fromLine: true,
    });
    assert.deepEqual(wantedName('generic-high-entropy', undefined), { name: 'SECRET', fromLine: false });
  });
});

describe('scan --import: the plan', () => {
  const [k1, k2, k3] = [groq(), groq(), openai()];
  const findings: ImportFinding[] = [
    finding(k2, 'b.env', 1, { variable: 'GROQ_API_KEY' }),
    finding(k1, 'a.env', 3, { variable: 'GROQ_API_KEY' }),
    finding(k1, 'app/main.py', 7, { variable: 'api_key' }),
    finding(k3, 'old/config.ts', 2, { commit: 'c0ffee'.repeat(6).slice(0, 40), variable: 'apiKey' }),
    finding(groq(), 'c.env', 1, { variable: 'GROQ_API_KEY_2' }),
    {
      ...finding(k1, 'x', 1),
      file: '.env',
      line: 9,
      ruleId: 'strongroom-token',
      provider: 'strongroom',
      fingerprint: 'f'.repeat(20),
    },
  ];

  test('one secret per key value; clashing names get _2, _3 in first-seen order, whatever the input order', () => {
    const plan = planImport(findings, target);
    const again = planImport([...findings].reverse(), target);
    assert.deepEqual(again, plan);
    assert.deepEqual(
      plan.secrets.map((s) => [s.name, s.provider, s.occurrences.map((o) => `${o.file}:${o.line}`)]),
      [
        ['GROQ_API_KEY', 'groq', ['a.env:3', 'app/main.py:7']],
        ['GROQ_API_KEY_3', 'groq', ['b.env:1']],
        ['GROQ_API_KEY_2', 'groq', ['c.env:1']],
        ['OPENAI_API_KEY', 'openai', ['old/config.ts:2']],
      ],
    );
    assert.deepEqual(
      plan.secrets.map((s) => s.inHistory),
      [false, false, false, true],
    );
    assert.deepEqual(
      plan.skipped.map((s) => [s.file, s.ruleId]),
      [['.env', 'strongroom-token']],
    );
    assert.match(plan.skipped[0]!.advice, /revoke this token/);
  });

  test('nothing in the plan is a key', () => {
    const text = JSON.stringify(planImport(findings, target));
    for (const k of [k1, k2, k3]) assert.ok(!text.includes(k));
  });

  test('how to replace each occurrence', () => {
    assert.equal(
      replacementAdvice({ file: 'app/main.py', line: 7 }, 'OPENAI_API_KEY', target),
      'app/main.py:7 → read OPENAI_API_KEY from the environment (os.environ["OPENAI_API_KEY"]) and start the program with: strongroom run --project demo --env dev -- <your command>',
    );
    assert.match(
      replacementAdvice({ file: 'src/a.ts', line: 1 }, 'X', target),
      /process\.env\.X\) and start the program with: strongroom run --project demo --env dev -- <your command>$/,
    );
    assert.match(
      replacementAdvice({ file: 'deploy/.env.local', line: 2, variable: 'GROQ' }, 'GROQ_API_KEY', target),
      /^deploy\/\.env\.local:2 → delete this line; `strongroom run .*` sets GROQ_API_KEY \(the code used GROQ: rename it to GROQ_API_KEY\)$/,
    );
    assert.match(
      replacementAdvice({ file: 'old.env', line: 1, commit: 'abcdef1234567890' }, 'HF_TOKEN', target),
      /^old\.env:1 \(commit abcdef123456, git history only\) → .*rotate the key at the provider.*strongroom secret put demo\/dev\/HF_TOKEN/,
    );
  });

  test('reports: table, json, warnings and the exit decision', () => {
    const plan = planImport(findings, target);
    const report: ImportReport = {
      target,
      dryRun: false,
      secrets: plan.secrets.map((s, i) =>
        i === 1
          ? { ...s, status: 'conflict', message: 'demo/dev/GROQ_API_KEY_3 already holds a different value' }
          : { ...s, status: 'created', version: 1 },
      ),
      skipped: plan.skipped,
      scan: { files: 4, bytes: 100, skipped: 0 },
    };
    assert.equal(importSucceeded(report), false);
    assert.equal(importSucceeded({ secrets: report.secrets.filter((s) => s.status === 'created') }), true);
    const out = renderImportTable(report);
    assert.match(
      out,
      /demo\/dev\/GROQ_API_KEY\s+groq\s+gsk_\S+\s+a\.env:3 \(\+1 more\)\s+2\s+created \(version 1\)/,
    );
    assert.match(out, /old\/config\.ts:2 \(git history\)\s+1\s+created/);
    assert.match(out, /Problems:\n {2}GROQ_API_KEY_3: /);
    assert.match(out, /Not imported:\n {2}\.env:9 strongroom-token .* revoke this token/);
    assert.match(out, /4 keys to import into demo\/dev: 3 created, 1 conflict\./);
    const json = JSON.parse(renderImportJson(report));
    assert.equal(json.ok, false);
    assert.equal(json.summary.created, 3);
    assert.equal(json.secrets[0].count, 2);
    assert.equal(json.secrets[0].occurrences[0].replace.startsWith('a.env:3 → '), true);
    assert.match(importWarnings(report)[0]!, /1 key was found in git history \(OPENAI_API_KEY\).*Rotate/);
    for (const k of [k1, k2, k3]) assert.ok(!(out + JSON.stringify(json)).includes(k));
  });

  test('an empty plan', () => {
    const report: ImportReport = {
      target,
      dryRun: true,
      secrets: [],
      skipped: [],
      scan: { files: 1, bytes: 1, skipped: 0 },
    };
    assert.equal(importSucceeded(report), true);
    assert.match(
      renderImportTable(report),
      /Dry run.*\n\nNo hard-coded credentials found: nothing to import/,
    );
  });
});

describe('scan --import: reading the keys back', () => {
  test('from working-tree files and from old commits, with the assignment name', () => {
    const root = mkdtempSync(join(tmpdir(), 'sr-import-'));
    dirs.push(root);
    const git = (...args: string[]) =>
      execFileSync(
        'git',
        ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'commit.gpgsign=false', ...args],
        { cwd: root, stdio: 'pipe' },
      ).toString();
    const [a, b] = [groq(), openai()];
    const files: Record<string, string> = {
      'sub/.env': `# x\nGROQ_API_KEY=${a}\n`,
      'old.py': `k = 1\nOPENAI_API_KEY = "${b}"\n`,
    };
    for (const [p, c] of Object.entries(files)) {
      mkdirSync(dirname(join(root, p)), { recursive: true });
      writeFileSync(join(root, p), c);
    }
    git('init', '-q');
    git('add', '.');
    git('commit', '-qm', 'one');
    const commit = git('rev-parse', 'HEAD').trim();
    rmSync(join(root, 'old.py'));
    const tree = scanPaths([], { cwd: root }).findings;
    const history = scanText(files['old.py']!, 'old.py').map((f) => ({ ...f, commit }));
    const gone = { ...tree[0]!, file: 'sub/missing.env' };
    const { values, findings } = readKeys([...tree, ...history, gone], root);
    assert.equal(values.get(fingerprint(a)), a);
    assert.equal(values.get(fingerprint(b)), b);
    assert.equal(values.size, 2);
    assert.deepEqual(
      findings.map((f) => f.variable),
      ['GROQ_API_KEY', 'OPENAI_API_KEY', undefined],
    );
  });
});
