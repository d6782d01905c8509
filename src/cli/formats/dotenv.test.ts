import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SECRET_NAME_PATTERN } from '../../api/bulk.ts';
import { SECRET_NAME_RE } from '../../engines/kv/names.ts';
import { parseDotenv, quoteDotenv } from './dotenv.ts';
import { parseSecretsFile } from './index.ts';

const values = (text: string) => Object.fromEntries(parseDotenv(text).entries.map((e) => [e.name, e.value]));

describe('the .env parser', () => {
  const cases: [string, string, Record<string, string>][] = [
    ['a plain pair', 'KEY=value', { KEY: 'value' }],
    ['blanks around the name, = and value are trimmed', '  KEY =  value  ', { KEY: 'value' }],
    ['an export prefix is ignored', 'export KEY=value', { KEY: 'value' }],
    ['export with a tab', 'export\tKEY=v', { KEY: 'v' }],
    ['a key named export', 'export=1', { export: '1' }],
    ['an empty value', 'KEY=', { KEY: '' }],
    ['empty double quotes', 'KEY=""', { KEY: '' }],
    ['an = inside the value', 'URL=postgres://u:p@h/db?a=b&c=d', { URL: 'postgres://u:p@h/db?a=b&c=d' }],
    ['an inline comment after a blank', 'KEY=value # note', { KEY: 'value' }],
    ['a # without a blank is part of the value', 'PASSWORD=p#ss#word', { PASSWORD: 'p#ss#word' }],
    ['a value that starts with #', 'KEY=#hash', { KEY: '#hash' }],
    ['only a comment after =', 'KEY= # nothing', { KEY: '' }],
    ['single quotes are literal', 'KEY=\'a\\nb $X "q"\'', { KEY: 'a\\nb $X "q"' }],
    ['double quotes expand \\n and escapes', 'KEY="a\\nb\\tc \\"q\\" \\\\ \\$"', { KEY: 'a\nb\tc "q" \\ $' }],
    ['an unknown escape is kept', 'KEY="a\\qb"', { KEY: 'a\\qb' }],
    ['# inside quotes is not a comment', 'KEY="a # b" # c', { KEY: 'a # b' }],
    ['backticks are literal', 'KEY=`it\'s "x"`', { KEY: 'it\'s "x"' }],
    ['blanks inside quotes are kept', "KEY='  spaced  '", { KEY: '  spaced  ' }],
    ['a multi-line double-quoted value', 'KEY="line1\nline2"\nNEXT=1', { KEY: 'line1\nline2', NEXT: '1' }],
    [
      'a multi-line single-quoted PEM',
      "PEM='-----BEGIN KEY-----\nabc\n-----END KEY-----'",
      { PEM: '-----BEGIN KEY-----\nabc\n-----END KEY-----' },
    ],
    ['CRLF line endings', 'A=1\r\nB="x"\r\n', { A: '1', B: 'x' }],
    ['comments and blank lines are skipped', '# c\n\n   # indented\nA=1', { A: '1' }],
    ['a byte order mark is ignored', '\uFEFFA=1', { A: '1' }],
    ['unicode values', 'A=héllo→世界🔑', { A: 'héllo→世界🔑' }],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is what is tested
    ['${VAR} is not expanded', 'A=${HOME}/x', { A: '${HOME}/x' }],
  ];
  for (const [label, text, expected] of cases) {
    test(label, () => {
      const r = parseDotenv(text);
      assert.deepEqual(r.invalid, []);
      assert.deepEqual(values(text), expected);
    });
  }

  const bad: [string, string, number, RegExp][] = [
    ['a line without =', 'A=1\nnot a pair\nB=2', 2, /NAME=value/],
    ['a name with a blank', 'MY KEY=1', 1, /blanks/],
    ['nothing before =', '=value', 1, /no name/],
    ['text after the closing quote', 'A="x" y', 1, /after the closing quote/],
    ['an unterminated quote', 'A=1\nB="open\nC=3', 2, /never closed/],
  ];
  for (const [label, text, line, message] of bad) {
    test(`reports ${label} with its line number`, () => {
      const r = parseDotenv(text);
      assert.equal(r.invalid.length, 1, JSON.stringify(r.invalid));
      assert.equal(r.invalid[0]!.line, line);
      assert.match(r.invalid[0]!.message, message);
    });
  }

  test('entries carry the line they start on', () => {
    const r = parseDotenv('# head\nA=1\nB="x\ny"\nC=3');
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.line]),
      [
        ['A', 2],
        ['B', 3],
        ['C', 5],
      ],
    );
  });

  test('a duplicate name: the last one wins, with a warning naming both lines', () => {
    const r = parseSecretsFile('A=1\nB=2\nA=3', 'env');
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.value]),
      [
        ['B', '2'],
        ['A', '3'],
      ],
    );
    assert.equal(r.warnings.length, 1);
    assert.equal(r.warnings[0]!.line, 3);
    assert.match(r.warnings[0]!.message, /line 1/);
  });

  test('names that break the secret-name rule are invalid, with their line', () => {
    const r = parseSecretsFile('GOOD=1\n1BAD=2\nBAD$NAME=3\n', 'env');
    assert.deepEqual(
      r.invalid.map((i) => [i.line, i.name]),
      [
        [2, '1BAD'],
        [3, 'BAD$NAME'],
      ],
    );
    assert.deepEqual(
      r.entries.map((e) => e.name),
      ['GOOD'],
    );
  });

  test("the client's name rule is the server's", () => {
    assert.equal(SECRET_NAME_PATTERN.source, SECRET_NAME_RE.source);
  });
});

describe('quoteDotenv', () => {
  const tricky = [
    '',
    'plain',
    'sk-proj-abc_DEF-123',
    'with space',
    ' leading and trailing ',
    'a=b=c',
    'p#ss #word',
    '#start',
    "it's",
    'say "hi"',
    `both ' and "`,
    'back\\slash\\n',
    'line1\nline2\n',
    'cr\r\nlf',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is what is tested
    '$HOME ${X} `cmd`',
    'tab\there',
    'héllo→世界🔑',
    '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n',
    '"',
    "'",
    '\\',
    '\\"',
  ];
  for (const v of tricky) {
    test(`round-trips ${JSON.stringify(v)}`, () => {
      const text = `K=${quoteDotenv(v)}\n`;
      const r = parseDotenv(text);
      assert.deepEqual(r.invalid, []);
      assert.equal(r.entries[0]!.value, v, text);
    });
  }
});
