import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, decodeJwt, jwtVerify, SignJWT } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import type { AppCredentials, LoginResponse } from '../../src/api/auth.ts';
import type { JwtSvidResponse, JwtValidateResponse, OpenIdConfiguration } from '../../src/api/identity.ts';
import type { AuthResponse } from '../../src/api/v1.ts';
import { buildTestApp, staticKeyFile, type TestAppOptions, tempDir } from '../helpers/app.ts';
import { startServerProcess } from '../helpers/process.ts';
import { foreignDomain, idOf } from '../helpers/spiffe.ts';
import { selfSignedCert } from '../helpers/tls.ts';

/**
 * Issue 13 items 2, 5 and 6, as a relying party sees the vault: any authenticated app, token or
 * workload may ask it to validate a JWT-SVID, whatever its path scope (Cedar still decides); a
 * JWT-SVID must name a workload, not a bare trust domain; and the OpenID configuration gives an
 * absolute issuer (the listener's URL unless `identity.issuer` says otherwise) that an independent
 * verifier (jose, driven only by the discovery document) accepts the JWT-SVIDs against.
 */

const API = idOf('ns/demo/sa/api');
const OTHER = 'other.example';
const SECRET = '/v1/secrets/demo/dev/DB_PASSWORD';
const VALUE = 'dev-db-password-canary';

interface Res {
  status: number;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

/** A started server (in this process, on a real 127.0.0.1 listener), with project demo and a secret. */
async function vault(t: TestContext, opts: TestAppOptions = {}) {
  const a = await buildTestApp(t, opts);
  const base = await a.app.listen({ host: '127.0.0.1', port: 0 });
  const call = async (method: string, path: string, body?: unknown, token: string | null = a.rootToken) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text, json: <T>() => JSON.parse(text) as T } satisfies Res;
  };
  expect(await call('POST', '/v1/projects', { name: 'demo' }), 201);
  expect(await call('PUT', SECRET, { value: VALUE }), 200);
  return { base, call };
}
type Vault = Awaited<ReturnType<typeof vault>>;

function expect(res: Res, status: number, code?: string): Res {
  assert.equal(res.status, status, `expected ${status} ${code ?? ''}, got ${res.status}: ${res.body}`);
  if (code) assert.equal(res.json<{ error: { code: string } }>().error.code, code, res.body);
  return res;
}

/** App `api` (role app, scoped to demo/dev, as every app is) registered for API; its token. */
async function scopedApp(v: Vault, registration: Record<string, unknown> = {}): Promise<string> {
  const c = expect(
    await v.call('POST', '/v1/auth/apps', { name: 'api', roles: ['app'], scope: { paths: ['demo/dev'] } }),
    201,
  ).json<AppCredentials>();
  expect(
    await v.call('POST', '/v1/identity/registrations', {
      spiffe_id: API,
      selectors: ['app:api'],
      ...registration,
    }),
    200,
  );
  const login = await v.call(
    'POST',
    '/v1/auth/app/login',
    { client_id: c.client_id, client_secret: c.client_secret },
    null,
  );
  return expect(login, 200).json<LoginResponse>().auth.client_token;
}

const jwtSvid = async (v: Vault, token: string, audience: string[]) =>
  expect(
    await v.call('POST', '/v1/identity/jwt-svid', { spiffe_id: API, audience }, token),
    200,
  ).json<JwtSvidResponse>().token;
const validate = (v: Vault, jwt: string, audience: string, token: string | null) =>
  v.call('POST', '/v1/identity/jwt-svid/validate', { token: jwt, audience }, token);
const scopedToken = async (v: Vault, roles: string[]) =>
  expect(
    await v.call('POST', '/v1/auth/token/create', { roles, ttl: '1h', scope: { paths: ['demo/dev'] } }),
    200,
  ).json<AuthResponse>().auth;

// ---------------------------------------------------------------- item 2: validation by scoped callers

test('a scoped app, a scoped token and a workload with a scoped registration may all validate a JWT-SVID', async (t) => {
  const v = await vault(t);
  const app = await scopedApp(v, { roles: ['app'], scope: { paths: ['demo/dev'] } });
  const jwt = await jwtSvid(v, app, ['billing']);
  const asWorkload = await jwtSvid(v, app, ['strongroom']);
  const developer = (await scopedToken(v, ['developer'])).client_token;
  for (const [who, token] of [
    ['the scoped app', app],
    ['a scoped developer token', developer],
    ['the workload, by its JWT-SVID', asWorkload],
  ] as const) {
    const res = expect(await validate(v, jwt, 'billing', token), 200).json<JwtValidateResponse>();
    assert.equal(res.spiffe_id, API, who);
    // a bad token is still the caller's 400, not a scope 403
    expect(await validate(v, jwt, 'other', token), 400, 'invalid_value');
  }
  // still authenticated only: no credential, no answer
  expect(await validate(v, jwt, 'billing', null), 401, 'unauthenticated');
});

test('validating stays under Cedar, and the scope still binds everything else', async (t) => {
  const v = await vault(t);
  const app = await scopedApp(v);
  const jwt = await jwtSvid(v, app, ['billing']);
  const developer = await scopedToken(v, ['developer']);
  // the scope still refuses what it always did (developers may read identity configuration, unscoped)
  const unscoped = expect(
    await v.call('POST', '/v1/auth/token/create', { roles: ['developer'], ttl: '1h' }),
    200,
  ).json<AuthResponse>().auth.client_token;
  expect(await v.call('GET', '/v1/identity/registrations', undefined, unscoped), 200);
  const refused = expect(
    await v.call('GET', '/v1/identity/registrations', undefined, developer.client_token),
    403,
    'permission_denied',
  );
  assert.match(refused.body, /outside the token's scope/);
  // policy-test explains the same
  const explain = async (action: string) =>
    expect(
      await v.call('POST', '/v1/sys/policy-test', {
        accessor: developer.accessor,
        action,
        resource: 'System:identity',
      }),
      200,
    ).json<{ decision: string; reason: string }>();
  assert.equal((await explain('identity.validate')).decision, 'allow');
  assert.deepEqual(await explain('identity.read'), {
    decision: 'deny',
    reason: "outside the token's scope",
    policies: [],
    errors: [],
  });
  // a forbid policy takes validation away: Cedar decides, not the exemption
  expect(
    await v.call('PUT', '/v1/sys/policies/no-validate', {
      policy:
        'forbid (principal in Strongroom::Role::"developer", action == Strongroom::Action::"identity.validate", resource);',
    }),
    200,
  );
  const forbidden = expect(
    await validate(v, jwt, 'billing', developer.client_token),
    403,
    'permission_denied',
  );
  assert.doesNotMatch(forbidden.body, /scope/);
  expect(await validate(v, jwt, 'billing', app), 200);
});

// ---------------------------------------------------------------- item 5: a JWT-SVID names a workload

test('a JWT-SVID whose sub is a bare trust domain is refused by validate (400) and as a bearer token (401)', async (t) => {
  const v = await vault(t);
  const other = await foreignDomain(OTHER);
  expect(
    await v.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }),
    200,
  );
  // signed with the federated domain's real key, as a compromised or careless issuer could
  const sign = (sub: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: other.kid, typ: 'JWT' })
      .setSubject(sub)
      .setAudience(['strongroom', 'billing'])
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(other.jwtKeys.privateKey);
  const bare = await sign(`spiffe://${OTHER}`);
  const workload = await sign(`spiffe://${OTHER}/ns/billing/sa/api`);
  // even a policy naming the trust domain as a workload grants nothing: no such principal is made
  for (const id of [`spiffe://${OTHER}`, `spiffe://${OTHER}/ns/billing/sa/api`]) {
    expect(
      await v.call('PUT', `/v1/sys/policies/read-${id.length}`, {
        policy: `permit (principal in Strongroom::Workload::"${id}", action == Strongroom::Action::"secret.read", resource);`,
      }),
      200,
    );
  }
  // asked by the root token (no scope), so only the token's sub decides
  const asRoot = (jwt: string) =>
    v.call('POST', '/v1/identity/jwt-svid/validate', { token: jwt, audience: 'billing' });
  const refused = expect(await asRoot(bare), 400, 'invalid_value');
  assert.match(refused.body, /names a workload/);
  const asBearer = expect(await v.call('GET', SECRET, undefined, bare), 401, 'invalid_svid');
  assert.doesNotMatch(asBearer.body, new RegExp(VALUE));
  // the same key and claims with a path are fine
  expect(await asRoot(workload), 200);
  assert.equal(
    expect(await v.call('GET', SECRET, undefined, workload), 200).json<{ value: string }>().value,
    VALUE,
  );
});

// ---------------------------------------------------------------- item 6: OIDC discovery

/** A real `strongroom server` process: its config lines after the storage and seal ones. */
async function serverProcess(t: TestContext, lines: string[]) {
  const dir = tempDir(t);
  const config = join(dir, 'strongroom.yaml');
  writeFileSync(
    config,
    [
      `storage: {sqlite: {path: ${join(dir, 'sr.db')}}}`,
      `seal: {static: {key_file: ${staticKeyFile(t)}}}`,
      ...lines,
      '',
    ].join('\n'),
  );
  return { dir, server: await startServerProcess(t, ['--config', config]) };
}

/** Initialises a server process and returns a JWT-SVID for API (audience billing) and the discovery document. */
async function discoverAndIssue(base: string, f: typeof fetch) {
  const req = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await f(`${base}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text, json: <T>() => JSON.parse(text) as T } satisfies Res;
  };
  const root = expect(await req('POST', '/v1/sys/init', {}), 200).json<{ root_token: string }>().root_token;
  const c = expect(
    await req('POST', '/v1/auth/apps', { name: 'api', roles: ['app'], scope: { paths: ['demo/dev'] } }, root),
    201,
  ).json<AppCredentials>();
  expect(
    await req('POST', '/v1/identity/registrations', { spiffe_id: API, selectors: ['app:api'] }, root),
    200,
  );
  const app = expect(
    await req('POST', '/v1/auth/app/login', { client_id: c.client_id, client_secret: c.client_secret }),
    200,
  ).json<LoginResponse>().auth.client_token;
  const jwt = expect(
    await req('POST', '/v1/identity/jwt-svid', { spiffe_id: API, audience: ['billing'] }, app),
    200,
  ).json<JwtSvidResponse>().token;
  const discovery = expect(
    await req('GET', '/.well-known/openid-configuration'),
    200,
  ).json<OpenIdConfiguration>();
  return { jwt, discovery };
}

/** What an OIDC relying party does: keys from the discovery document's jwks_uri, iss checked against its issuer. */
async function oidcVerify(discovery: OpenIdConfiguration, jwt: string, f?: typeof fetch) {
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri), f ? { [customFetch]: f } : {});
  return jwtVerify(jwt, jwks, {
    issuer: discovery.issuer,
    audience: 'billing',
    algorithms: discovery.id_token_signing_alg_values_supported,
  });
}

test('without identity.issuer, discovery names the listener as an absolute issuer, and jose verifies a JWT-SVID from it alone', {
  timeout: 60_000,
}, async (t) => {
  const { server } = await serverProcess(t, ['listen: 127.0.0.1:0']);
  const { jwt, discovery } = await discoverAndIssue(server.address, fetch);
  assert.match(server.address, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(discovery.issuer, server.address);
  assert.equal(discovery.jwks_uri, `${server.address}/v1/identity/jwks`);
  assert.equal(decodeJwt(jwt).iss, discovery.issuer);
  const { payload, protectedHeader } = await oidcVerify(discovery, jwt);
  assert.equal(payload.sub, API);
  assert.equal(protectedHeader.alg, 'ES256');
});

test('over TLS the derived issuer is https://, never taken from the Host header, and verifies the same way', {
  timeout: 60_000,
}, async (t) => {
  const dir = tempDir(t);
  const { certFile, keyFile } = selfSignedCert(dir);
  const { server } = await serverProcess(t, [
    'listen: 127.0.0.1:0',
    `tls: {cert_file: ${certFile}, key_file: ${keyFile}}`,
  ]);
  const dispatcher = new Agent({ connect: { ca: readFileSync(certFile, 'utf8') } });
  t.after(() => dispatcher.close());
  const tlsFetch = ((url: string, init: RequestInit) =>
    undiciFetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch;
  const { jwt, discovery } = await discoverAndIssue(server.address, tlsFetch);
  assert.match(discovery.issuer, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(discovery.issuer, server.address);
  assert.equal((await oidcVerify(discovery, jwt, tlsFetch)).payload.sub, API);
  // a client naming another host gets the same document
  const spoofed = await undiciFetch(`${server.address}/.well-known/openid-configuration`, {
    dispatcher,
    headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' },
  });
  assert.deepEqual(await spoofed.json(), discovery);
});

test('a listener on every interface has no one URL: discovery answers 404 and says to set identity.issuer', async (t) => {
  const a = await buildTestApp(t, { config: { allow_insecure_http: true } });
  const base = await a.app.listen({ host: '0.0.0.0', port: 0 });
  const port = new URL(base).port;
  const res = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`);
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(res.status, 404, JSON.stringify(body));
  assert.equal(body.error.code, 'not_found');
  assert.match(body.error.message, /set identity\.issuer/);
});

test("a configured issuer is the discovery document's issuer and every JWT-SVID's iss", async (t) => {
  const issuer = 'https://vault.example.com';
  const v = await vault(t, { identity: { issuer } });
  const discovery = expect(
    await v.call('GET', '/.well-known/openid-configuration', undefined, null),
    200,
  ).json<OpenIdConfiguration>();
  assert.equal(discovery.issuer, issuer);
  assert.equal(discovery.jwks_uri, `${issuer}/v1/identity/jwks`);
  const jwt = await jwtSvid(v, await scopedApp(v), ['billing']);
  // the keys as a relying party behind that URL would fetch them (served here by the listener)
  const jwks = createLocalJWKSet(
    expect(await v.call('GET', '/v1/identity/jwks', undefined, null), 200).json(),
  );
  const { payload } = await jwtVerify(jwt, jwks, { issuer, audience: 'billing', algorithms: ['ES256'] });
  assert.equal(payload.sub, API);
});

test('a client cannot choose the issuer: the iss is the listener, and a listener field in the body is refused', async (t) => {
  const v = await vault(t);
  const app = await scopedApp(v);
  const jwt = await jwtSvid(v, app, ['billing']);
  assert.equal(decodeJwt(jwt).iss, v.base);
  expect(
    await v.call(
      'POST',
      '/v1/identity/jwt-svid',
      { spiffe_id: API, audience: ['billing'], listener: 'https://evil.example' },
      app,
    ),
    400,
    'unknown_field',
  );
});
