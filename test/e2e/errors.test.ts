import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { ServerConfig } from '../../src/config/config.ts';
import { generateToken } from '../../src/crypto/token.ts';
import { v1Routes } from '../../src/server/routes/v1/routes.ts';
import { buildTestApp, type TestApp } from '../helpers/app.ts';
import { SAMPLE } from '../helpers/samples.ts';

/**
 * The error contract over HTTP: every failure is exactly
 * `{"error": {"code", "message", "request_id"}}` with the request id of the
 * `x-request-id` header, the status comes from the code, and no input, however
 * malformed, produces a 500 or leaks a stack trace.
 */

const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';
const FIXTURE_VALUE = 'sk-fixture-value-7f3a9c';

/** A fresh app with project `llm` (dev, staging, prod) and SECRET at version 1. */
async function fixture(t: TestContext, config?: Partial<ServerConfig>): Promise<TestApp> {
  const a = await buildTestApp(t, config ? { config } : {});
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  assert.equal((await a.call('PUT', SECRET, { value: FIXTURE_VALUE })).statusCode, 200);
  return a;
}

/** Asserts the exact error body shape; returns the error. */
function assertErrorShape(res: LightMyRequestResponse): {
  code: string;
  message: string;
  request_id: string;
} {
  assert.match(String(res.headers['content-type']), /^application\/json/, `content-type of ${res.body}`);
  let body: unknown;
  assert.doesNotThrow(
    () => {
      body = JSON.parse(res.body);
    },
    `the body is JSON: ${res.body.slice(0, 200)}`,
  );
  assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), res.body);
  assert.deepEqual(Object.keys(body as object), ['error'], res.body);
  const error = (body as { error: Record<string, unknown> }).error;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'request_id'], res.body);
  assert.equal(typeof error.code, 'string');
  assert.match(error.code as string, /^[a-z_]+$/);
  assert.equal(typeof error.message, 'string');
  assert.ok((error.message as string).length > 0, 'the message is not empty');
  assert.equal(typeof error.request_id, 'string');
  assert.equal(error.request_id, res.headers['x-request-id'], 'request_id matches the x-request-id header');
  assert.doesNotMatch(res.body, /\bat .+[.:](?:ts|js):\d+|node_modules|node:internal/, 'no stack trace');
  return error as { code: string; message: string; request_id: string };
}

function assertError(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(
    res.statusCode,
    status,
    `expected ${status} ${code}, got ${res.statusCode}: ${res.body.slice(0, 300)}`,
  );
  assert.equal(assertErrorShape(res).code, code, res.body.slice(0, 300));
}

const auth = (a: TestApp) => ({ authorization: `Bearer ${a.rootToken}` });

/** A request with the root token and a raw body sent as application/json. */
function rawJson(a: TestApp, method: InjectOptions['method'], url: string, payload: string): InjectOptions {
  return { method, url, headers: { ...auth(a), 'content-type': 'application/json' }, payload };
}

function json(a: TestApp, method: InjectOptions['method'], url: string, body?: unknown): InjectOptions {
  return {
    method,
    url,
    headers: auth(a),
    ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
  };
}

/** A token with a valid shape whose checksum is wrong. */
function badChecksum(token: string): string {
  const last = token.at(-1)!;
  return token.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}

interface Case {
  name: string;
  status: number;
  code: string;
  req: (a: TestApp) => InjectOptions;
  config?: Partial<ServerConfig>;
}

const long = (n: number) => `A${'b'.repeat(n - 1)}`;

const CASES: Case[] = [
  // ---- bodies ----
  {
    name: 'a malformed JSON body',
    status: 400,
    code: 'invalid_json',
    req: (a) => rawJson(a, 'PUT', SECRET, '{"value":'),
  },
  {
    name: 'a body of JSON with a trailing comma',
    status: 400,
    code: 'invalid_json',
    req: (a) => rawJson(a, 'PUT', SECRET, '{"value":"x",}'),
  },
  {
    name: 'a body that is not JSON at all',
    status: 400,
    code: 'invalid_json',
    req: (a) => rawJson(a, 'POST', '/v1/projects', 'name=x'),
  },
  {
    name: 'an empty JSON body where a body is required (secret write)',
    status: 400,
    code: 'validation_failed',
    req: (a) => rawJson(a, 'PUT', SECRET, ''),
  },
  {
    name: 'an empty JSON body where a body is required (project create)',
    status: 400,
    code: 'validation_failed',
    req: (a) => rawJson(a, 'POST', '/v1/projects', ''),
  },
  {
    name: 'a JSON null body',
    status: 400,
    code: 'validation_failed',
    req: (a) => rawJson(a, 'PUT', SECRET, 'null'),
  },
  {
    name: 'a JSON array body',
    status: 400,
    code: 'validation_failed',
    req: (a) => rawJson(a, 'PUT', SECRET, '["x"]'),
  },
  {
    name: 'a JSON string body',
    status: 400,
    code: 'validation_failed',
    req: (a) => rawJson(a, 'PUT', SECRET, '"x"'),
  },
  {
    name: 'an unknown field in a secret write',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', colour: 'red' }),
  },
  {
    name: 'an unknown field in a project create',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'new', owner: 'me' }),
  },
  {
    name: 'an unknown field in a rollback',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'POST', `${SECRET}/rollback`, { version: 1, force: true }),
  },
  {
    name: 'an unknown field in an environment create',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'POST', '/v1/projects/llm/environments', { name: 'qa', color: 'x' }),
  },
  {
    name: 'a metadata key outside [A-Za-z0-9_.-]',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', metadata: { 'bad key': 'v' } }),
  },
  {
    name: 'a metadata key outside the pattern with a non-string value',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', metadata: { 'a/b': { nested: 1 } } }),
  },
  {
    name: 'a missing value',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { metadata: {} }),
  },
  {
    name: 'a number as value',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 123 }),
  },
  {
    name: 'null as value',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: null }),
  },
  {
    name: 'an array as value',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: ['x'] }),
  },
  {
    name: 'an object as value',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: { v: 'x' } }),
  },
  {
    name: 'a string as metadata',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', metadata: 'x' }),
  },
  {
    name: 'a number as a metadata value',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', metadata: { k: 1 } }),
  },
  {
    name: 'a metadata value over 1024 characters',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', metadata: { k: 'v'.repeat(1025) } }),
  },
  {
    name: 'more than 64 metadata keys',
    status: 400,
    code: 'validation_failed',
    req: (a) =>
      json(a, 'PUT', SECRET, {
        value: 'x',
        metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])),
      }),
  },
  {
    name: 'a negative cas',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', cas: -1 }),
  },
  {
    name: 'a fractional cas',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', cas: 1.5 }),
  },
  {
    name: 'a string cas',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', cas: '1' }),
  },
  {
    name: 'a number as project name',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 5 }),
  },
  {
    name: 'an empty environment list',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'new', environments: [] }),
  },
  {
    name: 'a string as environment list',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'new', environments: 'dev' }),
  },
  {
    name: 'an empty environment name',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'new', environments: [''] }),
  },
  {
    name: 'rollback to version 0',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', `${SECRET}/rollback`, { version: 0 }),
  },
  {
    name: 'rollback to a string version',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', `${SECRET}/rollback`, { version: '1' }),
  },
  {
    name: 'rollback without a version',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'POST', `${SECRET}/rollback`, {}),
  },
  {
    name: 'a value one character over 64 KiB',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: 'a'.repeat(64 * 1024 + 1) }),
  },
  {
    name: 'a value over 64 KiB of UTF-8 though under 64 Ki characters',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'PUT', SECRET, { value: '€'.repeat(22_000) }),
  },
  {
    name: 'a body over max_request_bytes',
    status: 413,
    code: 'payload_too_large',
    config: { max_request_bytes: 2048 },
    req: (a) => json(a, 'PUT', SECRET, { value: 'a'.repeat(4096) }),
  },
  {
    name: 'a project create over max_request_bytes',
    status: 413,
    code: 'payload_too_large',
    config: { max_request_bytes: 2048 },
    req: (a) => rawJson(a, 'POST', '/v1/projects', `{"name":"${'x'.repeat(3000)}"}`),
  },
  {
    name: 'a text/plain body',
    status: 415,
    code: 'unsupported_media_type',
    req: (a) => ({
      method: 'PUT',
      url: SECRET,
      headers: { ...auth(a), 'content-type': 'text/plain' },
      payload: '{"value":"x"}',
    }),
  },
  {
    name: 'a form-encoded body',
    status: 415,
    code: 'unsupported_media_type',
    req: (a) => ({
      method: 'PUT',
      url: SECRET,
      headers: { ...auth(a), 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'value=x',
    }),
  },
  {
    name: 'an XML body',
    status: 415,
    code: 'unsupported_media_type',
    req: (a) => ({
      method: 'POST',
      url: '/v1/projects',
      headers: { ...auth(a), 'content-type': 'application/xml' },
      payload: '<name>x</name>',
    }),
  },
  {
    name: 'a body without a content type',
    status: 415,
    code: 'unsupported_media_type',
    req: (a) => ({ method: 'PUT', url: SECRET, headers: auth(a), payload: Buffer.from('{"value":"x"}') }),
  },

  // ---- names ----
  {
    name: 'a secret name starting with a digit',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'PUT', '/v1/secrets/llm/dev/1KEY', { value: 'x' }),
  },
  {
    name: 'a secret name with an encoded slash',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'PUT', '/v1/secrets/llm/dev/a%2Fb', { value: 'x' }),
  },
  {
    name: 'a secret read with an encoded slash',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/a%2Fb'),
  },
  {
    name: 'a secret name with a literal slash',
    status: 404,
    code: 'route_not_found',
    req: (a) => json(a, 'PUT', '/v1/secrets/llm/dev/a/b', { value: 'x' }),
  },
  {
    name: 'a secret name with a space',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'PUT', '/v1/secrets/llm/dev/MY%20KEY', { value: 'x' }),
  },
  {
    name: 'a secret name of 129 characters',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'PUT', `/v1/secrets/llm/dev/${long(129)}`, { value: 'x' }),
  },
  {
    name: 'a secret name of 129 characters on read',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', `/v1/secrets/llm/dev/${long(129)}`),
  },
  {
    name: 'a secret name of 201 characters',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `/v1/secrets/llm/dev/${long(201)}`),
  },
  {
    name: 'a path segment of 5000 characters',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `/v1/secrets/llm/dev/${long(5000)}`),
  },
  {
    name: 'a unicode secret name',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'PUT', `/v1/secrets/llm/dev/${encodeURIComponent('CLÉ')}`, { value: 'x' }),
  },
  {
    name: 'an emoji secret name',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', `/v1/secrets/llm/dev/${encodeURIComponent('🔑')}`),
  },
  {
    name: 'a secret name starting with a dot',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/.env'),
  },
  {
    name: 'a secret name starting with a dash',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'PUT', '/v1/secrets/llm/dev/-x', { value: 'x' }),
  },
  {
    name: 'a secret name with a NUL byte',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/A%00B'),
  },
  {
    name: 'a secret name with a newline',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/A%0AB'),
  },
  {
    name: 'invalid percent-encoding in a path',
    status: 400,
    code: 'bad_request',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/%FF'),
  },
  {
    name: 'a truncated percent-escape in a path',
    status: 400,
    code: 'bad_request',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/A%'),
  },
  {
    name: 'an upper-case project name',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'MyProject' }),
  },
  {
    name: 'a project name starting with an underscore',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'POST', '/v1/projects', { name: '_p' }),
  },
  {
    name: 'a project name with a slash',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'a/b' }),
  },
  {
    name: 'a project name of 64 characters',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'p'.repeat(64) }),
  },
  {
    name: 'an upper-case project name on read',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/projects/LLM'),
  },
  {
    name: 'an upper-case project in a secret path',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/secrets/LLM/dev/KEY'),
  },
  {
    name: 'an upper-case environment in a project create',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'new', environments: ['Prod'] }),
  },
  {
    name: 'an upper-case environment create',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'POST', '/v1/projects/llm/environments', { name: 'QA' }),
  },
  {
    name: 'an upper-case environment in a list',
    status: 400,
    code: 'invalid_name',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/DEV'),
  },

  // ---- things that do not exist ----
  {
    name: 'an unknown project',
    status: 404,
    code: 'project_not_found',
    req: (a) => json(a, 'GET', '/v1/projects/nope'),
  },
  {
    name: 'a secret in an unknown project',
    status: 404,
    code: 'project_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/nope/dev/KEY'),
  },
  {
    name: 'a write in an unknown project',
    status: 404,
    code: 'project_not_found',
    req: (a) => json(a, 'PUT', '/v1/secrets/nope/dev/KEY', { value: 'x' }),
  },
  {
    name: 'a list in an unknown project',
    status: 404,
    code: 'project_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/nope/dev'),
  },
  {
    name: 'an unknown environment',
    status: 404,
    code: 'environment_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/qa/KEY'),
  },
  {
    name: 'a write in an unknown environment',
    status: 404,
    code: 'environment_not_found',
    req: (a) => json(a, 'PUT', '/v1/secrets/llm/qa/KEY', { value: 'x' }),
  },
  {
    name: 'a list of an unknown environment',
    status: 404,
    code: 'environment_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/qa'),
  },
  {
    name: 'an environment named like an Object.prototype member',
    status: 404,
    code: 'environment_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/constructor/KEY'),
  },
  {
    name: 'an unknown secret',
    status: 404,
    code: 'secret_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/NOPE'),
  },
  {
    name: 'the history of an unknown secret',
    status: 404,
    code: 'secret_not_found',
    req: (a) => json(a, 'GET', '/v1/secrets/llm/dev/NOPE/versions'),
  },
  {
    name: 'deleting an unknown secret',
    status: 404,
    code: 'secret_not_found',
    req: (a) => json(a, 'DELETE', '/v1/secrets/llm/dev/NOPE'),
  },
  {
    name: 'restoring an unknown secret',
    status: 404,
    code: 'secret_not_found',
    req: (a) => json(a, 'POST', '/v1/secrets/llm/dev/NOPE/restore'),
  },
  {
    name: 'rolling back an unknown secret',
    status: 404,
    code: 'secret_not_found',
    req: (a) => json(a, 'POST', '/v1/secrets/llm/dev/NOPE/rollback', { version: 1 }),
  },
  {
    name: 'an unknown version',
    status: 404,
    code: 'version_not_found',
    req: (a) => json(a, 'GET', `${SECRET}?version=2`),
  },
  {
    name: 'a huge version number',
    status: 404,
    code: 'version_not_found',
    req: (a) => json(a, 'GET', `${SECRET}?version=9999999999`),
  },
  {
    name: 'rolling back to an unknown version',
    status: 404,
    code: 'version_not_found',
    req: (a) => json(a, 'POST', `${SECRET}/rollback`, { version: 5 }),
  },

  // ---- query strings ----
  {
    name: '?version=abc',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=abc`),
  },
  {
    name: '?version=0',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=0`),
  },
  {
    name: '?version=-1',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=-1`),
  },
  {
    name: '?version=1.5',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=1.5`),
  },
  {
    name: '?version= (empty)',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=`),
  },
  {
    name: '?version=01',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=01`),
  },
  {
    name: '?version given twice',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', `${SECRET}?version=1&version=1`),
  },
  {
    name: 'an unknown query parameter',
    status: 400,
    code: 'unknown_field',
    req: (a) => json(a, 'GET', `${SECRET}?verison=1`),
  },
  {
    name: '?destroy=yes',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'DELETE', `${SECRET}?destroy=yes`),
  },

  // ---- check-and-set ----
  {
    name: 'a stale cas',
    status: 409,
    code: 'cas_mismatch',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', cas: 0 }),
  },
  {
    name: 'a cas from the future',
    status: 409,
    code: 'cas_mismatch',
    req: (a) => json(a, 'PUT', SECRET, { value: 'x', cas: 2 }),
  },
  {
    name: 'creating a project twice',
    status: 409,
    code: 'already_exists',
    req: (a) => json(a, 'POST', '/v1/projects', { name: 'llm' }),
  },

  // ---- tokens ----
  {
    name: 'a request without a token',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'GET', url: SECRET }),
  },
  {
    name: 'a write without a token',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'PUT', url: SECRET, payload: { value: 'x' } }),
  },
  {
    name: 'an empty X-Vault-Token',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'GET', url: SECRET, headers: { 'x-vault-token': '' } }),
  },
  {
    name: 'an empty Authorization header',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'GET', url: SECRET, headers: { authorization: '' } }),
  },
  {
    name: 'a garbage bearer token',
    status: 401,
    code: 'invalid_token',
    req: () => ({ method: 'GET', url: SECRET, headers: { authorization: 'Bearer garbage' } }),
  },
  {
    name: 'a bare "Bearer"',
    status: 401,
    code: 'invalid_token',
    req: () => ({ method: 'GET', url: SECRET, headers: { authorization: 'Bearer' } }),
  },
  {
    name: 'Basic credentials instead of a token',
    status: 401,
    code: 'invalid_token',
    req: () => ({ method: 'GET', url: SECRET, headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
  },
  {
    name: 'a garbage X-Vault-Token',
    status: 401,
    code: 'invalid_token',
    req: () => ({ method: 'GET', url: SECRET, headers: { 'x-vault-token': 'garbage' } }),
  },
  {
    name: 'a well-formed token that does not exist',
    status: 401,
    code: 'invalid_token',
    req: () => ({ method: 'GET', url: SECRET, headers: { authorization: `Bearer ${generateToken()}` } }),
  },
  {
    name: 'a well-formed service token that does not exist',
    status: 401,
    code: 'invalid_token',
    req: () => ({ method: 'GET', url: SECRET, headers: { 'x-vault-token': generateToken('srs') } }),
  },
  {
    name: 'the root token with a bad checksum',
    status: 401,
    code: 'invalid_token',
    req: (a) => ({
      method: 'GET',
      url: SECRET,
      headers: { authorization: `Bearer ${badChecksum(a.rootToken)}` },
    }),
  },
  {
    name: 'the root token with a bad checksum in X-Vault-Token',
    status: 401,
    code: 'invalid_token',
    req: (a) => ({ method: 'GET', url: SECRET, headers: { 'x-vault-token': badChecksum(a.rootToken) } }),
  },
  {
    name: 'a very long token',
    status: 401,
    code: 'invalid_token',
    req: () => ({
      method: 'GET',
      url: SECRET,
      headers: { authorization: `Bearer srt_${'A'.repeat(10_000)}` },
    }),
  },
  {
    name: 'a garbage Authorization header next to a valid X-Vault-Token (Authorization wins)',
    status: 401,
    code: 'invalid_token',
    req: (a) => ({
      method: 'GET',
      url: SECRET,
      headers: { authorization: 'Bearer nope', 'x-vault-token': a.rootToken },
    }),
  },
  {
    name: 'rotating without a token',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'POST', url: '/v1/sys/rotate' }),
  },
  {
    name: 'key status without a token',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'GET', url: '/v1/sys/key-status' }),
  },
  {
    name: 'sealing without a token',
    status: 401,
    code: 'unauthenticated',
    req: () => ({ method: 'POST', url: '/v1/sys/seal' }),
  },

  // ---- routes ----
  { name: 'an unknown route', status: 404, code: 'route_not_found', req: (a) => json(a, 'GET', '/v1/nope') },
  { name: 'the root path', status: 404, code: 'route_not_found', req: () => ({ method: 'GET', url: '/' }) },
  {
    name: 'an unknown API version',
    status: 404,
    code: 'route_not_found',
    req: (a) => json(a, 'GET', '/v2/projects'),
  },
  {
    name: 'a known path with an unknown method',
    status: 404,
    code: 'route_not_found',
    req: (a) => json(a, 'PATCH', '/v1/projects'),
  },
  {
    name: 'a DELETE of a project',
    status: 404,
    code: 'route_not_found',
    req: (a) => json(a, 'DELETE', '/v1/projects/llm'),
  },
  {
    name: 'a path too deep',
    status: 404,
    code: 'route_not_found',
    req: (a) => json(a, 'GET', `${SECRET}/versions/1`),
  },
  {
    name: 'an OPTIONS request',
    status: 404,
    code: 'route_not_found',
    req: (a) => json(a, 'OPTIONS', '/v1/projects'),
  },
  {
    name: 'an unknown route without a token',
    status: 404,
    code: 'route_not_found',
    req: () => ({ method: 'GET', url: '/v1/admin' }),
  },
  {
    name: 'a trailing slash with nothing after it',
    status: 400,
    code: 'validation_failed',
    req: (a) => json(a, 'GET', '/v1/projects/'),
  },

  // ---- prototype pollution ----
  {
    name: 'a body with __proto__',
    status: 400,
    code: 'unknown_field',
    req: (a) => rawJson(a, 'PUT', SECRET, '{"value":"x","__proto__":{"polluted":"yes"}}'),
  },
  {
    name: 'a body with constructor.prototype',
    status: 400,
    code: 'unknown_field',
    req: (a) => rawJson(a, 'PUT', SECRET, '{"value":"x","constructor":{"prototype":{"polluted":"yes"}}}'),
  },
  {
    name: 'a project create with __proto__',
    status: 400,
    code: 'unknown_field',
    req: (a) => rawJson(a, 'POST', '/v1/projects', '{"name":"p2","__proto__":{"environments":["evil"]}}'),
  },
  {
    name: 'an unseal with __proto__',
    status: 400,
    code: 'unknown_field',
    req: () => ({
      method: 'POST',
      url: '/v1/sys/unseal',
      headers: { 'content-type': 'application/json' },
      payload: '{"__proto__":{"reset":true}}',
    }),
  },
  {
    name: 'metadata with __proto__ holding an object',
    status: 400,
    code: 'validation_failed',
    req: (a) => rawJson(a, 'PUT', SECRET, '{"value":"x","metadata":{"__proto__":{"polluted":"yes"}}}'),
  },

  // ---- deep nesting ----
  {
    name: 'a body of 400 000 nested arrays',
    status: 400,
    code: 'json_too_deep',
    req: (a) => rawJson(a, 'PUT', SECRET, `${'['.repeat(400_000)}${']'.repeat(400_000)}`),
  },
  {
    // refused before it is parsed: deeper than max_json_depth, whatever follows
    name: 'a body of 400 000 unclosed arrays',
    status: 400,
    code: 'json_too_deep',
    req: (a) => rawJson(a, 'PUT', SECRET, '['.repeat(400_000)),
  },
  {
    name: 'metadata nested 50 000 objects deep',
    status: 400,
    code: 'json_too_deep',
    req: (a) =>
      rawJson(a, 'PUT', SECRET, `{"value":"x","metadata":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_001)}`),
  },
  {
    name: 'an unknown field nested 50 000 objects deep',
    status: 400,
    code: 'json_too_deep',
    req: (a) => rawJson(a, 'PUT', SECRET, `{"value":"x","x":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_001)}`),
  },
];

for (const c of CASES) {
  test(`${c.name} is ${c.status} ${c.code} with the error body shape`, async (t) => {
    const a = await fixture(t, c.config);
    const res = await a.inject(c.req(a));
    assertError(res, c.status, c.code);
    assert.ok(!res.body.includes(FIXTURE_VALUE), 'an error never carries a secret value');
    assert.ok(!res.body.includes(a.rootToken), 'an error never carries the token');
    // the request changed nothing: the fixture secret is intact
    const after = await a.call('GET', SECRET);
    assert.equal(after.statusCode, 200);
    assert.equal((after.json() as { value: string; version: number }).value, FIXTURE_VALUE);
    assert.equal((after.json() as { value: string; version: number }).version, 1);
  });
}

test('each request gets its own request id', async (t) => {
  const a = await fixture(t);
  const ids = new Set<string>();
  for (let i = 0; i < 5; i++)
    ids.add(assertErrorShape(await a.inject({ method: 'GET', url: '/v1/nope' })).request_id);
  assert.equal(ids.size, 5);
});

test('a client-supplied x-request-id is not trusted as the request id', async (t) => {
  const a = await fixture(t);
  const res = await a.inject({
    method: 'GET',
    url: '/v1/nope',
    headers: { 'x-request-id': 'attacker-chosen' },
  });
  const err = assertErrorShape(res);
  assert.notEqual(err.request_id, 'attacker-chosen');
});

test('prototype-pollution bodies leave Object.prototype untouched', async (t) => {
  const a = await fixture(t);
  const bodies = [
    '{"value":"x","__proto__":{"polluted":"yes"}}',
    '{"value":"x","constructor":{"prototype":{"polluted":"yes"}}}',
    '{"value":"x","metadata":{"__proto__":{"polluted":"yes"}}}',
    '{"value":"x","metadata":{"constructor":"yes","__proto__":"yes"}}',
  ];
  for (const body of bodies) {
    const res = await a.inject(rawJson(a, 'PUT', '/v1/secrets/llm/dev/POLLUTE', body));
    assert.ok(res.statusCode < 500, res.body);
    if (res.statusCode >= 400) assertErrorShape(res);
  }
  assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('metadata keys named __proto__ and constructor are stored as plain data', async (t) => {
  const a = await fixture(t);
  const put = await a.inject(
    rawJson(
      a,
      'PUT',
      '/v1/secrets/llm/dev/PROTO',
      '{"value":"x","metadata":{"__proto__":"p","constructor":"c"}}',
    ),
  );
  assert.equal(put.statusCode, 200, put.body);
  const res = await a.call('GET', '/v1/secrets/llm/dev/PROTO');
  assert.equal(res.statusCode, 200);
  const metadata = JSON.parse(res.body).metadata as Record<string, unknown>;
  assert.ok(Object.hasOwn(metadata, '__proto__'));
  assert.equal(Object.getOwnPropertyDescriptor(metadata, '__proto__')?.value, 'p');
  assert.equal(metadata.constructor, 'c');
  assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
});

test('secret, project and environment names that are Object.prototype members are ordinary names', async (t) => {
  const a = await fixture(t);
  assert.equal(
    (
      await a.call('POST', '/v1/projects', {
        name: 'constructor',
        environments: ['tostring', 'hasownproperty'],
      })
    ).statusCode,
    201,
  );
  for (const name of ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'prototype']) {
    const url = `/v1/secrets/constructor/tostring/${name}`;
    assert.equal((await a.call('PUT', url, { value: `v-${name}` })).statusCode, 200, name);
    const r = await a.call('GET', url);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal((r.json() as { value: string }).value, `v-${name}`);
  }
  const list = await a.call('GET', '/v1/secrets/constructor/tostring');
  assert.equal((list.json() as { secrets: unknown[] }).secrets.length, 5);
  assertError(await a.call('GET', '/v1/secrets/constructor/valueof/KEY'), 404, 'environment_not_found');
});

test('HEAD on an error route has the status but no body', async (t) => {
  const a = await fixture(t);
  const res = await a.inject({ method: 'HEAD', url: SECRET });
  assert.equal(res.statusCode, 401);
  assert.equal(res.body, '');
});

// ---- fuzz ----

/** A small deterministic PRNG (mulberry32) so a failure can be replayed from its seed. */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

type Rng = ReturnType<typeof prng>;

const SEGMENTS = [
  'llm',
  'dev',
  'prod',
  'OPENAI_API_KEY',
  'NEW_KEY',
  'nope',
  '',
  '..',
  '.',
  '%2E%2E',
  '%2F',
  '%00',
  '%FF',
  '%E2%82',
  '%',
  '%%',
  '%25',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  '1',
  '0',
  '-1',
  'A'.repeat(128),
  'a'.repeat(129),
  'b'.repeat(250),
  'c'.repeat(3000),
  encodeURIComponent('clé'),
  encodeURIComponent('🔑'),
  encodeURIComponent('a b'),
  encodeURIComponent('"\'<>`{}|\\^'),
  ';',
  'a;b',
  '*',
  '$',
  '~',
];

function randomSegment(r: Rng): string {
  switch (r.int(4)) {
    case 0:
      return r.pick(SEGMENTS);
    case 1: {
      // random bytes, percent-encoded (often invalid UTF-8)
      const n = 1 + r.int(20);
      let s = '';
      for (let i = 0; i < n; i++) s += `%${r.int(256).toString(16).padStart(2, '0').toUpperCase()}`;
      return s;
    }
    case 2: {
      const chars = "abcXYZ019_.-~!$&'()*+,;=:@";
      let s = '';
      for (let i = 0, n = 1 + r.int(40); i < n; i++) s += r.pick([...chars]);
      return s;
    }
    default: {
      let s = '';
      for (let i = 0, n = 1 + r.int(10); i < n; i++)
        s += String.fromCodePoint(r.pick([0x41, 0x61, 0x5f, 0xe9, 0x3b1, 0x1f511, 0x2028, 0xfeff, 0x7f]));
      return encodeURIComponent(s);
    }
  }
}

function randomJson(r: Rng, depth = 0): unknown {
  const kind = depth > 4 ? r.int(5) : r.int(8);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return r.pick([true, false]);
    case 2:
      return r.pick([0, 1, -1, 1.5, 2 ** 53, -(2 ** 31), 1e308, 255, 256]);
    case 3:
      return r.pick([
        '',
        'x',
        'llm',
        'OPENAI_API_KEY',
        '__proto__',
        'a'.repeat(70_000),
        '€'.repeat(30_000),
        '\u0000',
        'true',
        '1',
      ]);
    case 4:
      return randomSegment(r);
    case 5:
      return Array.from({ length: r.int(4) }, () => randomJson(r, depth + 1));
    default: {
      const keys = [
        'value',
        'metadata',
        'cas',
        'name',
        'environments',
        'version',
        'key',
        'reset',
        'secret_shares',
        'secret_threshold',
        '__proto__',
        'constructor',
        'x',
      ];
      const o: Record<string, unknown> = {};
      for (let i = 0, n = r.int(4); i < n; i++)
        Object.defineProperty(o, r.pick(keys), {
          value: randomJson(r, depth + 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      return o;
    }
  }
}

/** A plausible body for each route, to be mutated. */
const VALID_BODY: Record<string, unknown> = {
  'sys.init': {},
  'sys.unseal': { reset: true },
  'project.create': { name: 'fuzzed', environments: ['dev'] },
  'environment.create': { name: 'qa' },
  'secret.write': { value: 'fuzz', metadata: { k: 'v' }, cas: 1 },
  'secret.rollback': { version: 1 },
};

function randomBody(r: Rng, operation: string): { payload?: string | Buffer; contentType?: string } {
  const contentType = r.pick([
    'application/json',
    'application/json',
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'application/octet-stream',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/json-patch+json',
    'APPLICATION/JSON',
    '',
    undefined,
  ]);
  const withType = (payload: string | Buffer) =>
    contentType === undefined ? { payload } : { payload, contentType };
  switch (r.int(6)) {
    case 0:
      return {};
    case 1: {
      const n = r.int(300);
      const bytes = Buffer.alloc(n);
      for (let i = 0; i < n; i++) bytes[i] = r.int(256);
      return withType(bytes);
    }
    case 2: {
      const base = { ...((VALID_BODY[operation] ?? {}) as Record<string, unknown>) };
      const keys = Object.keys(base);
      if (keys.length > 0 && r.next() < 0.7) base[r.pick(keys)] = randomJson(r);
      else base[r.pick(['extra', '__proto__', 'constructor', 'value', 'cas'])] = randomJson(r);
      return withType(JSON.stringify(base));
    }
    case 3:
      return withType(JSON.stringify(randomJson(r)) ?? '');
    case 4: {
      // valid JSON cut short, or with junk appended
      const text = JSON.stringify(VALID_BODY[operation] ?? { value: 'x' });
      return withType(
        r.next() < 0.5
          ? text.slice(0, r.int(text.length))
          : `${text}${r.pick(['}', ',', ' x', '\u0000', ']'])}`,
      );
    }
    default:
      return withType(
        r.pick([
          '{',
          '}',
          '[',
          'nul',
          'NaN',
          'Infinity',
          "{'a':1}",
          '{"a":1,"a":2}',
          '\ufeff{}',
          '{"value":"\\ud800"}',
          ' ',
        ]),
      );
  }
}

function randomQuery(r: Rng): string {
  switch (r.int(5)) {
    case 0:
      return `?version=${r.pick(['1', '2', '0', 'abc', '', '-1', '1e3', '99999999999', '%00', '%FF', '1&version=2'])}`;
    case 1:
      return `?destroy=${r.pick(['true', 'false', 'yes', '', '1'])}`;
    case 2:
      return `?${randomSegment(r)}=${randomSegment(r)}`;
    case 3:
      return r.pick(['?', '?&', '?=', '?__proto__[x]=1', '?constructor=1', '?a[b]=1']);
    default:
      return '';
  }
}

const FUZZ_ROUNDS = 300;

test(`${FUZZ_ROUNDS} random requests per route never produce a 500 and always answer errors with the error shape`, async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  t.diagnostic(`FUZZ_SEED=${seed}`);
  const r = prng(seed);
  const a = await fixture(t);
  const methods = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'] as const;
  const tokens = (): Record<string, string> =>
    r.pick<Record<string, string>>([
      { authorization: `Bearer ${a.rootToken}` },
      { authorization: `Bearer ${a.rootToken}` },
      { 'x-vault-token': a.rootToken },
      {},
      { authorization: 'Bearer garbage' },
      { authorization: `Bearer ${generateToken()}` },
      { authorization: `Bearer ${badChecksum(a.rootToken)}` },
    ]);
  let count = 0;
  for (const route of v1Routes) {
    for (let i = 0; i < FUZZ_ROUNDS; i++) {
      const path = route.url.replace(/:[a-z]+/g, () =>
        r.next() < 0.5 ? r.pick(['llm', 'dev', 'OPENAI_API_KEY', 'NEW_KEY']) : randomSegment(r),
      );
      const url = path + randomQuery(r);
      const method = r.next() < 0.85 ? route.method : r.pick(methods);
      // sealing would turn the rest of the run into 503s: never give sys/seal a working token
      const headers =
        route.operation.name === 'sys.seal' ? r.pick([{}, { authorization: 'Bearer garbage' }]) : tokens();
      const body = randomBody(r, route.operation.name);
      const opts: InjectOptions = {
        method,
        url,
        headers: {
          ...headers,
          ...(body.contentType === undefined ? {} : { 'content-type': body.contentType }),
        },
        ...(body.payload === undefined ? {} : { payload: body.payload }),
      };
      const res = await a.inject(opts);
      count++;
      const what = `${method} ${url.slice(0, 200)} body=${String(body.payload ?? '').slice(0, 200)} ct=${body.contentType} (FUZZ_SEED=${seed})`;
      assert.ok(res.statusCode < 500, `${what} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
      assert.ok(res.headers['x-request-id'], `${what} has an x-request-id`);
      if (res.statusCode >= 400 && method !== 'HEAD') {
        try {
          assertErrorShape(res);
        } catch (err) {
          assert.fail(`${what} -> ${res.statusCode}: ${(err as Error).message}`);
        }
      }
    }
  }
  assert.equal(count, v1Routes.length * FUZZ_ROUNDS);
  // still healthy afterwards
  assert.equal((await a.call('GET', '/v1/sys/health')).statusCode, 200);
  assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
});

test('random bytes as whole paths never produce a 500', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  t.diagnostic(`FUZZ_SEED=${seed}`);
  const r = prng(seed);
  const a = await fixture(t);
  for (let i = 0; i < FUZZ_ROUNDS; i++) {
    const segments = Array.from({ length: r.int(7) }, () => randomSegment(r));
    const url = `/${r.next() < 0.5 ? 'v1/' : ''}${segments.join('/')}${randomQuery(r)}`;
    const res = await a.inject({ method: r.pick(['GET', 'PUT', 'POST', 'DELETE']), url, headers: auth(a) });
    assert.ok(
      res.statusCode < 500,
      `${url} (FUZZ_SEED=${seed}) -> ${res.statusCode} ${res.body.slice(0, 300)}`,
    );
    if (res.statusCode >= 400) assertErrorShape(res);
  }
});

// ---- sealed and uninitialised ----

/** A valid request for every route, keyed by operation, so a route added to the table must be added here. */
// one valid sample request per operation lives in test/helpers/samples.ts

/** Public sys routes that answer while sealed. */
const WHEN_SEALED = new Set(['sys.seal-status', 'sys.init', 'sys.unseal']);

function sample(route: (typeof v1Routes)[number]) {
  const s = route.url === '/v1/sys/health' ? { url: route.url } : SAMPLE[route.operation.name];
  assert.ok(s, `errors.test.ts has no sample request for ${route.method} ${route.url}: add one to SAMPLE`);
  return s;
}

test('while sealed every route that touches data answers 503 sealed, with or without a valid token', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  assert.equal((await a.call('POST', '/v1/projects', { name: 'llm' })).statusCode, 201);
  assert.equal((await a.call('PUT', SECRET, { value: FIXTURE_VALUE })).statusCode, 200);
  const sealed = await a.call('POST', '/v1/sys/seal');
  assert.equal(sealed.statusCode, 200, sealed.body);
  assert.equal((sealed.json() as { sealed: boolean }).sealed, true);

  let checked = 0;
  for (const route of v1Routes) {
    if (WHEN_SEALED.has(route.operation.name)) continue;
    const s = sample(route);
    if (route.url === '/v1/sys/health') continue;
    for (const token of [a.rootToken, undefined, 'garbage']) {
      const res = await a.inject({
        method: route.method,
        url: s.url,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        ...(s.body === undefined ? {} : { payload: s.body as InjectOptions['payload'] }),
      });
      assertError(res, 503, 'sealed');
      assert.ok(!res.body.includes(FIXTURE_VALUE));
      checked++;
    }
  }
  assert.ok(checked >= 3 * 14, `checked ${checked} requests`);
  const health = await a.inject({ method: 'GET', url: '/v1/sys/health' });
  assert.equal(health.statusCode, 503);
  assert.equal((health.json() as { sealed: boolean }).sealed, true);
  const status = await a.inject({ method: 'GET', url: '/v1/sys/seal-status' });
  assert.equal(status.statusCode, 200);
  assert.equal((status.json() as { sealed: boolean }).sealed, true);
});

test('while sealed a malformed body is still 400 (validation runs first, reading nothing) and a valid one is 503 sealed', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir' });
  assert.equal((await a.call('POST', '/v1/sys/seal')).statusCode, 200);
  assertError(await a.inject(rawJson(a, 'PUT', SECRET, '{"value":')), 400, 'invalid_json');
  assertError(await a.call('PUT', SECRET, { value: 'x' }), 503, 'sealed');
});

test('an uninitialised server answers 503 not_initialized on data routes and 501 on health', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
  let checked = 0;
  for (const route of v1Routes) {
    if (WHEN_SEALED.has(route.operation.name) || route.url === '/v1/sys/health') continue;
    const s = sample(route);
    const res = await a.inject({
      method: route.method,
      url: s.url,
      headers: { authorization: `Bearer ${generateToken()}` },
      ...(s.body === undefined ? {} : { payload: s.body as InjectOptions['payload'] }),
    });
    assertError(res, 503, 'not_initialized');
    checked++;
  }
  assert.ok(checked >= 14);
  assertError(await a.inject({ method: 'GET', url: SECRET }), 503, 'not_initialized');

  const health = await a.inject({ method: 'GET', url: '/v1/sys/health' });
  assert.equal(health.statusCode, 501);
  assert.deepEqual(health.json(), {
    type: 'shamir',
    initialized: false,
    sealed: true,
    t: 0,
    n: 0,
    progress: 0,
    recovery_seal: false,
  });
  assertError(
    await a.inject({ method: 'POST', url: '/v1/sys/unseal', payload: { key: '00'.repeat(33) } }),
    503,
    'not_initialized',
  );
});

test('health is 501 before init, 503 while sealed and 200 once unsealed', async (t) => {
  const a = await buildTestApp(t, { seal: 'shamir', uninitialized: true });
  assert.equal((await a.inject({ method: 'GET', url: '/v1/sys/health' })).statusCode, 501);
  const init = await a.inject({
    method: 'POST',
    url: '/v1/sys/init',
    payload: { secret_shares: 3, secret_threshold: 2 },
  });
  assert.equal(init.statusCode, 200, init.body);
  const { keys, root_token } = init.json() as { keys: string[]; root_token: string };
  assert.equal((await a.inject({ method: 'GET', url: '/v1/sys/health' })).statusCode, 503);
  assertError(
    await a.inject({
      method: 'GET',
      url: '/v1/projects',
      headers: { authorization: `Bearer ${root_token}` },
    }),
    503,
    'sealed',
  );
  for (const key of keys.slice(0, 2)) {
    assert.equal(
      (await a.inject({ method: 'POST', url: '/v1/sys/unseal', payload: { key } })).statusCode,
      200,
    );
  }
  const health = await a.inject({ method: 'GET', url: '/v1/sys/health' });
  assert.equal(health.statusCode, 200);
  assert.equal((health.json() as { sealed: boolean }).sealed, false);
  assert.equal(
    (
      await a.inject({
        method: 'GET',
        url: '/v1/projects',
        headers: { authorization: `Bearer ${root_token}` },
      })
    ).statusCode,
    200,
  );
});

test('a 500 answers generically and never echoes internals', async (t) => {
  const a = await fixture(t);
  // make the storage fail underneath a request: the edge must answer 5xx with the error shape and no details
  const original = a.storage.get.bind(a.storage);
  a.storage.get = async () => {
    throw new Error('disk on fire at /var/lib/strongroom/secret-path');
  };
  t.after(() => {
    a.storage.get = original;
  });
  const res = await a.call('GET', SECRET);
  assert.ok(res.statusCode >= 500, res.body);
  const err = assertErrorShape(res);
  assert.doesNotMatch(res.body, /disk on fire|\/var\/lib|secret-path/);
  assert.ok(err.message.length < 200);
});
