import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Identity } from '../../contract/identity.ts';
import type { RequestInfo } from '../../contract/operation.ts';
import type { Resource } from '../../contract/resource.ts';
import { manualClock } from '../../lib/clock.ts';
import type { Authorizer } from '../../policy/authorize.ts';
import { authorizationStep } from './authorize.ts';

const REQ: RequestInfo = { request_id: 'r1', client_address: '10.0.0.7' };
const scoped: Identity = {
  kind: 'token',
  accessor: 'a1',
  display_name: 'app',
  policies: ['root'],
  owner: { type: 'app', id: 'c1', name: 'app' },
  scope: { paths: ['demo/dev'] },
  mfa: false,
};
const secret = (env: string): Resource => ({
  type: 'Secret',
  id: `demo/${env}/KEY`,
  attrs: { project: 'demo', environment: env, name: 'KEY' },
});
const allowAll: Authorizer = { authorize: async () => ({ allowed: true, reason: 'permit' }) };

test('the scope is checked before Cedar and binds even a root-policy token', async () => {
  let asked = 0;
  const decide = authorizationStep(
    {
      authorize: async () => {
        asked++;
        return { allowed: true, reason: 'permit' };
      },
    },
    manualClock(),
    new Set(),
  );
  assert.deepEqual(await decide(scoped, 'secret.read', secret('prod'), REQ), {
    allowed: false,
    reason: "outside the token's scope",
  });
  assert.equal(asked, 0, 'Cedar is not asked for a resource outside the scope');
  assert.equal((await decide(scoped, 'secret.read', secret('dev'), REQ)).allowed, true);
});

test('an unscoped action skips only the scope: Cedar still decides', async () => {
  const deny: Authorizer = { authorize: async () => ({ allowed: false, reason: 'no policy permits' }) };
  const system: Resource = { type: 'System', id: 'identity' };
  const unscoped = new Set(['identity.validate']);
  assert.equal(
    (await authorizationStep(allowAll, manualClock(), unscoped)(scoped, 'identity.validate', system, REQ))
      .allowed,
    true,
  );
  assert.equal(
    (await authorizationStep(deny, manualClock(), unscoped)(scoped, 'identity.validate', system, REQ))
      .allowed,
    false,
  );
  assert.equal(
    (await authorizationStep(allowAll, manualClock(), unscoped)(scoped, 'sys.read', system, REQ)).allowed,
    false,
  );
});

test('an evaluation that throws is a deny, never an allow', async () => {
  const broken: Authorizer = {
    authorize: async () => {
      throw new Error('cedar exploded');
    },
  };
  assert.deepEqual(
    await authorizationStep(broken, manualClock(), new Set())(
      { ...scoped, scope: null },
      'secret.read',
      secret('dev'),
      REQ,
    ),
    {
      allowed: false,
      reason: 'policy evaluation failed',
    },
  );
});

test('Cedar is told the client address and the clock time', async () => {
  let ctx: unknown;
  const clock = manualClock(Date.UTC(2026, 11, 7));
  const remember: Authorizer = {
    authorize: async (_i, _a, _r, c) => {
      ctx = c;
      return { allowed: true, reason: '' };
    },
  };
  await authorizationStep(remember, clock, new Set())(
    { ...scoped, scope: null },
    'secret.read',
    secret('dev'),
    REQ,
  );
  assert.deepEqual(ctx, { client_address: '10.0.0.7', now: Date.UTC(2026, 11, 7) });
});
