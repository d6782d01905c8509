import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuditBroker, AuditEntry } from '../../audit/broker.ts';
import type { Identity } from '../../contract/identity.ts';
import type { AnyOperation, RequestInfo } from '../../contract/operation.ts';
import { manualClock } from '../../lib/clock.ts';
import { auditStep } from './audit.ts';

function broker(enabled = true) {
  const entries: AuditEntry[] = [];
  return {
    entries,
    broker: {
      enabled,
      log: async (e: AuditEntry) => void entries.push(e),
      useKeys() {},
      async checkpoint() {},
      async close() {},
    } satisfies AuditBroker,
  };
}
const op: AnyOperation = {
  name: 'secret.read',
  action: 'secret.read',
  auth: 'token',
  resource: (i: { name: string }) => ({ type: 'Secret', id: `demo/dev/${i.name}` }),
  handle: async () => ({}),
};
const REQ: RequestInfo = {
  request_id: 'req-1',
  client_address: '10.0.0.1',
  trace_id: 'a'.repeat(32),
  token: 'srt_secret',
};
const who: Identity = {
  kind: 'token',
  accessor: 'acc-1',
  display_name: 'dev',
  policies: ['developer'],
  owner: { type: 'user', id: 'u1', name: 'ada' },
  scope: null,
  mfa: true,
};

test('a request writer fills the fixed fields once, and never the token', async () => {
  const { entries, broker: b } = broker();
  const audit = auditStep(b, manualClock(Date.UTC(2026, 11, 7))).forRequest(
    op,
    { name: 'KEY' },
    REQ,
    'Secret::demo/dev/KEY',
    who,
  )!;
  await audit({ type: 'request', decision: { allowed: true, reason: 'permit' } });
  await audit({ type: 'response', status: 'ok' });
  assert.equal(entries.length, 2);
  assert.deepEqual(entries[0], {
    time: '2026-12-07T00:00:00.000Z',
    request_id: 'req-1',
    trace_id: 'a'.repeat(32),
    operation: 'secret.read',
    action: 'secret.read',
    resource: 'Secret::demo/dev/KEY',
    actor: { accessor: 'acc-1', display_name: 'dev', type: 'user', id: 'u1' },
    client_address: '10.0.0.1',
    request: { name: 'KEY' },
    type: 'request',
    decision: { allowed: true, reason: 'permit' },
  });
  assert.ok(!JSON.stringify(entries).includes('srt_secret'));
});

test('with auditing off nothing is built or written', async () => {
  const { entries, broker: b } = broker(false);
  const step = auditStep(b, manualClock());
  assert.equal(step.forRequest(op, {}, REQ, 'x', who), undefined);
  await step.refusal(op, { name: 'KEY' }, REQ, 'invalid_token', undefined);
  assert.equal(entries.length, 0);
});

test('a refusal before authorization is a request and a response record with the code, even when the resource cannot be named', async () => {
  const { entries, broker: b } = broker();
  const step = auditStep(b, manualClock());
  await step.refusal(op, { name: 'KEY' }, REQ, 'rate_limited', undefined);
  await step.refusal(
    {
      ...op,
      resource: () => {
        throw new Error('bad input');
      },
    },
    'junk',
    REQ,
    'invalid_token',
    undefined,
  );
  assert.deepEqual(
    entries.map((e) => [e.type, e.resource, e.decision?.reason ?? e.error_code, e.actor]),
    [
      ['request', 'Secret::demo/dev/KEY', 'rate_limited', null],
      ['response', 'Secret::demo/dev/KEY', 'rate_limited', null],
      ['request', '-', 'invalid_token', null],
      ['response', '-', 'invalid_token', null],
    ],
  );
});
