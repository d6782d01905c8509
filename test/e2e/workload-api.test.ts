import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createClient } from '../../src/sdk/client.ts';
import { parseSpiffeBundle, verifyX509Svid } from '../../src/spiffe/index.ts';
import { tempDir } from '../helpers/app.ts';
import { BIN, NODE, ROOT, runCli, startDevServer } from '../helpers/process.ts';
import { until } from '../helpers/wait.ts';
import { fromStruct, splitDer, workloadClient } from '../helpers/workload-client.ts';

/**
 * `strongroom agent` serves the SPIFFE Workload API (docs/workload-api.md):
 * a real `strongroom server --dev`, a real agent process logged in as an app
 * registered for a SPIFFE ID, and a client built from the upstream proto as a
 * SPIFFE library builds it.
 */

function get(target: { host: string; port: number }, path: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ ...target, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const code = (c: grpc.status) => (err: unknown) => (err as grpc.ServiceError).code === c;

test('the agent serves the SPIFFE Workload API', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const server = await startDevServer(t, join(dir, 'data'));
  const root = server.root;
  const admin = createClient({ addr: server.address, token: root });

  // the trust domain is the URI SAN of the CA in the bundle
  const doc = (await admin.request('GET', '/v1/identity/bundle')) as {
    keys: { use: string; x5c?: string[] }[];
  };
  const caDer = Buffer.from(doc.keys.find((k) => k.use === 'x509-svid')!.x5c![0]!, 'base64');
  const td = /URI:spiffe:\/\/([^,/]+)/.exec(new X509Certificate(caDer).subjectAltName ?? '')![1]!;
  const spiffeId = `spiffe://${td}/ns/demo/sa/api`;

  await admin.createProject('demo');
  const app = (await admin.request('POST', '/v1/auth/apps', {
    name: 'workload',
    roles: ['app'],
    scope: { paths: ['demo/dev'] },
  })) as { client_id: string; client_secret: string };
  await admin.request('POST', '/v1/identity/registrations', {
    spiffe_id: spiffeId,
    selectors: ['app:workload'],
  });
  writeFileSync(join(dir, 'client-id'), `${app.client_id}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'client-secret'), `${app.client_secret}\n`, { mode: 0o600 });

  const socket = join(dir, 'run', 'workload.sock');
  const svidDir = join(dir, 'svid');
  const config = (ttl: string) => `vault:
  addrs: ["${server.address}"]
auth:
  app:
    client_id_file: client-id
    client_secret_file: client-secret
identity:
  spiffe_id: ${spiffeId}
  socket: run/workload.sock
  ttl: ${ttl}
  files:
    dir: svid
listen:
  http: 127.0.0.1:0
`;
  writeFileSync(join(dir, 'agent.yaml'), config('4s'));

  const check = await runCli(['agent', '--config', join(dir, 'agent.yaml'), '--check']);
  assert.equal(check.code, 0, check.stderr);

  const agentProc = spawn(NODE, [BIN, 'agent', '--config', join(dir, 'agent.yaml')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  agentProc.stdout.on('data', (d) => (out += d));
  agentProc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number>((r) => agentProc.on('exit', (c) => r(c ?? -1)));
  t.after(() => {
    if (agentProc.exitCode === null) agentProc.kill('SIGKILL');
  });
  await until('the Workload API', () => /"serving the SPIFFE Workload API"/.test(out));
  await until('the health listener', () => /"serving health and metrics"/.test(out));
  const http = { host: '127.0.0.1', port: Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(out)![1]) };
  const client = workloadClient(socket);
  t.after(() => client.close());

  await t.test('the socket is private', () => {
    assert.equal(statSync(socket).mode & 0o777, 0o600);
  });

  await t.test('a call without the workload.spiffe.io header is InvalidArgument', async () => {
    const invalid = code(grpc.status.INVALID_ARGUMENT);
    await assert.rejects(client.fetchX509Svid(false).next(), invalid);
    await assert.rejects(client.fetchJwtSvid({ audience: ['x'] }, false), invalid);
    await assert.rejects(client.validateJwtSvid({ audience: 'x', svid: 'a.b.c' }, false), invalid);
    await assert.rejects(client.fetchX509Bundles(false).next(), invalid);
    await assert.rejects(client.fetchJwtBundles(false).next(), invalid);
  });

  await t.test(
    'FetchX509SVID yields an SVID for the configured ID that verifies against the bundle; rotation is pushed',
    async () => {
      let s = client.fetchX509Svid();
      let first = await s.next().catch(() => undefined);
      // the first SVID may still be on its way (Unavailable): a SPIFFE client retries
      await until('an SVID', async () => {
        if (first) return true;
        s = client.fetchX509Svid();
        first = await s.next().catch(() => undefined);
        return first !== undefined;
      });
      const svid = first!.svids[0]!;
      assert.equal(svid.spiffe_id, spiffeId);
      const chain = splitDer(svid.x509_svid).map((d) => new X509Certificate(d));
      assert.equal(chain[0]!.subjectAltName, `URI:${spiffeId}`);
      assert.ok(
        chain[0]!.checkPrivateKey(
          createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' }),
        ),
      );
      const roots = splitDer(svid.bundle).map((d) => new X509Certificate(d));
      assert.equal(
        verifyX509Svid(chain, new Map([[td, roots]]), { now: Date.now() }).spiffeId.toString(),
        spiffeId,
      );

      const second = await s.next(8_000);
      const received = Date.now();
      s.cancel();
      const leaf2 = new X509Certificate(splitDer(second.svids[0]!.x509_svid)[0]!);
      assert.notEqual(leaf2.serialNumber, chain[0]!.serialNumber);
      assert.ok(
        received < chain[0]!.validToDate.getTime(),
        'the rotated SVID arrives before the first expires',
      );
      assert.ok(
        leaf2.checkPrivateKey(
          createPrivateKey({ key: second.svids[0]!.x509_svid_key, format: 'der', type: 'pkcs8' }),
        ),
      );
    },
  );

  await t.test('FetchJWTSVID gives a token ValidateJWTSVID accepts for its audience only', async () => {
    const r = await client.fetchJwtSvid({ audience: ['service-b'] });
    assert.equal(r.svids[0]!.spiffe_id, spiffeId);
    const token = r.svids[0]!.svid;
    const v = await client.validateJwtSvid({ audience: 'service-b', svid: token });
    assert.equal(v.spiffe_id, spiffeId);
    const claims = fromStruct(v.claims);
    assert.equal(claims.sub, spiffeId);
    assert.ok((claims.aud as string[]).includes('service-b'));
    await assert.rejects(
      client.validateJwtSvid({ audience: 'service-c', svid: token }),
      code(grpc.status.INVALID_ARGUMENT),
    );
    // the vault agrees
    const server = (await admin.request('POST', '/v1/identity/jwt-svid/validate', {
      token,
      audience: 'service-b',
    })) as { spiffe_id: string };
    assert.equal(server.spiffe_id, spiffeId);
  });

  await t.test('FetchX509Bundles and FetchJWTBundles return the bundle', async () => {
    const xb = client.fetchX509Bundles();
    const x = await xb.next();
    xb.cancel();
    const own = x.bundles[`spiffe://${td}`]!;
    assert.ok(splitDer(own).some((d) => d.equals(caDer)));
    const jb = client.fetchJwtBundles();
    const j = await jb.next();
    jb.cancel();
    const jwks = JSON.parse(j.bundles[`spiffe://${td}`]!.toString());
    assert.ok(jwks.keys.length >= 1);
    assert.ok(jwks.keys.every((k: { use?: string; kid?: string }) => k.use === 'jwt-svid' && k.kid));
    assert.ok(parseSpiffeBundle(jwks, td).jwtAuthorities.length >= 1);
  });

  await t.test('the SVID files are written, the key 0600', () => {
    const cert = new X509Certificate(readFileSync(join(svidDir, 'svid.pem')));
    assert.equal(cert.subjectAltName, `URI:${spiffeId}`);
    assert.equal(statSync(join(svidDir, 'svid_key.pem')).mode & 0o777, 0o600);
    assert.ok(readFileSync(join(svidDir, 'bundle.pem'), 'utf8').includes('BEGIN CERTIFICATE'));
    assert.deepEqual(
      readdirSync(svidDir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  await t.test('health shows the SVID; metrics count rotations', async () => {
    const h = await get(http, '/healthz');
    assert.equal(h.status, 200, h.body);
    const body = JSON.parse(h.body);
    assert.equal(body.svid.spiffe_id, spiffeId);
    assert.equal(body.svid.state, 'ok');
    const m = await get(http, '/metrics');
    assert.match(m.body, /strongroom_agent_svid_expiry_seconds \d/);
    const rotations = Number(/strongroom_agent_svid_rotations_total (\d+)/.exec(m.body)![1]);
    assert.ok(rotations >= 1);
    assert.doesNotMatch(m.body + h.body, /PRIVATE KEY/);
  });

  await t.test('SIGTERM stops the agent and removes the socket', async () => {
    agentProc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.throws(() => statSync(socket));
    assert.doesNotMatch(out, /PRIVATE KEY|BEGIN/);
  });

  await t.test('--once writes the SVID files and exits', async () => {
    writeFileSync(join(dir, 'once.yaml'), config('1h').replace('dir: svid', 'dir: once'));
    const r = await runCli(['agent', '--config', join(dir, 'once.yaml'), '--once']);
    assert.equal(r.code, 0, r.stderr);
    const cert = new X509Certificate(readFileSync(join(dir, 'once', 'svid.pem')));
    assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'once', 'svid_key.pem')))));
  });

  await t.test('an app not registered for the ID is refused: PermissionDenied', async () => {
    writeFileSync(
      join(dir, 'other.yaml'),
      config('1h').replace(spiffeId, `spiffe://${td}/not/registered`).replace('workload.sock', 'other.sock'),
    );
    const other = spawn(NODE, [BIN, 'agent', '--config', join(dir, 'other.yaml')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let o = '';
    other.stderr.on('data', (d) => (o += d));
    t.after(() => {
      if (other.exitCode === null) other.kill('SIGKILL');
    });
    await until('a refusal', () => /cannot obtain an X.509-SVID/.test(o));
    const c = workloadClient(join(dir, 'run', 'other.sock'));
    try {
      await assert.rejects(c.fetchX509Svid().next(), code(grpc.status.PERMISSION_DENIED));
    } finally {
      c.close();
      other.kill('SIGTERM');
    }
  });
});
