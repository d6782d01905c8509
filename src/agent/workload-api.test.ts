import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createStubSvidSource, type StubSvidSource } from '../../test/fakes/svid-issuer.ts';
import { fromStruct, splitDer, workloadClient } from '../../test/helpers/workload-client.ts';
import { parseSpiffeBundle, verifyX509Svid } from '../spiffe/index.ts';
import { createSvidManager, type SvidManagerOptions } from './svid.ts';
import { startWorkloadApi, toStruct } from './workload-api.ts';

/**
 * The Workload API as a SPIFFE library sees it (SPIFFE_Workload_API.md,
 * SPIFFE_Workload_Endpoint.md), served from an SVID manager whose issuer is
 * a stub (test/fakes/svid-issuer.ts).
 */
const TD = 'strongroom.test';
const ID = `spiffe://${TD}/ns/demo/sa/api`;

async function serve(
  t: TestContext,
  opts: Partial<SvidManagerOptions> & { prepare?: (s: StubSvidSource) => void } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-wl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const source = await createStubSvidSource({ trustDomain: TD, allowed: [ID] });
  opts.prepare?.(source);
  const manager = createSvidManager({ spiffeId: ID, source, retryMinMs: 20, retryMaxMs: 100, ...opts });
  const socket = join(dir, 'run', 'workload.sock');
  const server = await startWorkloadApi({ socket, mode: 0o600, identity: manager });
  const client = workloadClient(socket);
  // tests that expect an SVID must not race the first issuance
  // (a source prepared to fail never becomes ready: wait a bounded time)
  await Promise.race([manager.ready.catch(() => {}), new Promise((r) => setTimeout(r, 2_000).unref())]);
  t.after(async () => {
    client.close();
    manager.stop();
    await server.close();
  });
  return { source, manager, server, client, socket };
}

const code = (c: grpc.status) => (err: unknown) => (err as grpc.ServiceError).code === c;

test('the socket is private (0600)', async (t) => {
  const { socket } = await serve(t);
  const st = statSync(socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
});

test('every call without the workload.spiffe.io header is InvalidArgument', async (t) => {
  const { client, manager } = await serve(t);
  await manager.ready;
  const invalid = code(grpc.status.INVALID_ARGUMENT);
  await assert.rejects(client.fetchX509Svid(false).next(), invalid);
  await assert.rejects(client.fetchX509Bundles(false).next(), invalid);
  await assert.rejects(client.fetchJwtBundles(false).next(), invalid);
  await assert.rejects(client.fetchJwtSvid({ audience: ['a'] }, false), invalid);
  await assert.rejects(client.validateJwtSvid({ audience: 'a', svid: 'x.y.z' }, false), invalid);
});

test('FetchX509SVID yields the SVID: DER chain, PKCS#8 key and bundle, verifying against the bundle', async (t) => {
  const { client } = await serve(t);
  const s = client.fetchX509Svid();
  const msg = await s.next();
  s.cancel();
  assert.equal(msg.svids.length, 1);
  const svid = msg.svids[0]!;
  assert.equal(svid.spiffe_id, ID);
  const chain = splitDer(svid.x509_svid).map((d) => new X509Certificate(d));
  assert.equal(chain[0]!.subjectAltName, `URI:${ID}`);
  const key = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' });
  assert.ok(chain[0]!.checkPrivateKey(key));
  const roots = splitDer(svid.bundle).map((d) => new X509Certificate(d));
  const v = verifyX509Svid(chain, new Map([[TD, roots]]), { now: Date.now() });
  assert.equal(v.spiffeId.toString(), ID);
  assert.deepEqual(msg.federated_bundles, {});
});

test('FetchX509SVID pushes the rotated SVID on the open stream before the first expires', async (t) => {
  const { client } = await serve(t, { ttlSeconds: 3 });
  const s = client.fetchX509Svid();
  t.after(() => s.cancel());
  const first = await s.next();
  const firstLeaf = new X509Certificate(splitDer(first.svids[0]!.x509_svid)[0]!);
  const second = await s.next(5_000);
  const received = Date.now();
  const secondLeaf = new X509Certificate(splitDer(second.svids[0]!.x509_svid)[0]!);
  assert.notEqual(secondLeaf.serialNumber, firstLeaf.serialNumber);
  assert.ok(received < firstLeaf.validToDate.getTime(), 'the new SVID arrives before the old one expires');
  assert.ok(!second.svids[0]!.x509_svid_key.equals(first.svids[0]!.x509_svid_key), 'with a new key');
});

test('FetchX509SVID is Unavailable while there is no SVID, PermissionDenied when the vault refuses', async (t) => {
  const { client, source, manager } = await serve(t, {
    prepare: (s) => {
      s.failure = 'outage';
    },
  });
  await assert.rejects(client.fetchX509Svid().next(), code(grpc.status.UNAVAILABLE));
  source.failure = 'refuse';
  await new Promise<void>((r) => {
    const t2 = setInterval(() => {
      if (manager.status().state === 'denied') {
        clearInterval(t2);
        r();
      }
    }, 10);
  });
  await assert.rejects(client.fetchX509Svid().next(), code(grpc.status.PERMISSION_DENIED));
});

test('FetchX509SVID carries federated bundles keyed by trust domain ID; FetchX509Bundles has them all', async (t) => {
  const partner = await createStubSvidSource({ trustDomain: 'partner.test' });
  const { client, source } = await serve(t, {
    prepare: (s) => {
      s.federated = { 'partner.test': [partner.caPem] };
    },
  });
  const s = client.fetchX509Svid();
  const msg = await s.next();
  s.cancel();
  assert.deepEqual(Object.keys(msg.federated_bundles), ['spiffe://partner.test']);
  const b = client.fetchX509Bundles();
  const bundles = await b.next();
  b.cancel();
  assert.deepEqual(Object.keys(bundles.bundles).sort(), ['spiffe://partner.test', `spiffe://${TD}`]);
  assert.ok(bundles.bundles[`spiffe://${TD}`]!.equals(new X509Certificate(source.caPem).raw));
  assert.ok(bundles.bundles['spiffe://partner.test']!.equals(new X509Certificate(partner.caPem).raw));
});

test('FetchJWTSVID returns a token that ValidateJWTSVID accepts for its audience and refuses for another', async (t) => {
  const { client, manager } = await serve(t);
  await manager.ready;
  const r = await client.fetchJwtSvid({ audience: ['service-b'] });
  assert.equal(r.svids.length, 1);
  assert.equal(r.svids[0]!.spiffe_id, ID);
  const token = r.svids[0]!.svid;
  const v = await client.validateJwtSvid({ audience: 'service-b', svid: token });
  assert.equal(v.spiffe_id, ID);
  const claims = fromStruct(v.claims);
  assert.equal(claims.sub, ID);
  assert.deepEqual(claims.aud, ['service-b']);
  assert.equal(typeof claims.exp, 'number');
  await assert.rejects(
    client.validateJwtSvid({ audience: 'service-c', svid: token }),
    code(grpc.status.INVALID_ARGUMENT),
  );
  await assert.rejects(
    client.validateJwtSvid({ audience: 'service-b', svid: `${token.slice(0, -4)}AAAA` }),
    code(grpc.status.INVALID_ARGUMENT),
  );
});

test('FetchJWTSVID: no audience is InvalidArgument, another SPIFFE ID is PermissionDenied', async (t) => {
  const { client } = await serve(t);
  await assert.rejects(client.fetchJwtSvid({ audience: [] }), code(grpc.status.INVALID_ARGUMENT));
  await assert.rejects(
    client.fetchJwtSvid({ audience: ['a'], spiffe_id: `spiffe://${TD}/other` }),
    code(grpc.status.PERMISSION_DENIED),
  );
  const r = await client.fetchJwtSvid({ audience: ['a'], spiffe_id: ID });
  assert.equal(r.svids[0]!.spiffe_id, ID);
  await assert.rejects(
    client.validateJwtSvid({ audience: '', svid: 'x' }),
    code(grpc.status.INVALID_ARGUMENT),
  );
  await assert.rejects(
    client.validateJwtSvid({ audience: 'a', svid: '' }),
    code(grpc.status.INVALID_ARGUMENT),
  );
});

test('FetchJWTBundles returns the JWKS keyed by trust domain ID, and pushes a key rotation', async (t) => {
  const { client, source, manager } = await serve(t);
  const s = client.fetchJwtBundles();
  t.after(() => s.cancel());
  const first = await s.next();
  assert.deepEqual(Object.keys(first.bundles), [`spiffe://${TD}`]);
  const jwks = JSON.parse(first.bundles[`spiffe://${TD}`]!.toString());
  assert.deepEqual(
    jwks.keys.map((k: { kid: string; use: string }) => [k.kid, k.use]),
    [['k1', 'jwt-svid']],
  );
  assert.equal(parseSpiffeBundle(jwks, TD).jwtAuthorities.length, 1);
  // a token signed by a new key makes the agent refresh the bundle; the stream gets it
  await source.rotateJwtKey();
  const r = await client.fetchJwtSvid({ audience: ['x'] });
  await client.validateJwtSvid({ audience: 'x', svid: r.svids[0]!.svid });
  const second = await s.next();
  assert.equal(JSON.parse(second.bundles[`spiffe://${TD}`]!.toString()).keys.length, 2);
  assert.equal(manager.bundles()!.jwt.get(TD)!.length, 2);
});

test('closing the server ends open streams and removes the socket', async (t) => {
  const { client, server, socket } = await serve(t);
  const s = client.fetchX509Svid();
  await s.next();
  assert.equal(server.streams(), 1);
  await server.close();
  await assert.rejects(s.next(2_000));
  assert.throws(() => statSync(socket), { code: 'ENOENT' });
});

test('claims become a google.protobuf.Struct', () => {
  assert.deepEqual(toStruct({ a: 1, b: 'x', c: [true, null], d: { e: 2 } }), {
    fields: {
      a: { numberValue: 1 },
      b: { stringValue: 'x' },
      c: { listValue: { values: [{ boolValue: true }, { nullValue: 'NULL_VALUE' }] } },
      d: { structValue: { fields: { e: { numberValue: 2 } } } },
    },
  });
});
