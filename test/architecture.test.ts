import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/**
 * DESIGN.md §2: imports point one way. server -> core -> {auth, policy, audit,
 * engines, ...} -> barrier -> storage; crypto, errors and lib import nothing of
 * ours; sdk, cli and dashboard import only api (and sdk).
 */
const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

function layerOf(path: string): string {
  return relative(SRC, path).split('/')[0]!;
}

/** For each layer, the layers of ours it may import (itself always allowed). */
const ALLOWED: Record<string, string[]> = {
  errors: [],
  lib: [],
  crypto: [],
  spiffe: ['errors', 'lib', 'crypto'],
  api: [],
  // the configuration schema embeds the audit sinks' schema
  config: ['audit', 'lib'],
  storage: ['errors', 'lib'],
  barrier: ['storage', 'crypto', 'errors', 'lib'],
  seal: ['barrier', 'storage', 'crypto', 'errors', 'lib'],
  audit: ['barrier', 'crypto', 'errors', 'lib', 'core'],
  auth: ['barrier', 'crypto', 'errors', 'lib', 'core', 'api', 'spiffe'],
  policy: ['barrier', 'crypto', 'errors', 'lib', 'core'],
  engines: ['barrier', 'crypto', 'errors', 'lib', 'core', 'api', 'spiffe'],
  core: [
    'auth',
    'policy',
    'audit',
    'engines',
    'seal',
    'barrier',
    'storage',
    'crypto',
    'errors',
    'lib',
    'spiffe',
  ],
  // the server assembles the vault (src/server/vault.ts), so it may name every module it wires
  server: [
    'core',
    'api',
    'config',
    'audit',
    'policy',
    'storage',
    'errors',
    'lib',
    'crypto',
    'seal',
    'auth',
    'engines',
    'spiffe',
    'gateway',
  ],
  sdk: ['api', 'spiffe'],
  // the scanner runs locally, so its command imports it directly
  cli: ['sdk', 'api', 'scan', 'agent', 'lib', 'config', 'spiffe'],
  // the sidecar agent is a client of the vault: it runs on the SDK (and the pure SPIFFE primitives for its Workload API)
  agent: ['sdk', 'api', 'lib', 'config', 'spiffe'],
  scan: ['crypto'],
  // the AI gateway uses the core for authentication, authorization, secrets and audit; its vault service
  // keeps the key that seals caller sessions for remote gateways in the barrier (decision 0011)
  gateway: [
    'core',
    'engines',
    'policy',
    'spiffe',
    'scan',
    'api',
    'config',
    'crypto',
    'errors',
    'lib',
    'barrier',
  ],
};

test('imports between layers point one way, as DESIGN.md says', () => {
  const violations: string[] = [];
  for (const file of files(SRC)) {
    const from = layerOf(file);
    const allowed = ALLOWED[from];
    assert.ok(allowed, `src/${from} is a layer the architecture test does not know: add it to ALLOWED`);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
      const target = resolve(file, '..', m[1]!);
      if (!target.startsWith(SRC)) {
        violations.push(`${relative(ROOT, file)} imports ${m[1]} (outside src/)`);
        continue;
      }
      const to = layerOf(target);
      // `import type` of core's shared types (Identity, Resource, Operation) is how layers describe themselves to the core
      const typeOnly = /^\s*(?:import|export)\s+type\s/.test(m[0]);
      if (to !== from && !allowed.includes(to) && !(typeOnly && to === 'core')) {
        violations.push(`${relative(ROOT, file)} (${from}) imports ${relative(ROOT, target)} (${to})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('only bin/ and src/config read argv or the process environment', () => {
  const offenders = files(SRC).filter((f) => {
    if (layerOf(f) === 'config') return false;
    const code = readFileSync(f, 'utf8')
      .split('\n')
      .filter((line) => !/^\s*(\*|\/\/)/.test(line));
    return code.some((line) => /process\.(argv|env)\b/.test(line));
  });
  assert.deepEqual(
    offenders.map((f) => relative(ROOT, f)),
    [],
  );
});
