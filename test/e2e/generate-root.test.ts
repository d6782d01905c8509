import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTestApp, type TestApp } from '../helpers/app.ts';

type Status = {
  started: boolean;
  nonce: string;
  progress: number;
  required: number;
  complete: boolean;
  encoded_token: string;
  otp: string;
  otp_length: number;
};

const decode = (encoded: string, otp: string) =>
  Buffer.from(Buffer.from(encoded, 'base64').map((b, i) => b ^ otp.charCodeAt(i))).toString();

async function post(a: TestApp, url: string, payload?: unknown) {
  return a.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }) });
}

test('a quorum of unseal key holders makes a new root token, handed over under a one-time pad', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', shares: 3, threshold: 2 });
  const started = await post(a, '/v1/sys/generate-root/attempt');
  assert.equal(started.statusCode, 200, started.body);
  const s = started.json() as Status;
  assert.equal(s.started, true);
  assert.equal(s.required, 2);
  assert.equal(s.otp.length, s.otp_length);
  // a second start while one is in progress is refused; reading shows progress without the pad
  assert.equal((await post(a, '/v1/sys/generate-root/attempt')).statusCode, 400);
  const read = (await a.inject({ method: 'GET', url: '/v1/sys/generate-root/attempt' })).json() as Status;
  assert.equal(read.otp, '', 'the pad is answered once, to the starter');

  const first = (
    await post(a, '/v1/sys/generate-root/update', { key: a.keys[0], nonce: s.nonce })
  ).json() as Status;
  assert.deepEqual([first.progress, first.complete], [1, false]);
  const wrongNonce = await post(a, '/v1/sys/generate-root/update', { key: a.keys[1], nonce: 'another' });
  assert.equal(wrongNonce.statusCode, 400);
  const done = (
    await post(a, '/v1/sys/generate-root/update', { key: a.keys[2], nonce: s.nonce })
  ).json() as Status;
  assert.equal(done.complete, true);
  const token = decode(done.encoded_token, s.otp);
  assert.match(token, /^srt_/);
  assert.ok(!JSON.stringify(done).includes(token), 'the token itself is never in an answer');
  const self = await a.inject({
    method: 'GET',
    url: '/v1/auth/token/lookup-self',
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(self.statusCode, 200, self.body);
  assert.match(self.body, /"root"/);
});

test('shares from another vault cancel the attempt and make no token', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', shares: 3, threshold: 2 });
  const other = await buildTestApp(t, { seal: 'shamir', shares: 3, threshold: 2 });
  const s = (await post(a, '/v1/sys/generate-root/attempt')).json() as Status;
  await post(a, '/v1/sys/generate-root/update', { key: other.keys[0], nonce: s.nonce });
  const bad = await post(a, '/v1/sys/generate-root/update', { key: other.keys[1], nonce: s.nonce });
  assert.equal(bad.statusCode, 400);
  assert.equal((bad.json() as { error: { code: string } }).error.code, 'invalid_unseal_key');
  const after = (await a.inject({ method: 'GET', url: '/v1/sys/generate-root/attempt' })).json() as Status;
  assert.equal(after.started, false, 'the attempt is over');
  // the same share twice does not make a quorum
  const again = (await post(a, '/v1/sys/generate-root/attempt')).json() as Status;
  const twice = (
    await post(a, '/v1/sys/generate-root/update', { key: a.keys[0], nonce: again.nonce })
  ).json() as Status;
  const thrice = (
    await post(a, '/v1/sys/generate-root/update', { key: a.keys[0], nonce: again.nonce })
  ).json() as Status;
  assert.deepEqual([twice.progress, thrice.progress, thrice.complete], [1, 1, false]);
  // nor written another way (base64, upper-case hex)
  const b64 = Buffer.from(a.keys[0]!, 'hex').toString('base64');
  const again2 = (
    await post(a, '/v1/sys/generate-root/update', { key: b64, nonce: again.nonce })
  ).json() as Status;
  const upper = (
    await post(a, '/v1/sys/generate-root/update', { key: a.keys[0]!.toUpperCase(), nonce: again.nonce })
  ).json() as Status;
  assert.deepEqual([again2.progress, upper.progress, upper.complete], [1, 1, false]);
  const cancelled = await a.inject({ method: 'DELETE', url: '/v1/sys/generate-root/attempt' });
  assert.equal((cancelled.json() as Status).started, false);
});

test('a one-time pad that is not 54 letters and digits is refused before any token is made', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', shares: 3, threshold: 2 });
  const accented = await post(a, '/v1/sys/generate-root/attempt', { otp: `${'a'.repeat(53)}é` });
  assert.equal(accented.statusCode, 400, accented.body);
  const short = await post(a, '/v1/sys/generate-root/attempt', { otp: 'abc' });
  assert.equal(short.statusCode, 400, short.body);
});

test('a static seal has no key holders: generate-root is refused', async (t) => {
  const a = await buildTestApp(t);
  const r = await post(a, '/v1/sys/generate-root/attempt');
  assert.equal(r.statusCode, 400);
  assert.match(r.body, /no key holders/);
});
