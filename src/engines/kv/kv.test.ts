import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { assembleVault, type ModuleDeps } from '../../assemble/vault.ts';
import type { VaultModule } from '../../contract/module.ts';
import type { RequestInfo } from '../../contract/operation.ts';
import { systemClock } from '../../lib/clock.ts';
import { createMemoryStorage } from '../../storage/memory.ts';
import type { SecretEvent } from './records.ts';

const request: RequestInfo = { request_id: 'r', client_address: '127.0.0.1' };

/** An unsealed vault with one project (`llm`, environments dev and prod) and a module that keeps the deps it was given. */
async function vaultWithProbe(t: TestContext) {
  let seen: ModuleDeps | undefined;
  const probe: VaultModule<ModuleDeps> = {
    name: 'probe',
    needs: ['secrets'],
    operations(deps) {
      seen = deps;
      return [];
    },
  };
  const storage = createMemoryStorage();
  const vault = assembleVault({
    storage,
    seal: { shamir: {} },
    clock: systemClock,
    audit: [],
    modules: [probe],
  });
  t.after(async () => {
    await vault.close();
    await storage.close();
  });
  await vault.core.start();
  const init = await vault.core.invoke<{ keys: string[]; root_token: string }>(
    'sys.init',
    { secret_shares: 1, secret_threshold: 1 },
    request,
  );
  await vault.core.invoke('sys.unseal', { key: init.keys[0] }, request);
  const root = { ...request, token: init.root_token };
  await vault.core.invoke('project.create', { name: 'llm', environments: ['dev', 'prod'] }, root);
  const put = (env: string, name: string, value: string) =>
    vault.core.invoke('secret.write', { project: 'llm', env, name, value }, root);
  assert.ok(seen, 'the probe module was built');
  return { vault, deps: seen, put, root };
}

test('a module built on secrets gets a reader and a writer port, never the engine or its store', async (t) => {
  const { deps, put } = await vaultWithProbe(t);
  await put('dev', 'OPENAI_API_KEY', 'sk-dev-1');
  await put('prod', 'OPENAI_API_KEY', 'sk-prod-1');
  assert.equal('kv' in deps, false, 'the core no longer hands out the secrets engine');
  assert.deepEqual(Object.keys(deps.secrets).sort(), [
    'environment',
    'events',
    'project',
    'projects',
    'records',
    'secret',
    'value',
  ]);
  const rec = await deps.secrets.secret({ project: 'llm', env: 'prod', name: 'OPENAI_API_KEY' });
  assert.equal(
    await deps.secrets.value({ project: 'llm', env: 'prod', name: 'OPENAI_API_KEY' }, rec.current_version),
    'sk-prod-1',
  );
  const walked: string[] = [];
  for await (const e of deps.secrets.records()) walked.push(`${e.project}/${e.env}/${e.record.name}`);
  assert.deepEqual(walked, ['llm/dev/OPENAI_API_KEY', 'llm/prod/OPENAI_API_KEY']);
});

test('records a module attaches change in the same transaction as the secret: a failed transaction leaves neither, and watchers hear nothing', async (t) => {
  const { vault, deps, put } = await vaultWithProbe(t);
  await put('dev', 'KEY', 'v1');
  const writer = deps.secretsWriter('probe/');
  const heard: SecretEvent[] = [];
  vault.secrets.events.on('change', (e) => heard.push(e));
  const a = { project: 'llm', env: 'dev', name: 'KEY' };
  await assert.rejects(
    writer.transaction(async (tx) => {
      const out = await tx.appendVersion(a, 'v2', { source: 'write' });
      await tx.own.put('state/KEY', Buffer.from(JSON.stringify({ version: out.version })));
      tx.changed({ ...a, kind: 'write', version: out.version });
      throw new Error('the module changed its mind');
    }),
    /changed its mind/,
  );
  assert.equal((await deps.secrets.secret(a)).current_version, 1, 'no version was added');
  assert.equal(await writer.own.get('state/KEY'), undefined, 'no record of the module was written');
  assert.equal(heard.length, 0, 'no watcher heard of a change that did not happen');

  await writer.transaction(async (tx) => {
    const out = await tx.appendVersion(a, 'v2', { source: 'write' });
    await tx.own.put('state/KEY', Buffer.from(JSON.stringify({ version: out.version })));
    await tx.setRotationStatus(a, { last_rotation_error: 'upstream 503', next_rotation_attempt_at: null });
    tx.changed({ ...a, kind: 'write', version: out.version });
  });
  const rec = await deps.secrets.secret(a);
  assert.equal(rec.current_version, 2);
  assert.equal(rec.last_rotation_error, 'upstream 503');
  assert.deepEqual(await writer.own.getJson('state/KEY'), { version: 2 });
  assert.deepEqual(await writer.own.list('state/'), ['state/KEY'], 'own paths are relative to the prefix');
  assert.deepEqual(
    heard.map((e) => `${e.kind} ${e.version}`),
    ['write 2'],
  );
});

test('a module may attach records only under a prefix of its own: not where the engine keeps secrets, not where another module attached', async (t) => {
  const { deps } = await vaultWithProbe(t);
  for (const taken of ['meta/', 'data/', 'projects/'])
    assert.throws(() => deps.secretsWriter(taken), /need a prefix of their own/);
  for (const bad of ['', 'x', '../meta/', 'a/b/', 'Meta/', '/abs/'])
    assert.throws(() => deps.secretsWriter(bad), /need a prefix of their own/);
  // rotation, assembled in every vault, attached rotation/ already
  assert.throws(() => deps.secretsWriter('rotation/'), /two modules attach records under rotation\//);
  deps.secretsWriter('probe/');
  assert.throws(() => deps.secretsWriter('probe/'), /two modules attach records under probe\//);
});

test('the reader checks names before touching storage: a path trick is invalid_name, a missing secret a precise 404', async (t) => {
  const { deps } = await vaultWithProbe(t);
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: { code?: string }) => e.code,
    );
  assert.equal(await code(deps.secrets.project('llm/../x')), 'invalid_name');
  assert.equal(await code(deps.secrets.environment({ project: 'llm', env: '../prod' })), 'invalid_name');
  assert.equal(await code(deps.secrets.secret({ project: 'llm', env: 'dev', name: 'A/B' })), 'invalid_name');
  assert.equal(
    await code(deps.secrets.value({ project: 'llm', env: 'dev', name: '../x' }, 1)),
    'invalid_name',
  );
  assert.equal(await code(deps.secrets.records({ project: 'llm/dev' }).next()), 'invalid_name');
  assert.equal(await code(deps.secrets.project('nope')), 'project_not_found');
  assert.equal(await code(deps.secrets.environment({ project: 'llm', env: 'qa' })), 'environment_not_found');
  assert.equal(
    await code(deps.secrets.secret({ project: 'llm', env: 'dev', name: 'NOPE' })),
    'secret_not_found',
  );
});

test('two modules may not describe the same resource type: the vault refuses to assemble', () => {
  const rival: VaultModule<ModuleDeps> = {
    name: 'rival',
    operations: () => [],
    resources: () => ({ Secret: async (r) => r }),
  };
  assert.throws(
    () =>
      assembleVault({
        storage: createMemoryStorage(),
        seal: { shamir: {} },
        clock: systemClock,
        audit: [],
        modules: [rival],
      }),
    /module rival describes Secret, which another module describes/,
  );
});
