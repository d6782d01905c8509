import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Identity, TokenEntry } from '../../contract/identity.ts';
import type { RequestInfo } from '../../contract/operation.ts';
import { isStrongroomError, StrongroomError } from '../../errors/errors.ts';
import { manualClock } from '../../lib/clock.ts';
import { authenticationStep } from './authenticate.ts';
import { rateLimitStep } from './rate-limit.ts';

const entry = (over: Partial<TokenEntry> = {}): TokenEntry => ({
  accessor: 'acc-1',
  policies: ['developer'],
  display_name: 'dev',
  owner: { type: 'app', id: 'client-1', name: 'billing' },
  scope: null,
  mfa: false,
  created_at: '2026-12-07T00:00:00Z',
  expires_at: null,
  max_expires_at: null,
  ttl: 3600,
  renewable: true,
  num_uses: 0,
  parent: null,
  meta: {},
  ...over,
});

function tokens(e: TokenEntry) {
  let uses = e.num_uses;
  return {
    used: 0,
    async lookup(t: string) {
      if (t !== 'srt_good') throw new StrongroomError('invalid_token', 'the token is not valid');
      return { ...e, num_uses: uses };
    },
    async use(_t: string) {
      this.used++;
      uses -= 1;
      return { ...e, num_uses: uses };
    },
  };
}
const REQ = (token?: string, certs?: Buffer[]): RequestInfo => ({
  request_id: 'r',
  client_address: '127.0.0.1',
  token,
  peer_certificates: certs,
});
const workload: Identity = {
  kind: 'workload',
  accessor: 'spiffe://td/w',
  display_name: 'spiffe://td/w',
  policies: [],
  owner: { type: 'workload', id: 'spiffe://td/w', name: 'w' },
  scope: null,
  mfa: false,
};

test('no credential is unauthenticated; a bad token is refused by the token store', async () => {
  const step = authenticationStep({
    tokens: tokens(entry()),
    workloadAuth: () => undefined,
    rateLimit: undefined,
  });
  await assert.rejects(step.authenticate(REQ(), true), (e) => isStrongroomError(e, 'unauthenticated'));
  await assert.rejects(step.authenticate(REQ('srt_bad'), true), (e) => isStrongroomError(e, 'invalid_token'));
});

test('a token gives its identity and entry', async () => {
  const step = authenticationStep({
    tokens: tokens(entry()),
    workloadAuth: () => undefined,
    rateLimit: undefined,
  });
  const who = await step.authenticate(REQ('srt_good'), true);
  assert.equal(who.identity.accessor, 'acc-1');
  assert.equal(who.token?.accessor, 'acc-1');
  assert.equal(who.exhausted, undefined);
});

test('a certificate chain or a JWT goes to workload authentication, once the identity engine set it', async () => {
  let auth: ((r: RequestInfo) => Promise<Identity | undefined>) | undefined;
  const step = authenticationStep({
    tokens: tokens(entry()),
    workloadAuth: () => auth,
    rateLimit: undefined,
  });
  // before: a JWT is just an unknown token
  await assert.rejects(step.authenticate(REQ('eyJhbGciOi'), true), (e) =>
    isStrongroomError(e, 'invalid_token'),
  );
  auth = async (r) => (r.token?.startsWith('eyJ') || r.peer_certificates?.length ? workload : undefined);
  assert.equal((await step.authenticate(REQ('eyJhbGciOi'), true)).identity.kind, 'workload');
  assert.equal((await step.authenticate(REQ(undefined, [Buffer.from('der')]), true)).token, undefined);
  auth = async () => undefined;
  await assert.rejects(step.authenticate(REQ('eyJx'), true), (e) => isStrongroomError(e, 'unauthenticated'));
});

test('the rate limit counts the owner, exempts root-policy tokens, and names the entry it refused', async () => {
  const limit = rateLimitStep({ requests_per_second: 1, burst: 1 }, manualClock());
  const step = authenticationStep({
    tokens: tokens(entry()),
    workloadAuth: () => undefined,
    rateLimit: limit,
  });
  await step.authenticate(REQ('srt_good'), true);
  const err = await step.authenticate(REQ('srt_good'), true).catch((e: unknown) => e);
  assert.ok(isStrongroomError(err, 'rate_limited'));
  assert.equal(step.refusedAfter(err)?.accessor, 'acc-1', 'the refusal is audited with its actor');
  // rateLimit false: the operation is outside the limit
  await step.authenticate(REQ('srt_good'), false);
  const root = authenticationStep({
    tokens: tokens(entry({ policies: ['root'] })),
    workloadAuth: () => undefined,
    rateLimit: rateLimitStep({ requests_per_second: 1, burst: 1 }, manualClock()),
  });
  for (let i = 0; i < 5; i++) await root.authenticate(REQ('srt_good'), true);
});

test('a limited-use token spends a use only after the rate limit passed, and its last use says so', async () => {
  const store = tokens(entry({ num_uses: 2 }));
  const limit = rateLimitStep({ requests_per_second: 1, burst: 1 }, manualClock());
  const step = authenticationStep({ tokens: store, workloadAuth: () => undefined, rateLimit: limit });
  const first = await step.authenticate(REQ('srt_good'), true);
  assert.equal(first.exhausted, undefined);
  assert.equal(store.used, 1);
  await assert.rejects(step.authenticate(REQ('srt_good'), true), (e) => isStrongroomError(e, 'rate_limited'));
  assert.equal(store.used, 1, 'a rate-limited request spends no use');
  const last = await step.authenticate(REQ('srt_good'), false);
  assert.equal(last.exhausted, true);
  assert.equal(store.used, 2);
});
