import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { negatives, positives } from '../../test/fixtures/scan/corpus.ts';
import { detect, fingerprint, isPlaceholder, RULES, redact, shannonEntropy } from './rules.ts';

describe('scan rules: precision on the corpus', () => {
  for (const p of positives()) {
    test(`finds ${p.ruleId}: ${p.template}`, () => {
      const found = detect(p.line);
      assert.equal(
        found.length,
        1,
        `expected one finding, got ${JSON.stringify(found.map((f) => f.ruleId))}`,
      );
      assert.equal(found[0]!.ruleId, p.ruleId);
      assert.ok(p.line.includes(found[0]!.secret));
    });
  }
  for (const n of negatives()) {
    test(`ignores look-alike: ${n.template}`, () => {
      assert.deepEqual(
        detect(n.line).map((f) => f.ruleId),
        [],
      );
    });
  }
  test('every rule has at least one true positive in the corpus', () => {
    const covered = new Set(positives().map((p) => p.ruleId));
    for (const r of RULES) assert.ok(covered.has(r.id), `no positive for ${r.id}`);
  });
  test('the corpus also holds with other seeds (no lucky draw)', () => {
    for (let seed = 10; seed < 60; seed++) {
      for (const p of positives(seed)) assert.equal(detect(p.line)[0]?.ruleId, p.ruleId, p.line);
      for (const n of negatives(seed + 1000)) assert.deepEqual(detect(n.line), [], n.line);
    }
  });
});

describe('scan rules: helpers', () => {
  test('redact shows at most 4 + 2 characters', () => {
    const key = `sk-ant-api03-${'a1B2'.repeat(24)}AA`;
    assert.equal(redact(key), 'sk-a…AA');
    assert.equal(redact('abcdefghij'), 'ab…');
    assert.equal(redact('short'), '…');
  });
  test('fingerprint is a stable truncated SHA-256', () => {
    assert.equal(fingerprint('x'), fingerprint('x'));
    assert.match(fingerprint('x'), /^[0-9a-f]{20}$/);
    assert.notEqual(fingerprint('x'), fingerprint('y'));
  });
  test('entropy and placeholders', () => {
    assert.equal(shannonEntropy('aaaa'), 0);
    assert.ok(Math.abs(shannonEntropy('abcd') - 2) < 1e-9);
    assert.ok(isPlaceholder('your-key-here-please-set'));
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell-style placeholder
    assert.ok(isPlaceholder('${OPENAI_API_KEY}'));
    assert.ok(!isPlaceholder('Zq8vN2rTp4LkW9sXbY3mHc7d'));
  });
  test('several keys on one line are each reported, at their offsets', () => {
    const line = `A=AKIA${'QRSTUVWXYZ234567'} B=AKIA${'MNOPQRSTUVWXYZ23'}`;
    const found = detect(line);
    assert.deepEqual(
      found.map((f) => [f.ruleId, f.index]),
      [
        ['aws-access-key-id', 2],
        ['aws-access-key-id', 25],
      ],
    );
  });
});
