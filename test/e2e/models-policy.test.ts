import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import type { AuthResponse } from '../../src/api/v1.ts';
import { buildTestApp } from '../helpers/app.ts';

const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
  type: 'spki',
  format: 'pem',
}) as string;

test('a model policy names a transit key only for someone who may decrypt with it (model.manage alone is not enough)', async (t) => {
  const a = await buildTestApp(t);
  assert.equal((await a.call('POST', '/v1/transit/keys/victim-weights', {})).statusCode, 200);
  assert.equal((await a.call('POST', '/v1/transit/keys/team-weights', {})).statusCode, 200);
  const policy = await a.call('PUT', '/v1/sys/policies/model-admins', {
    policy:
      'permit (principal in Strongroom::Role::"model-admin", action == Strongroom::Action::"model.manage", resource);\n' +
      'permit (principal in Strongroom::Role::"model-admin", action == Strongroom::Action::"transit.decrypt", resource == Strongroom::TransitKey::"team-weights");',
  });
  assert.equal(policy.statusCode, 200, policy.body);
  const made = await a.call('POST', '/v1/auth/token/create', { roles: ['model-admin'], ttl: '10m' });
  assert.equal(made.statusCode, 200, made.body);
  const token = (made.json() as AuthResponse).auth.client_token;
  const steal = await a.call('PUT', '/v1/models/stolen', { key: 'victim-weights', signers: [pem] }, token);
  assert.equal(steal.statusCode, 403, steal.body);
  assert.match(steal.body, /needs transit\.decrypt on it/);
  assert.equal((await a.call('GET', '/v1/models/stolen')).statusCode, 404, 'nothing was written');
  const own = await a.call('PUT', '/v1/models/team', { key: 'team-weights', signers: [pem] }, token);
  assert.equal(own.statusCode, 200, own.body);
  assert.equal(
    (own.json() as { model: string }).model,
    'team',
    'the signed model name defaults to the policy name',
  );
});
