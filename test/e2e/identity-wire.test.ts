import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { parseSpiffeBundle, type SpiffeBundle, toSpiffeBundle } from '../../src/spiffe/index.ts';
import { appToken, buildTestApp, type TestApp } from '../helpers/app.ts';
import { decodeJwt, foreignDomain, idOf, makeCsr, TRUST_DOMAIN } from '../helpers/spiffe.ts';

/**
 * The identity engine's answers on the wire (issue 14 item 2): the server serializes each JSON answer
 * with its operation's response schema, which drops any field the schema does not name. These tests
 * call every identity route over HTTP and check that each answer carries every field the handler
 * returns (the field lists are those of the handlers before they had schemas, in their order), that
 * the public key documents (bundle, JWKS, OpenID configuration) are byte for byte what they were
 * (JSON.stringify of what the SPIFFE library writes), and that a read answers exactly what the
 * operation returns in process.
 */

const ISSUER = 'https://vault.example.com';
const API = idOf('ns/wire/sa/api');
const WORKER = idOf('ns/wire/sa/worker');
const OTHER = 'other.example';
const MIXED = 'mixed.example';
const PROTO = '__proto__';

function ok<T>(res: LightMyRequestResponse, status = 200): T {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  return res.json() as T;
}

/** The keys of an answer, in the order they were sent. */
const keysOf = (v: unknown) => Object.keys(v as object);

/** What the operation returns in process (no serializer between), for a read with the root token. */
async function inProcess(a: TestApp, operation: string, input: unknown = {}): Promise<unknown> {
  return a.core.invoke(operation, input, {
    request_id: `wire-${operation}`,
    client_address: '127.0.0.1',
    token: a.rootToken,
  });
}

/** Answers exactly what the operation returns in process: no field dropped, none changed. */
async function sameAsInProcess(a: TestApp, res: LightMyRequestResponse, operation: string, input?: unknown) {
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), JSON.parse(JSON.stringify(await inProcess(a, operation, input))));
}

/** The bundle document the SPIFFE library writes for a parsed bundle (what the handlers sent before schemas). */
const written = (b: SpiffeBundle) =>
  toSpiffeBundle({
    x509Authorities: b.x509Authorities,
    jwtAuthorities: b.jwtAuthorities,
    ...(b.sequence === undefined ? {} : { sequence: b.sequence }),
    ...(b.refreshHint === undefined ? {} : { refreshHintSeconds: b.refreshHint }),
  });

async function wireApp(t: TestContext) {
  const a = await buildTestApp(t, { identity: { issuer: ISSUER } });
  ok(await a.call('POST', '/v1/projects', { name: 'wire' }), 201);
  return a;
}

const REGISTRATION_FIELDS = [
  'id',
  'spiffe_id',
  'selectors',
  'roles',
  'scope',
  'x509_ttl',
  'created_at',
  'created_by',
];
const X509_FIELDS = [
  'spiffe_id',
  'certificate',
  'bundle',
  'federated_bundles',
  'serial',
  'expires_at',
  'csr_sha256',
];

test('registrations: create, re-register (renewable_since), list and delete answer every field', async (t) => {
  const a = await wireApp(t);
  const created = ok<{ registration: Record<string, unknown> }>(
    await a.call('POST', '/v1/identity/registrations', {
      spiffe_id: API,
      selectors: ['app:wire', 'app:wire', 'cidr:10.0.0.0/8', 'user:ops'],
      roles: ['app'],
      scope: { paths: ['wire/dev'], providers: ['openai'] },
      x509_ttl: '30m',
    }),
  );
  assert.deepEqual(keysOf(created), ['registration']);
  assert.deepEqual(keysOf(created.registration), REGISTRATION_FIELDS);
  const r = created.registration;
  assert.equal(r.spiffe_id, API);
  assert.match(String(r.id), /^[0-9a-f]{16}$/);
  assert.deepEqual(r.selectors, ['app:wire', 'cidr:10.0.0.0/8', 'user:ops']);
  assert.deepEqual(r.roles, ['app']);
  assert.deepEqual(r.scope, { paths: ['wire/dev'], providers: ['openai'] });
  assert.equal(r.x509_ttl, 1800);
  assert.ok(!Number.isNaN(Date.parse(String(r.created_at))));
  assert.equal(typeof r.created_by, 'string');

  // a selector taken away: SVIDs of the old registration no longer renew (renewable_since is set)
  const narrowed = ok<{ registration: Record<string, unknown> }>(
    await a.call('POST', '/v1/identity/registrations', { spiffe_id: API, selectors: ['app:wire'] }),
  ).registration;
  assert.deepEqual(keysOf(narrowed), [...REGISTRATION_FIELDS, 'renewable_since']);
  assert.equal(narrowed.scope, null);
  assert.equal(narrowed.x509_ttl, 0);
  assert.deepEqual(narrowed.roles, []);
  assert.ok(!Number.isNaN(Date.parse(String(narrowed.renewable_since))));

  ok(await a.call('POST', '/v1/identity/registrations', { spiffe_id: WORKER, selectors: ['user:ops'] }));
  const listRes = await a.call('GET', '/v1/identity/registrations');
  const list = ok<{ registrations: Record<string, unknown>[]; trust_domain: string }>(listRes);
  assert.deepEqual(keysOf(list), ['registrations', 'trust_domain']);
  assert.equal(list.trust_domain, TRUST_DOMAIN);
  assert.deepEqual(
    list.registrations.map((x) => x.spiffe_id),
    [API, WORKER],
  );
  assert.deepEqual(list.registrations[0], narrowed);
  assert.deepEqual(keysOf(list.registrations[1]), REGISTRATION_FIELDS);
  await sameAsInProcess(a, listRes, 'identity.registration.list');

  const deleted = ok(await a.call('DELETE', `/v1/identity/registrations/${encodeURIComponent(WORKER)}`));
  assert.deepEqual(deleted, { deleted: WORKER });
  // unregistered and registered again: renewable_since is the time it was unregistered
  const again = ok<{ registration: Record<string, unknown> }>(
    await a.call('POST', '/v1/identity/registrations', { spiffe_id: WORKER, selectors: ['user:ops'] }),
  ).registration;
  assert.deepEqual(keysOf(again), [...REGISTRATION_FIELDS, 'renewable_since']);
});

test('X.509-SVIDs, by token and by join token, answer every field, federated authorities included', async (t) => {
  const a = await wireApp(t);
  const other = await foreignDomain(OTHER);
  ok(await a.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }));
  // a valid trust domain name that is also an Object.prototype key: it must stay a key of the answer
  const proto = await foreignDomain(PROTO);
  ok(await a.call('PUT', `/v1/identity/federation/${PROTO}`, { bundle: JSON.stringify(proto.bundle) }));
  ok(await a.call('POST', '/v1/identity/registrations', { spiffe_id: API, selectors: ['app:wire'] }));
  const token = await appToken(a, 'wire', 'wire/dev');

  const csr = await makeCsr(API);
  const res = await a.inject({
    method: 'POST',
    url: '/v1/identity/x509-svid',
    payload: { csr: csr.pem, ttl: 600 },
    headers: { authorization: `Bearer ${token}` },
  });
  const svid = ok<Record<string, unknown>>(res);
  assert.deepEqual(keysOf(svid), X509_FIELDS);
  assert.equal(svid.spiffe_id, API);
  assert.match(String(svid.certificate), /^-----BEGIN CERTIFICATE-----/);
  assert.equal((svid.bundle as string[]).length, 1);
  assert.deepEqual(keysOf(svid.federated_bundles).sort(), [PROTO, OTHER].sort());
  const fed = new Map(Object.entries(svid.federated_bundles as Record<string, string[]>));
  assert.equal(fed.get(OTHER)!.length, 1);
  assert.equal(fed.get(PROTO)!.length, 1);
  assert.match(String(svid.serial), /^[0-9a-f]+$/);
  assert.match(String(svid.csr_sha256), /^[0-9a-f]{64}$/);
  assert.ok(!Number.isNaN(Date.parse(String(svid.expires_at))));

  // the join-token variant of the same route answers the same fields
  const jtRes = await a.call('POST', '/v1/identity/join-tokens', { spiffe_id: WORKER, ttl: '5m' });
  const jt = ok<Record<string, unknown>>(jtRes);
  assert.deepEqual(keysOf(jt), ['join_token', 'spiffe_id', 'expires_at']);
  assert.equal(jt.spiffe_id, WORKER);
  const joined = ok<Record<string, unknown>>(
    await a.inject({
      method: 'POST',
      url: '/v1/identity/x509-svid',
      payload: { csr: (await makeCsr(WORKER)).pem, join_token: jt.join_token },
    }),
  );
  assert.deepEqual(keysOf(joined), X509_FIELDS);
  assert.equal(joined.spiffe_id, WORKER);
  assert.deepEqual(keysOf(joined.federated_bundles).sort(), [PROTO, OTHER].sort());
});

test('a JWT-SVID is issued and validated with every field and every claim', async (t) => {
  const a = await wireApp(t);
  ok(await a.call('POST', '/v1/identity/registrations', { spiffe_id: API, selectors: ['app:wire'] }));
  const token = await appToken(a, 'wire', 'wire/dev');
  const issued = ok<Record<string, unknown>>(
    await a.call('POST', '/v1/identity/jwt-svid', { spiffe_id: API, audience: ['billing', 'x'] }, token),
  );
  assert.deepEqual(keysOf(issued), ['token', 'spiffe_id', 'expires_at']);
  assert.equal(issued.spiffe_id, API);
  const { payload } = decodeJwt(String(issued.token));
  assert.equal(payload.iss, ISSUER);

  const valid = ok<Record<string, unknown>>(
    await a.call('POST', '/v1/identity/jwt-svid/validate', { token: issued.token, audience: 'billing' }),
  );
  assert.deepEqual(keysOf(valid), ['spiffe_id', 'expires_at', 'claims']);
  assert.equal(valid.spiffe_id, API);
  assert.equal(valid.expires_at, issued.expires_at);
  // every claim as signed, whatever its type (strings, numbers, the audience array)
  assert.deepEqual(valid.claims, payload);
  assert.deepEqual(keysOf(valid.claims).sort(), keysOf(payload).sort());
});

test('the bundle, JWKS and OpenID configuration are byte for byte what the SPIFFE library writes', async (t) => {
  const a = await wireApp(t);
  // a rotation: two authorities and two JWT keys, one of each retiring
  ok(await a.call('POST', '/v1/identity/ca/rotate'));

  const bundleRes = await a.inject({ method: 'GET', url: '/v1/identity/bundle' });
  assert.equal(bundleRes.statusCode, 200, bundleRes.body);
  assert.match(String(bundleRes.headers['content-type']), /^application\/json/);
  const own = parseSpiffeBundle(bundleRes.body, TRUST_DOMAIN);
  assert.equal(own.x509Authorities.length, 2);
  assert.equal(own.jwtAuthorities.length, 2);
  assert.equal(own.sequence, 2);
  assert.ok(own.refreshHint! > 0);
  const doc = written(own);
  assert.equal(bundleRes.body, JSON.stringify(doc));
  for (const k of doc.keys) {
    for (const m of ['kty', 'crv', 'x', 'y', 'use']) assert.ok(m in k, `a bundle key has ${m}`);
    assert.ok(k.use === 'x509-svid' ? Array.isArray(k.x5c) : typeof k.kid === 'string');
  }
  await sameAsInProcess(a, bundleRes, 'identity.bundle');

  const jwksRes = await a.inject({ method: 'GET', url: '/v1/identity/jwks' });
  assert.equal(jwksRes.statusCode, 200, jwksRes.body);
  const jwks = {
    keys: doc.keys.filter((k) => k.use === 'jwt-svid').map((k) => ({ ...k, use: 'sig', alg: 'ES256' })),
  };
  assert.equal(jwksRes.body, JSON.stringify(jwks));
  for (const k of (jwksRes.json() as { keys: Record<string, unknown>[] }).keys) {
    assert.deepEqual(keysOf(k), ['kty', 'x', 'y', 'crv', 'use', 'kid', 'alg']);
    // what a verifier does with it: import it
    assert.equal(createPublicKey({ key: k as never, format: 'jwk' }).asymmetricKeyType, 'ec');
  }
  await sameAsInProcess(a, jwksRes, 'identity.jwks');

  const oidcRes = await a.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
  assert.equal(oidcRes.statusCode, 200, oidcRes.body);
  assert.equal(
    oidcRes.body,
    JSON.stringify({
      issuer: ISSUER,
      jwks_uri: `${ISSUER}/v1/identity/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
    }),
  );
});

test('the CA status and rotation answer every field, retiring authorities included', async (t) => {
  const a = await wireApp(t);
  const CA_FIELDS = [
    'trust_domain',
    'sequence',
    'authorities',
    'jwt_keys',
    'x509_svid_ttl',
    'x509_svid_max_ttl',
    'jwt_svid_ttl',
    'jwt_api_audience',
  ];
  const before = ok<Record<string, unknown>>(await a.call('GET', '/v1/identity/ca'));
  assert.deepEqual(keysOf(before), CA_FIELDS);

  const rotated = ok<{ sequence: number; active: string; retiring: Record<string, unknown>[] }>(
    await a.call('POST', '/v1/identity/ca/rotate'),
  );
  assert.deepEqual(keysOf(rotated), ['sequence', 'active', 'retiring']);
  assert.equal(rotated.sequence, 2);
  assert.equal(rotated.retiring.length, 1);
  assert.deepEqual(keysOf(rotated.retiring[0]), ['id', 'retire_at']);
  assert.ok(!Number.isNaN(Date.parse(String(rotated.retiring[0]!.retire_at))));

  const caRes = await a.call('GET', '/v1/identity/ca');
  const ca = ok<{ authorities: Record<string, unknown>[]; jwt_keys: Record<string, unknown>[] }>(caRes);
  assert.deepEqual(keysOf(ca), CA_FIELDS);
  assert.deepEqual(
    ca.authorities.map((x) => [x.id === rotated.active, x.active, x.retire_at === null]),
    [
      [true, true, true],
      [false, false, false],
    ],
  );
  for (const x of ca.authorities)
    assert.deepEqual(keysOf(x), ['id', 'created_at', 'not_after', 'retire_at', 'active']);
  for (const k of ca.jwt_keys) assert.deepEqual(keysOf(k), ['kid', 'created_at', 'retire_at', 'active']);
  await sameAsInProcess(a, caRes, 'identity.ca.read');
});

test('federation: put, list, every trusted bundle (EC, RSA and OKP keys) and delete answer every field', async (t) => {
  const a = await wireApp(t);
  const other = await foreignDomain(OTHER);
  const put = ok<Record<string, unknown>>(
    await a.call('PUT', `/v1/identity/federation/${OTHER}`, { bundle: JSON.stringify(other.bundle) }),
  );
  assert.deepEqual(keysOf(put), ['trust_domain', 'x509_authorities', 'jwt_authorities', 'updated_at']);
  assert.deepEqual([put.trust_domain, put.x509_authorities, put.jwt_authorities], [OTHER, 1, 1]);

  // a federated domain whose JWT authorities are RSA and Ed25519 keys: their members (n, e; crv, x) must survive
  const mixedDoc = toSpiffeBundle({
    x509Authorities: [(await foreignDomain(MIXED)).ca.certificate],
    jwtAuthorities: [
      { kid: 'rsa', publicKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey },
      { kid: 'ed', publicKey: generateKeyPairSync('ed25519').publicKey },
    ],
    sequence: 7,
    refreshHintSeconds: 300,
  });
  ok(await a.call('PUT', `/v1/identity/federation/${MIXED}`, { bundle: JSON.stringify(mixedDoc) }));

  const listRes = await a.call('GET', '/v1/identity/federation');
  const list = ok<{ federations: Record<string, unknown>[] }>(listRes);
  assert.deepEqual(keysOf(list), ['federations']);
  for (const f of list.federations) assert.deepEqual(keysOf(f), ['trust_domain', 'bundle_url', 'updated_at']);
  assert.deepEqual(
    list.federations.map((f) => f.bundle_url),
    [null, null],
  );
  await sameAsInProcess(a, listRes, 'identity.federation.list');

  const bundlesRes = await a.call('GET', '/v1/identity/bundles');
  const all = ok<{ trust_domain: string; bundles: Record<string, unknown> }>(bundlesRes);
  assert.deepEqual(keysOf(all), ['trust_domain', 'bundles']);
  assert.equal(all.trust_domain, TRUST_DOMAIN);
  assert.deepEqual(keysOf(all.bundles).sort(), [MIXED, OTHER, TRUST_DOMAIN].sort());
  const own = ok<unknown>(await a.inject({ method: 'GET', url: '/v1/identity/bundle' }));
  assert.deepEqual(all.bundles[TRUST_DOMAIN], own);
  assert.deepEqual(all.bundles[OTHER], JSON.parse(JSON.stringify(other.bundle)));
  assert.deepEqual(all.bundles[MIXED], JSON.parse(JSON.stringify(mixedDoc)));
  const mixed = parseSpiffeBundle(all.bundles[MIXED] as object, MIXED);
  assert.deepEqual(
    mixed.jwtAuthorities.map((k) => [k.kid, k.publicKey.asymmetricKeyType]),
    [
      ['rsa', 'rsa'],
      ['ed', 'ed25519'],
    ],
  );
  await sameAsInProcess(a, bundlesRes, 'identity.bundles');

  assert.deepEqual(ok(await a.call('DELETE', `/v1/identity/federation/${MIXED}`)), { deleted: MIXED });
});
