import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GatewayConfig } from '../config/gateway.ts';
import { ANONYMOUS, createLabeler, MAX_LABEL_LENGTH, OTHER, sanitizeLabel } from './labels.ts';

const route = (provider: string, models: string[]): GatewayConfig['routes'][number] => ({
  provider,
  models,
  base_url: 'https://api.example.com',
  keys: ['llm/dev/KEY'],
});

const CONFIG: Pick<GatewayConfig, 'routes' | 'prices'> = {
  routes: [
    route('openai', ['gpt-*', 'gpt-4o-*', 'o3', 'text-embedding-3-small']),
    route('anthropic', ['claude-*']),
  ],
  prices: {
    'gpt-4o': { input: 2.5, output: 10 },
    'claude-*': { input: 3, output: 15 },
    'mistral-large': { input: 2, output: 6 },
  },
};

test('a model named exactly in a route or a price is its own label', () => {
  const l = createLabeler(CONFIG);
  assert.equal(l.model('o3'), 'o3');
  assert.equal(l.model('text-embedding-3-small'), 'text-embedding-3-small');
  assert.equal(l.model('gpt-4o'), 'gpt-4o', 'an exact price key');
  assert.equal(l.model('mistral-large'), 'mistral-large');
});

test('any other name a route glob matches is labelled by the most specific glob', () => {
  const l = createLabeler(CONFIG);
  assert.equal(l.model('gpt-4o-mini'), 'gpt-4o-*');
  assert.equal(l.model('gpt-4o-2024-08-06'), 'gpt-4o-*');
  assert.equal(l.model('gpt-5'), 'gpt-*');
  assert.equal(l.model('claude-sonnet-5-5'), 'claude-*');
});

test('a name no route serves is `other`, however long or strange', () => {
  const l = createLabeler(CONFIG);
  for (const name of ['llama-3', '', 'o3-mini', 'GPT-4O', 'x'.repeat(8000), 'a"b\\c\nd', '\u0000', '…']) {
    assert.equal(l.model(name), OTHER, JSON.stringify(name.slice(0, 20)));
  }
});

test('150 made-up model names give at most as many labels as the configuration names, plus other', () => {
  const l = createLabeler(CONFIG);
  const labels = new Set<string>();
  for (let i = 0; i < 150; i++) {
    for (const name of [
      `gpt-fake-${i}`,
      `claude-fake-${i}`,
      `made-up-${i}`,
      `gpt-4o-${i}`,
      `${'g'.repeat(i * 50)}`,
    ]) {
      labels.add(l.model(name));
    }
  }
  assert.deepEqual([...labels].sort(), ['claude-*', 'gpt-*', 'gpt-4o-*', OTHER].sort());
});

test('an 8,000-character model name that a glob matches is labelled by the glob, never by the name', () => {
  const l = createLabeler(CONFIG);
  const name = `gpt-${'x'.repeat(8000)}`;
  assert.equal(l.model(name), 'gpt-*');
  for (let i = 0; i < 3_000; i++) l.model(`gpt-${i}`);
  assert.equal(l.model('o3'), 'o3', 'the memo stays correct once full');
});

test('callers are labelled by stable IDs, never by display names', () => {
  const l = createLabeler(CONFIG);
  assert.equal(l.caller({ kind: 'virtual_key', id: 'k-123' }), 'vk:k-123');
  assert.equal(
    l.caller({ kind: 'workload', id: 'spiffe://prod/ns/billing', spiffe_id: 'spiffe://prod/ns/billing' }),
    'workload:spiffe://prod/ns/billing',
  );
  assert.equal(l.caller({ kind: 'token', id: 'acc-1' }, { type: 'app', id: 'app-9' }), 'app:app-9');
  assert.equal(l.caller({ kind: 'token', id: 'acc-1' }, { type: 'user', id: 'u-7' }), 'user:u-7');
  assert.equal(l.caller({ kind: 'token', id: 'acc-1' }, { type: 'root', id: 'root' }), 'root');
  assert.equal(
    l.caller({ kind: 'token', id: 'acc-1' }, { type: 'workload', id: 'spiffe://td/w' }),
    'workload:spiffe://td/w',
  );
  // standalone tokens: one label, not one per accessor (tokens are minted without bound)
  assert.equal(l.caller({ kind: 'token', id: 'acc-1' }, { type: 'token', id: 'acc-1' }), 'token');
  assert.equal(l.caller({ kind: 'token', id: 'acc-2' }), 'token');
  assert.equal(l.caller(undefined), ANONYMOUS);
});

test('a display name with quotes, backslashes or newlines never reaches a caller label', () => {
  const l = createLabeler(CONFIG);
  const evil = 'virtual-key:"} evil_metric{x="1\nfake 1\\';
  const caller = { kind: 'virtual_key' as const, id: 'k-1', display_name: evil };
  const label = l.caller(caller);
  assert.equal(label, 'vk:k-1');
  // even an ID that is not what we expect is reduced to printable characters
  for (const v of [
    l.caller({ kind: 'virtual_key', id: evil }),
    l.caller({ kind: 'workload', id: `spiffe://td/${evil}` }),
    l.caller({ kind: 'token', id: 'a' }, { type: 'app', id: evil }),
  ]) {
    assert.match(v, /^[A-Za-z0-9._\-:/@+*]+$/, v);
    assert.ok(v.length <= MAX_LABEL_LENGTH + 'workload:'.length, `${v.length}`);
  }
});

test('sanitizeLabel keeps IDs, model names and globs, and nothing else', () => {
  assert.equal(sanitizeLabel('spiffe://td/ns/a-b_c.d'), 'spiffe://td/ns/a-b_c.d');
  assert.equal(sanitizeLabel('claude-3-5-sonnet@20240620'), 'claude-3-5-sonnet@20240620');
  assert.equal(sanitizeLabel('gpt-4o*'), 'gpt-4o*');
  assert.equal(sanitizeLabel('a"b\\c\nd e'), 'a_b_c_d_e');
  assert.equal(sanitizeLabel(''), OTHER);
  assert.equal(sanitizeLabel('x'.repeat(8000)).length, MAX_LABEL_LENGTH);
  assert.equal(sanitizeLabel('é\u{1F600}'), '___', 'non-ASCII (a surrogate pair is two code units)');
});
