import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTestApp } from '../helpers/app.ts';

/**
 * Issue 13 item 11: docs/access.md says what the engine does with a policy that fails to evaluate.
 * It fails closed: the decision is DENY with `policy evaluation failed (POLICY#N)` and the error
 * listed, even where a permit matches and Cedar alone (which skips the failing policy) would allow.
 */
test('policy test: a forbid that fails to evaluate makes a permitted request DENY, with the error listed', async (t) => {
  const a = await buildTestApp(t);
  assert.equal((await a.call('POST', '/v1/projects', { name: 'p' })).statusCode, 201);
  const ask = { principal: { roles: ['developer'] }, action: 'secret.read', resource: 'p/dev/K' };
  const before = await a.call('POST', '/v1/sys/policy-test', ask);
  assert.equal(before.statusCode, 200, before.body);
  assert.equal(before.json().decision, 'allow');
  // an integer overflow at evaluation time
  const put = await a.call('PUT', '/v1/sys/policies/overflow', {
    policy:
      'forbid (principal, action == Strongroom::Action::"secret.read", resource) when { context.now * 9223372036854775807 > 0 };',
  });
  assert.equal(put.statusCode, 200, put.body);
  const after = (await a.call('POST', '/v1/sys/policy-test', ask)).json();
  assert.equal(after.decision, 'deny');
  assert.equal(after.reason, 'policy evaluation failed (overflow#1)');
  assert.equal(after.errors.length, 1);
  assert.match(after.errors[0], /^overflow#1: /);
});
