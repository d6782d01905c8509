import assert from 'node:assert/strict';
import test from 'node:test';
import { Type } from 'typebox';
import { op } from '../../src/api/op.ts';
import { implement } from '../../src/contract/operation.ts';
import { vaultRoutes } from '../../src/server/routes/vault-routes.ts';
import { buildTestApp } from '../helpers/app.ts';

/**
 * The wire contract is typed end to end (issue 14 item 2): every route names
 * an operation spec from api/, the server serializes a JSON answer with the
 * spec's response schema, and /v1/openapi.json is generated from the route
 * table.
 */

interface OpenApi {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<
    string,
    Record<string, { responses?: Record<string, { content?: Record<string, { schema: unknown }> }> }>
  >;
}

const openApiPath = (url: string) => url.replace(/:([A-Za-z_]+)/g, '{$1}');

test('/v1/openapi.json is public, OpenAPI 3.1, and documents every route of the table with its response schema', async (t) => {
  const a = await buildTestApp(t);
  const res = await a.inject({ method: 'GET', url: '/v1/openapi.json' });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const doc = res.json() as OpenApi;
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(doc.info.title, 'Strongroom vault API');
  const missing = vaultRoutes
    .filter((r) => !doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()])
    .map((r) => `${r.method} ${r.url}`);
  assert.deepEqual(missing, [], 'routes missing from the OpenAPI document');
  assert.equal(doc.paths['/v1/openapi.json'], undefined, 'the document does not describe itself');
  const read = doc.paths['/v1/secrets/{project}/{env}/{name}']?.get?.responses ?? {};
  const schema = Object.values(read)[0]?.content?.['application/json']?.schema as
    | { properties?: Record<string, unknown> }
    | undefined;
  assert.ok(schema?.properties, 'secret.read documents its response body');
  for (const field of ['value', 'version', 'current_version', 'metadata', 'created_at'])
    assert.ok(field in schema.properties, `secret.read's documented response names ${field}`);
  // nothing in the document is a secret: it is the same before and after secrets are written
  await a.call('POST', '/v1/projects', { name: 'llm' });
  await a.call('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: 'sk-proj-doc-check-1234567890' });
  const again = await a.inject({ method: 'GET', url: '/v1/openapi.json' });
  assert.equal(again.body, res.body);
  assert.ok(!again.body.includes('sk-proj-doc-check'));
});

test('every routed operation that answers JSON has a response schema: only the event stream and the Prometheus text do not', () => {
  const without = new Set(
    vaultRoutes
      .filter((r) => !('response' in r.operation && r.operation.response))
      .map((r) => r.operation.name),
  );
  assert.deepEqual([...without].sort(), ['secret.watch', 'sys.metrics']);
});

test('a field an operation returns that its response schema does not name is never sent', async (t) => {
  const Spec = op<Record<string, never>>()(
    'test.leaky',
    Type.Object({ name: Type.String(), nested: Type.Object({ shown: Type.Integer() }) }),
  );
  const a = await buildTestApp(t, {
    modules: [
      {
        name: 'leaky',
        operations: () => [
          implement(Spec, {
            action: 'sys.status',
            auth: 'none',
            resource: () => ({ type: 'System', id: 'sys' }),
            // a handler that returns more than its contract (as a bug would): the extra fields stay home
            handle: async () =>
              ({ name: 'n', nested: { shown: 1, hidden: 'x' }, internal_key: 'sk-should-not-leave' }) as {
                name: string;
                nested: { shown: number };
              },
          }),
        ],
      },
    ],
    routes: [{ method: 'GET', url: '/v1/test/leaky', operation: Spec, schema: {}, input: () => ({}) }],
  });
  const res = await a.inject({ method: 'GET', url: '/v1/test/leaky' });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), { name: 'n', nested: { shown: 1 } });
  assert.ok(!res.body.includes('sk-should-not-leave'));
});

test('secret.read answers exactly the fields of its response schema', async (t) => {
  const a = await buildTestApp(t);
  await a.call('POST', '/v1/projects', { name: 'llm' });
  await a.call('PUT', '/v1/secrets/llm/dev/K', { value: 'v1', metadata: { team: 'ml' }, tags: ['b', 'a'] });
  const res = await a.call('GET', '/v1/secrets/llm/dev/K');
  assert.equal(res.statusCode, 200);
  const body = res.json() as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), [
    'created_at',
    'current_version',
    'expires_at',
    'last_rotated_at',
    'metadata',
    'name',
    'owner',
    'provider',
    'rotation',
    'tags',
    'value',
    'version',
  ]);
  assert.equal(body.value, 'v1');
  assert.deepEqual(body.metadata, { team: 'ml' });
  assert.deepEqual(body.tags, ['a', 'b']);
});
