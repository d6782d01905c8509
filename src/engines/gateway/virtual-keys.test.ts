import assert from 'node:assert/strict';
import { test } from 'node:test';
import { globCovers, globMatch } from '../../lib/glob.ts';
import {
  keyAllows,
  keyIdentity,
  limitsWithin,
  modelResource,
  scopeWithin,
  type VirtualKey,
} from './virtual-keys.ts';

test('model globs match whole names; * matches any run of characters', () => {
  const cases: [string, string, boolean][] = [
    ['gpt-4o*', 'gpt-4o', true],
    ['gpt-4o*', 'gpt-4o-mini', true],
    ['gpt-4o*', 'gpt-4', false],
    ['*-mini', 'gpt-4o-mini', true],
    ['claude-*-sonnet', 'claude-3-5-sonnet', true],
    ['gpt-4.1', 'gpt-4x1', false],
    ['gpt-4o', 'gpt-4o-mini', false],
    ['*', 'anything', true],
  ];
  for (const [p, v, want] of cases) assert.equal(globMatch(p, v), want, `${p} ~ ${v}`);
});

test('glob coverage is exact for prefixes and conservative otherwise', () => {
  const cases: [string, string, boolean][] = [
    ['gpt-4o*', 'gpt-4o-mini', true],
    ['gpt-4o*', 'gpt-4o-mini*', true],
    ['gpt-4o-mini*', 'gpt-4o*', false],
    ['gpt-*', 'claude-*', false],
    ['*', 'gpt-*', true],
    ['*-mini', 'gpt-4o-mini', true],
    ['*-mini', 'gpt-*-mini', false],
    ['gpt-4o', 'gpt-4o', true],
  ];
  for (const [outer, inner, want] of cases)
    assert.equal(globCovers(outer, inner), want, `${outer} ⊇ ${inner}`);
});

test('scopes and limits narrow, never widen', () => {
  assert.ok(scopeWithin({ providers: ['openai'] }, {}));
  assert.ok(scopeWithin({}, {}));
  assert.ok(!scopeWithin({}, { providers: ['openai'] }));
  assert.ok(!scopeWithin({ providers: ['openai', 'anthropic'] }, { providers: ['openai'] }));
  assert.ok(scopeWithin({ models: ['gpt-4o-mini'] }, { models: ['gpt-4o*'] }));
  assert.ok(!scopeWithin({ models: ['gpt-*'] }, { models: ['gpt-4o*'] }));
  assert.ok(limitsWithin({ requests_per_minute: 1 }, {}));
  assert.ok(!limitsWithin({}, { requests_per_minute: 1 }));
  assert.ok(limitsWithin({ spend: { usd: 1, period: 'day' } }, { spend: { usd: 2, period: 'day' } }));
  assert.ok(!limitsWithin({ spend: { usd: 1, period: 'day' } }, { spend: { usd: 2, period: 'month' } }));
  assert.ok(!limitsWithin({ tokens_per_minute: 11 }, { tokens_per_minute: 10 }));
});

const key: VirtualKey = {
  id: 'vk_0123456789abcdef01234567',
  name: 'chatbot',
  owner: { type: 'app', id: 'app-id', name: 'chatbot' },
  created_by: 'app:chatbot',
  creator: { accessor: 'tok-accessor', orphan: false },
  state: 'active',
  scope: { providers: ['openai'], models: ['gpt-4o*'] },
  limits: {},
  created_at: '2026-01-01T00:00:00.000Z',
  expires_at: '2026-01-01T01:00:00.000Z',
  revoked: false,
  roles: ['virtual-key'],
};

test('a key allows only the providers and models of its scope', () => {
  assert.ok(keyAllows(key, 'openai', 'gpt-4o-mini'));
  assert.ok(!keyAllows(key, 'anthropic', 'gpt-4o-mini'));
  assert.ok(!keyAllows(key, 'openai', 'o1'));
  assert.ok(keyAllows({ scope: {} }, 'any', 'thing'));
});

test("a key's principal is its own, in role virtual-key and its owner app, never the creator's roles", () => {
  const id = keyIdentity(key);
  assert.deepEqual(id.policies, ['virtual-key']);
  assert.equal(id.accessor, `vk:${key.id}`);
  assert.deepEqual(id.owner, { type: 'app', id: 'app-id', name: 'chatbot' });
  assert.equal(keyIdentity({ ...key, owner: { type: 'root', id: '', name: '' } }).owner.type, 'token');
  assert.deepEqual(modelResource('openai', 'gpt-4o', 'chat.completions'), {
    type: 'Model',
    id: 'openai/gpt-4o',
    attrs: { provider: 'openai', model: 'gpt-4o', route: 'chat.completions' },
  });
});
