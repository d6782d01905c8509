import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/app.ts';
import { NODE, ROOT, startServerProcess } from '../helpers/process.ts';

const TOKEN_RE = /STRONGROOM_TOKEN=(\S+)/;

/**
 * The SDK as another project gets it: compiled by the package's build
 * (`npm run build`, run by `npm pack`) into plain JavaScript, installed under
 * node_modules (where Node strips no types), imported by its package name.
 */
test('another project imports the SDK by package name and uses it against a real server', {
  timeout: 120_000,
}, async (t) => {
  const dir = tempDir(t);
  const pkgDir = join(dir, 'app', 'node_modules', 'strongroom');
  mkdirSync(pkgDir, { recursive: true });
  // the package's own build, into the installed copy
  execFileSync(
    NODE,
    [
      join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      join(ROOT, 'tsconfig.build.json'),
      '--outDir',
      join(pkgDir, 'dist'),
    ],
    {
      cwd: ROOT,
    },
  );
  const ours = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(
    join(pkgDir, 'package.json'),
    JSON.stringify({ name: 'strongroom', version: ours.version, type: 'module', exports: ours.exports }),
  );

  const server = await startServerProcess(t, [
    '--dev',
    '--data',
    join(dir, 'data'),
    '--listen',
    '127.0.0.1:0',
  ]);
  while (!TOKEN_RE.test(server.output())) await new Promise((r) => setTimeout(r, 50));
  const token = TOKEN_RE.exec(server.output())![1]!;

  writeFileSync(
    join(dir, 'app', 'package.json'),
    JSON.stringify({ name: 'app', type: 'module', private: true }),
  );
  writeFileSync(
    join(dir, 'app', 'main.js'),
    `import { connect, StrongroomApiError } from 'strongroom';
const sr = await connect({ addrs: [process.env.ADDR], token: process.env.TOKEN });
await sr.createProject('pkg');
await sr.putSecret('pkg', 'dev', 'OPENAI_API_KEY', 'sk-from-the-package-' + 'x'.repeat(40), { force: true });
const cached = await sr.secrets.get('pkg', 'dev', 'OPENAI_API_KEY');
const bundle = await sr.identity.bundle();
let denied = '';
try { await sr.getSecret('pkg', 'dev', 'MISSING'); } catch (e) { denied = e instanceof StrongroomApiError ? e.code : 'other'; }
console.log(JSON.stringify({ length: cached.length, bundleKeys: bundle.keys.length, missing: denied }));
await sr.close();
`,
  );
  const r = spawnSync(NODE, ['main.js'], {
    cwd: join(dir, 'app'),
    env: { ...process.env, ADDR: server.address, TOKEN: token },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { length: 60, bundleKeys: 2, missing: 'secret_not_found' });
  // plain JavaScript with no runtime dependency: nothing outside the package was needed
  assert.doesNotMatch(readFileSync(join(pkgDir, 'dist', 'sdk', 'bulk.js'), 'utf8'), /typebox/);
});
