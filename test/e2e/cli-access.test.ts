import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/app.ts';
import { runCli, startServerProcess } from '../helpers/process.ts';

test('CLI: tokens and policies end to end against a real server', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const server = await startServerProcess(t, ['--dev', '--data', dir, '--listen', '127.0.0.1:0']);
  while (!/STRONGROOM_TOKEN=(\S+)/.test(server.output())) await new Promise((r) => setTimeout(r, 50));
  const root = /STRONGROOM_TOKEN=(\S+)/.exec(server.output())![1]!;
  const env = { STRONGROOM_ADDR: server.address, STRONGROOM_TOKEN: root };
  const cli = (args: string[], extra: Record<string, string> = {}, input?: string) =>
    runCli(args, { env: { ...env, ...extra }, ...(input === undefined ? {} : { input }) });

  assert.equal((await cli(['project', 'create', 'demo'])).code, 0);
  const put = await cli(
    ['secret', 'put', 'demo/prod/OPENAI_API_KEY', '--provider', 'openai'],
    {},
    `sk-proj-${'x1'.repeat(20)}`,
  );
  assert.equal(put.code, 0, put.stderr);
  const wrong = await cli(
    ['secret', 'put', 'demo/dev/OPENAI_API_KEY', '--provider', 'openai'],
    {},
    'not-a-key',
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /does not look like an OpenAI key/);

  const made = await cli(['token', 'create', '--role', 'developer', '--ttl', '15m', '--format', 'json']);
  assert.equal(made.code, 0, made.stderr);
  const dev = JSON.parse(made.stdout).auth;
  const lookup = await cli(['token', 'lookup', '--format', 'json'], { STRONGROOM_TOKEN: dev.client_token });
  assert.deepEqual(JSON.parse(lookup.stdout).data.policies, ['developer']);
  const denied = await cli(['secret', 'get', 'demo/prod/OPENAI_API_KEY'], {
    STRONGROOM_TOKEN: dev.client_token,
  });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /permission denied/);

  const file = join(dir, 'prod-readers.cedar');
  writeFileSync(
    file,
    'permit (principal in Strongroom::Role::"prod-reader", action == Strongroom::Action::"secret.read", resource is Strongroom::Secret) when { resource.project == "demo" };\n',
  );
  assert.equal((await cli(['policy', 'put', 'prod-readers', file])).code, 0);
  const allow = await cli([
    'policy',
    'test',
    '--principal',
    'role:prod-reader',
    '--action',
    'secret.read',
    '--resource',
    'demo/prod/OPENAI_API_KEY',
  ]);
  assert.equal(allow.code, 0, allow.stdout + allow.stderr);
  assert.match(allow.stdout, /ALLOW/);
  assert.match(allow.stdout, /prod-readers#1/);
  const deny = await cli([
    'policy',
    'test',
    '--principal',
    'role:developer',
    '--action',
    'secret.read',
    '--resource',
    'demo/prod/OPENAI_API_KEY',
  ]);
  assert.equal(deny.code, 3);
  assert.match(deny.stdout, /DENY/);
  writeFileSync(file, 'permit (principal, action == Strongroom::Action::"no.such.action", resource);\n');
  const invalid = await cli(['policy', 'put', 'broken', file]);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /validation_failed/);

  // lifecycle from the CLI: rotate with an operator value, usage, stale report, export without values
  const newKey = `sk-proj-${'y2'.repeat(20)}`;
  const rotated = await cli(
    ['secret', 'rotate', 'demo/prod/OPENAI_API_KEY', '--value-from-stdin', '--format', 'json'],
    {},
    newKey,
  );
  assert.equal(rotated.code, 0, rotated.stderr);
  assert.doesNotMatch(rotated.stdout, /sk-proj-/);
  const read = await cli(['secret', 'get', 'demo/prod/OPENAI_API_KEY', '--field', 'value']);
  assert.equal(read.stdout, `${newKey}\n`);
  const usage = await cli(['usage', 'demo/prod', '--format', 'json']);
  assert.equal(usage.code, 0, usage.stderr);
  assert.match(usage.stdout, /OPENAI_API_KEY/);
  assert.doesNotMatch(usage.stdout, /sk-proj-/);
  const stale = await cli(['secret', 'stale', 'demo', '--format', 'json']);
  assert.equal(stale.code, 0, stale.stderr);
  const exported = await cli(['export', 'demo/prod', '--format', 'json']);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /OPENAI_API_KEY/);
  assert.doesNotMatch(exported.stdout, /sk-proj-/);

  const revoked = await cli(['token', 'revoke', '--accessor', dev.accessor]);
  assert.equal(revoked.code, 0);
  const after = await cli(['token', 'lookup'], { STRONGROOM_TOKEN: dev.client_token });
  assert.equal(after.code, 1);
  assert.match(after.stderr, /invalid_token/);
});
