import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import {
  type ArchitectureReport,
  checkArchitecture,
  findImports,
  formatReport,
  mapProblems,
  readModuleMap,
} from './helpers/architecture.ts';

/**
 * DESIGN.md §2: imports point one way. The picture is data (docs/module-map.json, explained in
 * docs/architecture.md); this test reads it, checks every import of src/, bin/ and dashboard/ (value
 * and type imports, `export … from`, dynamic `import()`, `require`) and fails on any cycle between
 * parts or between files. The checker runs on the real tree and on small fixture trees.
 */
const ROOT = resolve(import.meta.dirname, '..');
const MAP = readModuleMap(join(ROOT, 'docs/module-map.json'));

let real: ArchitectureReport | undefined;
const realTree = (): ArchitectureReport => {
  real ??= checkArchitecture(ROOT, MAP);
  return real;
};

test('the module map names every part once, and the arrows it allows point one way', () => {
  assert.deepEqual(mapProblems(MAP), []);
});

test('every import in src/, bin/ and dashboard/ follows docs/module-map.json', () => {
  const report = realTree();
  assert.ok(report.files.length > 100, `only ${report.files.length} files scanned`);
  if (report.violations.length > 0) {
    assert.fail(`\n${formatReport({ ...report, partCycles: [], fileCycles: [] })}`);
  }
});

test('the debt list only shrinks: every arrow on it is still needed, and what it holds is printed', (t) => {
  const report = realTree();
  assert.deepEqual(
    report.staleDebt.map((d) => `${d.from} -> ${d.to}`),
    [],
    'no import needs these debt arrows any more: remove them from "debt" in docs/module-map.json',
  );
  const counts = new Map<string, number>();
  for (const v of report.debt) counts.set(v.arrow, (counts.get(v.arrow) ?? 0) + 1);
  for (const [arrow, n] of counts) t.diagnostic(`debt ${arrow}: ${n} import(s)`);
});

test('no cycle between parts', () => {
  const report = realTree();
  if (report.partCycles.length > 0) {
    assert.fail(`\n${formatReport({ ...report, violations: [], fileCycles: [] })}`);
  }
});

test('no cycle between files, type-only imports included', () => {
  const report = realTree();
  if (report.fileCycles.length > 0) {
    assert.fail(`\n${formatReport({ ...report, violations: [], partCycles: [] })}`);
  }
});

test('only bin/ and src/config read argv or the process environment', () => {
  const offenders = realTree().files.filter((f) => {
    if (!f.startsWith('src/') || f.startsWith('src/config/')) return false;
    const code = readFileSync(join(ROOT, f), 'utf8')
      .split('\n')
      .filter((line) => !/^\s*(\*|\/\/)/.test(line));
    return code.some((line) => /process\.(argv|env)\b/.test(line));
  });
  assert.deepEqual(offenders, []);
});

// ---------------------------------------------------------------------------------------------
// The checker itself, on fixture trees checked against the real map

/** A small tree that follows the map: every fixture below changes one thing in it. */
const CLEAN: Record<string, string> = {
  'src/contract/identity.ts': 'export interface Identity { id: string }\n',
  'src/errors/errors.ts': 'export class StrongroomError extends Error {}\n',
  'src/lib/clock.ts': 'export const now = (): number => Date.now();\n',
  'src/storage/memory.ts': [
    "import { StrongroomError } from '../errors/errors.ts';",
    'export const memory = () => { throw new StrongroomError(); };',
    '',
  ].join('\n'),
  'src/barrier/barrier.ts': [
    "import type { memory } from '../storage/memory.ts';",
    'export const barrier = (s: typeof memory) => ({ s });',
    '',
  ].join('\n'),
  'src/engines/kv/kv.ts': [
    "import type { Identity } from '../../contract/identity.ts';",
    "import { barrier } from '../../barrier/barrier.ts';",
    'export const kv = (who: Identity) => ({ who, barrier });',
    '',
  ].join('\n'),
  'src/core/pipeline.ts':
    "import { barrier } from '../barrier/barrier.ts';\nexport const pipeline = { barrier };\n",
  'src/server/app.ts': "import { pipeline } from '../core/pipeline.ts';\nexport const app = { pipeline };\n",
  'src/api/v1.ts': 'export interface ReadSecret { path: string }\n',
  'src/sdk/client.ts':
    "import type { ReadSecret } from '../api/v1.ts';\nexport const read = (r: ReadSecret) => r;\n",
  'src/cli/program.ts': "import { read } from '../sdk/client.ts';\nexport const runCli = () => read;\n",
  'bin/strongroom.ts': [
    "import { runCli } from '../src/cli/program.ts';",
    "import { now } from '../src/lib/clock.ts';",
    'runCli(now());',
    "const { app } = await import('../src/server/app.ts');",
    '',
  ].join('\n'),
};

interface Found {
  violations: string[];
  partCycles: string[];
  fileCycles: string[];
}

/** Writes CLEAN with `changes` to a temporary folder and checks it against the real map. */
function checkFixture(t: TestContext, changes: Record<string, string>): ArchitectureReport {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-architecture-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, text] of Object.entries({ ...CLEAN, ...changes })) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return checkArchitecture(dir, MAP);
}

/** What a fixture's report found, in one line per finding. */
function found(report: ArchitectureReport): Found {
  return {
    violations: report.violations.map((v) => `${v.file}:${v.line} ${v.arrow}${v.kind ? ` (${v.kind})` : ''}`),
    partCycles: report.partCycles.map((c) => c.loop.join(' -> ')),
    fileCycles: report.fileCycles.map((c) => c.files.join(', ')),
  };
}

const NOTHING: Found = { violations: [], partCycles: [], fileCycles: [] };

describe('the architecture checker', () => {
  test('passes the clean fixture', (t) => {
    assert.deepEqual(found(checkFixture(t, {})), NOTHING);
  });

  test('fails on a forbidden value import, and says which rule it breaks', (t) => {
    const changes = {
      'src/cli/program.ts':
        "import { pipeline } from '../core/pipeline.ts';\nexport const runCli = () => pipeline;\n",
    };
    const report = checkFixture(t, changes);
    assert.deepEqual(found(report), {
      ...NOTHING,
      violations: ['src/cli/program.ts:1 cli -> core (import)'],
    });
    assert.match(report.violations[0]!.rule, /^forbidden: clients reach the vault over HTTP/);
    assert.match(
      formatReport(report),
      /cli -> core — forbidden: clients reach the vault over HTTP.*\n {4}src\/cli\/program\.ts:1 {2}import '\.\.\/core\/pipeline\.ts'/,
    );
  });

  test('fails on a type-only import against the picture (a type of core imported by lib/)', (t) => {
    const changes = {
      'src/lib/clock.ts': [
        "import type { pipeline } from '../core/pipeline.ts';",
        'export const now = (): number => Date.now();',
        'export type Stamp = typeof pipeline;',
        '',
      ].join('\n'),
    };
    assert.deepEqual(found(checkFixture(t, changes)), {
      ...NOTHING,
      violations: ['src/lib/clock.ts:1 lib -> core (import type)'],
    });
  });

  test('fails on a dynamic import() against the picture', (t) => {
    const changes = {
      'src/sdk/client.ts': [
        "import type { ReadSecret } from '../api/v1.ts';",
        'export const read = (r: ReadSecret) => r;',
        "export const inProcess = () => import('../server/app.ts');",
        '',
      ].join('\n'),
    };
    assert.deepEqual(found(checkFixture(t, changes)), {
      ...NOTHING,
      violations: ['src/sdk/client.ts:3 sdk -> server (dynamic import())'],
    });
  });

  test('scans bin/: an entry point reaching past the roles it starts fails', (t) => {
    const changes = {
      'bin/strongroom.ts': [
        "import { runCli } from '../src/cli/program.ts';",
        "import { now } from '../src/lib/clock.ts';",
        'runCli(now());',
        "const { pipeline } = await import('../src/core/pipeline.ts');",
        '',
      ].join('\n'),
    };
    assert.deepEqual(found(checkFixture(t, changes)), {
      ...NOTHING,
      violations: ['bin/strongroom.ts:4 bin -> core (dynamic import())'],
    });
  });

  test('fails on a cycle between files of one part, made of type-only imports', (t) => {
    const changes = {
      'src/core/pipeline.ts': [
        "import { barrier } from '../barrier/barrier.ts';",
        "import type { Step } from './steps.ts';",
        'export const pipeline = { barrier, steps: [] as Step[] };',
        '',
      ].join('\n'),
      'src/core/steps.ts':
        "import type { pipeline } from './pipeline.ts';\nexport type Step = typeof pipeline;\n",
    };
    assert.deepEqual(found(checkFixture(t, changes)), {
      ...NOTHING,
      fileCycles: ['src/core/pipeline.ts, src/core/steps.ts'],
    });
  });

  test('fails on a cycle between parts even when no files form a cycle', (t) => {
    const changes = {
      'src/storage/views.ts': "export type { barrier } from '../barrier/barrier.ts';\n",
    };
    assert.deepEqual(found(checkFixture(t, changes)), {
      violations: ['src/storage/views.ts:1 storage -> barrier (export type from)'],
      partCycles: ['barrier -> storage -> barrier'],
      fileCycles: [],
    });
  });

  test('fails on an import it cannot check, a file no part owns and an import that resolves nowhere', (t) => {
    const changes = {
      'src/server/app.ts': [
        "import { pipeline } from '../core/pipeline.ts';",
        "import { helper } from '../../test/helper.ts';",
        "import { gone } from '../core/gone.ts';",
        'export const app = { pipeline, helper, gone };',
        "const name = '../core/pipeline.ts';",
        'export const later = () => import(name);',
        '',
      ].join('\n'),
      'test/helper.ts': 'export const helper = 1;\n',
      'src/tools/stray.ts': 'export const stray = 1;\n',
    };
    assert.deepEqual(found(checkFixture(t, changes)), {
      ...NOTHING,
      violations: [
        'src/server/app.ts:2 server -> outside the map (import)',
        'src/server/app.ts:3 unresolved (import)',
        'src/server/app.ts:6 computed specifier (dynamic import())',
        'src/tools/stray.ts:1 file in no part',
      ],
    });
  });

  test('sees a violation added to a copy of a real file', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-architecture-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const files = realTree().files;
    for (const file of files) cpSync(join(ROOT, file), join(dir, file));
    const leaf = files.find((f) => f.startsWith('src/lib/'))!;
    const server = files.find((f) => f.startsWith('src/server/'))!;
    const specifier = relative(dirname(leaf), server);
    const text = readFileSync(join(dir, leaf), 'utf8');
    writeFileSync(join(dir, leaf), `${text}\nexport type * as Probe from '${specifier}';\n`);
    const key = (v: ArchitectureReport['violations'][number]) => `${v.file}:${v.line} ${v.arrow}`;
    const before = new Set(realTree().violations.map(key));
    const added = checkArchitecture(dir, MAP).violations.filter((v) => !before.has(key(v)));
    assert.deepEqual(
      added.map((v) => `${v.file} ${v.arrow} (${v.kind}) ${v.specifier}`),
      [`${leaf} lib -> server (export type from) ${specifier}`],
    );
  });
});

describe('finding imports', () => {
  test('reads every form of import, with its line', () => {
    const source = [
      "import a from './a.ts';", // 1
      "import b, { c, type D } from './b.ts';", // 2
      "import * as e from './e.ts';", // 3
      "import type { F } from './f.ts';", // 4
      'import {', // 5
      '  g,', // 6
      "} from './g.ts';", // 7
      "import './side-effect.ts';", // 8
      "export * from './h.ts';", // 9
      "export * as i from './i.ts';", // 10
      "export { j } from './j.ts';", // 11
      "export type { K } from './k.ts';", // 12
      "const l = await import('./l.ts');", // 13
      "type M = typeof import('./m.ts');", // 14
      "let n: import('./n.ts').N;", // 15
      "const o = require('./o.ts');", // 16
      "import p = require('./p.ts');", // 17
      "import type Q = require('./q.ts');", // 18
      "declare module './r.ts' {}", // 19
      "import s from './s.json' with { type: 'json' };", // 20
      'const t = import(`./t.ts`);', // 21
      "import type from './type.ts';", // 22 (a default import named type)
    ].join('\n');
    assert.deepEqual(
      findImports(source).map((r) => `${r.line} ${r.kind} ${r.specifier}${r.typeOnly ? ' (type only)' : ''}`),
      [
        '1 import ./a.ts',
        '2 import ./b.ts',
        '3 import ./e.ts',
        '4 import type ./f.ts (type only)',
        '7 import ./g.ts',
        '8 import ./side-effect.ts',
        '9 export from ./h.ts',
        '10 export from ./i.ts',
        '11 export from ./j.ts',
        '12 export type from ./k.ts (type only)',
        '13 dynamic import() ./l.ts',
        '14 type import() ./m.ts (type only)',
        '15 type import() ./n.ts (type only)',
        '16 require() ./o.ts',
        '17 require() ./p.ts',
        '18 import type ./q.ts (type only)',
        '19 declare module ./r.ts (type only)',
        '20 import ./s.json',
        '21 dynamic import() ./t.ts',
        '22 import ./type.ts',
      ],
    );
  });

  test('ignores import-like text in comments, strings, templates and regular expressions', () => {
    const source = [
      "// import a from './a.ts';",
      "/* import b from './b.ts';",
      "   export * from './c.ts'; */",
      'const s = "import d from \'./d.ts\'";',
      `const u = \`import e from './e.ts' \${\`nested \${'x'}\`} import('./f.ts')\`;`,
      "const r = /import g from '.\\/g.ts'/u;",
      "const q = a / 2; const w = b / 3; // import('./h.ts')",
      'const meta = import.meta.url;',
      "const o = { import: 1, require: 2 }; o.import('./i.ts'); o.require('./j.ts');",
      'class K { import(x: string) { return x; } }',
      'export { local };',
      "import last from './last.ts';",
    ].join('\n');
    assert.deepEqual(
      findImports(source).map((r) => `${r.line} ${r.specifier}`),
      ['12 ./last.ts'],
    );
  });

  test('reports an import whose specifier is computed as one it cannot check', () => {
    assert.deepEqual(
      findImports(
        `const m = await import(name);\nconst n = await import(\`./\${x}.ts\`);\nrequire(name);`,
      ).map((r) => `${r.line} ${r.kind} ${r.specifier}`),
      ['1 dynamic import() undefined', '2 dynamic import() undefined', '3 require() undefined'],
    );
  });
});
