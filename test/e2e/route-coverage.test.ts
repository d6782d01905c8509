import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { type TestContext, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { AuthResponse } from '../../src/api/v1.ts';
import { assembleVault } from '../../src/assemble/vault.ts';
import { generateToken } from '../../src/crypto/token.ts';
import { manualClock, systemClock } from '../../src/lib/clock.ts';
import { BUILTIN_POLICIES } from '../../src/policy/schema.ts';
import type { RouteDef } from '../../src/server/routes/v1/routes.ts';
import { vaultRoutes } from '../../src/server/routes/vault-routes.ts';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { SAMPLE } from '../helpers/samples.ts';

/**
 * Every route of the server is covered by authentication and authorization
 * (issue 3, "Must show"). The routes are enumerated, not listed: every
 * RouteDef array exported by a file in src/server/routes/v1/ (so a new route
 * file is covered without touching this test), plus whatever the assembled
 * vault serves, cross-checked against what Fastify actually registered. For
 * each route (and each operation variant of it):
 *
 *   (a) a call without a valid token (none, garbage, unknown, tampered,
 *       expired, revoked) is 401 unless the operation is public, and changes
 *       nothing;
 *   (b) a call with a valid token whose only role no policy mentions is 403
 *       unless the operation is token self-service, and changes nothing.
 *
 * The public operations and the self-service operations are listed here
 * explicitly: adding one is a security decision this test makes visible.
 */

/** Operations anyone may call without a token. */
const EXPECTED_PUBLIC = [
  'auth.app-login',
  'auth.login',
  'sys.init',
  'sys.seal-status',
  'sys.unseal',
  // a quorum of key holders' shares is the credential of a root token generation (docs/seal.md)
  'sys.generate-root.read',
  'sys.generate-root.start',
  'sys.generate-root.cancel',
  'sys.generate-root.update',
  // workload identity: a join token is its own credential; bundles and JWKS are public keys
  'identity.x509-svid.join',
  'identity.bundle',
  'identity.jwks',
  'identity.openid-configuration',
  // a wrapping token is its own credential, spent once (docs/wrapping.md)
  'wrapping.unwrap',
  'wrapping.lookup',
];
/** Actions every authenticated principal is granted by the built-in `builtin.self` policy. */
const SELF_ACTIONS = new Set([
  'token.self',
  'user.self',
  'token.create',
  // an SVID only for a SPIFFE ID a registration entitles the caller to (checked by the identity engine)
  'identity.issue',
  'identity.validate',
  // one's own leases (the engine answers 404 for anyone else's) and wrapping one's own answers
  'lease.self',
  'wrapping.wrap',
]);
/** Operations any valid token may call on itself, whatever its roles. */
const EXPECTED_SELF_SERVICE = [
  'mfa.totp-confirm',
  'mfa.totp-enroll',
  'token.create',
  'token.lookup-self',
  'token.renew-self',
  'token.revoke-self',
  'user.change-own-password',
  'user.read-self',
  'identity.x509-svid',
  'identity.jwt-svid',
  'identity.jwt-svid.validate',
  // every trusted bundle, the federated ones included: what a relying party needs to validate
  'identity.bundles',
  // one's own leases: anyone else's is "no such lease" (src/engines/leases/leases.ts)
  'lease.lookup',
  'lease.renew',
  'lease.revoke',
];

/** Self-service operations that the identity engine gates further: only registered callers get an SVID. */
const ENTITLEMENT_GATED = new Set(['identity.x509-svid', 'identity.jwt-svid']);

// ---- the routes, enumerated ----

const ROUTE_DIR = new URL('../../src/server/routes/v1/', import.meta.url);

interface FoundRoute {
  route: RouteDef;
  /** Where the route is defined: `file#export`, or `assembleVault` when no route file exports it. */
  source: string;
}

function isRouteArray(v: unknown): v is RouteDef[] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every(
      (r) =>
        r !== null &&
        typeof r === 'object' &&
        typeof (r as RouteDef).method === 'string' &&
        typeof (r as RouteDef).url === 'string' &&
        typeof (r as RouteDef).operation?.name === 'string',
    )
  );
}

const keyOf = (r: { method: string; url: string }) => `${r.method} ${r.url}`;

/** Every RouteDef array exported by a file in src/server/routes/v1/, by `METHOD url`. */
async function routesInFiles(): Promise<Map<string, FoundRoute>> {
  const out = new Map<string, FoundRoute>();
  const files = readdirSync(ROUTE_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .sort();
  for (const file of files) {
    const mod = (await import(new URL(file, ROUTE_DIR).href)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (!isRouteArray(value)) continue;
      for (const route of value) {
        const prior = out.get(keyOf(route));
        if (prior && prior.route.operation !== route.operation) {
          throw new Error(
            `${keyOf(route)} is defined twice, for ${prior.route.operation} (${prior.source}) and ${route.operation} (${file}#${name})`,
          );
        }
        if (!prior) out.set(keyOf(route), { route, source: `${file}#${name}` });
      }
    }
  }
  return out;
}

// the vault as the server and the test harness assemble it: its operations and served routes
const vault = assembleVault({
  storage: createMemoryStorage(),
  seal: { shamir: {} },
  clock: systemClock,
  audit: [],
});
const OPERATIONS = vault.core.operations;
const SERVED = new Map(vaultRoutes.map((r) => [keyOf(r), r]));
const IN_FILES = await routesInFiles();
const ALL = new Map<string, FoundRoute>(IN_FILES);
for (const [key, route] of SERVED) if (!ALL.has(key)) ALL.set(key, { route, source: 'assembleVault' });

/** One request shape per route and per operation it can invoke (a variant such as DELETE ?destroy=true). */
interface Case {
  route: RouteDef;
  source: string;
  operation: string;
  label: string;
}

const CASES: Case[] = [...ALL.values()].flatMap(({ route, source }) => [
  { route, source, operation: route.operation.name, label: `${keyOf(route)} (${route.operation.name})` },
  ...(route.variant
    ? [
        {
          route,
          source,
          operation: route.variant.operation.name,
          label: `${keyOf(route)} (variant ${route.variant.operation.name})`,
        },
      ]
    : []),
]);

const isPublic = (op: string) => OPERATIONS.get(op)?.auth === 'none';
const isSelfService = (op: string) => {
  const o = OPERATIONS.get(op);
  return o !== undefined && o.auth === 'token' && SELF_ACTIONS.has(o.action);
};

/** Whether a concrete URL's path fits a route pattern such as /v1/secrets/:project/:env. */
function fits(pattern: string, url: string): boolean {
  const path = url.split('?')[0]!;
  const re = new RegExp(
    `^${pattern
      .split('/')
      .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`,
  );
  return re.test(path);
}

/** The sample request (test/helpers/samples.ts) that reaches this route with this operation. */
function sampleFor(c: Case): { url: string; body?: unknown } {
  // a second route of one operation (sign/{name}/{hash_algorithm}) has its sample under `OPERATION URL`
  const s = SAMPLE[`${c.operation} ${c.route.url}`] ?? SAMPLE[c.operation];
  if (s && fits(c.route.url, s.url)) return s;
  // a route without parameters is reached by its own URL (e.g. /v1/sys/health for sys.seal-status)
  if (!c.route.url.includes(':'))
    return { url: c.route.url, ...(s?.body === undefined ? {} : { body: s.body }) };
  assert.fail(
    `no sample request reaches ${c.label} (defined in ${c.source}): add an entry for ${JSON.stringify(c.operation)} to SAMPLE in test/helpers/samples.ts`,
  );
}

/** Whether the route is served and its operation registered (else the inventory tests fail, naming it). */
const wired = (c: Case) => SERVED.has(keyOf(c.route)) && OPERATIONS.has(c.operation);

// ---- helpers ----

function errorCode(res: LightMyRequestResponse): string | undefined {
  try {
    return (res.json() as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

async function snapshot(storage: StorageBackend): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of await storage.list('')) {
    const v = await storage.get(key);
    if (v) out.set(key, Buffer.from(v).toString('hex'));
  }
  return out;
}

async function mint(a: TestApp, body: Record<string, unknown>): Promise<AuthResponse['auth']> {
  const res = await a.call('POST', '/v1/auth/token/create', body);
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as AuthResponse).auth;
}

function send(
  a: TestApp,
  method: string,
  sample: { url: string; body?: unknown },
  headers: Record<string, string>,
) {
  return a.inject({
    method: method as InjectOptions['method'],
    url: sample.url,
    headers,
    ...(sample.body === undefined || method === 'HEAD'
      ? {}
      : { payload: sample.body as InjectOptions['payload'] }),
  });
}

/** GET routes are also reachable by HEAD (Fastify registers it): both must be refused. */
const methodsOf = (route: RouteDef) => (route.method === 'GET' ? ['GET', 'HEAD'] : [route.method]);

/** A fresh app on a manual clock with project `llm` (so samples address something real). */
async function fixture(t: TestContext) {
  const clock = manualClock(Date.now());
  // no lease sweeps in the background: refused calls are checked to change nothing in storage, and the
  // sweeper renews its cluster lease in storage as the manual clock moves
  const a = await buildTestApp(t, { clock, leases: { sweep_interval_ms: 3_600_000 } });
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  assert.equal(
    (await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'sk-x' })).statusCode,
    200,
  );
  return Object.assign(a, { clock });
}

/** Every way of calling without a valid token, and the error code each must get. */
async function badCredentials(a: TestApp & { clock: ReturnType<typeof manualClock> }) {
  // admin tokens: if they were accepted, nothing but authentication would stop them
  const expired = await mint(a, { roles: ['admin'], ttl: '1m' });
  const revoked = await mint(a, { roles: ['admin'] });
  const r = await a.call('POST', '/v1/auth/token/revoke-accessor', { accessor: revoked.accessor });
  assert.equal(r.statusCode, 200, r.body);
  a.clock.advance(2 * 60_000);
  const last = a.rootToken.at(-1)!;
  const tampered = `${a.rootToken.slice(0, -1)}${last === 'A' ? 'B' : 'A'}`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  return [
    ['no token', {}, 'unauthenticated'],
    ['an empty Authorization header', { authorization: '' }, 'unauthenticated'],
    ['a garbage token', bearer('garbage'), 'invalid_token'],
    ['a well-formed token the vault never issued', bearer(generateToken()), 'invalid_token'],
    ['the root token with its checksum broken', bearer(tampered), 'invalid_token'],
    ['an expired admin token', bearer(expired.client_token), 'invalid_token'],
    ['a revoked admin token', bearer(revoked.client_token), 'invalid_token'],
    ['a garbage X-Vault-Token header', { 'x-vault-token': 'garbage' }, 'invalid_token'],
    [
      'a Basic Authorization header',
      { authorization: `Basic ${Buffer.from('root:root').toString('base64')}` },
      'invalid_token',
    ],
  ] as [string, Record<string, string>, string][];
}

// ---- the inventory ----

test('the route files, the assembled vault and the HTTP server agree on every route', async (t) => {
  assert.ok(IN_FILES.size >= 30, `found ${IN_FILES.size} routes in ${ROUTE_DIR.pathname}`);
  const unserved = [...IN_FILES.values()].filter((f) => !SERVED.has(keyOf(f.route)));
  assert.deepEqual(
    unserved.map((f) => `${keyOf(f.route)} (${f.source})`),
    [],
    'routes exported by a route file but not served by assembleVault',
  );
  const orphan = [...SERVED.keys()].filter((k) => !IN_FILES.has(k));
  assert.deepEqual(orphan, [], 'routes served but not exported by any file in src/server/routes/v1/');

  // what Fastify registered, read from its route tree
  const a = await buildTestApp(t);
  const registered = parseRouteTree(a.app.printRoutes({ commonPrefix: false }));
  // plus the one route outside the table: the OpenAPI document generated from it (test/e2e/openapi.test.ts)
  const served = new Set([...SERVED.keys(), 'GET /v1/openapi.json']);
  const heads = [...registered].filter((k) => k.startsWith('HEAD '));
  const others = [...registered].filter((k) => !k.startsWith('HEAD ')).sort();
  assert.deepEqual(others, [...served].sort(), 'Fastify serves exactly the assembled routes');
  for (const h of heads)
    assert.ok(served.has(h.replace(/^HEAD /, 'GET ')), `${h} is the HEAD of a GET route`);
});

/** Reads `METHOD /path` pairs from Fastify's printRoutes({commonPrefix: false}) tree. */
function parseRouteTree(text: string): Set<string> {
  const out = new Set<string>();
  const stack: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    const path = (depth > 0 ? stack[depth - 1]! : '') + m[2]!;
    stack.length = depth;
    stack[depth] = path;
    for (const method of m[3]?.split(', ') ?? []) out.add(`${method} ${path}`);
  }
  return out;
}

test('every route names an operation the core registers, and has a sample request that reaches it', () => {
  const problems: string[] = [];
  for (const c of CASES) {
    if (!OPERATIONS.has(c.operation))
      problems.push(
        `${c.label} (${c.source}): the assembled core does not register operation ${c.operation}`,
      );
    try {
      sampleFor(c);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  assert.deepEqual(problems, []);
});

test(`the public operations are exactly ${EXPECTED_PUBLIC.join(', ')}`, () => {
  const routed = [...new Set(CASES.map((c) => c.operation))];
  const open = routed.filter(isPublic).sort();
  assert.deepEqual(open, EXPECTED_PUBLIC.filter((op) => OPERATIONS.has(op)).sort());
  // and every public operation in the core is one of them (none hides behind a route added later)
  const inCore = [...OPERATIONS.values()].filter((o) => o.auth === 'none').map((o) => o.name);
  for (const op of inCore) assert.ok(EXPECTED_PUBLIC.includes(op), `${op} is public but not expected to be`);
});

test(`the token self-service operations are exactly ${EXPECTED_SELF_SERVICE.join(', ')}`, () => {
  const routed = [...new Set(CASES.map((c) => c.operation))];
  assert.deepEqual(
    routed.filter(isSelfService).sort(),
    EXPECTED_SELF_SERVICE.filter((op) => OPERATIONS.has(op)).sort(),
  );
  // the actions every principal holds are those of builtin.self, and no other built-in policy grants anything to everyone
  const forEveryone = Object.entries(BUILTIN_POLICIES).filter(([, p]) =>
    /^permit\s*\(\s*principal\s*,/.test(p),
  );
  assert.deepEqual(
    forEveryone.map(([id]) => id),
    ['builtin.self'],
  );
  const granted = [...forEveryone[0]![1].matchAll(/Action::"([^"]+)"/g)].map((m) => m[1]).sort();
  assert.deepEqual(granted, [...SELF_ACTIONS].sort());
});

// ---- (a) authentication, route by route ----

// a route that is not wired cannot be called: the inventory tests above fail and name it
for (const c of CASES.filter(wired)) {
  if (isPublic(c.operation)) {
    test(`${c.label} is public: it answers without a token and ignores a bad one`, async (t) => {
      const a = await fixture(t);
      const sample = sampleFor(c);
      for (const headers of [{}, { authorization: 'Bearer garbage' }] as Record<string, string>[]) {
        const res = await send(a, c.route.method, sample, headers);
        const code = errorCode(res);
        assert.ok(
          !['unauthenticated', 'invalid_token', 'permission_denied'].includes(code ?? ''),
          `a public route asked for credentials: ${res.statusCode} ${res.body}`,
        );
      }
    });
    continue;
  }

  test(`${c.label} refuses every call without a valid token with 401 and changes nothing`, async (t) => {
    const a = await fixture(t);
    const sample = sampleFor(c);
    const credentials = await badCredentials(a);
    const before = await snapshot(a.storage);
    for (const [what, headers, code] of credentials) {
      for (const method of methodsOf(c.route)) {
        const res = await send(a, method, sample, headers);
        assert.equal(
          res.statusCode,
          401,
          `${method} ${sample.url} with ${what}: expected 401 ${code}, got ${res.statusCode} ${res.body}`,
        );
        if (method !== 'HEAD') assert.equal(errorCode(res), code, `${method} ${sample.url} with ${what}`);
      }
    }
    assert.deepEqual(await snapshot(a.storage), before, 'refused calls changed storage');
    assert.equal(a.core.barrier.sealed, false, 'refused calls sealed the vault');
  });
}

// ---- (b) authorization, route by route ----

for (const c of CASES.filter(wired)) {
  if (isPublic(c.operation)) continue;
  const action = OPERATIONS.get(c.operation)?.action;

  if (isSelfService(c.operation)) {
    test(`${c.label} is self-service: a token whose role no policy mentions may call it`, async (t) => {
      const a = await fixture(t);
      const sample = sampleFor(c);
      const nobody = await mint(a, { roles: ['nobody'] });
      const res = await send(a, c.route.method, sample, { authorization: `Bearer ${nobody.client_token}` });
      const code = errorCode(res);
      if (ENTITLEMENT_GATED.has(c.operation)) {
        // policy lets every principal ask; the identity engine refuses without a registration
        assert.equal(res.statusCode, 403, res.body);
        assert.match(JSON.parse(res.body).error.message, /^not entitled to spiffe:/);
        return;
      }
      assert.ok(
        res.statusCode !== 401 && res.statusCode !== 403 && code !== 'permission_denied',
        `self-service was refused: ${res.statusCode} ${res.body}`,
      );
    });
    continue;
  }

  test(`${c.label} refuses a token whose role no policy mentions with 403 and changes nothing`, async (t) => {
    const a = await fixture(t);
    const sample = sampleFor(c);
    const nobody = await mint(a, { roles: ['nobody'] });
    const before = await snapshot(a.storage);
    for (const method of methodsOf(c.route)) {
      const res = await send(a, method, sample, { authorization: `Bearer ${nobody.client_token}` });
      assert.equal(
        res.statusCode,
        403,
        `${method} ${sample.url}: expected 403, got ${res.statusCode} ${res.body}`,
      );
      if (method === 'HEAD') continue;
      assert.equal(errorCode(res), 'permission_denied');
      const message = (res.json() as { error: { message: string } }).error.message;
      assert.ok(
        message.startsWith(`permission denied: ${action} on `),
        `the refusal names the route's action ${action}: ${message}`,
      );
      assert.match(message, /no policy permits it/);
    }
    assert.deepEqual(await snapshot(a.storage), before, 'a refused call changed storage');
    assert.equal(a.core.barrier.sealed, false);
    // the token itself is still good: the refusals were authorization, not authentication
    const self = await a.call('GET', '/v1/auth/token/lookup-self', undefined, nobody.client_token);
    assert.equal(self.statusCode, 200, self.body);
  });
}
