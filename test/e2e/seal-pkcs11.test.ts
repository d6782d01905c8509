import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { softHsmToken, softhsmSkipReason } from '../fixtures/softhsm.ts';
import { tempDir } from '../helpers/app.ts';
import { runCli, startServerProcess } from '../helpers/process.ts';

const skip = softhsmSkipReason();

async function http(addr: string, method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(`${addr}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return {
    status: res.status,
    json: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } },
  };
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('an HSM seal: the server auto-unseals through SoftHSM, survives kill -9, and stays sealed with a clear error when the token, the PIN or the key is wrong', {
  skip,
  timeout: 120_000,
}, async (t) => {
  const hsm = softHsmToken(t);
  const dir = tempDir(t);
  const config = join(dir, 'strongroom.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `storage: {sqlite: {path: ${join(dir, 'strongroom.db')}}}`,
      `seal: {pkcs11: {lib: ${hsm.lib}, token_label: ${hsm.label}, key_label: strongroom-root}}`,
      `audit: [{file: {path: ${join(dir, 'audit.log')}}}]`,
      '',
    ].join('\n'),
  );
  const env = { ...hsm.env, STRONGROOM_HSM_PIN: hsm.pin, STRONGROOM_LOG_LEVEL: 'info' };
  const start = (extra: Record<string, string> = {}) =>
    startServerProcess(t, ['--config', config], { ...env, ...extra });

  let server = await start();
  const init = await http(server.address, 'POST', '/v1/sys/init', {
    recovery_shares: 3,
    recovery_threshold: 2,
  });
  assert.equal(init.status, 200, JSON.stringify(init.json));
  assert.deepEqual(init.json.keys, [], 'no unseal keys: the HSM holds the key');
  assert.equal((init.json.recovery_keys as string[]).length, 3);
  const root = init.json.root_token as string;
  const status = await http(server.address, 'GET', '/v1/sys/seal-status');
  assert.deepEqual(
    { type: status.json.type, sealed: status.json.sealed, recovery_seal: status.json.recovery_seal },
    { type: 'pkcs11', sealed: false, recovery_seal: true },
  );
  assert.equal((await http(server.address, 'POST', '/v1/projects', { name: 'llm' }, root)).status, 201);
  assert.equal(
    (
      await http(
        server.address,
        'PUT',
        '/v1/secrets/llm/dev/OPENAI_API_KEY',
        { value: 'sk-hsm-protected' },
        root,
      )
    ).status,
    200,
  );
  // the key on the token, as the token itself lists it: an AES key that is sensitive and never extractable
  const objects = hsm.secretKeys();
  assert.match(objects, /label:\s+strongroom-root/);
  assert.match(objects, /sensitive/);
  assert.match(objects, /never extractable/);

  // kill -9 and restart: unsealed through the HSM, nobody typing a key
  await server.kill9();
  server = await start();
  await until(
    'auto-unseal after kill -9',
    async () => (await http(server.address, 'GET', '/v1/sys/seal-status')).json.sealed === false,
  );
  const read = await http(server.address, 'GET', '/v1/secrets/llm/dev/OPENAI_API_KEY', undefined, root);
  assert.equal(read.status, 200);
  assert.equal((read.json as { value: string }).value, 'sk-hsm-protected');
  // recovery keys do not unseal
  const withKey = await http(server.address, 'POST', '/v1/sys/unseal', {
    key: (init.json.recovery_keys as string[])[0],
  });
  assert.equal(withKey.status, 400);
  // but a quorum of them makes a new root token, through the CLI
  const recovery = init.json.recovery_keys as string[];
  const cli = (args: string[]) =>
    runCli(['operator', 'generate-root', ...args], { env: { STRONGROOM_ADDR: server.address } });
  const attempt = JSON.parse((await cli(['--init', '--format', 'json'])).stdout) as {
    nonce: string;
    otp: string;
  };
  assert.equal((await cli(['--nonce', attempt.nonce, recovery[2]!])).code, 0);
  const done = JSON.parse((await cli(['--nonce', attempt.nonce, recovery[0]!, '--format', 'json'])).stdout);
  assert.equal(done.complete, true);
  const newRoot = (await cli(['--decode', done.encoded_token, '--otp', attempt.otp])).stdout.trim();
  const byNewRoot = await http(
    server.address,
    'GET',
    '/v1/secrets/llm/dev/OPENAI_API_KEY',
    undefined,
    newRoot,
  );
  assert.equal(byNewRoot.status, 200, 'the new root token works');
  await server.stop();

  // the HSM taken away (SoftHSM's token store moved): the server starts, stays sealed, and says why
  const away = `${hsm.tokenDir}.away`;
  renameSync(hsm.tokenDir, away);
  server = await start();
  await until('the sealed server to say why', async () => server.output().includes('the vault stays sealed'));
  assert.match(server.output(), /could not start .*is the HSM there\?/);
  assert.ok(!server.output().includes(hsm.pin), 'the PIN is never logged');
  const sealed = await http(server.address, 'GET', '/v1/secrets/llm/dev/OPENAI_API_KEY', undefined, root);
  assert.equal(sealed.status, 503);
  assert.equal(sealed.json.error?.code, 'sealed');
  const retry = await http(server.address, 'POST', '/v1/sys/unseal', {});
  assert.equal(retry.status, 503);
  assert.equal(retry.json.error?.code, 'hsm_unavailable');
  assert.match(retry.json.error!.message, /is the HSM there\?/);
  // put back: the next try unseals, without a restart
  renameSync(away, hsm.tokenDir);
  const back = await http(server.address, 'POST', '/v1/sys/unseal', {});
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.equal(back.json.sealed, false);
  await server.stop();

  // a wrong PIN
  server = await start({ STRONGROOM_HSM_PIN: '000000' });
  await until('the wrong PIN to be reported', async () => server.output().includes('the vault stays sealed'));
  assert.match(server.output(), /the HSM refused the PIN/);
  // and it is not tried again, however often anyone asks (a token locks after a few wrong PINs)
  for (let n = 0; n < 3; n++) {
    const again = await http(server.address, 'POST', '/v1/sys/unseal', {});
    assert.equal(again.status, 503);
    assert.match(again.json.error!.message, /not tried again until the server restarts/);
  }
  assert.ok(!server.output().includes('000000'), 'not even a wrong PIN is logged');
  assert.equal((await http(server.address, 'GET', '/v1/sys/seal-status')).json.sealed, true);
  await server.stop();

  // the key deleted from the token: sealed for good, and said so
  hsm.tool(['--delete-object', '--type', 'secrkey', '--label', 'strongroom-root']);
  server = await start();
  await until('the missing key to be reported', async () =>
    server.output().includes('the vault stays sealed'),
  );
  assert.match(server.output(), /no AES key labelled \\"strongroom-root\\"/);
  assert.equal((await http(server.address, 'GET', '/v1/sys/seal-status')).json.sealed, true);
  await server.stop();

  // the token itself deleted: named as missing, with the tokens that are there
  hsm.run('softhsm2-util', ['--delete-token', '--token', hsm.label]);
  server = await start();
  await until('the missing token to be reported', async () =>
    server.output().includes('the vault stays sealed'),
  );
  assert.match(server.output(), /no PKCS#11 token labelled \\"strongroom\\"/);
});
