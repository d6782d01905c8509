import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BarrierStore, BarrierWriter } from '../barrier/barrier.ts';
import type { Identity } from '../contract/identity.ts';
import type { Resource } from '../contract/operation.ts';
import { createPolicyEngine, type RequestContextInfo } from './engine.ts';

/** A plain in-memory store: the engine only keeps its custom policy files there. */
function memoryStore(): BarrierStore {
  const data = new Map<string, Buffer>();
  const store: BarrierStore = {
    async get(path) {
      return data.get(path);
    },
    async getJson<T>(path: string) {
      const v = data.get(path);
      return v === undefined ? undefined : (JSON.parse(v.toString('utf8')) as T);
    },
    async list(prefix) {
      return [...data.keys()].filter((k) => k.startsWith(prefix)).sort();
    },
    async put(path, value) {
      data.set(path, Buffer.from(value));
    },
    async delete(path) {
      data.delete(path);
    },
    async transaction<T>(fn: (tx: BarrierWriter) => Promise<T>) {
      return fn(store);
    },
    view() {
      throw new TypeError('not used by the policy engine');
    },
  };
  return store;
}

const SECRET: Resource = {
  type: 'Secret',
  id: 'llm/dev/OPENAI_API_KEY',
  attrs: { project: 'llm', environment: 'dev', name: 'OPENAI_API_KEY', production: false, tags: [] },
};
const CTX: RequestContextInfo = { client_address: '127.0.0.1', now: 1_700_000_000_000 };

/** An app token: the principal a remote gateway might claim to be, with the accessor of a real one. */
const REAL: Identity = {
  kind: 'token',
  accessor: 'acc-0001',
  display_name: 'app:billing',
  policies: ['reader'],
  owner: { type: 'app', id: 'app-billing', name: 'billing' },
  scope: null,
  mfa: true,
};

/**
 * Custom policies that each read one identity field, so that two identities differing in that field
 * only get different decisions for the same secret read.
 */
const POLICIES = `
permit (principal in Strongroom::Role::"reader", action == Strongroom::Action::"secret.read", resource)
  when { principal.kind == "app" && principal.name == "app:billing" && principal.mfa && context.mfa };
forbid (principal in Strongroom::App::"app-other", action, resource);
forbid (principal, action, resource) when { principal.name like "*evil*" };
forbid (principal, action, resource) when { Strongroom::App::"app-billing".name like "*evil*" };
forbid (principal in Strongroom::User::"u-1", action, resource);
`;

/** One field changed at a time: each one must give its own decision, whichever is asked first. */
const VARIANTS: { field: string; identity: Identity }[] = [
  { field: 'policies (roles)', identity: { ...REAL, policies: ['developer-less'] } },
  { field: 'owner id', identity: { ...REAL, owner: { ...REAL.owner, id: 'app-other' } } },
  { field: 'owner type', identity: { ...REAL, owner: { type: 'user', id: 'u-1', name: 'billing' } } },
  { field: 'owner name', identity: { ...REAL, owner: { ...REAL.owner, name: 'evil' } } },
  { field: 'display name', identity: { ...REAL, display_name: 'app:evil' } },
  { field: 'mfa', identity: { ...REAL, mfa: false } },
  {
    field: 'workload owner',
    identity: { ...REAL, owner: { type: 'workload', id: 'spiffe://td/x', name: 'x' } },
  },
];

async function engineWithPolicies() {
  const engine = createPolicyEngine(memoryStore());
  await engine.load();
  await engine.put('billing', POLICIES);
  return engine;
}

test('the real principal is allowed by the custom policies (the baseline of the cache tests)', async () => {
  const engine = await engineWithPolicies();
  assert.equal((await engine.authorize(REAL, 'secret.read', SECRET, CTX)).allowed, true);
});

for (const { field, identity } of VARIANTS) {
  test(`a cached decision is never served to an identity with the same accessor and another ${field}`, async () => {
    // the made-up identity first: its deny must not be served to the real principal
    const a = await engineWithPolicies();
    assert.equal((await a.authorize(identity, 'secret.read', SECRET, CTX)).allowed, false, 'made-up: denied');
    assert.equal((await a.authorize(REAL, 'secret.read', SECRET, CTX)).allowed, true, 'real: allowed');
    // the real principal first: its allow must not be served to the made-up identity
    const b = await engineWithPolicies();
    assert.equal((await b.authorize(REAL, 'secret.read', SECRET, CTX)).allowed, true, 'real: allowed');
    assert.equal((await b.authorize(identity, 'secret.read', SECRET, CTX)).allowed, false, 'made-up: denied');
  });
}

test('fields are delimited in the cache key: a shifted accessor and display name are another principal', async () => {
  const engine = await engineWithPolicies();
  assert.equal((await engine.authorize(REAL, 'secret.read', SECRET, CTX)).allowed, true);
  const shifted: Identity = { ...REAL, accessor: 'acc-0001app:', display_name: 'billing' };
  assert.equal((await engine.authorize(shifted, 'secret.read', SECRET, CTX)).allowed, false);
});

test('a repeated identical request is served from the cache', async () => {
  const engine = await engineWithPolicies();
  const first = await engine.authorize(REAL, 'secret.read', SECRET, CTX);
  const second = await engine.authorize(
    { ...REAL, policies: [...REAL.policies] },
    'secret.read',
    SECRET,
    CTX,
  );
  assert.equal(second, first, 'the same decision object: a cache hit');
});

test('the resource attributes and the request context are part of the cache key', async () => {
  const engine = await engineWithPolicies();
  await engine.put(
    'prod',
    `forbid (principal, action == Strongroom::Action::"secret.read", resource) when { resource.production };
forbid (principal, action, resource) when { context has classification && context.classification == "secret" };`,
  );
  assert.equal((await engine.authorize(REAL, 'secret.read', SECRET, CTX)).allowed, true);
  const prod = { ...SECRET, attrs: { ...SECRET.attrs, production: true } };
  assert.equal((await engine.authorize(REAL, 'secret.read', prod, CTX)).allowed, false);
  const secretClass: RequestContextInfo = { ...CTX, classification: 'secret' };
  assert.equal((await engine.authorize(REAL, 'secret.read', SECRET, secretClass)).allowed, false);
});
