import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_MAX_JSON_DEPTH, JsonTooDeepError, jsonDepth, parseJsonLimited } from './json.ts';

const nestedArrays = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const nestedObjects = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const mixed = (n: number) => `${'{"a":['.repeat(n / 2)}1${']}'.repeat(n / 2)}`;

test('the depth of a body counts its arrays and objects, not brackets inside strings', () => {
  const cases: [string, number][] = [
    ['1', 0],
    ['"[[[{{{"', 0],
    ['[]', 1],
    ['{}', 1],
    ['{"a":[1,{"b":[]}]}', 4],
    ['{"a":"]]]]"}', 1],
    ['{"a":"\\"[[[[["}', 1],
    ['{"a":"\\\\","b":[[[1]]]}', 4],
    ['{"a":"\\\\\\"[[","b":[1]}', 2],
    ['["\\u005b[", [[]]]', 3],
    [nestedArrays(10), 10],
    [nestedObjects(10), 10],
    [mixed(10), 10],
  ];
  for (const [text, depth] of cases) {
    assert.equal(jsonDepth(text), depth, text);
    assert.deepEqual(JSON.parse(text), parseJsonLimited(text, { maxDepth: depth || 1 }), text);
  }
});

test('a body at the limit is parsed; one level deeper is refused with JsonTooDeepError', () => {
  for (const make of [nestedArrays, nestedObjects, mixed]) {
    assert.deepEqual(parseJsonLimited(make(64), { maxDepth: 64 }), JSON.parse(make(64)));
    assert.throws(
      () => parseJsonLimited(make(66), { maxDepth: 65 }),
      (err: unknown) =>
        err instanceof JsonTooDeepError && err.code === 'json_too_deep' && err.maxDepth === 65,
    );
  }
  assert.equal(DEFAULT_MAX_JSON_DEPTH, 64);
});

test('a body nested two million deep is refused without recursion, scanning only up to the limit', () => {
  for (const make of [nestedArrays, nestedObjects, mixed]) {
    const text = make(2_000_000);
    const t0 = performance.now();
    assert.throws(() => parseJsonLimited(text, { maxDepth: 64 }), JsonTooDeepError);
    assert.equal(jsonDepth(text, 64), 65, 'the scan stops one level past the limit');
    assert.ok(performance.now() - t0 < 1000, 'refused quickly');
  }
  // unclosed: too deep as well, whatever follows
  assert.throws(() => parseJsonLimited('['.repeat(100_000), { maxDepth: 64 }), JsonTooDeepError);
});

test('invalid JSON within the limit throws SyntaxError, as JSON.parse does', () => {
  for (const text of ['', '{', '{"a":"unterminated', '[1,]', ']]]]]', '{"a":1}}']) {
    assert.throws(() => parseJsonLimited(text, { maxDepth: 64 }), SyntaxError, text);
  }
});

test('a text that only shifts brackets into strings cannot hide its depth', () => {
  // an escaped backslash before the quote closes the string: the brackets after it count
  const text = `["\\\\",${nestedArrays(100)}]`;
  assert.equal(jsonDepth(text), 101);
  assert.throws(() => parseJsonLimited(text, { maxDepth: 64 }), JsonTooDeepError);
});

test('maxDepth must be a positive integer', () => {
  for (const maxDepth of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => parseJsonLimited('{}', { maxDepth }), TypeError);
  }
});
