import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { startGatewaySetup } from '../helpers/gateway.ts';

/**
 * Issue 12 item 16: the gateway's metric labels come from a bounded set —
 * configured model names and route globs (else `other`), callers by ID —
 * whatever model names and display names clients choose.
 */

test('150 client-chosen model names, an 8,000-character name and a display name full of quotes add only bounded, configured label values', async (t: TestContext) => {
  const s = await startGatewaySetup(t);
  const created = await s.vault<{ auth: { client_token: string } }>('POST', '/v1/auth/token/create', {
    roles: ['app'],
    ttl: '1h',
    display_name: 'evil"} 1\nstrongroom_fake{x="y',
    scope: { providers: ['openai'] },
  });
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const token = created.json.auth.client_token;
  const call = (model: string) =>
    fetch(`${s.gw}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
    });
  const metricsBefore = String((await s.vault('GET', '/v1/sys/metrics')).json);
  for (let i = 0; i < 150; i++) assert.equal((await call(`gpt-made-up-${i}`)).status, 200);
  assert.equal((await call(`gpt-${'a'.repeat(8000)}`)).status, 200);
  // refused calls are counted by caller: the label is an ID, not the display name
  assert.equal((await call('not-routed-model')).status, 404);

  const metrics = String((await s.vault('GET', '/v1/sys/metrics')).json);
  // series (histogram buckets aside: a fixed set per provider)
  const lines = (text: string) =>
    text.split('\n').filter((l) => l.startsWith('strongroom_gateway_') && !/_(bucket|sum|count)\{/.test(l));
  const added = lines(metrics).length - lines(metricsBefore).length;
  // requests, input and output tokens under `gpt-*`, spend and one denial under `token`
  assert.equal(added, 5, `${added} new series for 152 calls:\n${lines(metrics).join('\n')}`);
  assert.match(
    metrics,
    /strongroom_gateway_requests_total\{provider="openai",model="gpt-\*",status="200"\} 151/,
  );
  assert.doesNotMatch(metrics, /gpt-made-up|aaaaaaaaaa/);
  assert.doesNotMatch(metrics, /evil|strongroom_fake/);
  assert.match(metrics, /strongroom_gateway_denials_total\{caller="token",reason="model_not_routed"\} 1/);
  for (const l of metrics.split('\n')) assert.ok(l.length < 400, `a ${l.length}-character line`);
});
