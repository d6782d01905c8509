import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ExportResponse } from '../../api/bulk.ts';
import { detectFormat, parseSecretsFile } from './index.ts';
import { renderExport } from './render.ts';
import { parseJson, parseVault, parseYaml } from './structured.ts';

describe('the JSON parser', () => {
  test('reads NAME: value and NAME: {value, fields}', () => {
    const r = parseJson(
      JSON.stringify({
        A: 'one',
        B: { value: 'sk-x', provider: 'openai', owner: 'team', tags: ['t1'], rotation: { interval: '30d' } },
      }),
    );
    assert.deepEqual(r.invalid, []);
    assert.deepEqual(r.entries, [
      { name: 'A', value: 'one', line: 1 },
      {
        name: 'B',
        value: 'sk-x',
        line: 1,
        provider: 'openai',
        owner: 'team',
        tags: ['t1'],
        rotation: { interval: '30d' },
      },
    ]);
  });

  test('gives each entry the line of its key', () => {
    const r = parseJson('{\n  "A": "1",\n  "B": {\n    "value": "2"\n  },\n  "C": "3"\n}\n');
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.line]),
      [
        ['A', 2],
        ['B', 3],
        ['C', 6],
      ],
    );
  });

  const bad: [string, string, RegExp, number | undefined][] = [
    ['a syntax error', '{\n  "A": "1",\n  "B": \n}', /not valid JSON/, 4],
    ['a list at the top', '["A"]', /expected a JSON object/, undefined],
    ['a null value', '{"A": null}', /no value/, 1],
    ['a list value', '{"A": ["x"]}', /not a list/, 1],
    [
      'an entry without value (an export without --values)',
      '{"A": {"provider": "openai"}}',
      /without --values/,
      1,
    ],
    ['an unknown field', '{"A": {"value": "x", "colour": "red"}}', /unknown field "colour"/, 1],
    ['tags that are not text', '{"A": {"value": "x", "tags": [1]}}', /tags/, 1],
  ];
  for (const [label, text, message, line] of bad) {
    test(`reports ${label}`, () => {
      const r = parseJson(text);
      assert.equal(r.invalid.length, 1, JSON.stringify(r));
      assert.match(r.invalid[0]!.message, message);
      assert.equal(r.invalid[0]!.line, line);
    });
  }

  test('numbers and booleans become text, with a warning', () => {
    const r = parseJson('{"PORT": 8080, "DEBUG": true}');
    assert.deepEqual(
      r.entries.map((e) => e.value),
      ['8080', 'true'],
    );
    assert.equal(r.warnings.length, 2);
  });

  test('a duplicate key: the last one wins, with a warning on its line', () => {
    const r = parseJson('{\n"A": "1",\n"A": "2"\n}');
    assert.deepEqual(r.entries, [{ name: 'A', value: '2', line: 3 }]);
    assert.equal(r.warnings[0]!.line, 3);
    assert.match(r.warnings[0]!.message, /line 2/);
  });

  test('`vault kv get -format=json` output is recognised as a Vault export', () => {
    const r = parseJson(
      JSON.stringify({ request_id: 'x', lease_id: '', data: { data: { K: 'v' }, metadata: { version: 3 } } }),
    );
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.value]),
      [['K', 'v']],
    );
  });
});

describe('the Vault KV parser', () => {
  const cases: [string, unknown, [string, string][]][] = [
    [
      'KV v2 (`vault kv get -format=json`)',
      {
        request_id: '5b0d',
        lease_id: '',
        lease_duration: 0,
        renewable: false,
        data: {
          data: { OPENAI_API_KEY: 'sk-a', 'db.password': 'p w' },
          metadata: { created_time: '2024-01-01T00:00:00Z', version: 2, custom_metadata: null },
        },
        warnings: null,
      },
      [
        ['OPENAI_API_KEY', 'sk-a'],
        ['db.password', 'p w'],
      ],
    ],
    [
      'KV v1',
      { request_id: 'x', lease_id: '', lease_duration: 2764800, data: { A: '1', B: '2' } },
      [
        ['A', '1'],
        ['B', '2'],
      ],
    ],
    ['just the data of KV v2', { data: { A: 'x' }, metadata: { version: 1 } }, [['A', 'x']]],
    [
      'a bare object',
      { A: 'x', B: 'y' },
      [
        ['A', 'x'],
        ['B', 'y'],
      ],
    ],
    [
      'non-text values',
      { data: { N: 5, O: { a: 1 } } },
      [
        ['N', '5'],
        ['O', '{"a":1}'],
      ],
    ],
  ];
  for (const [label, input, expected] of cases) {
    test(`reads ${label}`, () => {
      const r = parseVault(JSON.stringify(input));
      assert.deepEqual(r.invalid, []);
      assert.deepEqual(
        r.entries.map((e) => [e.name, e.value]),
        expected,
      );
    });
  }

  test('`vault kv list` output is refused with a hint', () => {
    const r = parseVault(JSON.stringify({ request_id: 'x', data: { keys: ['a', 'b'] } }));
    assert.match(r.invalid[0]!.message, /vault kv get/);
  });

  test('invalid Vault key names are reported by name', () => {
    const r = parseSecretsFile(
      JSON.stringify({ data: { data: { 'has space': 'x', ok: 'y' }, metadata: {} } }),
      'vault',
    );
    assert.deepEqual(
      r.invalid.map((i) => i.name),
      ['has space'],
    );
  });
});

describe('the YAML parser', () => {
  test('keeps every scalar as written (no numbers, booleans or octal)', () => {
    const r = parseYaml('A: 0123\nB: yes\nC: 1e3\nD: 08:00\nE: "quoted"\nF: null\nG: ~\n');
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.value]),
      [
        ['A', '0123'],
        ['B', 'yes'],
        ['C', '1e3'],
        ['D', '08:00'],
        ['E', 'quoted'],
        ['F', 'null'],
        ['G', '~'],
      ],
    );
  });

  test('reads mappings with a value and fields, with lines', () => {
    const r = parseYaml(
      '# head\nA: one\nB:\n  value: |-\n    multi\n    line\n  provider: openai\n  tags: [x, y]\n  owner: ~\n',
    );
    assert.deepEqual(r.invalid, []);
    assert.deepEqual(r.entries, [
      { name: 'A', value: 'one', line: 2 },
      { name: 'B', value: 'multi\nline', line: 3, provider: 'openai', tags: ['x', 'y'], owner: null },
    ]);
  });

  test('an empty value is the empty text', () => {
    assert.deepEqual(parseYaml('A:\n').entries, [{ name: 'A', value: '', line: 1 }]);
  });

  test('reports a syntax error with its line', () => {
    const r = parseYaml('A: 1\nB: [unclosed\nC: 3\n');
    assert.ok(r.invalid.length >= 1);
    assert.match(r.invalid[0]!.message, /not valid YAML/);
    assert.ok(r.invalid[0]!.line! >= 2);
  });

  test('a list at the top is refused', () => {
    assert.match(parseYaml('- a\n- b\n').invalid[0]!.message, /mapping/);
  });

  test('a duplicate key: the last one wins, with a warning', () => {
    const r = parseSecretsFile('A: 1\nA: 2\n', 'yaml');
    assert.deepEqual(r.entries, [{ name: 'A', value: '2', line: 2 }]);
    assert.equal(r.warnings.length, 1);
  });
});

describe('format detection', () => {
  const cases: [string, string | undefined, string][] = [
    ['x.env', undefined, 'env'],
    ['.env.production', undefined, 'env'],
    ['secrets.JSON', undefined, 'json'],
    ['s.yml', undefined, 'yaml'],
    ['s.yaml', undefined, 'yaml'],
    ['vault.json', 'vault', 'vault'],
    ['-', 'yaml', 'yaml'],
  ];
  for (const [path, given, expected] of cases) {
    test(`${path}${given ? ` with ${given}` : ''} is ${expected}`, () =>
      assert.equal(detectFormat(path, given), expected));
  }
  test('an unknown format is refused', () =>
    assert.throws(() => detectFormat('x', 'toml'), /env, json, yaml, vault/));
});

describe('exports read back exactly', () => {
  const tricky: Record<string, string> = {
    UNICODE: 'héllo→世界🔑',
    QUOTES: `it's "quoted" \`too\``,
    NEWLINES: 'line1\nline2\r\nline3\n',
    EQUALS: 'a=b==c',
    HASH: 'p#ss #word',
    SPACES: '  padded  ',
    BACKSLASH: 'C:\\path\\n',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is what is tested
    DOLLAR: '$HOME ${X}',
    NUMBERISH: '0123',
    BOOLISH: 'yes',
    NULLISH: 'null',
    EMPTYISH: '~',
    YAMLISH: '- item: {a: b}',
    PEM: '-----BEGIN KEY-----\nMIIE/+==\n-----END KEY-----\n',
  };
  const response: ExportResponse = {
    project: 'p',
    env: 'e',
    values: true,
    exported_at: '2026-01-01T00:00:00.000Z',
    secrets: Object.entries(tricky).map(([name, value], n) => ({
      name,
      version: 1,
      updated_at: '2026-01-01T00:00:00.000Z',
      value,
      provider: n === 0 ? 'openai' : null,
      owner: n === 0 ? 'team-a' : null,
      expires_at: null,
      rotation: n === 0 ? { interval: 86400, grace: 3600 } : null,
      tags: n === 0 ? ['a', 'b'] : [],
      metadata: (n === 0 ? { k: 'v' } : {}) as Record<string, string>,
    })),
  };
  for (const format of ['env', 'json', 'yaml'] as const) {
    test(`as ${format}`, () => {
      const text = renderExport(response, format);
      const r = parseSecretsFile(text, format);
      assert.deepEqual(r.invalid, []);
      assert.deepEqual(r.warnings, []);
      assert.deepEqual(Object.fromEntries(r.entries.map((e) => [e.name, e.value])), tricky);
      if (format !== 'env') {
        const first = r.entries[0]!;
        assert.equal(first.provider, 'openai');
        assert.deepEqual(first.tags, ['a', 'b']);
        assert.deepEqual(first.metadata, { k: 'v' });
        assert.equal(String(first.rotation!.interval), '86400');
      }
    });
  }

  test('an export without values holds no value and imports as nothing', () => {
    const names = { ...response, values: false, secrets: response.secrets.map(({ value: _v, ...s }) => s) };
    for (const format of ['env', 'json', 'yaml'] as const) {
      const text = renderExport(names, format);
      for (const v of Object.values(tricky))
        if (v.length > 3) assert.ok(!text.includes(v), `${format}: ${v}`);
    }
    assert.ok(
      parseSecretsFile(renderExport(names, 'json'), 'json').invalid.every((i) =>
        /without --values/.test(i.message),
      ),
    );
  });
});
