import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import type {
  JoinTokenResponse,
  JwtSvidResponse,
  JwtValidateResponse,
  X509SvidResponse,
} from '../../src/api/identity.ts';
import type { AuthResponse } from '../../src/api/v1.ts';
import { manualClock } from '../../src/lib/clock.ts';
import { generateEcKeyPair, signJwtSvid, verifyX509Svid } from '../../src/spiffe/index.ts';
import {
  appToken,
  buildTestApp,
  staticKeyFile,
  type TestApp,
  type TestAppOptions,
  tempDir,
} from '../helpers/app.ts';
import { startServerProcess } from '../helpers/process.ts';
import {
  decodeJwt,
  foreignDomain,
  idOf,
  makeCsr,
  TRUST_DOMAIN,
  tamperCsr,
  trustOf,
} from '../helpers/spiffe.ts';
import { selfSignedCert } from '../helpers/tls.ts';

/**
 * Workload identity (issue 6) end to end over HTTP: the SPIFFE CA in the
 * barrier issues X.509- and JWT-SVIDs only to callers a registration (or a
 * one-time join token) entitles; its bundle, JWKS and OpenID configuration are
 * public; an SVID authenticates a *workload* principal that is denied by
 * default and gets exactly what its registration and the policies naming it
 * grant; rotation keeps old SVIDs valid until they expire; federated trust
 * domains are trusted until their federation is removed.
 *
 * The in-process app runs on a manual clock started at the real time; the mTLS
 * tests run a real server process with TLS.
 */

type Clock = ReturnType<typeof manualClock>;
type Fixture = TestApp & { clock: Clock; auditFile: string };

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const API = idOf('ns/demo/sa/api');
const WORKER = idOf('ns/demo/sa/worker');
const SECRET = '/v1/secrets/demo/dev/DB_PASSWORD';
const PROD_SECRET = '/v1/secrets/demo/prod/DB_PASSWORD';
const DEV_VALUE = 'dev-db-password-canary';
const PROD_VALUE = 'prod-db-password-canary';
const OTHER = 'other.example';
const OTHER_ID = idOf('ns/billing/sa/api', OTHER);

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

function fails(res: LightMyRequestResponse, status: number, code: string): string {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode}: ${res.body}`);
  const body = res.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, code, res.body);
  return body.error.message;
}

/** A fresh app on a manual clock, auditing to a file, with project `demo` and a secret in dev and prod. */
async function fixture(t: TestContext, opts: TestAppOptions = {}): Promise<Fixture> {
  // on a whole second: certificate times have second precision
  const clock = manualClock(Math.floor(Date.now() / SECOND) * SECOND);
  const auditFile = join(tempDir(t), 'audit.log');
  const a = await buildTestApp(t, { clock, audit: [{ file: { path: auditFile } }], ...opts });
  ok(await a.call('POST', '/v1/projects', { name: 'demo' }), 201);
  ok(await a.call('PUT', SECRET, { value: DEV_VALUE }));
  ok(await a.call('PUT', PROD_SECRET, { value: PROD_VALUE }));
  return Object.assign(a, { clock, auditFile });
}

/** A token with the given built-in roles, minted by root. */
const roleToken = async (a: TestApp, roles: string[]) =>
  ok<AuthResponse>(await a.call('POST', '/v1/auth/token/create', { roles, ttl: '1h' })).auth.client_token;

const register = (a: TestApp, body: Record<string, unknown>, token?: string) =>
  a.call('POST', '/v1/identity/registrations', body, token);

const x509Svid = (a: TestApp, body: Record<string, unknown>, token?: string, remoteAddress?: string) =>
  a.inject({
    method: 'POST',
    url: '/v1/identity/x509-svid',
    payload: body,
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    ...(remoteAddress ? { remoteAddress } : {}),
  });

const jwtSvid = (a: TestApp, body: Record<string, unknown>, token?: string) =>
  a.call('POST', '/v1/identity/jwt-svid', body, token);

const publicGet = (a: TestApp, url: string) => a.inject({ method: 'GET', url });

/** The trust maps of the bundle the server serves now. */
async function served(a: TestApp) {
  return trustOf(ok(await publicGet(a, '/v1/identity/bundle')));
}

/** App `api` registered for API (no roles) and logged in. */
async function registeredApp(a: TestApp, reg: Record<string, unknown> = {}) {
  const token = await appToken(a, 'api', 'demo/dev');
  ok(await register(a, { spiffe_id: API, selectors: ['app:api'], ...reg }));
  return token;
}

/** A JWT-SVID for `id` (audience `strongroom` unless given), obtained by root-registered app `api`. */
async function workloadJwt(a: TestApp, appTok: string, id = API, audience = ['strongroom']) {
  return ok<JwtSvidResponse>(await jwtSvid(a, { spiffe_id: id, audience }, appTok)).token;
}

const asBearer = (a: TestApp, method: 'GET' | 'POST' | 'PUT', url: string, token: string, body?: unknown) =>
  a.call(method, url, body, token);

const permitRead = (id: string) =>
  `permit (principal in Strongroom::Workload::"${id}", action == Strongroom::Action::"secret.read", resource);`;

interface AuditLine {
  type: string;
  operation: string;
  resource: string;
  status?: string;
  error_code?: string;
}

function auditLines(a: Fixture): AuditLine[] {
  return readFileSync(a.auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditLine)
    .filter((e) => e.type === 'request' || e.type === 'response');
}

/** How many SVIDs of this kind the server reports as issued (successful responses in the audit log). */
const issued = (a: Fixture, op = 'identity.x509-svid') =>
  auditLines(a).filter((e) => e.operation === op && e.type === 'response' && e.status === 'ok').length;

// ---------------------------------------------------------------- 1. X.509-SVID issuance

test('an app registered for a SPIFFE ID gets an X.509-SVID that verifies against the public bundle', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a);
  const csr = await makeCsr(API);
  const res = ok<X509SvidResponse>(await x509Svid(a, { csr: csr.pem }, token));
  assert.equal(res.spiffe_id, API);

  const { x509 } = await served(a);
  const v = verifyX509Svid([res.certificate], x509, { now: a.clock.now(), purpose: 'client' });
  assert.equal(v.spiffeId.toString(), API);
  assert.equal(v.trustDomain, TRUST_DOMAIN);
  // the leaf certifies the CSR's key, and the response's bundle is the served one
  const leaf = new X509Certificate(res.certificate);
  assert.equal(leaf.serialNumber.toLowerCase(), res.serial);
  assert.deepEqual(
    res.bundle.map((p) => new X509Certificate(p).fingerprint256),
    [...x509.get(TRUST_DOMAIN)!].map((c) => (c as X509Certificate).fingerprint256),
  );
  // default TTL: one hour
  assert.equal(Date.parse(res.expires_at), a.clock.now() + HOUR);
  assert.equal(leaf.validToDate.getTime(), a.clock.now() + HOUR);
  // the CSR's key is the leaf's key
  const csrSpki = Buffer.from(await crypto.subtle.exportKey('spki', csr.keys.publicKey));
  assert.ok(leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(csrSpki));
});

for (const [name, ttl, seconds] of [
  ['a ttl of 10m', '10m', 600],
  ['a ttl in seconds', 90, 90],
  ['a ttl of the 24 h maximum', '24h', 86400],
] as const) {
  test(`the requested ttl is honoured: ${name}`, async (t) => {
    const a = await fixture(t);
    const token = await registeredApp(a);
    const res = ok<X509SvidResponse>(await x509Svid(a, { csr: (await makeCsr(API)).pem, ttl }, token));
    assert.equal(Date.parse(res.expires_at), a.clock.now() + seconds * SECOND);
  });
}

test('a ttl over the server maximum, or over the registration limit, is refused and nothing is issued', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a, { x509_ttl: '30m' });
  const csr = (await makeCsr(API)).pem;
  fails(await x509Svid(a, { csr, ttl: '25h' }, token), 400, 'invalid_value');
  fails(await x509Svid(a, { csr, ttl: '31m' }, token), 400, 'invalid_value');
  assert.equal(issued(a), 0);
  // the registration's limit is also the default when it is below the server default
  const res = ok<X509SvidResponse>(await x509Svid(a, { csr }, token));
  assert.equal(Date.parse(res.expires_at), a.clock.now() + 30 * MINUTE);
  assert.equal(issued(a), 1);
});

test('20 concurrent issuances get 20 distinct serial numbers', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a);
  const csr = (await makeCsr(API)).pem;
  const all = await Promise.all(
    Array.from({ length: 20 }, async () => ok<X509SvidResponse>(await x509Svid(a, { csr }, token))),
  );
  const serials = new Set(all.map((r) => r.serial));
  assert.equal(serials.size, 20);
  for (const r of all) assert.equal(new X509Certificate(r.certificate).serialNumber.toLowerCase(), r.serial);
});

// ---------------------------------------------------------------- 2. refusals

test('issuance is refused for an ID the caller is not entitled to, or a bad CSR, and nothing is issued', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a);
  const other = await appToken(a, 'other', 'demo/dev');
  ok(await register(a, { spiffe_id: WORKER, selectors: ['app:other'] }));
  const good = await makeCsr(API);
  const cases: [string, () => Promise<string>, number, string][] = [
    [
      'an unregistered ID',
      async () => (await makeCsr(idOf('ns/demo/sa/nobody'))).pem,
      403,
      'permission_denied',
    ],
    ["another app's ID", async () => (await makeCsr(WORKER)).pem, 403, 'permission_denied'],
    ['a CSR with two URI SANs', async () => (await makeCsr([API, WORKER])).pem, 400, 'invalid_csr'],
    ['a CSR with no URI SAN', async () => (await makeCsr([], { dns: ['api.demo'] })).pem, 400, 'invalid_csr'],
    ['a CSR with no SAN at all', async () => (await makeCsr([])).pem, 400, 'invalid_csr'],
    [
      'an ID of another trust domain',
      async () => (await makeCsr(idOf('ns/demo/sa/api', 'other.example'))).pem,
      400,
      'invalid_csr',
    ],
    [
      'the trust domain ID itself',
      async () => (await makeCsr(`spiffe://${TRUST_DOMAIN}`)).pem,
      400,
      'invalid_csr',
    ],
    ['a CSR whose signature does not verify', async () => tamperCsr(good.pem), 400, 'invalid_csr'],
    [
      'a CSR that is not a CSR',
      async () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      400,
      'invalid_csr',
    ],
  ];
  for (const [what, csr, status, code] of cases) {
    const res = await x509Svid(a, { csr: await csr() }, token);
    assert.equal(res.statusCode, status, `${what}: ${res.body}`);
    assert.equal((res.json() as { error: { code: string } }).error.code, code, `${what}: ${res.body}`);
    assert.ok(!res.body.includes('BEGIN CERTIFICATE-----'), `${what}: a certificate came back`);
  }
  assert.equal(issued(a), 0, 'nothing was issued');
  // the untampered CSR is fine
  ok<X509SvidResponse>(await x509Svid(a, { csr: good.pem }, token));
  assert.equal(issued(a), 1);
  // and the other app gets its own ID, not ours
  ok<X509SvidResponse>(await x509Svid(a, { csr: (await makeCsr(WORKER)).pem }, other));
  fails(await x509Svid(a, { csr: good.pem }, other), 403, 'permission_denied');
});

test('without any credential, issuance is refused with 401', async (t) => {
  const a = await fixture(t);
  await registeredApp(a);
  fails(await x509Svid(a, { csr: (await makeCsr(API)).pem }), 401, 'unauthenticated');
  fails(
    await a.inject({
      method: 'POST',
      url: '/v1/identity/jwt-svid',
      payload: { spiffe_id: API, audience: ['x'] },
    }),
    401,
    'unauthenticated',
  );
  assert.equal(issued(a), 0);
});

test('a cidr selector narrows: the registered app is refused from outside the network', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a, { selectors: ['app:api', 'cidr:10.0.0.0/8'] });
  const csr = (await makeCsr(API)).pem;
  for (const addr of ['192.168.1.10', '127.0.0.1', '11.0.0.1', '::1']) {
    fails(await x509Svid(a, { csr }, token, addr), 403, 'permission_denied');
  }
  assert.equal(issued(a), 0);
  for (const addr of ['10.1.2.3', '10.255.255.255', '::ffff:10.0.0.7']) {
    ok<X509SvidResponse>(await x509Svid(a, { csr }, token, addr));
  }
  // a cidr selector alone entitles nobody, and cannot be registered
  fails(await register(a, { spiffe_id: WORKER, selectors: ['cidr:0.0.0.0/0'] }), 400, 'invalid_value');
});

// ---------------------------------------------------------------- 3. join tokens

async function joinToken(a: TestApp, id: string, ttl?: string) {
  return ok<JoinTokenResponse>(
    await a.call('POST', '/v1/identity/join-tokens', { spiffe_id: id, ...(ttl ? { ttl } : {}) }),
  );
}

const join_ = (a: TestApp, csr: string, token: string) => x509Svid(a, { csr, join_token: token });

test('a join token gets one X.509-SVID without a bearer token, and only one', async (t) => {
  const a = await fixture(t);
  const jt = await joinToken(a, API);
  assert.match(jt.join_token, /^srj_[A-Za-z0-9_-]{43}$/);
  assert.equal(jt.spiffe_id, API);
  assert.equal(Date.parse(jt.expires_at), a.clock.now() + 10 * MINUTE);
  const csr = await makeCsr(API);
  const res = ok<X509SvidResponse>(await join_(a, csr.pem, jt.join_token));
  const { x509 } = await served(a);
  assert.equal(verifyX509Svid([res.certificate], x509, { now: a.clock.now() }).spiffeId.toString(), API);
  fails(await join_(a, csr.pem, jt.join_token), 401, 'invalid_join_token');
  fails(await join_(a, csr.pem, 'srj_not-a-token'), 401, 'invalid_join_token');
  fails(await join_(a, csr.pem, `srj_${'A'.repeat(43)}`), 401, 'invalid_join_token');
});

test('20 concurrent uses of one join token: exactly one succeeds', async (t) => {
  const a = await fixture(t);
  const jt = await joinToken(a, API);
  const csr = (await makeCsr(API)).pem;
  const all = await Promise.all(Array.from({ length: 20 }, () => join_(a, csr, jt.join_token)));
  const statuses = all.map((r) => r.statusCode).sort();
  assert.deepEqual(statuses, [200, ...Array(19).fill(401)], statuses.join(','));
  for (const r of all.filter((x) => x.statusCode === 401))
    assert.equal((r.json() as { error: { code: string } }).error.code, 'invalid_join_token');
  assert.equal(issued(a, 'identity.x509-svid.join'), 1);
});

test('an expired join token is refused', async (t) => {
  const a = await fixture(t);
  const jt = await joinToken(a, API, '1m');
  const csr = (await makeCsr(API)).pem;
  a.clock.advance(MINUTE);
  fails(await join_(a, csr, jt.join_token), 401, 'invalid_join_token');
  assert.equal(issued(a, 'identity.x509-svid.join'), 0);
});

test('a join token for one ID cannot get another', async (t) => {
  const a = await fixture(t);
  const jt = await joinToken(a, API);
  fails(await join_(a, (await makeCsr(WORKER)).pem, jt.join_token), 403, 'permission_denied');
  assert.equal(issued(a, 'identity.x509-svid.join'), 0);
});

test('a join token used with a bad CSR is not consumed', async (t) => {
  const a = await fixture(t);
  const jt = await joinToken(a, API);
  const csr = await makeCsr(API);
  fails(await join_(a, tamperCsr(csr.pem), jt.join_token), 400, 'invalid_csr');
  ok<X509SvidResponse>(await join_(a, csr.pem, jt.join_token));
});

test('join tokens never reach the audit log or the server log in clear', {}, async (t) => {
  const a = await fixture(t);
  const jt = await joinToken(a, API);
  const csr = await makeCsr(API);
  // refused before the token is consumed: the token in the log would still work
  fails(await join_(a, tamperCsr(csr.pem), jt.join_token), 400, 'invalid_csr');
  const audit = readFileSync(a.auditFile, 'utf8');
  assert.match(audit, /"operation":"identity\.x509-svid\.join"/);
  assert.ok(!audit.includes(jt.join_token), 'the audit log holds a live join token');
  assert.ok(!a.logs().includes(jt.join_token), 'the server log holds a live join token');
});

// ---------------------------------------------------------------- 4. JWT-SVIDs

test('a JWT-SVID is issued for an entitled ID, signed ES256 by a key in the public JWKS', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a);
  const res = ok<JwtSvidResponse>(
    await jwtSvid(a, { spiffe_id: API, audience: ['billing', 'audit'] }, token),
  );
  assert.equal(res.spiffe_id, API);
  const { header, payload } = decodeJwt(res.token);
  assert.equal(header.alg, 'ES256');
  assert.equal(typeof header.kid, 'string');
  assert.equal(payload.sub, API);
  assert.deepEqual(payload.aud, ['billing', 'audit']);
  const nowS = Math.floor(a.clock.now() / 1000);
  assert.equal(payload.iat, nowS);
  assert.equal(payload.exp, nowS + 300, 'default JWT-SVID TTL is 5 minutes');
  assert.equal(Date.parse(res.expires_at), (nowS + 300) * 1000);

  // JWKS, bundle and OpenID configuration are public (no token)
  const jwks = ok<{
    keys: { kid: string; alg: string; use: string; kty: string; crv: string; d?: string }[];
  }>(await publicGet(a, '/v1/identity/jwks'));
  const key = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(key, 'the kid is in the JWKS');
  assert.deepEqual([key.alg, key.use, key.kty, key.crv], ['ES256', 'sig', 'EC', 'P-256']);
  assert.ok(
    jwks.keys.every((k) => k.d === undefined),
    'no private key in the JWKS',
  );
  // the OpenID configuration needs an absolute issuer: with no identity.issuer and no listener (inject),
  // none can be derived (test/e2e/identity-oidc.test.ts serves and verifies one)
  fails(await publicGet(a, '/.well-known/openid-configuration'), 404, 'not_found');
  // and the bundle verifies it too
  const { jwt } = await served(a);
  assert.ok(jwt.get(TRUST_DOMAIN)!.some((k) => k.kid === header.kid));

  // the ttl is honoured and capped at 1 h
  const long = ok<JwtSvidResponse>(await jwtSvid(a, { spiffe_id: API, audience: ['x'], ttl: '1h' }, token));
  assert.equal(decodeJwt(long.token).payload.exp, nowS + 3600);
  fails(await jwtSvid(a, { spiffe_id: API, audience: ['x'], ttl: '2h' }, token), 400, 'invalid_value');
  // and never for an ID the caller is not entitled to
  fails(await jwtSvid(a, { spiffe_id: WORKER, audience: ['x'] }, token), 403, 'permission_denied');
  fails(await jwtSvid(a, { audience: ['x'] }, token), 400, 'invalid_value');
});

test('POST /v1/identity/jwt-svid/validate accepts a JWT-SVID for its audience and no other', async (t) => {
  const a = await fixture(t);
  const token = await registeredApp(a);
  const jwt = await workloadJwt(a, token, API, ['billing']);
  const v = ok<JwtValidateResponse>(
    await a.call('POST', '/v1/identity/jwt-svid/validate', { token: jwt, audience: 'billing' }),
  );
  assert.equal(v.spiffe_id, API);
  assert.equal(v.claims.sub, API);
  fails(
    await a.call('POST', '/v1/identity/jwt-svid/validate', { token: jwt, audience: 'other' }),
    400,
    'invalid_value',
  );
  // expired, 30 s clock skew allowed
  a.clock.advance(5 * MINUTE + 31 * SECOND);
  fails(
    await a.call('POST', '/v1/identity/jwt-svid/validate', { token: jwt, audience: 'billing' }),
    400,
    'invalid_value',
  );
});

// ---------------------------------------------------------------- 5. workloads calling the API

test('a workload authenticated by a JWT-SVID is denied by default, and a policy naming it lets it read', async (t) => {
  const a = await fixture(t);
  const jwt = await workloadJwt(a, await registeredApp(a));
  fails(await asBearer(a, 'GET', SECRET, jwt), 403, 'permission_denied');
  fails(await asBearer(a, 'GET', '/v1/projects', jwt), 403, 'permission_denied');
  ok(await a.call('PUT', '/v1/sys/policies/api-reads', { policy: permitRead(API) }));
  assert.equal(ok<{ value: string }>(await asBearer(a, 'GET', SECRET, jwt)).value, DEV_VALUE);
  assert.equal(ok<{ value: string }>(await asBearer(a, 'GET', PROD_SECRET, jwt)).value, PROD_VALUE);
  fails(await asBearer(a, 'PUT', SECRET, jwt, { value: 'x' }), 403, 'permission_denied');
  // a policy naming another workload grants it nothing
  const b = await fixture(t);
  const other = await workloadJwt(b, await registeredApp(b));
  ok(await b.call('PUT', '/v1/sys/policies/worker-reads', { policy: permitRead(WORKER) }));
  fails(await asBearer(b, 'GET', SECRET, other), 403, 'permission_denied');
});

test('a workload registered with the app role and a scope reads inside its scope and not outside', async (t) => {
  const a = await fixture(t);
  const jwt = await workloadJwt(
    a,
    await registeredApp(a, { roles: ['app'], scope: { paths: ['demo/dev'] } }),
  );
  assert.equal(ok<{ value: string }>(await asBearer(a, 'GET', SECRET, jwt)).value, DEV_VALUE);
  fails(await asBearer(a, 'GET', PROD_SECRET, jwt), 403, 'permission_denied');
  fails(await asBearer(a, 'PUT', SECRET, jwt, { value: 'x' }), 403, 'permission_denied');
  // the audit names the workload
  const audit = readFileSync(a.auditFile, 'utf8');
  assert.match(audit, new RegExp(`"display_name":"jwt-svid:${API.replaceAll('/', '\\/')}"`));
  assert.match(audit, /"type":"workload"/);
});

test('a workload registered with the app role needs a scope, and no workload holds root', async (t) => {
  const a = await fixture(t);
  fails(await register(a, { spiffe_id: API, selectors: ['app:api'], roles: ['app'] }), 400, 'invalid_value');
  fails(await register(a, { spiffe_id: API, selectors: ['app:api'], roles: ['root'] }), 400, 'invalid_value');
});

test('JWT-SVIDs for another audience, expired, or signed by an unknown key are refused with 401', async (t) => {
  const a = await fixture(t);
  const app = await registeredApp(a, { roles: ['app'], scope: { paths: ['demo/dev'] } });
  const jwt = await workloadJwt(a, app);
  const otherAudience = await workloadJwt(a, app, API, ['billing']);
  const stranger = await generateEcKeyPair();
  const unknownKey = await signJwtSvid({
    key: { privateKey: stranger.privateKey, kid: decodeJwt(jwt).header.kid as string },
    spiffeId: API,
    audience: ['strongroom'],
    ttlSeconds: 300,
    now: a.clock.now(),
  });
  const unknownKid = await signJwtSvid({
    key: { privateKey: stranger.privateKey, kid: 'nobody' },
    spiffeId: API,
    audience: ['strongroom'],
    ttlSeconds: 300,
    now: a.clock.now(),
  });
  const [h, p, s] = jwt.split('.');
  const forgedClaims = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwt(jwt).payload, sub: WORKER })).toString('base64url')}.${s}`;
  for (const [what, tok] of [
    ['another audience', otherAudience],
    ['a key not in the bundle, reusing a real kid', unknownKey],
    ['an unknown kid', unknownKid],
    ['changed claims', forgedClaims],
    ['no signature', `${h}.${p}.`],
  ] as const) {
    const res = await asBearer(a, 'GET', SECRET, tok);
    assert.equal(res.statusCode, 401, `${what}: ${res.body}`);
    assert.ok(!res.body.includes(DEV_VALUE));
  }
  // the good one works, until it expires (30 s of skew allowed)
  ok(await asBearer(a, 'GET', SECRET, jwt));
  a.clock.advance(5 * MINUTE + 31 * SECOND);
  fails(await asBearer(a, 'GET', SECRET, jwt), 401, 'invalid_svid');
});

test('token routes refuse a workload', async (t) => {
  const a = await fixture(t);
  const jwt = await workloadJwt(
    a,
    await registeredApp(a, { roles: ['app'], scope: { paths: ['demo/dev'] } }),
  );
  fails(await asBearer(a, 'GET', '/v1/auth/token/lookup-self', jwt), 403, 'permission_denied');
  fails(await asBearer(a, 'POST', '/v1/auth/token/renew-self', jwt, {}), 403, 'permission_denied');
  fails(await asBearer(a, 'POST', '/v1/auth/token/create', jwt, {}), 403, 'permission_denied');
  fails(await asBearer(a, 'POST', '/v1/auth/token/revoke-self', jwt, {}), 403, 'permission_denied');
});

test('a workload renews its own JWT-SVID with its JWT-SVID, and cannot get another ID', async (t) => {
  const a = await fixture(t);
  const jwt = await workloadJwt(a, await registeredApp(a));
  const renewed = ok<JwtSvidResponse>(await jwtSvid(a, { audience: ['billing'] }, jwt));
  assert.equal(renewed.spiffe_id, API);
  fails(await jwtSvid(a, { spiffe_id: WORKER, audience: ['billing'] }, jwt), 403, 'permission_denied');
  ok(await register(a, { spiffe_id: WORKER, selectors: [`spiffe:${API}`] }));
  assert.equal(
    ok<JwtSvidResponse>(await jwtSvid(a, { spiffe_id: WORKER, audience: ['b'] }, jwt)).spiffe_id,
    WORKER,
  );
});

test('re-registering a workload with fewer rights applies to JWT-SVIDs it already used', {}, async (t) => {
  const a = await fixture(t);
  const app = await registeredApp(a, { roles: ['app'], scope: { paths: ['demo/dev'] } });
  const jwt = await workloadJwt(a, app);
  ok(await asBearer(a, 'GET', SECRET, jwt));
  ok(await register(a, { spiffe_id: API, selectors: ['app:api'] }));
  fails(await asBearer(a, 'GET', SECRET, jwt), 403, 'permission_denied');
});

test('deleting a registration drops the roles it gave its workload at once', async (t) => {
  const a = await fixture(t);
  const app = await registeredApp(a, { roles: ['app'], scope: { paths: ['demo/dev'] } });
  const jwt = await workloadJwt(a, app);
  ok(await asBearer(a, 'GET', SECRET, jwt));
  ok(await a.call('DELETE', `/v1/identity/registrations/${encodeURIComponent(API)}`));
  fails(await asBearer(a, 'GET', SECRET, jwt), 403, 'permission_denied');
  fails(await x509Svid(a, { csr: (await makeCsr(API)).pem }, app), 403, 'permission_denied');
});

// ---------------------------------------------------------------- 6. mTLS to the vault

interface HttpsResult {
  status: number;
  body: string;
  json<T = unknown>(): T;
}

/** One HTTPS request on a fresh connection (so each presents its own client certificate, or none). */
function https(
  base: string,
  method: string,
  path: string,
  opts: { ca: string; cert?: string; key?: string; token?: string; body?: unknown },
): Promise<HttpsResult> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      {
        method,
        ca: opts.ca,
        agent: false,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        headers: {
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, json: <T>() => JSON.parse(body) as T }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function expect(res: HttpsResult, status: number, code?: string) {
  assert.equal(res.status, status, `expected ${status} ${code ?? ''}, got ${res.status}: ${res.body}`);
  if (code) assert.equal(res.json<{ error: { code: string } }>().error.code, code, res.body);
  return res;
}

/** A real `strongroom server` process with TLS (client certificates requested), initialised; returns a caller. */
async function tlsServer(t: TestContext) {
  const dir = tempDir(t);
  const { certFile, keyFile } = selfSignedCert(dir);
  const config = join(dir, 'strongroom.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `storage: {sqlite: {path: ${join(dir, 'sr.db')}}}`,
      `seal: {static: {key_file: ${staticKeyFile(t)}}}`,
      `tls: {cert_file: ${certFile}, key_file: ${keyFile}}`,
    ].join('\n'),
  );
  const server = await startServerProcess(t, ['--config', config]);
  const ca = readFileSync(certFile, 'utf8');
  const call = (
    method: string,
    path: string,
    opts: { cert?: string; key?: string; token?: string; body?: unknown } = {},
  ) => https(server.address, method, path, { ca, ...opts });
  const init = expect(await call('POST', '/v1/sys/init', { body: {} }), 200);
  const root = init.json<{ root_token: string }>().root_token;
  const admin = (method: string, path: string, body?: unknown) =>
    call(method, path, { token: root, ...(body === undefined ? {} : { body }) });
  return { server, call, admin };
}

test('mTLS: a workload presenting an X.509-SVID of this server is recognised; foreign and expired SVIDs are not', {
  timeout: 60_000,
}, async (t) => {
  const { call, admin } = await tlsServer(t);
  expect(await admin('POST', '/v1/projects', { name: 'demo' }), 201);
  expect(await admin('PUT', SECRET, { value: DEV_VALUE }), 200);
  // registered: an SVID renews itself only while its ID is registered (issue 13)
  expect(await admin('POST', '/v1/identity/registrations', { spiffe_id: API, selectors: ['app:api'] }), 200);

  // a workload's first SVID, with a join token
  const jt = expect(
    await admin('POST', '/v1/identity/join-tokens', { spiffe_id: API }),
    200,
  ).json<JoinTokenResponse>();
  const csr = await makeCsr(API);
  const svid = expect(
    await call('POST', '/v1/identity/x509-svid', { body: { csr: csr.pem, join_token: jt.join_token } }),
    200,
  ).json<X509SvidResponse>();
  const mine = { cert: svid.certificate, key: csr.keyPem };

  // it gets a JWT-SVID for itself without saying who it is
  const jwt = expect(
    await call('POST', '/v1/identity/jwt-svid', { ...mine, body: { audience: ['billing'] } }),
    200,
  ).json<JwtSvidResponse>();
  assert.equal(jwt.spiffe_id, API);
  assert.equal(decodeJwt(jwt.token).payload.sub, API);
  // and renews its X.509-SVID with it (its own ID: no selector needs to match)
  const csr2 = await makeCsr(API);
  const renewed = expect(
    await call('POST', '/v1/identity/x509-svid', { ...mine, body: { csr: csr2.pem } }),
    200,
  ).json<X509SvidResponse>();
  assert.equal(renewed.spiffe_id, API);
  // but nothing else
  expect(
    await call('POST', '/v1/identity/x509-svid', { ...mine, body: { csr: (await makeCsr(WORKER)).pem } }),
    403,
    'permission_denied',
  );

  // denied by default; a policy naming it lets it read
  expect(await call('GET', SECRET, mine), 403, 'permission_denied');
  expect(await admin('PUT', '/v1/sys/policies/api-reads', { policy: permitRead(API) }), 200);
  assert.equal(expect(await call('GET', SECRET, mine), 200).json<{ value: string }>().value, DEV_VALUE);
  // without a certificate or token: 401
  expect(await call('GET', SECRET), 401, 'unauthenticated');

  // an impostor CA naming our trust domain, and a CA of an unknown trust domain
  const impostor = await foreignDomain(TRUST_DOMAIN);
  expect(await call('GET', SECRET, await impostor.svid(API)), 401, 'invalid_svid');
  const evil = await foreignDomain('evil.example');
  expect(
    await call('GET', SECRET, await evil.svid(idOf('ns/demo/sa/api', 'evil.example'))),
    401,
    'invalid_svid',
  );

  // an SVID of a federated trust domain authenticates its workload (denied by default: 403, not 401)
  const other = await foreignDomain(OTHER);
  const otherSvid = await other.svid(OTHER_ID);
  expect(await call('GET', SECRET, otherSvid), 401, 'invalid_svid');
  expect(
    await admin('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }),
    200,
  );
  expect(await call('GET', SECRET, otherSvid), 403, 'permission_denied');
  expect(await admin('PUT', '/v1/sys/policies/billing-reads', { policy: permitRead(OTHER_ID) }), 200);
  expect(await call('GET', SECRET, otherSvid), 200);

  // an SVID of this server that has expired
  const jt2 = expect(
    await admin('POST', '/v1/identity/join-tokens', { spiffe_id: API }),
    200,
  ).json<JoinTokenResponse>();
  const shortCsr = await makeCsr(API);
  const short = expect(
    await call('POST', '/v1/identity/x509-svid', {
      body: { csr: shortCsr.pem, join_token: jt2.join_token, ttl: 1 },
    }),
    200,
  ).json<X509SvidResponse>();
  await sleep(2100);
  expect(await call('GET', SECRET, { cert: short.certificate, key: shortCsr.keyPem }), 401, 'invalid_svid');
  // the long-lived one still works
  expect(await call('GET', SECRET, mine), 200);
});

// ---------------------------------------------------------------- 7. CA rotation

interface CaStatus {
  sequence: number;
  authorities: { id: string; retire_at: string | null; active: boolean; not_after: string }[];
  jwt_keys: { kid: string; retire_at: string | null; active: boolean }[];
}

test('CA rotation: old SVIDs keep verifying until the old authority retires, new ones are signed by the new CA', async (t) => {
  const a = await fixture(t);
  const app = await registeredApp(a);
  const before = ok<X509SvidResponse>(await x509Svid(a, { csr: (await makeCsr(API)).pem, ttl: '24h' }, app));
  const beforeJwt = await workloadJwt(a, app, API, ['billing']);
  const ca1 = ok<CaStatus>(await a.call('GET', '/v1/identity/ca'));
  assert.equal(ca1.authorities.length, 1);
  const oldCa = (await served(a)).bundle.x509Authorities[0]!;

  const rotated = ok<{ sequence: number; active: string; retiring: { id: string; retire_at: string }[] }>(
    await a.call('POST', '/v1/identity/ca/rotate'),
  );
  assert.equal(rotated.sequence, ca1.sequence + 1);
  assert.deepEqual(
    rotated.retiring.map((r) => r.id),
    [ca1.authorities[0]!.id],
  );

  const ca2 = ok<CaStatus>(await a.call('GET', '/v1/identity/ca'));
  assert.equal(ca2.authorities.length, 2);
  assert.equal(ca2.authorities.filter((x) => x.active).length, 1);
  const retiring = ca2.authorities.find((x) => !x.active)!;
  assert.equal(
    Date.parse(retiring.retire_at!),
    a.clock.now() + 24 * HOUR,
    'retires after the maximum SVID TTL',
  );
  const retiringJwt = ca2.jwt_keys.find((x) => !x.active)!;
  assert.equal(Date.parse(retiringJwt.retire_at!), a.clock.now() + HOUR);

  const after = await served(a);
  assert.equal(after.bundle.x509Authorities.length, 2);
  assert.equal(after.bundle.jwtAuthorities.length, 2);
  assert.equal(after.bundle.sequence, ca1.sequence + 1);
  // the old SVID still verifies against the new bundle; JWT-SVIDs too
  assert.equal(
    verifyX509Svid([before.certificate], after.x509, { now: a.clock.now() }).spiffeId.toString(),
    API,
  );
  ok(await a.call('POST', '/v1/identity/jwt-svid/validate', { token: beforeJwt, audience: 'billing' }));

  // a new SVID is signed by the new CA, not the old one
  const next = ok<X509SvidResponse>(await x509Svid(a, { csr: (await makeCsr(API)).pem }, app));
  const leaf = new X509Certificate(next.certificate);
  const newCa = after.bundle.x509Authorities.find((c) => c.fingerprint256 !== oldCa.fingerprint256)!;
  assert.ok(leaf.verify(newCa.publicKey), 'signed by the new CA');
  assert.ok(!leaf.verify(oldCa.publicKey), 'not signed by the old CA');
  assert.ok(new X509Certificate(before.certificate).verify(oldCa.publicKey));
  assert.equal(next.bundle.length, 2, 'the response bundle carries both authorities');
  const nextJwt = decodeJwt(await workloadJwt(a, app)).header.kid;
  assert.equal(nextJwt, ca2.jwt_keys.find((k) => k.active)!.kid);

  // past the JWT key's retire_at the old JWT key is gone; past the CA's, the old CA
  a.clock.set(Date.parse(retiringJwt.retire_at!) + SECOND);
  const mid = await served(a);
  assert.equal(mid.bundle.jwtAuthorities.length, 1);
  assert.equal(mid.bundle.x509Authorities.length, 2);
  a.clock.set(Date.parse(retiring.retire_at!) + SECOND);
  const late = await served(a);
  assert.equal(late.bundle.x509Authorities.length, 1);
  assert.equal(late.bundle.x509Authorities[0]!.fingerprint256, newCa.fingerprint256);
  assert.throws(() =>
    verifyX509Svid([before.certificate], late.x509, { now: Date.parse(retiring.retire_at!) - HOUR }),
  );
  // the CA still issues (the app's 1-hour token has expired by now: a join token instead), with the new CA
  const jt = await joinToken(a, API);
  const last = ok<X509SvidResponse>(await join_(a, (await makeCsr(API)).pem, jt.join_token));
  assert.equal(
    verifyX509Svid([last.certificate], late.x509, { now: a.clock.now() }).spiffeId.toString(),
    API,
  );
  assert.equal(last.bundle.length, 1);
});

// ---------------------------------------------------------------- 8. federation

test('a JWT-SVID of a federated trust domain authenticates its workload until the federation is removed', async (t) => {
  const a = await fixture(t);
  const other = await foreignDomain(OTHER, a.clock.now());
  const put = ok<{ trust_domain: string; x509_authorities: number; jwt_authorities: number }>(
    await a.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }),
  );
  assert.deepEqual([put.trust_domain, put.x509_authorities, put.jwt_authorities], [OTHER, 1, 1]);
  const listed = ok<{ federations: { trust_domain: string }[] }>(
    await a.call('GET', '/v1/identity/federation'),
  );
  assert.deepEqual(
    listed.federations.map((f) => f.trust_domain),
    [OTHER],
  );

  const jwt = await other.jwt(OTHER_ID, ['strongroom'], { now: a.clock.now() });
  // authenticated (403, not 401): a workload with no roles
  fails(await asBearer(a, 'GET', SECRET, jwt), 403, 'permission_denied');
  ok(await a.call('PUT', '/v1/sys/policies/billing-reads', { policy: permitRead(OTHER_ID) }));
  assert.equal(ok<{ value: string }>(await asBearer(a, 'GET', SECRET, jwt)).value, DEV_VALUE);
  // the validate endpoint knows the federated domain too
  ok(await a.call('POST', '/v1/identity/jwt-svid/validate', { token: jwt, audience: 'strongroom' }));
  // X.509-SVID responses carry the federated bundle
  const app = await registeredApp(a);
  const svid = ok<X509SvidResponse>(await x509Svid(a, { csr: (await makeCsr(API)).pem }, app));
  assert.deepEqual(Object.keys(svid.federated_bundles), [OTHER]);

  // the federated domain never vouches for ours
  const forged = await other.jwt(API, ['strongroom'], { now: a.clock.now() });
  fails(await asBearer(a, 'GET', SECRET, forged), 401, 'invalid_svid');

  ok(await a.call('DELETE', `/v1/identity/federation/${OTHER}`));
  fails(await asBearer(a, 'GET', SECRET, jwt), 401, 'invalid_svid');
  fails(await a.call('DELETE', `/v1/identity/federation/${OTHER}`), 404, 'not_found');
});

test('re-putting a federated bundle without a key stops trusting JWT-SVIDs signed by that key', {}, async (t) => {
  const a = await fixture(t);
  const other = await foreignDomain(OTHER, a.clock.now());
  ok(await a.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }));
  ok(await a.call('PUT', '/v1/sys/policies/billing-reads', { policy: permitRead(OTHER_ID) }));
  const jwt = await other.jwt(OTHER_ID, ['strongroom'], { now: a.clock.now() });
  ok(await asBearer(a, 'GET', SECRET, jwt));
  // the other domain rotates its key away (e.g. it was compromised)
  const rotated = await foreignDomain(OTHER, a.clock.now());
  ok(await a.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(rotated.bundle) }));
  fails(await asBearer(a, 'GET', SECRET, jwt), 401, 'invalid_svid');
});

test('a malformed federated bundle, or one for our own trust domain, is refused with 400', async (t) => {
  const a = await fixture(t);
  const other = await foreignDomain(OTHER);
  const withPrivate = {
    ...other.bundle,
    keys: other.bundle.keys.map((k) => (k.use === 'jwt-svid' ? { ...k, d: 'AAAA' } : k)),
  };
  const put = (td: string, body: unknown) => a.call('PUT', `/v1/identity/federation/${td}`, body);
  for (const [what, td, body] of [
    ['not JSON', OTHER, { bundle: 'not a bundle' }],
    ['keys not an array', OTHER, { bundle: '{"keys": 5}' }],
    ['a private key member', OTHER, { bundle: JSON.stringify(withPrivate) }],
    ['a bad trust domain', 'Not_A..Domain', { bundle: JSON.stringify(other.bundle) }],
    ['our own trust domain', TRUST_DOMAIN, { bundle: JSON.stringify(other.bundle) }],
    [
      'both bundle and bundle_url',
      OTHER,
      { bundle: JSON.stringify(other.bundle), bundle_url: 'https://x.example/b' },
    ],
    ['neither', OTHER, {}],
    ['a plain-http bundle_url', OTHER, { bundle_url: 'http://x.example/bundle' }],
  ] as const) {
    const res = await put(td, body);
    assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
  }
  assert.deepEqual(
    ok<{ federations: unknown[] }>(await a.call('GET', '/v1/identity/federation')).federations,
    [],
  );
});

test('a federation is removed by the same trust domain name it was added with', {}, async (t) => {
  const a = await fixture(t);
  const other = await foreignDomain(OTHER);
  const bundle = JSON.stringify(other.bundle);
  ok(await a.call('PUT', `/v1/identity/federation/${encodeURIComponent(`spiffe://${OTHER}`)}`, { bundle }));
  ok(await a.call('DELETE', `/v1/identity/federation/${encodeURIComponent(`spiffe://${OTHER}`)}`));
  assert.deepEqual(
    ok<{ federations: unknown[] }>(await a.call('GET', '/v1/identity/federation')).federations,
    [],
  );
});

test('a cidr selector with an impossible prefix length is refused', {}, async (t) => {
  const a = await fixture(t);
  for (const cidr of ['cidr:10.0.0.0/99', 'cidr:999.1.1.1/8', 'cidr:::1/129']) {
    fails(await register(a, { spiffe_id: API, selectors: ['app:api', cidr] }), 400, 'invalid_value');
  }
});

// ---------------------------------------------------------------- 9. audit

test('issuance is audited with its operation and SPIFFE ID, never with a key or the CSR in clear', {}, async (t) => {
  const a = await fixture(t);
  const app = await registeredApp(a);
  const csr = await makeCsr(API);
  const res = ok<X509SvidResponse>(await x509Svid(a, { csr: csr.pem }, app));
  const jt = await joinToken(a, WORKER);
  const csr2 = await makeCsr(WORKER);
  ok<X509SvidResponse>(await join_(a, csr2.pem, jt.join_token));
  assert.match(res.csr_sha256, /^[0-9a-f]{64}$/);
  const der = Buffer.from(csr.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const { createHash } = await import('node:crypto');
  assert.equal(res.csr_sha256, createHash('sha256').update(der).digest('hex'));
  assert.ok(!JSON.stringify(res).includes('PRIVATE KEY'));

  const entries = auditLines(a).filter((e) => e.operation.startsWith('identity.x509-svid'));
  assert.deepEqual(
    entries.map((e) => [e.operation, e.type, e.resource, e.status ?? null]),
    [
      ['identity.x509-svid', 'request', `Identity::${API}`, null],
      ['identity.x509-svid', 'response', `Identity::${API}`, 'ok'],
      ['identity.x509-svid.join', 'request', `Identity::${WORKER}`, null],
      ['identity.x509-svid.join', 'response', `Identity::${WORKER}`, 'ok'],
    ],
  );
  const text = readFileSync(a.auditFile, 'utf8') + a.logs();
  for (const secret of [csr.keyPem, csr2.keyPem]) assert.ok(!text.includes(secret.split('\n')[1]!));
  assert.doesNotMatch(text, /BEGIN/, 'no PEM block (key or CSR) in the audit log or server log');
  for (const pem of [csr.pem, csr2.pem]) {
    const body = pem.split('\n')[1]!;
    assert.ok(!text.includes(body), 'the CSR is in the audit log in clear');
  }
});

test('refused issuances are audited too', async (t) => {
  const a = await fixture(t);
  const app = await registeredApp(a);
  fails(await x509Svid(a, { csr: (await makeCsr(WORKER)).pem }, app), 403, 'permission_denied');
  fails(await x509Svid(a, { csr: (await makeCsr(API)).pem }), 401, 'unauthenticated');
  const responses = auditLines(a).filter(
    (e) => e.operation === 'identity.x509-svid' && e.type === 'response',
  );
  assert.deepEqual(
    responses.map((e) => [e.resource, e.status, e.error_code]),
    [
      [`Identity::${WORKER}`, 'error', 'permission_denied'],
      [`Identity::${API}`, 'error', 'unauthenticated'],
    ],
  );
});

// ---------------------------------------------------------------- 10. who may manage identities

test('developers and auditors read identity configuration but change none of it', async (t) => {
  const a = await fixture(t);
  ok(await register(a, { spiffe_id: API, selectors: ['app:api'] }));
  const other = await foreignDomain(OTHER);
  ok(await a.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }));
  const routes: [string, 'GET' | 'POST' | 'PUT' | 'DELETE', string, unknown][] = [
    [
      'create a registration',
      'POST',
      '/v1/identity/registrations',
      { spiffe_id: WORKER, selectors: ['app:x'] },
    ],
    ['delete a registration', 'DELETE', `/v1/identity/registrations/${encodeURIComponent(API)}`, undefined],
    ['mint a join token', 'POST', '/v1/identity/join-tokens', { spiffe_id: API }],
    ['rotate the CA', 'POST', '/v1/identity/ca/rotate', undefined],
    ['federate', 'PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }],
    ['remove a federation', 'DELETE', `/v1/identity/federation/${OTHER}`, undefined],
  ];
  for (const role of ['developer', 'auditor']) {
    const token = await roleToken(a, [role]);
    for (const [what, method, url, body] of routes) {
      const res = await a.call(method, url, body, token);
      assert.equal(res.statusCode, 403, `${role} may not ${what}: ${res.body}`);
    }
    for (const url of ['/v1/identity/registrations', '/v1/identity/ca', '/v1/identity/federation']) {
      ok(await a.call('GET', url, undefined, token));
    }
    // nor issue for an ID they are not registered for
    fails(await x509Svid(a, { csr: (await makeCsr(API)).pem }, token), 403, 'permission_denied');
  }
  // nothing changed
  const regs = ok<{ registrations: { spiffe_id: string }[] }>(
    await a.call('GET', '/v1/identity/registrations'),
  );
  assert.deepEqual(
    regs.registrations.map((r) => r.spiffe_id),
    [API],
  );
  assert.equal(ok<CaStatus>(await a.call('GET', '/v1/identity/ca')).sequence, 1);
  assert.equal(
    ok<{ federations: unknown[] }>(await a.call('GET', '/v1/identity/federation')).federations.length,
    1,
  );
  // an app (scoped) gets none of the reads either
  const app = await appToken(a, 'api', 'demo/dev');
  fails(await a.call('GET', '/v1/identity/registrations', undefined, app), 403, 'permission_denied');
  fails(await a.call('POST', '/v1/identity/join-tokens', { spiffe_id: API }, app), 403, 'permission_denied');
});

test('the CA renews itself while it can still sign a full-length SVID, and the old one stays trusted through the overlap', async (t) => {
  const clock = manualClock(Date.UTC(2026, 10, 1, 12, 0, 0));
  const a = await buildTestApp(t, {
    clock,
    identity: { ca_ttl_seconds: 10 * 3600, x509_max_ttl_seconds: 3600 },
  });
  const root = a.rootToken;
  const reg = await a.app.inject({
    method: 'POST',
    url: '/v1/identity/registrations',
    headers: { authorization: `Bearer ${root}` },
    payload: { spiffe_id: 'spiffe://strongroom.local/ns/auto/w', selectors: ['user:nobody'] },
  });
  assert.equal(reg.statusCode, 200, reg.body);
  const join = async () => {
    const jt = await a.app.inject({
      method: 'POST',
      url: '/v1/identity/join-tokens',
      headers: { authorization: `Bearer ${root}` },
      payload: { spiffe_id: 'spiffe://strongroom.local/ns/auto/w' },
    });
    const { pem: csr } = await makeCsr(['spiffe://strongroom.local/ns/auto/w']);
    const res = await a.app.inject({
      method: 'POST',
      url: '/v1/identity/x509-svid',
      payload: { csr, join_token: JSON.parse(jt.body).join_token },
    });
    assert.equal(res.statusCode, 200, res.body);
    return JSON.parse(res.body) as { certificate: string; bundle: string[] };
  };
  const first = await join();
  assert.equal(first.bundle.length, 1);
  // 8.5 h later the CA has 1.5 h left: less than two full-length SVIDs
  clock.advance(8.5 * 3600 * 1000);
  const second = await join();
  assert.equal(second.bundle.length, 2, 'a new CA, and the old one still trusted');
  const leaf = new X509Certificate(second.certificate);
  const [newCa, oldCa] = second.bundle.map((p) => new X509Certificate(p));
  assert.ok(leaf.checkIssued(newCa!) && leaf.verify(newCa!.publicKey), 'signed by the new CA');
  assert.ok(Date.parse(leaf.validTo) - clock.now() >= 3600 * 1000 - 1000, 'a full-length SVID');
  assert.ok(
    new X509Certificate(first.certificate).verify(oldCa!.publicKey),
    'the old SVID still chains to the bundle',
  );
  const third = await join();
  assert.equal(third.bundle.length, 2, 'renewed once, not on every issuance');
});
