import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scopeAllows, scopeProblem, scopeWithin } from './scope.ts';

test('dynamic credentials: a scoped token reaches only those its scope names; a child names no more than its parent', () => {
  const db = (role: string) => ({ type: 'System' as const, id: `database/creds/${role}` });
  const tool = (name: string) => ({ type: 'Tool' as const, id: name });
  const scope = { paths: ['llm/dev'], credentials: ['database/creds/rag-*', 'tools/search'] };
  assert.equal(scopeAllows(scope, db('rag-reader')), true);
  assert.equal(scopeAllows(scope, db('dba')), false);
  assert.equal(scopeAllows(scope, tool('search')), true);
  assert.equal(scopeAllows(scope, tool('search-admin')), false);
  assert.equal(scopeAllows({ paths: ['llm/dev'] }, db('rag-reader')), false, 'no credentials named: none');
  assert.equal(
    scopeAllows({ providers: ['openai'] }, { type: 'System', id: 'provider-keys/creds/x' }),
    false,
  );
  assert.equal(scopeAllows(null, db('dba')), true, 'an unscoped token: Cedar decides');
  assert.equal(scopeWithin({ paths: ['llm/dev'], credentials: ['database/creds/rag-reader'] }, scope), true);
  assert.equal(scopeWithin({ paths: ['llm/dev'], credentials: ['database/creds/*'] }, scope), false);
  assert.equal(
    scopeWithin({ paths: ['llm/dev'], credentials: ['tools/search'] }, { paths: ['llm/dev'] }),
    false,
  );
  assert.equal(scopeProblem({ credentials: ['sys/leases/x'] })?.includes('credentials'), true);
  assert.equal(scopeProblem({ credentials: ['database/creds/../x'] }) !== undefined, true);
  assert.equal(scopeProblem({ credentials: ['provider-keys/creds/agent-*'] }), undefined);
});
