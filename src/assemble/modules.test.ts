import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VaultModule } from '../contract/module.ts';
import { systemClock } from '../lib/clock.ts';
import { createMemoryStorage } from '../storage/memory.ts';
import { checkMounts, closeModules, orderModules } from './modules.ts';
import { assembleVault } from './vault.ts';

const mod = (name: string, needs: string[] = [], log: string[] = []): VaultModule<unknown> => ({
  name,
  needs,
  operations: () => [],
  onUnseal: async () => void log.push(`unseal ${name}`),
  onSeal: () => void log.push(`seal ${name}`),
  close: async () => void log.push(`close ${name}`),
});

test('modules come after the ones they need, otherwise in the order given', () => {
  const order = orderModules([mod('a', ['c']), mod('b'), mod('c', ['b']), mod('d')]).map((m) => m.name);
  assert.deepEqual(order, ['b', 'c', 'a', 'd']);
  assert.deepEqual(
    orderModules([mod('x'), mod('y')]).map((m) => m.name),
    ['x', 'y'],
  );
});

test('a broken assembly is refused at start, naming the problem', () => {
  assert.throws(() => orderModules([mod('a'), mod('a')]), /two modules are named "a"/);
  assert.throws(() => orderModules([mod('a', ['ghost'])]), /module a needs "ghost", which is not assembled/);
  assert.throws(
    () => orderModules([mod('a', ['b']), mod('b', ['c']), mod('c', ['a'])]),
    /modules need each other in a cycle: a -> b -> c -> a/,
  );
});

test('close runs in reverse order, closes every module even when one fails, then throws the first error', async () => {
  const log: string[] = [];
  const failing: VaultModule<unknown> = {
    ...mod('b', [], log),
    close: async () => {
      log.push('close b');
      throw new Error('b failed');
    },
  };
  await assert.rejects(closeModules([mod('a', [], log), failing, mod('c', [], log)]), /b failed/);
  assert.deepEqual(log, ['close c', 'close b', 'close a']);
});

test('the assembled vault: unseal in dependency order, seal in reverse, and every module forgets its keys even if one throws', async () => {
  const log: string[] = [];
  const errors: string[] = [];
  const throwing: VaultModule<unknown> = {
    ...mod('throws-on-seal', ['last'], log),
    onSeal: () => {
      log.push('seal throws-on-seal');
      throw new Error('seal hook failed');
    },
  };
  const storage = createMemoryStorage();
  const vault = assembleVault({
    storage,
    seal: { shamir: {} },
    clock: systemClock,
    audit: [],
    modules: [throwing, mod('last', ['audit'], log)],
    onModuleError: (name, phase, err) => errors.push(`${name} ${phase}: ${(err as Error).message}`),
  });
  await vault.core.start();
  const init = (await vault.core.invoke(
    'sys.init',
    { secret_shares: 1, secret_threshold: 1 },
    {
      request_id: 'r',
      client_address: '127.0.0.1',
    },
  )) as { keys: string[] };
  await vault.core.invoke(
    'sys.unseal',
    { key: init.keys[0] },
    { request_id: 'r', client_address: '127.0.0.1' },
  );
  // init unseals once (then seals, as a Shamir vault starts sealed), unseal once more
  assert.deepEqual(log.filter((l) => l.startsWith('unseal')).slice(0, 2), [
    'unseal last',
    'unseal throws-on-seal',
  ]);
  log.length = 0;
  errors.length = 0;
  vault.core.sealNow();
  assert.deepEqual(
    log,
    ['seal throws-on-seal', 'seal last'],
    'the module it needs still sealed after it threw',
  );
  assert.deepEqual(errors, ['throws-on-seal seal: seal hook failed'], 'the failure reaches the server log');
  assert.equal(vault.core.barrier.sealed, true);
  await vault.close();
  await storage.close();
});

test('mounts may not overlap each other or the core’s prefixes, and are relative paths ending in /', () => {
  const at = (name: string, mount: string): VaultModule<never, never> => ({
    name,
    mount,
    operations: () => [],
  });
  const core = { tokens: 'sys/token/', kv: 'logical/kv/' };
  checkMounts([at('a', 'logical/a/'), at('b', 'logical/b/'), mod('none') as VaultModule<never, never>], core);
  assert.throws(
    () => checkMounts([at('a', 'logical/a/'), at('b', 'logical/a/x/')], core),
    /module b is mounted on logical\/a\/x\/, which overlaps logical\/a\/ of module a/,
  );
  assert.throws(() => checkMounts([at('a', 'logical/')], core), /overlaps logical\/kv\/ of the core \(kv\)/);
  assert.throws(() => checkMounts([at('a', 'sys/token/')], core), /overlaps sys\/token\/ of the core/);
  for (const bad of ['', '/abs/', 'no-slash', '../up/', 'a//b/', 'A/'])
    assert.throws(() => checkMounts([at('a', bad)], core), /a path of lower-case segments ending in \//);
});

test('the assembled vault passes the mount check (assembleVault refuses overlapping mounts at start)', () => {
  // checkMounts runs inside assembleVault: a module mounted over another's records would throw here
  const vault = assembleVault({
    storage: createMemoryStorage(),
    seal: { shamir: {} },
    clock: systemClock,
    audit: [],
  });
  assert.ok(vault.core.operations.size > 50);
});
