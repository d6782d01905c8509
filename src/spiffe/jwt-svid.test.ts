import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { SpiffeError } from './errors.ts';
import { signJwtSvid, verifyJwtSvid } from './jwt-svid.ts';
import { generateEcKeyPair } from './keys.ts';

const NOW = Date.UTC(2026, 5, 1);
const AUD = 'spiffe://example.org/reports';

test('a signed JWT-SVID has the JWT-SVID header and claims, and verifies', async () => {
  const { privateKey, publicKey } = await generateEcKeyPair();
  const token = await signJwtSvid({
    key: { privateKey, kid: 'k1' },
    spiffeId: 'spiffe://example.org/web',
    audience: [AUD],
    ttlSeconds: 300,
    now: NOW,
  });
  assert.deepEqual(decodeProtectedHeader(token), { alg: 'ES256', kid: 'k1', typ: 'JWT' });
  const claims = decodeJwt(token);
  assert.deepEqual(claims, {
    sub: 'spiffe://example.org/web',
    aud: [AUD],
    iat: NOW / 1000,
    exp: NOW / 1000 + 300,
  });
  const v = await verifyJwtSvid(token, {
    audience: ['something-else', AUD],
    bundles: new Map([['example.org', [{ kid: 'k1', publicKey }]]]),
    now: NOW,
  });
  assert.equal(v.spiffeId.toString(), 'spiffe://example.org/web');
  assert.equal(v.trustDomain, 'example.org');
  assert.equal(v.expiresAt.getTime(), NOW + 300_000);
  assert.equal(v.kid, 'k1');
});

test('the algorithm follows the key: ES384 for P-384, RS256 for RSA; the key must fit the alg', async () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  for (const [pair, alg] of [
    [p384, 'ES384'],
    [rsa, 'RS256'],
  ] as const) {
    const token = await signJwtSvid({
      key: { privateKey: pair.privateKey, kid: alg },
      spiffeId: 'spiffe://example.org/w',
      audience: [AUD],
      ttlSeconds: 60,
      now: NOW,
    });
    assert.equal(decodeProtectedHeader(token).alg, alg);
    await verifyJwtSvid(token, {
      audience: AUD,
      bundles: new Map([['example.org', [{ kid: alg, publicKey: pair.publicKey }]]]),
      now: NOW,
    });
  }
  // an ES384 token whose kid names a P-256 key is refused, not crashed on
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const token = await signJwtSvid({
    key: { privateKey: p384.privateKey, kid: 'k' },
    spiffeId: 'spiffe://example.org/w',
    audience: [AUD],
    ttlSeconds: 60,
    now: NOW,
  });
  await assert.rejects(
    verifyJwtSvid(token, {
      audience: AUD,
      bundles: new Map([['example.org', [{ kid: 'k', publicKey: p256.publicKey }]]]),
      now: NOW,
    }),
    (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_jwt',
  );
});

test('misuse is a TypeError: no audience, a bad TTL, a skew over 30 s', async () => {
  const { privateKey } = await generateEcKeyPair();
  const base = { key: { privateKey, kid: 'k' }, spiffeId: 'spiffe://example.org/w', now: NOW };
  await assert.rejects(signJwtSvid({ ...base, audience: [], ttlSeconds: 60 }), TypeError);
  await assert.rejects(signJwtSvid({ ...base, audience: [AUD], ttlSeconds: 0 }), TypeError);
  await assert.rejects(
    signJwtSvid({ ...base, spiffeId: 'spiffe://example.org/', audience: [AUD], ttlSeconds: 60 }),
    (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_spiffe_id',
  );
  await assert.rejects(
    verifyJwtSvid('x.y.z', { audience: AUD, bundles: new Map(), now: NOW, clockSkewSeconds: 31 }),
    TypeError,
  );
});

test('a trust domain without a bundle is untrusted, and oversized tokens are refused early', async () => {
  const { privateKey } = await generateEcKeyPair();
  const token = await signJwtSvid({
    key: { privateKey, kid: 'k' },
    spiffeId: 'spiffe://other.org/w',
    audience: [AUD],
    ttlSeconds: 60,
    now: NOW,
  });
  await assert.rejects(
    verifyJwtSvid(token, { audience: AUD, bundles: new Map(), now: NOW }),
    (e: unknown) => e instanceof SpiffeError && e.code === 'untrusted',
  );
  await assert.rejects(
    verifyJwtSvid(`${'a'.repeat(20_000)}.b.c`, { audience: AUD, bundles: new Map(), now: NOW }),
    /longer than/,
  );
});

test('a JWT-SVID names a workload: a sub with no path is neither signed nor accepted', async () => {
  const { privateKey, publicKey } = await generateEcKeyPair();
  await assert.rejects(
    signJwtSvid({
      key: { privateKey, kid: 'k' },
      spiffeId: 'spiffe://example.org',
      audience: [AUD],
      ttlSeconds: 60,
      now: NOW,
    }),
    (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_spiffe_id',
  );
  // signed by a key the verifier trusts, as a compromised or careless signer would
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'k', typ: 'JWT' })
    .setSubject('spiffe://example.org')
    .setAudience([AUD])
    .setIssuedAt(NOW / 1000)
    .setExpirationTime(NOW / 1000 + 60)
    .sign(privateKey);
  await assert.rejects(
    verifyJwtSvid(token, {
      audience: AUD,
      bundles: new Map([['example.org', [{ kid: 'k', publicKey }]]]),
      now: NOW,
    }),
    (e: unknown) =>
      e instanceof SpiffeError && e.code === 'invalid_spiffe_id' && /names a workload/.test(e.message),
  );
});

test('an issuer, when given, is the iss claim; it must be an absolute http(s) URL', async () => {
  const { privateKey } = await generateEcKeyPair();
  const base = {
    key: { privateKey, kid: 'k' },
    spiffeId: 'spiffe://example.org/w',
    audience: [AUD],
    ttlSeconds: 60,
    now: NOW,
  };
  const token = await signJwtSvid({ ...base, issuer: 'https://vault.example.org' });
  assert.equal(decodeJwt(token).iss, 'https://vault.example.org');
  assert.equal(decodeJwt(await signJwtSvid(base)).iss, undefined);
  for (const issuer of ['/v1/identity', 'vault.example.org', 'ftp://vault.example.org', ''])
    await assert.rejects(signJwtSvid({ ...base, issuer }), TypeError, issuer);
});
