import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createStubSvidSource } from '../../test/fakes/svid-issuer.ts';
import { generateEcKeyPair, validateCsr, verifyX509Svid } from '../spiffe/index.ts';
import {
  buildSvidCsr,
  createSvidManager,
  isRefusal,
  type SvidManager,
  type SvidManagerOptions,
} from './svid.ts';

const ID = 'spiffe://strongroom.test/ns/demo/sa/api';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-svid-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function until(what: string, fn: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function setup(t: TestContext, opts: Partial<SvidManagerOptions> = {}) {
  const source = await createStubSvidSource({ allowed: [ID] });
  const logs: { msg: string; extra?: Record<string, unknown> }[] = [];
  const make = (o: Partial<SvidManagerOptions> = {}): SvidManager => {
    const m = createSvidManager({
      spiffeId: ID,
      source,
      retryMinMs: 20,
      retryMaxMs: 100,
      log: (msg, extra) => logs.push({ msg, ...(extra ? { extra } : {}) }),
      ...opts,
      ...o,
    });
    t.after(() => m.stop());
    return m;
  };
  return { source, logs, make };
}

test('a CSR names the SPIFFE ID as its only URI SAN and proves possession of the key', async () => {
  const keys = await generateEcKeyPair('P-256');
  const csr = await buildSvidCsr(ID, keys);
  assert.match(csr, /^-----BEGIN CERTIFICATE REQUEST-----/);
  const v = await validateCsr(csr, { trustDomain: 'strongroom.test' });
  assert.equal(v.spiffeId.toString(), ID);
});

test('the first X.509-SVID names the configured ID, holds a fresh P-256 key and verifies against the bundle', async (t) => {
  const { source, make } = await setup(t);
  const m = make();
  assert.equal(m.status().state, 'starting');
  await m.ready;
  const svid = m.current()!;
  assert.equal(svid.spiffeId, ID);
  assert.equal(svid.chain[0]!.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(
    svid.chain[0]!.checkPrivateKey(createPrivateKey({ key: svid.keyDer, format: 'der', type: 'pkcs8' })),
  );
  const b = m.bundles()!;
  const verified = verifyX509Svid(svid.chain, b.x509, { now: Date.now() });
  assert.equal(verified.spiffeId.toString(), ID);
  assert.deepEqual(m.status(), {
    state: 'ok',
    spiffeId: ID,
    expiresAt: svid.notAfter,
    rotations: 0,
    lastError: undefined,
  });
  // the default lifetime is the issuer's; rotation is due at half of it
  assert.ok(Math.abs(svid.rotateAt - (svid.receivedAt + (svid.notAfter - svid.receivedAt) / 2)) < 2);
  assert.equal(source.calls.x509, 1);
});

test('an SVID rotates at half its lifetime with a new key; the previous one is kept until it expires', async (t) => {
  const { make } = await setup(t, { ttlSeconds: 3 });
  const m = make();
  const events: string[] = [];
  m.subscribe((e) => events.push(e));
  await m.ready;
  const first = m.current()!;
  await until('a rotation', () => m.status().rotations === 1);
  const second = m.current()!;
  const rotatedAt = Date.now();
  assert.notEqual(second, first);
  assert.ok(rotatedAt < first.notAfter, 'rotated before the first SVID expired');
  assert.ok(rotatedAt >= first.rotateAt - 5, 'not before half its lifetime');
  assert.ok(!second.keyDer.equals(first.keyDer), 'a rotation uses a new key');
  assert.equal(m.previous(), first);
  assert.ok(events.filter((e) => e === 'x509').length >= 2);
  await until('the previous SVID to expire', () => m.previous() === undefined, 15_000);
});

test('while the vault is unreachable the manager retries with backoff, then recovers', async (t) => {
  const { source, make } = await setup(t);
  source.failure = 'outage';
  const m = make();
  await until('a few retries', () => source.calls.x509 >= 3);
  assert.equal(m.status().state, 'starting');
  assert.match(m.status().lastError!, /cannot reach/);
  source.failure = 'none';
  await m.ready;
  assert.equal(m.status().state, 'ok');
  assert.equal(m.status().lastError, undefined);
});

test('a refusal shows as denied, and as an error for JWT-SVIDs', async (t) => {
  const { source, make } = await setup(t);
  source.allowed.clear();
  const m = make();
  await until('a refusal', () => m.status().state === 'denied');
  assert.match(m.status().lastError!, /not allowed/);
  await assert.rejects(m.jwtSvid(['aud']), (err) => isRefusal(err));
});

test('with once, the first failure rejects ready instead of retrying', async (t) => {
  const { source, make } = await setup(t, { once: true });
  source.failure = 'outage';
  const m = make();
  await assert.rejects(m.ready, /cannot reach/);
  await sleep(100);
  assert.equal(source.calls.x509, 1);
});

test('JWT-SVIDs are cached per audience set until half their lifetime', async (t) => {
  const { source, make } = await setup(t);
  source.jwtTtlSeconds = 2;
  const m = make();
  const [a, b] = await Promise.all([m.jwtSvid(['b', 'a']), m.jwtSvid(['a', 'b', 'a'])]);
  assert.equal(a.token, b.token, 'the same audience set shares one token');
  assert.equal(source.calls.jwt, 1);
  const c = await m.jwtSvid(['a']);
  assert.notEqual(c.token, a.token);
  assert.equal(source.calls.jwt, 2);
  assert.equal((await m.jwtSvid(['a', 'b'])).token, a.token);
  await sleep(Math.max(0, (a.expiresAt - Date.now()) / 2) + 50);
  const d = await m.jwtSvid(['a', 'b']);
  assert.notEqual(d.token, a.token, 'refreshed after half its lifetime');
  await assert.rejects(m.jwtSvid([]), TypeError);
});

test('a cached JWT-SVID still valid is served while the vault is unreachable', async (t) => {
  const { source, make } = await setup(t);
  source.jwtTtlSeconds = 4;
  const m = make();
  const a = await m.jwtSvid(['x']);
  await sleep(Math.max(0, (a.expiresAt - Date.now()) / 2) + 50);
  source.failure = 'outage';
  assert.equal((await m.jwtSvid(['x'])).token, a.token);
});

test('a JWT-SVID validates for its audience and not for another', async (t) => {
  const { make } = await setup(t);
  const m = make();
  await m.ready;
  const j = await m.jwtSvid(['service-b']);
  const v = await m.validateJwtSvid(j.token, 'service-b');
  assert.equal(v.spiffeId, ID);
  assert.deepEqual(v.claims.aud, ['service-b']);
  await assert.rejects(m.validateJwtSvid(j.token, 'service-c'), { code: 'wrong_audience' });
  await assert.rejects(m.validateJwtSvid('not.a.jwt', 'service-b'), { code: 'invalid_jwt' });
});

test('a token signed by a new JWT key validates after one bundle refresh', async (t) => {
  const { source, make } = await setup(t);
  const m = make();
  await m.ready;
  await until('the bundle', () => m.bundles()?.jwt.size === 1);
  await source.rotateJwtKey();
  const j = await m.jwtSvid(['rotated']);
  const before = source.calls.bundle;
  const v = await m.validateJwtSvid(j.token, 'rotated');
  assert.equal(v.spiffeId, ID);
  assert.equal(source.calls.bundle, before + 1);
  assert.equal(m.bundles()!.jwt.get('strongroom.test')!.length, 2);
});

test('the JWT bundle lists only jwt-svid keys, each with a kid', async (t) => {
  const { make } = await setup(t);
  const m = make();
  await until('the bundle', () => m.bundles()?.jwks.has('strongroom.test') === true);
  const jwks = JSON.parse(m.bundles()!.jwks.get('strongroom.test')!);
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].use, 'jwt-svid');
  assert.equal(jwks.keys[0].kid, 'k1');
  assert.equal(jwks.keys[0].x5c, undefined);
});

test('federated bundles from the SVID answer are kept by trust domain', async (t) => {
  const { source, make } = await setup(t);
  const other = await createStubSvidSource({ trustDomain: 'partner.test' });
  source.federated = { 'spiffe://partner.test': [other.caPem] };
  const m = make();
  await m.ready;
  const b = m.bundles()!;
  assert.deepEqual([...b.x509.keys()].sort(), ['partner.test', 'strongroom.test']);
  assert.ok(b.x509.get('partner.test')![0]!.raw.equals(new X509Certificate(other.caPem).raw));
});

test('files: the chain, the key (0600) and the bundle are written, and rewritten on rotation', async (t) => {
  const dir = join(tempDir(t), 'svid');
  const { source, make } = await setup(t, { ttlSeconds: 3 });
  const m = make({ files: { dir } });
  await m.ready;
  await until('the files', () => {
    try {
      return statSync(join(dir, 'svid.pem')).isFile();
    } catch {
      return false;
    }
  });
  assert.equal(statSync(join(dir, 'svid_key.pem')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'svid.pem')).mode & 0o777, 0o644);
  const cert = new X509Certificate(readFileSync(join(dir, 'svid.pem')));
  assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'svid_key.pem')))));
  assert.equal(cert.subjectAltName, `URI:${ID}`);
  assert.ok(
    new X509Certificate(readFileSync(join(dir, 'bundle.pem'))).raw.equals(
      new X509Certificate(source.caPem).raw,
    ),
  );
  const firstKey = readFileSync(join(dir, 'svid_key.pem'), 'utf8');
  await until('a rotation', () => m.status().rotations === 1);
  // the key is written before the chain (each file atomically): wait until both are the new pair
  await until('the new key and chain on disk', () => {
    const key = readFileSync(join(dir, 'svid_key.pem'), 'utf8');
    if (key === firstKey) return false;
    return new X509Certificate(readFileSync(join(dir, 'svid.pem'))).checkPrivateKey(createPrivateKey(key));
  });
  const rotated = new X509Certificate(readFileSync(join(dir, 'svid.pem')));
  assert.notEqual(rotated.serialNumber, cert.serialNumber);
  assert.ok(rotated.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'svid_key.pem')))));
});

test('an ID without a path is refused at once', async () => {
  const source = await createStubSvidSource();
  assert.throws(() => createSvidManager({ spiffeId: 'spiffe://strongroom.test', source }), TypeError);
  assert.throws(() => createSvidManager({ spiffeId: 'spiffe://Bad/x', source }), {
    code: 'invalid_spiffe_id',
  });
});
