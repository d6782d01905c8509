import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { bundleMaps, parseSpiffeBundle, toSpiffeBundle } from './bundle.ts';
import { SpiffeError } from './errors.ts';
import { type CryptoKeyPair, generateEcKeyPair } from './keys.ts';
import { buildCaCertificate, type IssuedCertificate } from './x509-svid.ts';

const NOW = Date.UTC(2026, 0, 1);
let caKeys: CryptoKeyPair;
let ca: IssuedCertificate;
let ca2: IssuedCertificate;
const jwtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function invalid(message?: RegExp) {
  return (e: unknown) =>
    e instanceof SpiffeError && e.code === 'invalid_bundle' && (!message || message.test(e.message));
}

before(async () => {
  caKeys = await generateEcKeyPair();
  ca = await buildCaCertificate({
    trustDomain: 'example.org',
    keys: caKeys,
    notBefore: NOW,
    notAfter: NOW + 86400_000,
  });
  ca2 = await buildCaCertificate({
    trustDomain: 'example.org',
    keys: await generateEcKeyPair('P-384'),
    notBefore: NOW,
    notAfter: NOW + 86400_000,
  });
});

describe('toSpiffeBundle', () => {
  test('writes x509-svid keys with x5c and no kid, jwt-svid keys with kid, sequence and refresh hint', () => {
    const doc = toSpiffeBundle({
      x509Authorities: [ca.certificate, ca2.pem],
      jwtAuthorities: [{ kid: 'jwt-1', publicKey: jwtKey.privateKey }],
      sequence: 42,
      refreshHintSeconds: 300,
    });
    assert.equal(doc.spiffe_sequence, 42);
    assert.equal(doc.spiffe_refresh_hint, 300);
    assert.equal(doc.keys.length, 3);
    const [k1, k2, k3] = doc.keys;
    assert.equal(k1!.use, 'x509-svid');
    assert.equal(k1!.kid, undefined);
    assert.deepEqual(k1!.x5c, [ca.der.toString('base64')]);
    assert.equal(k1!.crv, 'P-256');
    assert.equal(k2!.crv, 'P-384');
    assert.equal(k3!.use, 'jwt-svid');
    assert.equal(k3!.kid, 'jwt-1');
    // only the public half, even though a private key was passed
    assert.equal('d' in k3!, false);
  });

  test('round-trips through JSON and feeds the verifiers', () => {
    const text = JSON.stringify(
      toSpiffeBundle({
        x509Authorities: [ca.certificate],
        jwtAuthorities: [{ kid: 'j', publicKey: jwtKey.publicKey }],
        sequence: 1,
      }),
    );
    const b = parseSpiffeBundle(text, 'example.org');
    assert.equal(b.trustDomain, 'example.org');
    assert.equal(b.sequence, 1);
    assert.equal(b.refreshHint, undefined);
    assert.equal(b.x509Authorities[0]!.fingerprint256, ca.certificate.fingerprint256);
    assert.ok(b.jwtAuthorities[0]!.publicKey.equals(jwtKey.publicKey));
    const maps = bundleMaps([b]);
    assert.equal(maps.x509.get('example.org')!.length, 1);
    assert.equal(maps.jwt.get('example.org')![0]!.kid, 'j');
    assert.throws(() => bundleMaps([b, b]), TypeError);
  });

  test('duplicate kids are a TypeError', () => {
    assert.throws(
      () =>
        toSpiffeBundle({
          x509Authorities: [],
          jwtAuthorities: [
            { kid: 'a', publicKey: jwtKey.publicKey },
            { kid: 'a', publicKey: jwtKey.publicKey },
          ],
        }),
      TypeError,
    );
  });
});

describe('parseSpiffeBundle', () => {
  const x509Key = () => toSpiffeBundle({ x509Authorities: [ca.certificate], jwtAuthorities: [] }).keys[0]!;
  const jwtJwk = () =>
    toSpiffeBundle({ x509Authorities: [], jwtAuthorities: [{ kid: 'k', publicKey: jwtKey.publicKey }] })
      .keys[0]!;

  test('ignores unknown use and kty values and x509 keys without x5c (§4.1.3, §4.2, X509-SVID.md §6.2)', () => {
    const b = parseSpiffeBundle(
      {
        keys: [
          { ...x509Key(), use: 'wit-svid' },
          { ...x509Key(), use: undefined },
          { kty: 'oct-future', use: 'jwt-svid', kid: 'z' },
          { ...x509Key(), x5c: [] },
          { ...x509Key(), x5c: undefined },
          { ...x509Key(), x5c: [x509Key().x5c![0], 'ignored-extra'] },
          jwtJwk(),
        ],
        extra_member: true,
      },
      'example.org',
    );
    assert.equal(b.x509Authorities.length, 1);
    assert.equal(b.jwtAuthorities.length, 1);
  });

  const malformed: [string, () => unknown, RegExp][] = [
    ['not JSON', () => '{', /not JSON/],
    ['an array', () => '[]', /not a JSON object/],
    ['no keys', () => '{}', /"keys"/],
    ['keys not an array', () => '{"keys":{}}', /"keys"/],
    ['a negative sequence', () => ({ keys: [], spiffe_sequence: -1 }), /spiffe_sequence/],
    ['a fractional refresh hint', () => ({ keys: [], spiffe_refresh_hint: 1.5 }), /spiffe_refresh_hint/],
    ['a string sequence', () => ({ keys: [], spiffe_sequence: '1' }), /spiffe_sequence/],
    ['a key that is not an object', () => ({ keys: [1] }), /not an object/],
    ['a key without kty', () => ({ keys: [{ use: 'jwt-svid', kid: 'k' }] }), /kty/],
    [
      'a private key',
      () => ({ keys: [{ ...jwtKey.privateKey.export({ format: 'jwk' }), use: 'jwt-svid', kid: 'k' }] }),
      /private/,
    ],
    ['a jwt-svid key without kid', () => ({ keys: [{ ...jwtJwk(), kid: undefined }] }), /kid/],
    ['duplicate kids', () => ({ keys: [jwtJwk(), jwtJwk()] }), /twice/],
    [
      'a jwt-svid key that does not import',
      () => ({ keys: [{ ...jwtJwk(), x: 'AAAA' }] }),
      /does not import/,
    ],
    ['x5c not an array', () => ({ keys: [{ ...x509Key(), x5c: 'abc' }] }), /not an array/],
    ['x5c not base64', () => ({ keys: [{ ...x509Key(), x5c: ['***'] }] }), /not base64/],
    ['x5c not a certificate', () => ({ keys: [{ ...x509Key(), x5c: ['AAAA'] }] }), /does not parse/],
    [
      'a JWK that does not match its x5c',
      () => ({ keys: [{ ...x509Key(), x: jwtJwk().x, y: jwtJwk().y }] }),
      /different keys/,
    ],
  ];
  for (const [what, input, message] of malformed) {
    test(`rejects ${what}`, () => {
      assert.throws(() => parseSpiffeBundle(input() as object, 'example.org'), invalid(message));
    });
  }

  test('is size-limited before parsing', () => {
    assert.throws(
      () => parseSpiffeBundle(' '.repeat(1024 * 1024 + 1), 'example.org'),
      invalid(/larger than/),
    );
    assert.throws(
      () => parseSpiffeBundle('{"keys":[]}', 'example.org', { maxBytes: 5 }),
      invalid(/larger than/),
    );
    assert.throws(
      () => parseSpiffeBundle({ keys: Array.from({ length: 1025 }, () => ({})) }, 'example.org'),
      invalid(/more than 1024 keys/),
    );
  });

  test('a bad trust domain is refused', () => {
    assert.throws(
      () => parseSpiffeBundle('{"keys":[]}', 'Example.org'),
      (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_trust_domain',
    );
  });
});
