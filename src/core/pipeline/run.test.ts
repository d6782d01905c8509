import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnyOperation, OperationContext } from '../../contract/operation.ts';
import { isStrongroomError, StrongroomError } from '../../errors/errors.ts';
import type { AuditFields } from './audit.ts';
import { runOperation } from './run.ts';

const CTX: OperationContext = {
  identity: undefined,
  request: { request_id: 'r', client_address: '127.0.0.1' },
};
const ALLOWED = { allowed: true, reason: 'permit' };
const op = (handle: () => Promise<unknown>, extra: Partial<AnyOperation> = {}): AnyOperation => ({
  name: 'secret.read',
  action: 'secret.read',
  auth: 'token',
  resource: () => ({ type: 'System', id: 'x' }),
  handle,
  ...extra,
});
function recorder(failOn?: AuditFields['type']) {
  const seen: AuditFields[] = [];
  return {
    seen,
    audit: async (f: AuditFields) => {
      if (f.type === failOn) throw new StrongroomError('audit_unavailable', 'no sink took it');
      seen.push(f);
    },
  };
}

test('the request is recorded before the handler runs, and the response after; observers see the output', async () => {
  const r = recorder();
  const order: string[] = [];
  const out = await runOperation(
    op(async () => {
      order.push(`handler after ${r.seen.length} record(s)`);
      return { value: 1 };
    }),
    CTX,
    { name: 'K' },
    ALLOWED,
    r.audit,
    [(name, _id, input, output) => order.push(`${name} ${JSON.stringify(input)} ${JSON.stringify(output)}`)],
  );
  assert.deepEqual(out, { value: 1 });
  assert.deepEqual(order, ['handler after 1 record(s)', 'secret.read {"name":"K"} {"value":1}']);
  assert.deepEqual(r.seen, [
    { type: 'request', decision: ALLOWED },
    { type: 'response', status: 'ok' },
  ]);
});

test('no request record, no handler: a failing request audit stops the operation', async () => {
  let ran = false;
  await assert.rejects(
    runOperation(
      op(async () => {
        ran = true;
      }),
      CTX,
      {},
      ALLOWED,
      recorder('request').audit,
      undefined,
    ),
    (e) => isStrongroomError(e, 'audit_unavailable'),
  );
  assert.equal(ran, false);
});

test('a response record that cannot be written fails the request, saying the work was done', async () => {
  await assert.rejects(
    runOperation(
      op(async () => 'done'),
      CTX,
      {},
      ALLOWED,
      recorder('response').audit,
      undefined,
    ),
    (e) => isStrongroomError(e, 'audit_unavailable') && /was performed/.test((e as Error).message),
  );
});

test('a failing handler is recorded with its code (internal for a non-Strongroom error) and rethrown', async () => {
  const r = recorder();
  await assert.rejects(
    runOperation(
      op(async () => {
        throw new StrongroomError('not_found', 'no such secret');
      }),
      CTX,
      {},
      ALLOWED,
      r.audit,
      undefined,
    ),
    (e) => isStrongroomError(e, 'not_found'),
  );
  await assert.rejects(
    runOperation(
      op(async () => {
        throw new Error('bug');
      }),
      CTX,
      {},
      ALLOWED,
      r.audit,
      undefined,
    ),
    /bug/,
  );
  assert.deepEqual(
    r.seen.filter((f) => f.type === 'response').map((f) => f.error_code),
    ['not_found', 'internal'],
  );
});

test('an operation that audits only its refusals writes nothing here: its caller records the call', async () => {
  const r = recorder();
  assert.equal(
    await runOperation(
      op(async () => 7, { audit: 'refusals' }),
      CTX,
      {},
      ALLOWED,
      r.audit,
      undefined,
    ),
    7,
  );
  assert.deepEqual(r.seen, []);
});
