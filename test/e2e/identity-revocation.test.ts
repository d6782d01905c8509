import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { type TestContext, test } from 'node:test';
import type { JoinTokenResponse, JwtSvidResponse, X509SvidResponse } from '../../src/api/identity.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { createPostgresStorage } from '../../src/storage/postgres.ts';
import { buildTestApp, staticKeyFile, tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { idOf, makeCsr } from '../helpers/spiffe.ts';
import { selfSignedCert } from '../helpers/tls.ts';

/**
 * Issue 13 item 1: deleting (or narrowing) a registration ends (or narrows) a workload's identity at
 * its next issuance. A workload renewing its own ID with its X.509-SVID (mTLS) or its JWT-SVID needs
 * a registration for that ID now, from a network the registration allows, and an SVID issued since
 * the registration last lost a selector or was deleted and made again; no renewal outlives the
 * registration's TTL. Tried as an attacker holding a still-valid SVID would: renew after the
 * deletion, after narrowing, after a registration made again, through another ID's `spiffe:`
 * selector, through a parent ID, with a join token minted before, and racing the deletion.
 *
 * Each test runs a real HTTPS listener (client certificates requested) on a manual clock that
 * starts at the real time, so certificate times can be moved past registration changes.
 */

/** Checked before any test starts (a busy event loop can make the 1 s probe time out). */
const pgUrl = await postgresTestUrl();

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const API = idOf('ns/demo/sa/api');
const WORKER = idOf('ns/demo/sa/worker');
const REG = (id: string) => `/v1/identity/registrations/${encodeURIComponent(id)}`;

interface Res {
  status: number;
  body: string;
  json<T = Record<string, unknown>>(): T;
}
interface Svid {
  cert: string;
  key: string;
}

async function vault(t: TestContext) {
  const clock = manualClock(Math.floor(Date.now() / SECOND) * SECOND);
  const dir = tempDir(t);
  const { certFile, keyFile } = selfSignedCert(dir);
  const a = await buildTestApp(t, { clock, config: { tls: { cert_file: certFile, key_file: keyFile } } });
  const base = await a.app.listen({ host: '127.0.0.1', port: 0 });
  const ca = readFileSync(certFile, 'utf8');

  /** One HTTPS request on its own connection, with a bearer token, a client certificate, or neither. */
  const call = (
    method: string,
    path: string,
    opts: { body?: unknown; token?: string; svid?: Svid } = {},
  ): Promise<Res> => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${base}${path}`,
        {
          method,
          ca,
          agent: false,
          ...(opts.svid ? { cert: opts.svid.cert, key: opts.svid.key } : {}),
          headers: {
            ...(payload ? { 'content-type': 'application/json' } : {}),
            ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          },
        },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () =>
            resolve({ status: res.statusCode!, body, json: <T>() => JSON.parse(body) as T }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  };
  const admin = (method: string, path: string, body?: unknown) =>
    call(method, path, { token: a.rootToken, ...(body === undefined ? {} : { body }) });
  const register = async (body: Record<string, unknown>) =>
    expect(await admin('POST', '/v1/identity/registrations', body), 200);
  const unregister = async (id: string) => expect(await admin('DELETE', REG(id)), 200);
  const joinToken = async (id: string) =>
    expect(await admin('POST', '/v1/identity/join-tokens', { spiffe_id: id }), 200).json<JoinTokenResponse>()
      .join_token;
  /** A workload's first X.509-SVID, with a one-time join token. */
  const join = async (id: string): Promise<Svid & { expires_at: string }> => {
    const csr = await makeCsr(id);
    const r = expect(
      await call('POST', '/v1/identity/x509-svid', {
        body: { csr: csr.pem, join_token: await joinToken(id) },
      }),
      200,
    ).json<X509SvidResponse>();
    return { cert: r.certificate, key: csr.keyPem, expires_at: r.expires_at };
  };
  /** Renewal of `id` over mTLS with `svid` (a fresh key, as the agent does). */
  const renew = async (svid: Svid, id = API, ttl?: string) => {
    const csr = await makeCsr(id);
    const res = await call('POST', '/v1/identity/x509-svid', {
      svid,
      body: { csr: csr.pem, ...(ttl ? { ttl } : {}) },
    });
    return Object.assign(res, {
      svid: (): Svid & { expires_at: string } => {
        const r = expect(res, 200).json<X509SvidResponse>();
        return { cert: r.certificate, key: csr.keyPem, expires_at: r.expires_at };
      },
    });
  };
  /** A JWT-SVID, asked for with an X.509-SVID (mTLS) or a JWT-SVID (bearer). */
  const jwt = (cred: Svid | string, body: Record<string, unknown> = {}) =>
    call('POST', '/v1/identity/jwt-svid', {
      ...(typeof cred === 'string' ? { token: cred } : { svid: cred }),
      body: { audience: ['strongroom'], ...body },
    });
  return { clock, call, admin, register, unregister, joinToken, join, renew, jwt };
}

function expect(res: Res, status: number, code?: string): Res {
  assert.equal(res.status, status, `expected ${status} ${code ?? ''}, got ${res.status}: ${res.body}`);
  if (code) assert.equal(res.json<{ error: { code: string } }>().error.code, code, res.body);
  return res;
}
const expiresIn = (expiresAt: string, now: number) => Date.parse(expiresAt) - now;

test('after its registration is deleted, a workload renews its X.509-SVID neither over mTLS nor with its JWT-SVID, at any TTL', async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'], x509_ttl: '5m' });
  const first = await v.join(API);
  assert.equal(expiresIn(first.expires_at, v.clock.now()), 5 * MINUTE);
  // registered: it renews itself, within the registration's 5 minutes
  const renewed = (await v.renew(first)).svid();
  assert.equal(expiresIn(renewed.expires_at, v.clock.now()), 5 * MINUTE);
  expect(await v.renew(renewed, API, '24h'), 400, 'invalid_value');
  const bearer = expect(await v.jwt(renewed), 200).json<JwtSvidResponse>().token;

  await v.unregister(API);
  // the SVIDs in hand are still valid certificates and tokens, but they obtain nothing more
  for (const ttl of [undefined, '5m', '24h']) {
    expect(await v.renew(renewed, API, ttl), 403, 'permission_denied');
    expect(await v.renew(first, API, ttl), 403, 'permission_denied');
  }
  const csr = await makeCsr(API);
  expect(
    await v.call('POST', '/v1/identity/x509-svid', { token: bearer, body: { csr: csr.pem } }),
    403,
    'permission_denied',
  );
});

test('after its registration is deleted, a workload gets no JWT-SVID, with its X.509-SVID or with its JWT-SVID', async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'] });
  const svid = await v.join(API);
  const bearer = expect(await v.jwt(svid), 200).json<JwtSvidResponse>().token;
  expect(await v.jwt(bearer, { audience: ['billing'] }), 200);

  await v.unregister(API);
  expect(await v.jwt(svid), 403, 'permission_denied');
  expect(await v.jwt(svid, { spiffe_id: API, audience: ['billing'] }), 403, 'permission_denied');
  expect(await v.jwt(bearer, { audience: ['billing'] }), 403, 'permission_denied');
  expect(await v.jwt(bearer, { spiffe_id: API, audience: ['billing'], ttl: '1h' }), 403, 'permission_denied');
});

test("a renewal keeps to the registration's TTL, and narrowing it applies at the next renewal, X.509 and JWT alike", async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'], x509_ttl: '2h' });
  const svid = await v.join(API);
  assert.equal(expiresIn((await v.renew(svid, API, '2h')).svid().expires_at, v.clock.now()), 2 * HOUR);
  expect(await v.renew(svid, API, '3h'), 400, 'invalid_value');

  // narrowed to 5 minutes (same selectors): the next renewal of either kind is at most that
  await v.register({ spiffe_id: API, selectors: ['app:api'], x509_ttl: '5m' });
  const now = v.clock.now();
  const narrowed = (await v.renew(svid)).svid();
  assert.equal(expiresIn(narrowed.expires_at, now), 5 * MINUTE, 'the default is cut to the registration');
  for (const ttl of ['6m', '1h', '2h', '24h']) expect(await v.renew(svid, API, ttl), 400, 'invalid_value');
  const token = expect(await v.jwt(narrowed), 200).json<JwtSvidResponse>();
  assert.ok(expiresIn(token.expires_at, now) <= 5 * MINUTE, token.expires_at);
  expect(await v.jwt(narrowed, { ttl: '1h' }), 400, 'invalid_value');
  expect(await v.jwt(token.token, { ttl: '30m' }), 400, 'invalid_value');
  // narrowing kept the selectors: the workload keeps renewing itself
  expect(await v.renew(narrowed, API, '5m'), 200);
});

for (const [what, selectors] of [
  ['the same selectors', ['app:api']],
  ['other selectors', ['app:replacement']],
] as const) {
  test(`a registration made again after a deletion (${what}) does not revive the SVIDs issued before it`, async (t) => {
    const v = await vault(t);
    await v.register({ spiffe_id: API, selectors: ['app:api'] });
    const old = await v.join(API);
    const oldJwt = expect(await v.jwt(old), 200).json<JwtSvidResponse>().token;
    v.clock.advance(10 * SECOND);
    await v.unregister(API);
    v.clock.advance(10 * SECOND);
    await v.register({ spiffe_id: API, selectors: [...selectors] });
    expect(await v.renew(old), 403, 'permission_denied');
    expect(await v.jwt(old), 403, 'permission_denied');
    expect(await v.jwt(oldJwt), 403, 'permission_denied');
    // an SVID obtained under the new registration renews itself
    v.clock.advance(10 * SECOND);
    const fresh = await v.join(API);
    expect(await v.renew(fresh), 200);
    expect(await v.jwt(fresh), 200);
  });
}

test('re-registering without a selector ends the self-renewal of SVIDs issued before; adding one, or narrowing, does not', async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api', 'app:legacy'] });
  const svid = await v.join(API);
  v.clock.advance(10 * SECOND);
  // wider selectors, narrower TTL, roles and scope: nobody lost a way in
  await v.register({
    spiffe_id: API,
    selectors: ['app:api', 'app:legacy', 'app:new'],
    x509_ttl: '10m',
    roles: ['app'],
    scope: { paths: ['demo/dev'] },
  });
  const renewed = (await v.renew(svid)).svid();
  v.clock.advance(10 * SECOND);
  // app:legacy is gone: whoever obtained the ID through it must not keep it by renewing
  const reg = expect(
    await v.admin('POST', '/v1/identity/registrations', { spiffe_id: API, selectors: ['app:api'] }),
    200,
  ).json<{ registration: { renewable_since?: string } }>().registration;
  assert.equal(reg.renewable_since, new Date(v.clock.now()).toISOString());
  expect(await v.renew(svid), 403, 'permission_denied');
  expect(await v.renew(renewed), 403, 'permission_denied');
  expect(await v.jwt(renewed), 403, 'permission_denied');
  v.clock.advance(10 * SECOND);
  expect(await v.renew(await v.join(API)), 200);
});

test("a spiffe: selector stops entitling a workload once the workload's own registration is deleted", async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'] });
  await v.register({ spiffe_id: WORKER, selectors: [`spiffe:${API}`] });
  const api = await v.join(API);
  assert.equal(
    expect(await v.jwt(api, { spiffe_id: WORKER }), 200).json<JwtSvidResponse>().spiffe_id,
    WORKER,
  );
  expect(await v.renew(api, WORKER), 200);

  await v.unregister(API);
  expect(await v.jwt(api, { spiffe_id: WORKER }), 403, 'permission_denied');
  expect(await v.renew(api, WORKER), 403, 'permission_denied');
});

test('a registration for a parent ID entitles nothing below it: an unregistered child does not renew', async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: idOf('ns/demo'), selectors: ['app:api'] });
  // an admin's join token gets the child one SVID; keeping it needs the child's own registration
  const child = await v.join(API);
  expect(await v.renew(child), 403, 'permission_denied');
  expect(await v.jwt(child), 403, 'permission_denied');
  expect(await v.jwt(child, { spiffe_id: idOf('ns/demo') }), 403, 'permission_denied');
  // the trust domain itself is no workload
  expect(
    await v.admin('POST', '/v1/identity/registrations', {
      spiffe_id: 'spiffe://strongroom.local',
      selectors: ['app:api'],
    }),
    400,
    'invalid_value',
  );
});

test('deleting a registration voids the join tokens minted for the ID', async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'] });
  const pending = await v.joinToken(API);
  await v.unregister(API);
  await v.register({ spiffe_id: API, selectors: ['app:api'] });
  const csr = await makeCsr(API);
  expect(
    await v.call('POST', '/v1/identity/x509-svid', { body: { csr: csr.pem, join_token: pending } }),
    401,
    'invalid_join_token',
  );
});

test("a registration's networks bind renewals and join tokens too", async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'] });
  const svid = await v.join(API);
  const pending = await v.joinToken(API);
  // narrowed to a network this client (127.0.0.1) is not in
  await v.register({ spiffe_id: API, selectors: ['app:api', 'cidr:10.0.0.0/8'] });
  expect(await v.renew(svid), 403, 'permission_denied');
  expect(await v.jwt(svid), 403, 'permission_denied');
  const csr = await makeCsr(API);
  const useJoin = () =>
    v.call('POST', '/v1/identity/x509-svid', { body: { csr: csr.pem, join_token: pending } });
  expect(await useJoin(), 403, 'permission_denied');
  // refused before it was consumed: from an allowed network it works
  await v.register({ spiffe_id: API, selectors: ['app:api', 'cidr:127.0.0.0/8'] });
  expect(await useJoin(), 200);
  expect(await v.renew(svid), 200);
});

test('once the deletion has answered, none of 20 concurrent renewals or JWT-SVID requests succeeds', async (t) => {
  const v = await vault(t);
  await v.register({ spiffe_id: API, selectors: ['app:api'] });
  const svid = await v.join(API);
  // racing the deletion: each renewal either came first or is refused
  const racing = await Promise.all([v.unregister(API), ...Array.from({ length: 10 }, () => v.renew(svid))]);
  for (const r of racing.slice(1)) assert.ok([200, 403].includes(r.status), r.body);
  const after = await Promise.all(
    Array.from({ length: 20 }, (_, i) => (i % 2 ? v.renew(svid) : v.jwt(svid))),
  );
  assert.deepEqual(
    after.map((r) => r.status),
    Array(20).fill(403),
    after.map((r) => r.body).join('\n'),
  );
  // what a racing renewal got is no way back in either
  for (const r of racing.slice(1).filter((x) => x.status === 200)) {
    const got = (r as Awaited<ReturnType<typeof v.renew>>).svid();
    expect(await v.renew(got), 403, 'permission_denied');
  }
});

test('with two servers on one PostgreSQL storage, a deletion on one ends renewals and roles on the other at its next request', {
  skip: pgUrl === undefined ? postgresSkipReason() : false,
}, async (t) => {
  const table = await uniqueTable(pgUrl!, t);
  const s1 = await createPostgresStorage({ url: pgUrl!, table });
  const s2 = await createPostgresStorage({ url: pgUrl!, table });
  t.after(async () => {
    await s1.close();
    await s2.close();
  });
  const keyFile = staticKeyFile(t);
  const A = await buildTestApp(t, { storage: s1, keyFile });
  const B = await buildTestApp(t, { storage: s2, keyFile, uninitialized: true });
  const [a, b] = [
    await A.app.listen({ host: '127.0.0.1', port: 0 }),
    await B.app.listen({ host: '127.0.0.1', port: 0 }),
  ];
  const call = async (base: string, method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text, json: <T>() => JSON.parse(text) as T } satisfies Res;
  };
  const root = A.rootToken;
  expect(await call(a, 'POST', '/v1/projects', root, { name: 'demo' }), 201);
  expect(await call(a, 'PUT', '/v1/secrets/demo/dev/DB_PASSWORD', root, { value: 'ha-canary' }), 200);
  const app = expect(
    await call(a, 'POST', '/v1/auth/apps', root, {
      name: 'api',
      roles: ['app'],
      scope: { paths: ['demo/dev'] },
    }),
    201,
  ).json<{ client_id: string; client_secret: string }>();
  expect(
    await call(a, 'POST', '/v1/identity/registrations', root, {
      spiffe_id: API,
      selectors: ['app:api'],
      roles: ['app'],
      scope: { paths: ['demo/dev'] },
    }),
    200,
  );
  const appToken = expect(
    await call(a, 'POST', '/v1/auth/app/login', '', {
      client_id: app.client_id,
      client_secret: app.client_secret,
    }),
    200,
  ).json<{
    auth: { client_token: string };
  }>().auth.client_token;
  const jwt = expect(
    await call(a, 'POST', '/v1/identity/jwt-svid', appToken, { spiffe_id: API, audience: ['strongroom'] }),
    200,
  ).json<JwtSvidResponse>().token;
  // server B has verified (and cached) the JWT-SVID, with the roles its registration gives
  expect(await call(b, 'GET', '/v1/secrets/demo/dev/DB_PASSWORD', jwt), 200);
  expect(await call(b, 'POST', '/v1/identity/jwt-svid', jwt, { audience: ['billing'] }), 200);

  expect(await call(a, 'DELETE', REG(API), root), 200);
  expect(
    await call(b, 'POST', '/v1/identity/jwt-svid', jwt, { audience: ['billing'] }),
    403,
    'permission_denied',
  );
  expect(await call(b, 'GET', '/v1/secrets/demo/dev/DB_PASSWORD', jwt), 403, 'permission_denied');
});
