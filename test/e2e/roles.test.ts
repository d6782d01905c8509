import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { AuthResponse, PolicyTestResponse, SecretListResponse } from '../../src/api/v1.ts';
import { type RouteDef, v1Routes } from '../../src/server/routes/v1/routes.ts';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { buildTestApp, type TestApp, tempDir } from '../helpers/app.ts';
import { SAMPLE } from '../helpers/samples.ts';

/**
 * Authorization over real routes (issue 3, "Must show"): each built-in role
 * can do what it should and nothing more (a role x action x resource matrix,
 * where every refusal is a 403 that changes nothing in storage); an auditor
 * cannot read a secret value by any route; scopes narrow tokens by path,
 * name prefix and provider; custom Cedar policies are validated, take effect
 * at once, can forbid what a built-in permits, and are explained by
 * policy-test; and a role no policy mentions can do nothing but manage its
 * own token.
 */

const hex = (n: number) => randomBytes(n).toString('hex');
/** Canary values of llm/{dev,prod}/OPENAI_API_KEY, versions 1 and 2. */
const VALUES: Record<'dev' | 'prod', [string, string]> = {
  dev: [`sk-dev-v1-${hex(12)}`, `sk-dev-v2-${hex(12)}`],
  prod: [`sk-prod-v1-${hex(12)}`, `sk-prod-v2-${hex(12)}`],
};
const ALL_CANARIES = [...VALUES.dev, ...VALUES.prod];
const HARMLESS_POLICY =
  'permit (principal in Strongroom::Role::"fixture", action == Strongroom::Action::"project.list", resource);';

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

const denied = (res: LightMyRequestResponse) => fails(res, 403, 'permission_denied');

async function mint(
  a: TestApp,
  body: Record<string, unknown>,
  parent?: string,
): Promise<AuthResponse['auth']> {
  return ok<AuthResponse>(await a.call('POST', '/v1/auth/token/create', body, parent)).auth;
}

/** Every key and value in raw storage, to prove a refused request changed nothing. */
async function snapshot(storage: StorageBackend): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of await storage.list('')) {
    const v = await storage.get(key);
    if (v) out.set(key, Buffer.from(v).toString('hex'));
  }
  return out;
}

/**
 * A fresh app: project `llm` (dev, staging, prod) with OPENAI_API_KEY at two
 * versions in dev and in prod, project `fresh` (dev only), a custom policy
 * `fixture`, and a bystander developer token.
 */
async function fixture(t: TestContext) {
  // audited, as a server runs by default, so the audit log is one more route to search
  // no lease sweeps in the background: a refused request is checked to change nothing in storage, and
  // the sweeper renews its cluster lease in storage every few seconds
  const a = await buildTestApp(t, {
    audit: [{ file: { path: join(tempDir(t), 'audit.log') } }],
    leases: { sweep_interval_ms: 3_600_000 },
  });
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('POST', '/v1/projects', { name: 'fresh', environments: ['dev'] }), 201);
  for (const env of ['dev', 'prod'] as const) {
    for (const value of VALUES[env])
      ok(await a.call('PUT', `/v1/secrets/llm/${env}/OPENAI_API_KEY`, { value }));
  }
  ok(await a.call('PUT', '/v1/sys/policies/fixture', { policy: HARMLESS_POLICY }));
  const bystander = await mint(a, { roles: ['developer'], display_name: 'bystander' });
  return Object.assign(a, { bystander });
}
type Fixture = Awaited<ReturnType<typeof fixture>>;

// ---- the role matrix ----

const PRINCIPALS = {
  admin: { roles: ['admin'] },
  developer: { roles: ['developer'] },
  auditor: { roles: ['auditor'] },
  // an app token always has a scope; this one reaches every project
  app: { roles: ['app'], scope: { paths: ['*'] } },
  'app scoped to llm/dev': { roles: ['app'], scope: { paths: ['llm/dev'] } },
} as const;
type Principal = keyof typeof PRINCIPALS;
const COLUMNS = Object.keys(PRINCIPALS) as Principal[];

interface Act {
  /** How the row reads in a test name: "<role> may <what>". */
  what: string;
  /** The policy action the route checks (named in a refusal). */
  action: string;
  request(f: Fixture): { method: InjectOptions['method']; url: string; body?: unknown };
  /** For a secret read: the value an allowed caller gets. */
  value?: string;
}

const secret = (env: string, suffix = '') => `/v1/secrets/llm/${env}/OPENAI_API_KEY${suffix}`;
const on = (env: 'dev' | 'prod') =>
  ({
    read: {
      what: `read a secret in ${env}`,
      action: 'secret.read',
      request: () => ({ method: 'GET', url: secret(env) }),
      value: VALUES[env][1],
    },
    readOld: {
      what: `read an old version of a secret in ${env}`,
      action: 'secret.read',
      request: () => ({ method: 'GET', url: secret(env, '?version=1') }),
      value: VALUES[env][0],
    },
    write: {
      what: `write a secret in ${env}`,
      action: 'secret.write',
      request: () => ({ method: 'PUT', url: secret(env), body: { value: `new-${hex(8)}` } }),
    },
    list: {
      what: `list secrets in ${env}`,
      action: 'secret.list',
      request: () => ({ method: 'GET', url: `/v1/secrets/llm/${env}` }),
    },
    history: {
      what: `see a secret's history in ${env}`,
      action: 'secret.history',
      request: () => ({ method: 'GET', url: secret(env, '/versions') }),
    },
    rollback: {
      what: `roll back a secret in ${env}`,
      action: 'secret.rollback',
      request: () => ({ method: 'POST', url: secret(env, '/rollback'), body: { version: 1 } }),
    },
    delete: {
      what: `delete a secret in ${env}`,
      action: 'secret.delete',
      request: () => ({ method: 'DELETE', url: secret(env) }),
    },
    restore: {
      what: `restore a secret in ${env}`,
      action: 'secret.restore',
      request: () => ({ method: 'POST', url: secret(env, '/restore') }),
    },
    destroy: {
      what: `destroy a secret in ${env}`,
      action: 'secret.destroy',
      request: () => ({ method: 'DELETE', url: secret(env, '?destroy=true') }),
    },
  }) satisfies Record<string, Act>;
const dev = on('dev');
const prod = on('prod');

const act = (what: string, action: string, request: Act['request']): Act => ({ what, action, request });
const projects = {
  create: act('create a project', 'project.create', () => ({
    method: 'POST',
    url: '/v1/projects',
    body: { name: 'brand-new' },
  })),
  list: act('list projects', 'project.list', () => ({ method: 'GET', url: '/v1/projects' })),
  read: act('read a project', 'project.read', () => ({ method: 'GET', url: '/v1/projects/llm' })),
};
const envCreate = (what: string, project: string, body: object) =>
  act(`create ${what}`, 'environment.create', () => ({
    method: 'POST',
    url: `/v1/projects/${project}/environments`,
    body,
  }));
const environments = {
  nonProd: envCreate('a non-production environment', 'llm', { name: 'qa' }),
  prod: envCreate('a production environment', 'llm', { name: 'prod-eu' }),
  named: envCreate('an environment named "prod"', 'fresh', { name: 'prod' }),
  shadow: envCreate('environment "shadow" flagged production', 'llm', { name: 'shadow', production: true }),
};
const tokens = {
  create: act('create a token', 'token.create', () => ({
    method: 'POST',
    url: '/v1/auth/token/create',
    body: { ttl: '10m' },
  })),
  lookupSelf: act('look up its own token', 'token.self', () => ({
    method: 'GET',
    url: '/v1/auth/token/lookup-self',
  })),
  renewSelf: act('renew its own token', 'token.self', () => ({
    method: 'POST',
    url: '/v1/auth/token/renew-self',
    body: {},
  })),
  lookup: act('look up another token by accessor', 'token.read', (f) => ({
    method: 'POST',
    url: '/v1/auth/token/lookup-accessor',
    body: { accessor: f.bystander.accessor },
  })),
  revokeAccessor: act('revoke another token by accessor', 'token.revoke', (f) => ({
    method: 'POST',
    url: '/v1/auth/token/revoke-accessor',
    body: { accessor: f.bystander.accessor },
  })),
  revokeValue: act('revoke another token by value', 'token.revoke', (f) => ({
    method: 'POST',
    url: '/v1/auth/token/revoke',
    body: { token: f.bystander.client_token },
  })),
};
const policies = {
  put: act('put a policy', 'policy.write', () => ({
    method: 'PUT',
    url: '/v1/sys/policies/extra',
    body: { policy: HARMLESS_POLICY },
  })),
  list: act('list policies', 'policy.read', () => ({ method: 'GET', url: '/v1/sys/policies' })),
  read: act('read a policy', 'policy.read', () => ({ method: 'GET', url: '/v1/sys/policies/fixture' })),
  delete: act('delete a policy', 'policy.write', () => ({
    method: 'DELETE',
    url: '/v1/sys/policies/fixture',
  })),
  test: act('test a policy', 'policy.test', () => ({
    method: 'POST',
    url: '/v1/sys/policy-test',
    body: { principal: { roles: ['developer'] }, action: 'secret.read', resource: 'llm/dev/OPENAI_API_KEY' },
  })),
};
const sys = {
  seal: act('seal the vault', 'sys.seal', () => ({ method: 'POST', url: '/v1/sys/seal' })),
  rotate: act('rotate the encryption key', 'sys.rotate', () => ({ method: 'POST', url: '/v1/sys/rotate' })),
  keyStatus: act('see the key status', 'sys.status', () => ({ method: 'GET', url: '/v1/sys/key-status' })),
};

const audit = {
  search: act('search the audit log', 'audit.read', () => ({ method: 'GET', url: '/v1/audit?limit=5' })),
  hash: act('hash a value to search the audit log', 'audit.hash', () => ({
    method: 'POST',
    url: '/v1/sys/audit-hash',
    body: { input: 'sk-something' },
  })),
};

const Y = true;
const N = false;

/** What each built-in role may do (Y) or may not do (N). */
// biome-ignore format: a table
const MATRIX: [Act, ...boolean[]][] = [
  //                      admin developer auditor app  app scoped to llm/dev
  [dev.read,              Y,     Y,         N,       Y,    Y],
  [prod.read,             Y,     N,         N,       Y,    N],
  [dev.readOld,           Y,     Y,         N,       Y,    Y],
  [prod.readOld,          Y,     N,         N,       Y,    N],
  [dev.write,             Y,     Y,         N,       N,    N],
  [prod.write,            Y,     N,         N,       N,    N],
  [dev.list,              Y,     Y,         Y,       Y,    Y],
  [prod.list,             Y,     Y,         Y,       Y,    N],
  [dev.history,           Y,     Y,         Y,       N,    N],
  [prod.history,          Y,     Y,         Y,       N,    N],
  [dev.rollback,          Y,     Y,         N,       N,    N],
  [prod.rollback,         Y,     N,         N,       N,    N],
  [dev.delete,            Y,     Y,         N,       N,    N],
  [prod.delete,           Y,     N,         N,       N,    N],
  [dev.restore,           Y,     Y,         N,       N,    N],
  [prod.restore,          Y,     N,         N,       N,    N],
  [dev.destroy,           Y,     N,         N,       N,    N],
  [prod.destroy,          Y,     N,         N,       N,    N],
  [projects.create,       Y,     Y,         N,       N,    N],
  [projects.list,         Y,     Y,         Y,       N,    N],
  [projects.read,         Y,     Y,         Y,       N,    N],
  [environments.nonProd,  Y,     Y,         N,       N,    N],
  [environments.prod,     Y,     N,         N,       N,    N],
  [environments.named,    Y,     N,         N,       N,    N],
  [environments.shadow,   Y,     N,         N,       N,    N],
  [tokens.create,         Y,     Y,         Y,       Y,    Y],
  [tokens.lookupSelf,     Y,     Y,         Y,       Y,    Y],
  [tokens.renewSelf,      Y,     Y,         Y,       Y,    Y],
  [tokens.lookup,         Y,     N,         Y,       N,    N],
  [tokens.revokeAccessor, Y,     N,         N,       N,    N],
  [tokens.revokeValue,    Y,     N,         N,       N,    N],
  [policies.put,          Y,     N,         N,       N,    N],
  [policies.list,         Y,     N,         Y,       N,    N],
  [policies.read,         Y,     N,         Y,       N,    N],
  [policies.delete,       Y,     N,         N,       N,    N],
  [policies.test,         Y,     N,         N,       N,    N],
  [sys.seal,              Y,     N,         N,       N,    N],
  [sys.rotate,            Y,     N,         N,       N,    N],
  [sys.keyStatus,         Y,     Y,         Y,       N,    N],
  [audit.search,          Y,     N,         Y,       N,    N],
  [audit.hash,            Y,     N,         Y,       N,    N],
];

test('the matrix has a verdict for every role in every row', () => {
  for (const [a, ...verdicts] of MATRIX) assert.equal(verdicts.length, COLUMNS.length, a.what);
  assert.equal(new Set(MATRIX.map(([a]) => a.what)).size, MATRIX.length, 'rows are distinct');
});

for (const [a, ...verdicts] of MATRIX) {
  for (const [i, principal] of COLUMNS.entries()) {
    const allowed = verdicts[i]!;
    test(`${principal} ${allowed ? 'may' : 'may not'} ${a.what}`, async (t) => {
      const f = await fixture(t);
      const tok = await mint(f, { ...PRINCIPALS[principal] });
      const req = a.request(f);
      const before = await snapshot(f.storage);
      const res = await f.inject({
        method: req.method,
        url: req.url,
        headers: { authorization: `Bearer ${tok.client_token}` },
        ...(req.body === undefined ? {} : { payload: req.body as InjectOptions['payload'] }),
      });
      if (allowed) {
        assert.ok(
          res.statusCode >= 200 && res.statusCode < 300,
          `expected 2xx, got ${res.statusCode}: ${res.body}`,
        );
        if (a.value !== undefined) assert.equal((res.json() as { value: string }).value, a.value);
        return;
      }
      const message = denied(res);
      assert.match(message, new RegExp(`^permission denied: ${a.action.replace('.', '\\.')} on `));
      for (const canary of ALL_CANARIES) assert.ok(!res.body.includes(canary), 'no value in a refusal');
      assert.deepEqual(await snapshot(f.storage), before, 'a refused request changes nothing in storage');
      assert.equal(f.core.barrier.sealed, false);
    });
  }
}

// ---- an auditor never sees a secret value ----

function isRouteArray(v: unknown): v is RouteDef[] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every((r) => r && typeof r === 'object' && 'method' in r && 'url' in r && 'operation' in r)
  );
}

/** v1Routes and every RouteDef array exported by a file in src/server/routes/v1/. */
async function everyRoute(): Promise<RouteDef[]> {
  const dir = new URL('../../src/server/routes/v1/', import.meta.url);
  const byKey = new Map<string, RouteDef>(v1Routes.map((r) => [`${r.method} ${r.url}`, r]));
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.ts') || file.endsWith('.test.ts') || file.endsWith('.d.ts')) continue;
    const mod = (await import(new URL(file, dir).href)) as Record<string, unknown>;
    for (const v of Object.values(mod))
      if (isRouteArray(v)) for (const r of v) byKey.set(`${r.method} ${r.url}`, r);
  }
  return [...byKey.values()];
}

test('an auditor cannot read any secret value by any route', async (t) => {
  const f = await fixture(t);
  // a deleted secret and one outside dev/prod too
  ok(await f.call('PUT', '/v1/secrets/fresh/dev/GONE', { value: VALUES.dev[0] }));
  ok(await f.call('DELETE', '/v1/secrets/fresh/dev/GONE'));
  const routes = await everyRoute();
  let sent = 0;
  let allowed = 0;
  for (const route of routes) {
    for (const operation of [
      route.operation.name,
      ...(route.variant ? [route.variant.operation.name] : []),
    ]) {
      const sample = SAMPLE[operation];
      const query = sample?.url.includes('?') ? sample.url.slice(sample.url.indexOf('?')) : '';
      const queries = new Set([query]);
      const qs = route.schema.querystring as { properties?: Record<string, unknown> } | undefined;
      if (route.method === 'GET' && qs?.properties && 'version' in qs.properties) {
        for (const v of [1, 2]) queries.add(`?version=${v}`);
      }
      const bodies: unknown[] = [sample?.body];
      if (operation === 'secret.rollback') bodies.push({ version: 2 });
      for (const [project, env, name] of [
        ['llm', 'dev', 'OPENAI_API_KEY'],
        ['llm', 'prod', 'OPENAI_API_KEY'],
        ['fresh', 'dev', 'GONE'],
      ] as const) {
        const path = route.url.replace(':project', project).replace(':env', env).replace(':name', name);
        for (const q of queries) {
          for (const body of bodies) {
            // a fresh auditor token each time (revoke-self would end the sweep otherwise)
            const auditor = await mint(f, { roles: ['auditor'] });
            // a stream (watch) ends once its token is revoked, at its next heartbeat
            const streamed = (route as { stream?: unknown }).stream !== undefined;
            if (streamed) {
              setTimeout(
                () => void f.call('POST', '/v1/auth/token/revoke-accessor', { accessor: auditor.accessor }),
                200,
              );
            }
            const res = await f.inject({
              method: route.method,
              url: `${path}${q}${streamed ? `${q ? '&' : '?'}heartbeat=1` : ''}`,
              headers: { authorization: `Bearer ${auditor.client_token}` },
              ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
            });
            sent++;
            if (res.statusCode < 300) allowed++;
            for (const canary of ALL_CANARIES) {
              assert.ok(
                !res.body.includes(canary),
                `${route.method} ${path}${q} (${operation}) gave an auditor a secret value: ${res.statusCode}`,
              );
            }
          }
        }
      }
    }
  }
  assert.ok(sent >= routes.length * 3, `sent ${sent} requests`);
  // the audit log itself, which recorded every write of the values, holds none of them
  const auditor = await mint(f, { roles: ['auditor'] });
  // the writes of the values (asked for by action: the sweep above adds more entries than a page holds)
  const writes = await f.call(
    'GET',
    '/v1/audit?action=secret.write&limit=1000',
    undefined,
    auditor.client_token,
  );
  assert.equal(writes.statusCode, 200, writes.body.slice(0, 300));
  assert.ok(writes.body.includes('secret.write'), 'the audit log recorded the writes');
  const log = await f.call('GET', '/v1/audit?limit=1000', undefined, auditor.client_token);
  assert.equal(log.statusCode, 200, log.body.slice(0, 300));
  for (const canary of ALL_CANARIES) {
    assert.ok(!writes.body.includes(canary), 'a value is in the audit log');
    assert.ok(!log.body.includes(canary), 'a value is in the audit log');
  }
  assert.ok(
    allowed > 0,
    'the auditor was allowed some requests (metadata), so the sweep was not all refusals',
  );
  // and nothing the auditor did touched the values
  for (const env of ['dev', 'prod'] as const) {
    for (const [i, value] of VALUES[env].entries()) {
      const r = ok<{ value: string }>(await f.call('GET', secret(env, `?version=${i + 1}`)));
      assert.equal(r.value, value);
    }
  }
});

test('an auditor with a child token or extra custom role still cannot read a value', async (t) => {
  const f = await fixture(t);
  const auditor = await mint(f, { roles: ['auditor'] });
  const child = await mint(f, { ttl: '5m' }, auditor.client_token);
  denied(await f.call('GET', secret('dev'), undefined, child.client_token));
  // a token that is both auditor and developer: the auditor's forbid wins over the developer's permit
  const both = await mint(f, { roles: ['auditor', 'developer'] });
  denied(await f.call('GET', secret('dev'), undefined, both.client_token));
  denied(await f.call('POST', secret('dev', '/rollback'), { version: 1 }, both.client_token));
  // a custom policy permitting auditors to read is still beaten by the built-in forbid
  ok(
    await f.call('PUT', '/v1/sys/policies/auditors-read', {
      policy:
        'permit (principal in Strongroom::Role::"auditor", action == Strongroom::Action::"secret.read", resource);',
    }),
  );
  const res = await f.call('GET', secret('dev'), undefined, auditor.client_token);
  assert.match(denied(res), /builtin\.auditor\.never-values/);
});

// ---- scopes ----

/** Secrets across two projects and several environments and providers. */
async function scopeFixture(t: TestContext) {
  const a = await buildTestApp(t);
  ok(await a.call('POST', '/v1/projects', { name: 'llm' }), 201);
  ok(await a.call('POST', '/v1/projects', { name: 'other' }), 201);
  const put = (path: string, provider?: string) =>
    a.call('PUT', `/v1/secrets/${path}`, {
      value: `value-of-${path}`,
      ...(provider ? { provider, force: true } : {}),
    });
  for (const [path, provider] of [
    ['llm/dev/OPENAI_API_KEY', 'openai'],
    ['llm/dev/OPENAI_ORG_ID', 'openai'],
    ['llm/dev/ANTHROPIC_API_KEY', 'anthropic'],
    ['llm/dev/PLAIN', undefined],
    ['llm/staging/OPENAI_API_KEY', 'openai'],
    ['llm/prod/OPENAI_API_KEY', 'openai'],
    ['other/dev/OPENAI_API_KEY', 'openai'],
  ] as const) {
    ok(await put(path, provider));
  }
  return a;
}

async function readable(a: TestApp, token: string, path: string): Promise<boolean> {
  const res = await a.call('GET', `/v1/secrets/${path}`, undefined, token);
  if (res.statusCode === 200) {
    assert.equal((res.json() as { value: string }).value, `value-of-${path}`);
    return true;
  }
  assert.match(denied(res), /outside the token's scope/);
  return false;
}

const SCOPES: [scope: object, readable: string[], unreadable: string[]][] = [
  [
    { paths: ['llm/dev'] },
    ['llm/dev/OPENAI_API_KEY', 'llm/dev/ANTHROPIC_API_KEY', 'llm/dev/PLAIN'],
    ['llm/staging/OPENAI_API_KEY', 'llm/prod/OPENAI_API_KEY', 'other/dev/OPENAI_API_KEY'],
  ],
  [
    { paths: ['llm/dev/OPENAI_*'] },
    ['llm/dev/OPENAI_API_KEY', 'llm/dev/OPENAI_ORG_ID'],
    ['llm/dev/ANTHROPIC_API_KEY', 'llm/dev/PLAIN', 'llm/staging/OPENAI_API_KEY', 'other/dev/OPENAI_API_KEY'],
  ],
  [
    { providers: ['openai'] },
    [
      'llm/dev/OPENAI_API_KEY',
      'llm/staging/OPENAI_API_KEY',
      'llm/prod/OPENAI_API_KEY',
      'other/dev/OPENAI_API_KEY',
    ],
    ['llm/dev/ANTHROPIC_API_KEY', 'llm/dev/PLAIN'],
  ],
  [
    { paths: ['llm/dev'], providers: ['anthropic'] },
    ['llm/dev/ANTHROPIC_API_KEY'],
    ['llm/dev/OPENAI_API_KEY', 'llm/dev/PLAIN', 'llm/prod/OPENAI_API_KEY', 'other/dev/OPENAI_API_KEY'],
  ],
  [
    { paths: ['*/dev'] },
    ['llm/dev/OPENAI_API_KEY', 'other/dev/OPENAI_API_KEY'],
    ['llm/staging/OPENAI_API_KEY', 'llm/prod/OPENAI_API_KEY'],
  ],
  [
    { paths: ['llm/staging', 'other'] },
    ['llm/staging/OPENAI_API_KEY', 'other/dev/OPENAI_API_KEY'],
    ['llm/dev/OPENAI_API_KEY', 'llm/prod/OPENAI_API_KEY'],
  ],
];

for (const [scope, yes, no] of SCOPES) {
  test(`an app token scoped to ${JSON.stringify(scope)} reads only the secrets in its scope`, async (t) => {
    const a = await scopeFixture(t);
    const tok = await mint(a, { roles: ['app'], scope });
    for (const path of yes) assert.equal(await readable(a, tok.client_token, path), true, `may read ${path}`);
    for (const path of no)
      assert.equal(await readable(a, tok.client_token, path), false, `may not read ${path}`);
  });
}

test('outside its scope a token learns nothing: a missing secret is 403 there and 404 inside', async (t) => {
  const a = await scopeFixture(t);
  const tok = await mint(a, { roles: ['app'], scope: { paths: ['llm/dev'] } });
  fails(
    await a.call('GET', '/v1/secrets/llm/dev/MISSING', undefined, tok.client_token),
    404,
    'secret_not_found',
  );
  for (const path of ['llm/staging/MISSING', 'other/dev/MISSING', 'nope/dev/MISSING', 'llm/nope/MISSING']) {
    denied(await a.call('GET', `/v1/secrets/${path}`, undefined, tok.client_token));
  }
});

test('a scope narrows a developer too: it cannot write outside it, even where its role allows', async (t) => {
  const a = await scopeFixture(t);
  const tok = await mint(a, { roles: ['developer'], scope: { paths: ['llm/dev/OPENAI_*'] } });
  ok(await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_NEW', { value: 'n' }, tok.client_token));
  denied(await a.call('PUT', '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', { value: 'n' }, tok.client_token));
  denied(await a.call('PUT', '/v1/secrets/llm/staging/OPENAI_API_KEY', { value: 'n' }, tok.client_token));
  denied(await a.call('DELETE', '/v1/secrets/llm/dev/PLAIN', undefined, tok.client_token));
  denied(await a.call('POST', '/v1/projects/other/environments', { name: 'qa' }, tok.client_token));
  assert.equal(await readable(a, a.rootToken, 'llm/dev/ANTHROPIC_API_KEY'), true, 'unchanged');
});

const LISTINGS: [scope: object, env: string, names: string[]][] = [
  [{ paths: ['llm/dev'] }, 'llm/dev', ['ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'OPENAI_ORG_ID', 'PLAIN']],
  [{ paths: ['llm/dev/OPENAI_*'] }, 'llm/dev', ['OPENAI_API_KEY', 'OPENAI_ORG_ID']],
  [{ paths: ['llm/dev/PLAIN'] }, 'llm/dev', ['PLAIN']],
  [{ providers: ['openai'] }, 'llm/dev', ['OPENAI_API_KEY', 'OPENAI_ORG_ID']],
  [{ providers: ['anthropic'] }, 'llm/dev', ['ANTHROPIC_API_KEY']],
  [{ paths: ['llm/dev/OPENAI_*'], providers: ['anthropic'] }, 'llm/dev', []],
];

for (const [scope, env, names] of LISTINGS) {
  test(`listing ${env} with a token scoped to ${JSON.stringify(scope)} shows only ${names.join(', ') || 'nothing'}`, async (t) => {
    const a = await scopeFixture(t);
    const tok = await mint(a, { roles: ['app'], scope });
    const list = ok<SecretListResponse>(
      await a.call('GET', `/v1/secrets/${env}`, undefined, tok.client_token),
    );
    assert.deepEqual(list.secrets.map((s) => s.name).sort(), names);
  });
}

test('listing an environment outside the scope is refused', async (t) => {
  const a = await scopeFixture(t);
  const tok = await mint(a, { roles: ['app'], scope: { paths: ['llm/dev'] } });
  for (const env of ['llm/staging', 'llm/prod', 'other/dev']) {
    denied(await a.call('GET', `/v1/secrets/${env}`, undefined, tok.client_token));
  }
});

// ---- custom policies ----

const INVALID: [problem: string, policy: string, message: RegExp][] = [
  ['a syntax error', 'permit (principal, action, resource', /does not parse/],
  [
    'an unknown action',
    'permit (principal, action == Strongroom::Action::"secret.steal", resource);',
    /secret\.steal/,
  ],
  [
    'an unknown attribute',
    'permit (principal, action == Strongroom::Action::"secret.read", resource) when { resource.colour == "red" };',
    /colour/,
  ],
  [
    'a wrong type',
    'permit (principal, action == Strongroom::Action::"secret.read", resource) when { resource.production == "yes" };',
    /Bool and String/,
  ],
  [
    'a comparison of a string with a number',
    'permit (principal, action == Strongroom::Action::"secret.read", resource) when { resource.name > 3 };',
    /expected Long but saw String/,
  ],
  ['an unknown entity type', 'permit (principal in Strongroom::Group::"ops", action, resource);', /Group/],
  ['a template', 'permit (principal == ?principal, action, resource);', /templates are not supported/],
  ['no policy at all', '// nothing here\n', /holds no policy/],
  [
    'one bad policy among good ones',
    `${HARMLESS_POLICY}\npermit (principal, action == Strongroom::Action::"secret.steal", resource);`,
    /custom#2.*secret\.steal/,
  ],
];

for (const [problem, policy, message] of INVALID) {
  test(`a custom policy with ${problem} is refused with 400 validation_failed naming the problem`, async (t) => {
    const f = await fixture(t);
    const res = await f.call('PUT', '/v1/sys/policies/custom', { policy });
    assert.match(fails(res, 400, 'validation_failed'), message);
    fails(await f.call('GET', '/v1/sys/policies/custom'), 404, 'not_found');
    assert.deepEqual(ok<{ policies: string[] }>(await f.call('GET', '/v1/sys/policies')).policies, [
      'fixture',
    ]);
  });
}

test('replacing a valid policy with an invalid one keeps the valid one in force', async (t) => {
  const f = await fixture(t);
  const grant =
    'permit (principal in Strongroom::Role::"prod-reader", action == Strongroom::Action::"secret.read", resource) when { resource.production };';
  ok(await f.call('PUT', '/v1/sys/policies/prod-read', { policy: grant }));
  const reader = await mint(f, { roles: ['prod-reader'] });
  ok(await f.call('GET', secret('prod'), undefined, reader.client_token));
  fails(await f.call('PUT', '/v1/sys/policies/prod-read', { policy: 'permit (' }), 400, 'validation_failed');
  assert.equal(ok<{ policy: string }>(await f.call('GET', '/v1/sys/policies/prod-read')).policy, grant);
  ok(await f.call('GET', secret('prod'), undefined, reader.client_token));
});

test('policy names are checked: reserved and malformed names are refused', async (t) => {
  const f = await fixture(t);
  for (const name of ['builtin', 'builtin-admin', 'UPPER', '-dash', 'x'.repeat(64)]) {
    fails(await f.call('PUT', `/v1/sys/policies/${name}`, { policy: HARMLESS_POLICY }), 400, 'invalid_name');
  }
});

test('a custom policy granting a custom role reads in prod takes effect at once and stops when deleted', async (t) => {
  const f = await fixture(t);
  // the token exists before the policy: nothing needs to be re-issued
  const reader = await mint(f, { roles: ['prod-reader'] });
  denied(await f.call('GET', secret('prod'), undefined, reader.client_token));

  const put = await f.call('PUT', '/v1/sys/policies/prod-read', {
    policy:
      'permit (principal in Strongroom::Role::"prod-reader", action == Strongroom::Action::"secret.read", resource) when { resource.production };',
  });
  assert.deepEqual(ok(put), { name: 'prod-read', policies: 1 });
  const read = ok<{ value: string }>(await f.call('GET', secret('prod'), undefined, reader.client_token));
  assert.equal(read.value, VALUES.prod[1]);
  denied(await f.call('GET', secret('dev'), undefined, reader.client_token));
  denied(await f.call('PUT', secret('prod'), { value: 'x' }, reader.client_token));
  assert.ok(
    ok<{ policies: string[] }>(await f.call('GET', '/v1/sys/policies')).policies.includes('prod-read'),
  );

  ok(await f.call('DELETE', '/v1/sys/policies/prod-read'));
  denied(await f.call('GET', secret('prod'), undefined, reader.client_token));
  fails(await f.call('DELETE', '/v1/sys/policies/prod-read'), 404, 'not_found');
});

test('a forbid in a custom policy beats a built-in permit, for every role but root', async (t) => {
  const f = await fixture(t);
  ok(await f.call('PUT', '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', { value: 'a' }));
  const developer = await mint(f, { roles: ['developer'] });
  const admin = await mint(f, { roles: ['admin'] });
  ok(await f.call('GET', secret('dev'), undefined, developer.client_token));

  ok(
    await f.call('PUT', '/v1/sys/policies/no-openai', {
      policy: `forbid (principal in Strongroom::Role::"developer", action == Strongroom::Action::"secret.read", resource)
  when { resource.name like "OPENAI_*" };
forbid (principal, action == Strongroom::Action::"secret.destroy", resource) when { resource.production };`,
    }),
  );
  assert.match(denied(await f.call('GET', secret('dev'), undefined, developer.client_token)), /no-openai#1/);
  ok(await f.call('GET', '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', undefined, developer.client_token));
  assert.match(
    denied(await f.call('DELETE', secret('prod', '?destroy=true'), undefined, admin.client_token)),
    /no-openai#2/,
  );
  ok(await f.call('DELETE', secret('dev', '?destroy=true'), undefined, admin.client_token));
  // root is not subject to policies
  ok(await f.call('DELETE', secret('prod', '?destroy=true')));
});

const EXPLAIN: [
  label: string,
  body: Record<string, unknown>,
  decision: 'allow' | 'deny',
  ids: string[],
  reason: RegExp,
][] = [
  [
    'a developer reading in dev is allowed by builtin.developer.secrets',
    { principal: { roles: ['developer'] }, action: 'secret.read', resource: 'llm/dev/OPENAI_API_KEY' },
    'allow',
    ['builtin.developer.secrets'],
    /allowed by builtin\.developer\.secrets/,
  ],
  [
    'a developer reading a production secret is denied by default',
    {
      principal: { roles: ['developer'] },
      action: 'secret.read',
      resource: 'llm/prod/OPENAI_API_KEY',
      resource_attrs: { production: true },
    },
    'deny',
    [],
    /no policy permits it/,
  ],
  [
    'an admin is allowed by builtin.admin',
    { principal: { roles: ['admin'] }, action: 'sys.rotate', resource: 'System:sys' },
    'allow',
    ['builtin.admin'],
    /builtin\.admin/,
  ],
  [
    'an auditor reading a value is forbidden by builtin.auditor.never-values',
    { principal: { roles: ['auditor', 'admin'] }, action: 'secret.read', resource: 'llm/dev/OPENAI_API_KEY' },
    'deny',
    ['builtin.auditor.never-values'],
    /forbidden by builtin\.auditor\.never-values/,
  ],
  [
    'a role no policy mentions is denied with no determining policy',
    { principal: { roles: ['nobody'] }, action: 'project.list', resource: 'System:projects' },
    'deny',
    [],
    /no policy permits it/,
  ],
  [
    'an app reading a secret of its provider is allowed by builtin.app',
    {
      principal: { roles: ['app'], app: 'billing' },
      action: 'secret.read',
      resource: 'llm/prod/OPENAI_API_KEY',
      resource_attrs: { provider: 'openai', production: true },
    },
    'allow',
    ['builtin.app'],
    /builtin\.app/,
  ],
];

for (const [label, body, decision, ids, reason] of EXPLAIN) {
  test(`policy-test explains: ${label}`, async (t) => {
    const f = await fixture(t);
    const out = ok<PolicyTestResponse>(await f.call('POST', '/v1/sys/policy-test', body));
    assert.equal(out.decision, decision);
    assert.deepEqual(out.policies, ids);
    assert.match(out.reason, reason);
    assert.deepEqual(out.errors, []);
  });
}

test('policy-test names a custom policy that decides, and explains a real token by accessor', async (t) => {
  const f = await fixture(t);
  ok(
    await f.call('PUT', '/v1/sys/policies/no-openai', {
      policy:
        'forbid (principal in Strongroom::Role::"developer", action == Strongroom::Action::"secret.read", resource) when { resource.name like "OPENAI_*" };',
    }),
  );
  const custom = ok<PolicyTestResponse>(
    await f.call('POST', '/v1/sys/policy-test', {
      principal: { roles: ['developer'] },
      action: 'secret.read',
      resource: 'llm/dev/OPENAI_API_KEY',
    }),
  );
  assert.equal(custom.decision, 'deny');
  assert.deepEqual(custom.policies, ['no-openai#1']);

  const scoped = await mint(f, { roles: ['app'], scope: { paths: ['llm/dev'] } });
  const inScope = ok<PolicyTestResponse>(
    await f.call('POST', '/v1/sys/policy-test', {
      accessor: scoped.accessor,
      action: 'secret.read',
      resource: 'llm/dev/OPENAI_API_KEY',
    }),
  );
  assert.equal(inScope.decision, 'allow');
  assert.deepEqual(inScope.policies, ['builtin.app']);
  const outOfScope = ok<PolicyTestResponse>(
    await f.call('POST', '/v1/sys/policy-test', {
      accessor: scoped.accessor,
      action: 'secret.read',
      resource: 'llm/prod/OPENAI_API_KEY',
    }),
  );
  assert.equal(outOfScope.decision, 'deny');
  assert.match(outOfScope.reason, /outside the token's scope/);
  const unknown = ok<PolicyTestResponse>(
    await f.call('POST', '/v1/sys/policy-test', {
      principal: { roles: ['admin'] },
      action: 'secret.steal',
      resource: 'llm/dev/OPENAI_API_KEY',
    }),
  );
  assert.equal(unknown.decision, 'deny');
});

test('policy-test agrees with the server about an existing production secret', {}, async (t) => {
  const f = await fixture(t);
  const developer = await mint(f, { roles: ['developer'] });
  denied(await f.call('GET', secret('prod'), undefined, developer.client_token));
  for (const body of [
    { principal: { roles: ['developer'] }, action: 'secret.read', resource: 'llm/prod/OPENAI_API_KEY' },
    { accessor: developer.accessor, action: 'secret.read', resource: 'llm/prod/OPENAI_API_KEY' },
  ]) {
    const out = ok<PolicyTestResponse>(await f.call('POST', '/v1/sys/policy-test', body));
    assert.equal(out.decision, 'deny', `policy-test says ${out.decision} (${out.reason}); the server denies`);
  }
});

// ---- deny by default ----

for (const [label, body] of [
  ['whose only role no policy mentions', { roles: ['nobody'] }],
  ['with no role at all', { policies: [] }],
] as const) {
  test(`a token ${label} can do nothing but token self-service`, async (t) => {
    const f = await fixture(t);
    const tok = await mint(f, body);
    const as = (method: InjectOptions['method'], url: string, payload?: unknown) =>
      f.call(method, url, payload, tok.client_token);
    for (const res of [
      await as('GET', secret('dev')),
      await as('GET', `/v1/secrets/llm/dev`),
      await as('GET', secret('dev', '/versions')),
      await as('PUT', secret('dev'), { value: 'x' }),
      await as('GET', '/v1/projects'),
      await as('GET', '/v1/projects/llm'),
      await as('POST', '/v1/projects', { name: 'mine' }),
      await as('GET', '/v1/sys/key-status'),
      await as('GET', '/v1/sys/policies'),
      await as('POST', '/v1/auth/token/lookup-accessor', { accessor: f.bystander.accessor }),
    ]) {
      assert.match(denied(res), /no policy permits it/);
    }
    const me = ok<{ data: { accessor: string } }>(await as('GET', '/v1/auth/token/lookup-self'));
    assert.equal(me.data.accessor, tok.accessor);
    ok(await as('POST', '/v1/auth/token/renew-self', { increment: '5m' }));
    const created = await as('POST', '/v1/auth/token/create', { ttl: '1m' });
    if ('roles' in body) {
      const child = ok<AuthResponse>(created).auth;
      assert.deepEqual(child.policies, ['nobody']);
      denied(await f.call('GET', secret('dev'), undefined, child.client_token));
    } else {
      // a child needs at least one role, and this token has none to hand down
      fails(created, 400, 'validation_failed');
    }
    ok(await as('POST', '/v1/auth/token/revoke-self'));
    fails(await as('GET', '/v1/auth/token/lookup-self'), 401, 'invalid_token');
  });
}

test('a scoped token lists only the projects its scope reaches', async (t) => {
  const a = await fixture(t);
  const scoped = await mint(a, { roles: ['developer'], scope: { paths: ['llm/dev'] } });
  const list = ok<{ projects: { name: string }[] }>(
    await a.call('GET', '/v1/projects', undefined, scoped.client_token),
  );
  assert.deepEqual(
    list.projects.map((p) => p.name),
    ['llm'],
  );
});

test('a developer cannot create a production-named environment by flagging it non-production; an admin can', async (t) => {
  const a = await fixture(t);
  const dev = await mint(a, { roles: ['developer'] });
  denied(
    await a.call(
      'POST',
      '/v1/projects/fresh/environments',
      { name: 'prod', production: false },
      dev.client_token,
    ),
  );
  denied(
    await a.call(
      'POST',
      '/v1/projects/fresh/environments',
      { name: 'prod-eu', production: false },
      dev.client_token,
    ),
  );
  const admin = await mint(a, { roles: ['admin'] });
  const made = ok<{ production: boolean }>(
    await a.call(
      'POST',
      '/v1/projects/fresh/environments',
      { name: 'prod-sandbox', production: false },
      admin.client_token,
    ),
    201,
  );
  assert.equal(made.production, false);
});
