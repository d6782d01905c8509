import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createClient } from '../../src/sdk/client.ts';
import { tempDir } from '../helpers/app.ts';
import { BIN, NODE, ROOT, startDevServer } from '../helpers/process.ts';
import { until } from '../helpers/wait.ts';
import { type BundlesMessage, type StreamReader, workloadClient } from '../helpers/workload-client.ts';

/**
 * The agent's Workload API serves the federation of the vault it talks to
 * (issue 13 item 3; SPIFFE_Workload_API.md §6.2.2): a real `strongroom server
 * --dev`, a real agent process, a client built from the upstream proto, and a
 * partner trust domain whose JWT signing key and JWT-SVIDs are made here with
 * jose alone. A federation added or removed at the vault shows in the open
 * FetchJWTBundles stream, and ValidateJWTSVID agrees with the vault.
 */
const PARTNER = 'partner.test';
const PID = `spiffe://${PARTNER}/ns/billing/sa/api`;

async function message(s: StreamReader<BundlesMessage>, ok: (m: BundlesMessage) => boolean, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    const m = await s.next(Math.max(1, end - Date.now()));
    if (ok(m)) return m;
  }
}

test('federation at the vault reaches the Workload API: FetchJWTBundles and ValidateJWTSVID follow it', {
  timeout: 120_000,
}, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const admin = createClient({ addr: server.address, token: server.root });
  // the list of trusted bundles names the federation partners: it needs a credential, unlike the own bundle
  const anonymous = await fetch(`${server.address}/v1/identity/bundles`);
  assert.equal(anonymous.status, 401);

  const doc = (await admin.request('GET', '/v1/identity/bundle')) as {
    keys: { use: string; x5c?: string[] }[];
  };
  const caDer = Buffer.from(doc.keys.find((k) => k.use === 'x509-svid')!.x5c![0]!, 'base64');
  const td = /URI:spiffe:\/\/([^,/]+)/.exec(new X509Certificate(caDer).subjectAltName ?? '')![1]!;
  const served = (await admin.request('GET', '/v1/identity/bundles')) as {
    trust_domain: string;
    bundles: Record<string, typeof doc>;
  };
  assert.equal(served.trust_domain, td);
  assert.deepEqual(Object.keys(served.bundles), [td], 'before any federation: the own trust domain only');
  assert.deepEqual(served.bundles[td]!.keys, doc.keys);
  const spiffeId = `spiffe://${td}/ns/demo/sa/api`;
  await admin.createProject('demo');
  const app = (await admin.request('POST', '/v1/auth/apps', {
    name: 'workload',
    roles: ['app'],
    scope: { paths: ['demo/dev'] },
  })) as {
    client_id: string;
    client_secret: string;
  };
  await admin.request('POST', '/v1/identity/registrations', {
    spiffe_id: spiffeId,
    selectors: ['app:workload'],
  });
  writeFileSync(join(dir, 'client-id'), `${app.client_id}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'client-secret'), `${app.client_secret}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'agent.yaml'),
    `vault:
  addrs: ["${server.address}"]
auth:
  app:
    client_id_file: client-id
    client_secret_file: client-secret
identity:
  spiffe_id: ${spiffeId}
  socket: run/workload.sock
  ttl: 4s
`,
  );
  const agent = spawn(NODE, [BIN, 'agent', '--config', join(dir, 'agent.yaml')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  agent.stdout.on('data', (d) => (out += d));
  agent.stderr.on('data', (d) => (out += d));
  t.after(() => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
  });
  await until('the Workload API', () => /"serving the SPIFFE Workload API"/.test(out));
  const client = workloadClient(join(dir, 'run', 'workload.sock'));
  t.after(() => client.close());

  // the partner trust domain: a JWT signing key, its bundle, and a JWT-SVID signed with it
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const bundle = { keys: [{ ...(await exportJWK(publicKey)), use: 'jwt-svid', kid: 'partner-1' }] };
  const token = await new SignJWT({ sub: PID, aud: ['service-b'] })
    .setProtectedHeader({ alg: 'ES256', kid: 'partner-1', typ: 'JWT' })
    .setExpirationTime('10m')
    .sign(privateKey);
  const vaultValidates = () =>
    admin.request('POST', '/v1/identity/jwt-svid/validate', { token, audience: 'service-b' });

  // the first bundle may still be on its way (Unavailable): a SPIFFE client retries
  let s = client.fetchJwtBundles();
  let first: BundlesMessage | undefined;
  await until('the JWT bundle', async () => {
    first = await s.next(1_000).catch(() => undefined);
    if (!first) s = client.fetchJwtBundles();
    return first !== undefined;
  });
  t.after(() => s.cancel());
  assert.deepEqual(Object.keys(first!.bundles), [`spiffe://${td}`]);
  await assert.rejects(
    client.validateJwtSvid({ audience: 'service-b', svid: token }),
    (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT,
  );

  // federated at the vault: the open stream gets the partner's JWT bundle, and both validate the token
  await admin.request('PUT', `/v1/identity/federation/${PARTNER}`, { bundle: JSON.stringify(bundle) });
  const added = await message(s, (m) => `spiffe://${PARTNER}` in m.bundles);
  const jwks = JSON.parse(added.bundles[`spiffe://${PARTNER}`]!.toString()) as { keys: { kid: string }[] };
  assert.deepEqual(
    jwks.keys.map((k) => k.kid),
    ['partner-1'],
  );
  assert.equal(((await vaultValidates()) as { spiffe_id: string }).spiffe_id, PID);
  assert.equal((await client.validateJwtSvid({ audience: 'service-b', svid: token })).spiffe_id, PID);

  // the federation removed: it leaves the open stream, and neither accepts the token any more
  await admin.request('DELETE', `/v1/identity/federation/${PARTNER}`);
  const removed = await message(s, (m) => !(`spiffe://${PARTNER}` in m.bundles));
  assert.deepEqual(Object.keys(removed.bundles), [`spiffe://${td}`]);
  await assert.rejects(vaultValidates());
  await assert.rejects(
    client.validateJwtSvid({ audience: 'service-b', svid: token }),
    (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT,
  );
});
