import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { APIError } from 'openai';
import { startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Issue 12 item 14 (decision 0010): the prompt firewall refuses a prompt
 * carrying a vault value, but must not become an equality oracle for values
 * the caller cannot read. A match of such a value is a compromise signal:
 * the same 400 `credential_detected` answer, and the credential is revoked
 * (its next call is 401), alerted on (audit `gateway.compromise`, the
 * anomaly metric, a log line), so a caller learns a right guess at most once
 * and the value's owners are told. A value the caller may read is refused
 * as before and nothing else happens.
 */

test('a vault value the caller cannot read is answered like any vault value, once: the credential is revoked and the compromise recorded', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const secret = 'payroll-db-password-5d1c7a9e2b';
  assert.equal((await s.vault('POST', '/v1/projects', { name: 'payroll' })).status, 201);
  assert.equal((await s.vault('PUT', '/v1/secrets/payroll/prod/DB_PASSWORD', { value: secret })).status, 200);
  // the fingerprints of new values are taken as they are written
  await new Promise((r) => setTimeout(r, 100));

  const ask = async (token: string, content: string) => {
    try {
      await s
        .openai(token)
        .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content }] });
      return { status: 200, code: undefined };
    } catch (err) {
      assert.ok(err instanceof APIError, String(err));
      return { status: err.status, code: (err.error as { code?: string } | undefined)?.code };
    }
  };

  // a caller that may read the value: refused, and still a valid caller
  const owner = await s.appToken({ scope: { paths: ['payroll/prod'] } });
  assert.deepEqual(await ask(owner, `connect with ${secret} please`), {
    status: 400,
    code: 'credential_detected',
  });
  assert.equal((await ask(owner, 'hello')).status, 200);

  // a caller that may not: a wrong guess is served, a right one gets the same refusal as the owner…
  const guesser = await s.appToken({ scope: { paths: ['llm/dev'] } });
  assert.equal((await ask(guesser, 'is it payroll-db-password-0000000000?')).status, 200);
  assert.deepEqual(await ask(guesser, `is it ${secret}?`), { status: 400, code: 'credential_detected' });
  // …and costs it its credential: nothing more can be asked with it
  assert.equal((await ask(guesser, 'hello')).status, 401);
  assert.equal((await s.vault('GET', '/v1/auth/token/lookup-self', undefined, guesser)).status, 401);
  assert.equal(
    s.openaiFake.requests.some((r) => r.rawBody.includes(secret)),
    false,
    'the value never went upstream',
  );

  const alerts = s.audit().filter((e) => e.operation === 'gateway.compromise');
  assert.equal(alerts.length, 1, 'one compromise record');
  assert.deepEqual((alerts[0]!.request as { secrets: string[] }).secrets, ['payroll/prod/DB_PASSWORD']);
  assert.ok(!JSON.stringify(s.audit()).includes(secret), 'the value is in no audit entry');
  assert.ok(!s.logs().includes(secret), 'nor in the log');
  assert.match(s.logs(), /vault value its caller may not read/);
  const metrics = String((await s.vault('GET', '/v1/sys/metrics')).json);
  assert.match(
    metrics,
    /strongroom_gateway_anomalies_total\{kind="vault_value_outside_scope",action="revoke"\} 1/,
  );
});

test('a virtual key is judged by what its creator may read: a value its creator reads is refused, a production value it may not read revokes the key', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const own = 'chatbot-own-config-value-71af03';
  const foreign = 'billing-foreign-value-2c9d44e1';
  for (const p of ['chatbot', 'billing'])
    assert.equal((await s.vault('POST', '/v1/projects', { name: p })).status, 201);
  await s.vault('PUT', '/v1/secrets/chatbot/dev/CONFIG', { value: own });
  await s.vault('PUT', '/v1/secrets/billing/prod/VALUE', { value: foreign });
  await new Promise((r) => setTimeout(r, 100));
  // a developer token mints the key: developers read every value but production ones
  const dev = await s.vault<{ auth: { client_token: string } }>('POST', '/v1/auth/token/create', {
    roles: ['developer'],
    ttl: '1h',
    display_name: 'chatbot-developer',
  });
  assert.equal(dev.status, 200, JSON.stringify(dev.json));
  const minted = await s.vault<{ virtual_key: string }>(
    'POST',
    '/v1/gateway/keys',
    { name: 'chatbot-key', ttl: '30m', scope: { providers: ['openai'] } },
    dev.json.auth.client_token,
  );
  assert.equal(minted.status, 201, JSON.stringify(minted.json));
  const call = (content: string) =>
    fetch(`${s.gw}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${minted.json.virtual_key}` },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content }] }),
    });
  assert.equal((await call(`use ${own}`)).status, 400);
  assert.equal((await call('hello')).status, 200, 'its creator may read it: the key stays valid');
  assert.equal(s.audit().filter((e) => e.operation === 'gateway.compromise').length, 0);
  assert.equal((await call(`use ${foreign}`)).status, 400);
  assert.equal((await call('hello')).status, 401, 'the key is revoked');
  assert.equal(s.audit().filter((e) => e.operation === 'gateway.compromise').length, 1);
});
