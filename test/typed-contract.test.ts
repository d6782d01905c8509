import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * The wire contract is typed end to end (issue 14 item 2): a field is declared
 * once, in an api/ schema, and the server's engines, the SDK and the CLI take
 * their types from it. So renaming one, on a temporary copy of the tree, fails
 * the typecheck in each layer that uses it, and the copy as it stands passes.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const run = promisify(execFile);

/** A copy of src/ and bin/ with `edit` applied; the files tsc reports errors in (relative, sorted). */
async function typecheckWith(edit: (root: string) => void): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-typed-'));
  try {
    cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
    cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ ...tsconfig, include: ['bin/**/*.ts', 'src/**/*.ts'], exclude: ['src/**/*.test.ts'] }),
    );
    edit(dir);
    const out = await run(process.execPath, [TSC, '--noEmit', '-p', dir], { cwd: dir }).then(
      (r) => r.stdout,
      (err: { stdout?: string }) => err.stdout ?? '',
    );
    return [...new Set([...out.matchAll(/^(\S+\.ts)\(\d+,\d+\): error/gm)].map((m) => m[1]!))].sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replaces the one occurrence of `from` inside the declaration `decl` of src/api/v1.ts. */
function renameIn(decl: string, from: string, to: string) {
  return (root: string) => {
    const file = join(root, 'src', 'api', 'v1.ts');
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf(`export const ${decl} = `);
    assert.ok(start >= 0, `src/api/v1.ts declares ${decl}`);
    const end =
      text.indexOf('\n);', start) >= 0
        ? Math.min(...['\n});', '\n);'].map((e) => text.indexOf(e, start)).filter((i) => i >= 0))
        : -1;
    const body = text.slice(start, end);
    assert.equal(body.split(from).length, 2, `${decl} names ${JSON.stringify(from)} once`);
    writeFileSync(file, text.slice(0, start) + body.replace(from, to) + text.slice(end));
  };
}

const layers = (files: string[]) => ({
  server: files.filter((f) => /^src\/(engines|core|auth|policy|server)\//.test(f)),
  sdk: files.filter((f) => f.startsWith('src/sdk/')),
  cli: files.filter((f) => f.startsWith('src/cli/')),
});

test('the copied tree typechecks as it stands (so the failures below are the renames)', async () => {
  assert.deepEqual(await typecheckWith(() => {}), []);
});

test('renaming a response field in its api/ schema fails the typecheck in the server, the SDK and the CLI', async () => {
  // secret.read's `version`: returned by the kv engine, cached by the SDK, printed by the CLI
  const hit = layers(
    await typecheckWith(
      renameIn('SecretReadResponse', '  version: Type.Integer(),', '  revision: Type.Integer(),'),
    ),
  );
  assert.ok(hit.server.includes('src/engines/kv/secret-reads.ts'), `server: ${hit.server.join(', ')}`);
  assert.ok(hit.sdk.includes('src/sdk/secrets.ts'), `sdk: ${hit.sdk.join(', ')}`);
  assert.ok(hit.cli.includes('src/cli/secret.ts'), `cli: ${hit.cli.join(', ')}`);
});

test('renaming a response field in an engine (not in the schema) fails the typecheck of that engine', async () => {
  const hit = layers(
    await typecheckWith((root) => {
      const file = join(root, 'src', 'engines', 'kv', 'secret-reads.ts');
      const text = readFileSync(file, 'utf8');
      assert.ok(text.includes('current_version: rec.current_version,'));
      writeFileSync(
        file,
        text.replace('current_version: rec.current_version,', 'currentVersion: rec.current_version,'),
      );
    }),
  );
  assert.ok(hit.server.includes('src/engines/kv/secret-reads.ts'), `server: ${hit.server.join(', ')}`);
});

test('renaming a request field in its api/ schema fails the typecheck in the server, the SDK and the CLI', async () => {
  // sys.init's `secret_shares`: read by the seal operation, sent by `strongroom operator init`
  const init = layers(await typecheckWith(renameIn('InitRequest', 'secret_shares:', 'share_count:')));
  assert.ok(init.server.includes('src/core/sys.ts'), `server: ${init.server.join(', ')}`);
  assert.ok(init.cli.includes('src/cli/operator.ts'), `cli: ${init.cli.join(', ')}`);
  // secret.write's `value`: read by the kv engine, sent by the SDK's putSecret
  const put = layers(
    await typecheckWith(
      renameIn('SecretPutRequest', '    value: Type.String(', '    secret_value: Type.String('),
    ),
  );
  assert.ok(put.server.includes('src/engines/kv/secret-writes.ts'), `server: ${put.server.join(', ')}`);
  assert.ok(put.sdk.includes('src/sdk/client.ts'), `sdk: ${put.sdk.join(', ')}`);
});
