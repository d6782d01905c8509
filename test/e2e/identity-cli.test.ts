import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { cliInProcess as cli } from '../helpers/cli.ts';

const ID = 'spiffe://strongroom.local/ns/prod/gateway';

/** A P-256 key and a CSR for `id`, made with openssl (an outside implementation of PKCS#10). */
function csrFor(dir: string, id: string): string {
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  return execFileSync(
    'openssl',
    ['req', '-new', '-key', key, '-subj', '/CN=w', '-addext', `subjectAltName=URI:${id}`],
    {
      encoding: 'utf8',
    },
  );
}

test('CLI: identity register, list, join-token, ca rotate, bundle, federate', async (t) => {
  const a = await buildTestApp(t);
  const addr = await a.app.listen({ host: '127.0.0.1', port: 0 });
  const env = { STRONGROOM_TOKEN: a.rootToken };
  const dir = tempDir(t);

  const reg = await cli(
    addr,
    ['--format', 'json', 'identity', 'register', ID, '--app', 'gateway', '--cidr', '127.0.0.0/8'],
    { env },
  );
  assert.equal(reg.code, 0, reg.stderr);
  assert.deepEqual(JSON.parse(reg.stdout).registration.selectors, ['app:gateway', 'cidr:127.0.0.0/8']);

  const none = await cli(addr, ['identity', 'register', ID], { env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /say who may obtain it/);

  const list = await cli(addr, ['identity', 'list'], { env });
  assert.match(
    list.stdout,
    /spiffe:\/\/strongroom\.local\/ns\/prod\/gateway\s+app:gateway,cidr:127\.0\.0\.0\/8/,
  );

  // a join token, used over plain HTTP with no bearer token: works once
  const jt = await cli(addr, ['--format', 'json', 'identity', 'join-token', ID, '--ttl', '5m'], { env });
  assert.equal(jt.code, 0, jt.stderr);
  const { join_token } = JSON.parse(jt.stdout) as { join_token: string };
  assert.match(join_token, /^srj_/);
  const csr = csrFor(dir, ID);
  const use = () =>
    fetch(`${addr}/v1/identity/x509-svid`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csr, join_token }),
    });
  const first = await use();
  assert.equal(first.status, 200);
  const svid = (await first.json()) as { certificate: string; bundle: string[]; spiffe_id: string };
  assert.equal(svid.spiffe_id, ID);
  writeFileSync(join(dir, 'leaf.pem'), svid.certificate);
  writeFileSync(join(dir, 'ca.pem'), svid.bundle.join(''));
  // openssl, not our code, checks the chain and the purpose
  const verify = execFileSync(
    'openssl',
    [
      'verify',
      '-x509_strict',
      '-purpose',
      'sslclient',
      '-CAfile',
      join(dir, 'ca.pem'),
      join(dir, 'leaf.pem'),
    ],
    {
      encoding: 'utf8',
    },
  );
  assert.match(verify, /OK/);
  const again = await use();
  assert.equal(again.status, 401);
  assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'invalid_join_token');

  const rotated = await cli(addr, ['--format', 'json', 'identity', 'ca', 'rotate'], { env });
  assert.equal(rotated.code, 0, rotated.stderr);
  const bundle = await cli(addr, ['identity', 'bundle'], { env: {} });
  const keys = (JSON.parse(bundle.stdout) as { keys: { use: string }[] }).keys;
  assert.equal(keys.filter((k) => k.use === 'x509-svid').length, 2, 'old and new CA during the overlap');
  assert.equal(keys.filter((k) => k.use === 'jwt-svid').length, 2);

  const status = await cli(addr, ['--format', 'json', 'identity', 'ca', 'status'], { env });
  const s = JSON.parse(status.stdout) as { authorities: { active: boolean; retire_at: string | null }[] };
  assert.deepEqual(
    s.authorities.map((x) => x.active),
    [true, false],
  );
  assert.ok(s.authorities[1]!.retire_at);

  // federation from a bundle file; a malformed one is refused with a readable reason
  writeFileSync(join(dir, 'bad.json'), '{"keys": 5}');
  const bad = await cli(
    addr,
    ['identity', 'federate', 'add', 'other.example', '--bundle-file', join(dir, 'bad.json')],
    { env },
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bundle/);
  writeFileSync(join(dir, 'fed.json'), bundle.stdout);
  const fed = await cli(
    addr,
    ['identity', 'federate', 'add', 'other.example', '--bundle-file', join(dir, 'fed.json')],
    {
      env,
    },
  );
  assert.equal(fed.code, 0, fed.stderr);
  const feds = await cli(addr, ['identity', 'federate', 'list'], { env });
  assert.match(feds.stdout, /other\.example/);
  const removed = await cli(addr, ['identity', 'federate', 'remove', 'other.example'], { env });
  assert.equal(removed.code, 0, removed.stderr);

  const unreg = await cli(addr, ['identity', 'unregister', ID], { env });
  assert.equal(unreg.code, 0, unreg.stderr);
});
