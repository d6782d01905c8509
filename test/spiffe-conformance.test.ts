import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { CompactSign, type JWTPayload, SignJWT } from 'jose';
import { bundleMaps, parseSpiffeBundle, toSpiffeBundle } from '../src/spiffe/bundle.ts';
import { SpiffeError, type SpiffeErrorCode } from '../src/spiffe/errors.ts';
import { signJwtSvid, verifyJwtSvid } from '../src/spiffe/jwt-svid.ts';
import {
  type CryptoKeyPair,
  exportPublicKeyPem,
  generateEcKeyPair,
  toKeyObject,
} from '../src/spiffe/keys.ts';
import { x509 } from '../src/spiffe/peculiar.ts';
import {
  buildCaCertificate,
  type IssuedCertificate,
  issueX509Svid,
  validateCsr,
  verifyX509Svid,
} from '../src/spiffe/x509-svid.ts';

/**
 * SPIFFE conformance: every malformed or untrusted SVID below is built by
 * hand (with @peculiar/x509, which will encode any extension set, or with
 * jose/node:crypto for tokens) and must be refused by the verifier, and, where
 * a CSR can ask for it, by validateCsr at issuance. Specs:
 * github.com/spiffe/spiffe/blob/main/standards/{SPIFFE-ID,X509-SVID,JWT-SVID}.md
 */

const NOW = Date.UTC(2026, 0, 1, 12);
const HOUR = 3600_000;
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' } as const;
const F = x509.KeyUsageFlags;

interface Ca {
  td: string;
  keys: CryptoKeyPair;
  issued: IssuedCertificate;
  cert: x509.X509Certificate;
}

async function makeCa(td: string, keys?: CryptoKeyPair): Promise<Ca> {
  const k = keys ?? (await generateEcKeyPair());
  const issued = await buildCaCertificate({
    trustDomain: td,
    keys: k,
    notBefore: NOW - 24 * HOUR,
    notAfter: NOW + 24 * HOUR,
  });
  return { td, keys: k, issued, cert: new x509.X509Certificate(issued.der) };
}

interface LeafSpec {
  sans?: { type: 'url' | 'dns'; value: string }[];
  /** null: no basicConstraints extension */
  ca?: boolean | null;
  /** null: no keyUsage extension */
  keyUsage?: number | null;
  notBefore?: number;
  notAfter?: number;
  extra?: x509.Extension[];
  /** sign with these keys instead of the issuer's (the issuer name is kept) */
  signingKeys?: CryptoKeyPair;
}

/** A certificate issued by `issuer` with exactly the extensions asked for. */
async function forge(issuer: Ca, spec: LeafSpec): Promise<Buffer> {
  const subject = await generateEcKeyPair();
  const extensions: x509.Extension[] = [];
  if (spec.ca !== null)
    extensions.push(new x509.BasicConstraintsExtension(spec.ca ?? false, undefined, true));
  if (spec.keyUsage !== null)
    extensions.push(new x509.KeyUsagesExtension(spec.keyUsage ?? F.digitalSignature, true));
  const sans = spec.sans ?? [{ type: 'url', value: `spiffe://${issuer.td}/workload` }];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  extensions.push(...(spec.extra ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'O=Forged',
    issuer: issuer.cert.subjectName,
    publicKey: subject.publicKey,
    signingKey: (spec.signingKeys ?? issuer.keys).privateKey,
    signingAlgorithm: ECDSA,
    notBefore: new Date(spec.notBefore ?? NOW - HOUR),
    notAfter: new Date(spec.notAfter ?? NOW + HOUR),
    extensions,
  });
  return Buffer.from(cert.rawData);
}

async function csrFor(
  sans: { type: 'url' | 'dns'; value: string }[],
  extra: x509.Extension[] = [],
): Promise<string> {
  const keys = await generateEcKeyPair();
  const extensions = [...extra];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: ECDSA,
    extensions,
  });
  return csr.toString('pem');
}

function rejects(code: SpiffeErrorCode): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof SpiffeError, `expected a SpiffeError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  };
}

const url = (value: string) => ({ type: 'url' as const, value });

/** Malformed SPIFFE IDs (SPIFFE-ID.md §2), each in trust domain a.test as far as it can be. */
const MALFORMED_IDS: [string, string][] = [
  ['an uppercase trust domain', 'spiffe://A.test/workload'],
  ['an uppercase scheme', 'SPIFFE://a.test/workload'],
  ['a port', 'spiffe://a.test:8443/workload'],
  ['userinfo', 'spiffe://user@a.test/workload'],
  ['percent-encoding in the path', 'spiffe://a.test/work%6Coad'],
  ['a "." segment', 'spiffe://a.test/./workload'],
  ['a ".." segment', 'spiffe://a.test/x/../workload'],
  ['an empty segment', 'spiffe://a.test//workload'],
  ['a trailing slash', 'spiffe://a.test/workload/'],
  ['a query', 'spiffe://a.test/workload?x=1'],
  ['a fragment', 'spiffe://a.test/workload#x'],
  ['more than 2048 bytes', `spiffe://a.test/${'w'.repeat(2040)}`],
  ['another scheme', 'https://a.test/workload'],
  ['no trust domain', 'spiffe:///workload'],
];

let A: Ca;
let B: Ca;
let bundles: Map<string, readonly IssuedCertificate['certificate'][]>;

before(async () => {
  A = await makeCa('a.test');
  B = await makeCa('b.test');
  bundles = new Map([
    ['a.test', [A.issued.certificate]],
    ['b.test', [B.issued.certificate]],
  ]);
});

describe('X.509-SVID: the verifier rejects', () => {
  const cases: { name: string; code: SpiffeErrorCode; leaf: () => Promise<Buffer[]> }[] = [
    {
      name: 'a leaf with no URI SAN',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { sans: [] })],
    },
    {
      name: 'a leaf with only a DNS SAN',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { sans: [{ type: 'dns', value: 'workload.a.test' }] })],
    },
    {
      name: 'a leaf with two URI SANs',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { sans: [url('spiffe://a.test/one'), url('spiffe://a.test/two')] })],
    },
    {
      name: 'a leaf with a SPIFFE and an https URI SAN',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { sans: [url('spiffe://a.test/one'), url('https://a.test/')] })],
    },
    { name: 'a CA:true leaf', code: 'invalid_svid', leaf: async () => [await forge(A, { ca: true })] },
    {
      name: 'a leaf whose keyUsage has keyCertSign',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { keyUsage: F.digitalSignature | F.keyCertSign })],
    },
    {
      name: 'a leaf whose keyUsage has cRLSign',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { keyUsage: F.digitalSignature | F.cRLSign })],
    },
    {
      name: 'a leaf whose keyUsage lacks digitalSignature',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { keyUsage: F.keyEncipherment })],
    },
    {
      name: 'a leaf without keyUsage',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { keyUsage: null })],
    },
    {
      name: 'a leaf carrying the trust domain ID (no path)',
      code: 'invalid_svid',
      leaf: async () => [await forge(A, { sans: [url('spiffe://a.test')] })],
    },
    {
      name: 'a leaf with an unknown critical extension',
      code: 'invalid_svid',
      leaf: async () => [
        await forge(A, { extra: [new x509.Extension('1.2.3.4.5', true, new Uint8Array([5, 0]))] }),
      ],
    },
    {
      name: 'a leaf claiming another trust domain than its issuer',
      code: 'untrusted',
      leaf: async () => [await forge(A, { sans: [url('spiffe://b.test/workload')] })],
    },
    {
      name: "a chain to another trust domain's CA (CA of b.test signs a leaf claiming a.test)",
      code: 'untrusted',
      leaf: async () => [await forge(B, { sans: [url('spiffe://a.test/workload')] })],
    },
    {
      name: 'a leaf signed by an unrelated key under the CA name',
      code: 'untrusted',
      leaf: async () => [await forge(A, { signingKeys: await generateEcKeyPair() })],
    },
    {
      name: 'a leaf signed by another leaf of the trust domain',
      code: 'untrusted',
      leaf: async () => {
        const keys = await generateEcKeyPair();
        const middle = await forge(A, { sans: [url('spiffe://a.test/middle')] });
        const fakeCa: Ca = { td: 'a.test', keys, issued: A.issued, cert: new x509.X509Certificate(middle) };
        return [await forge(fakeCa, {}), middle];
      },
    },
    {
      name: 'a leaf from a trust domain without a bundle',
      code: 'untrusted',
      leaf: async () => {
        const C = await makeCa('c.test');
        return [await forge(C, {})];
      },
    },
    {
      name: 'an expired leaf',
      code: 'expired',
      leaf: async () => [await forge(A, { notBefore: NOW - 2 * HOUR, notAfter: NOW - 1000 })],
    },
    {
      name: 'a not-yet-valid leaf',
      code: 'not_yet_valid',
      leaf: async () => [await forge(A, { notBefore: NOW + 60_000, notAfter: NOW + HOUR })],
    },
    ...MALFORMED_IDS.map(([what, id]) => ({
      name: `a leaf whose URI SAN has ${what}`,
      code: 'invalid_spiffe_id' as const,
      leaf: async () => [await forge(A, { sans: [url(id)] })],
    })),
  ];
  for (const c of cases) {
    test(`${c.name} (${c.code})`, async () => {
      const chain = await c.leaf();
      assert.throws(() => verifyX509Svid(chain, bundles, { now: NOW }), rejects(c.code));
    });
  }

  test('a leaf under an expired intermediate (expired)', async () => {
    const midKeys = await generateEcKeyPair();
    const midCert = await x509.X509CertificateGenerator.create({
      subject: 'CN=intermediate',
      issuer: A.cert.subjectName,
      publicKey: midKeys.publicKey,
      signingKey: A.keys.privateKey,
      signingAlgorithm: ECDSA,
      notBefore: new Date(NOW - 2 * HOUR),
      notAfter: new Date(NOW - 1000),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(F.keyCertSign, true),
        await x509.SubjectKeyIdentifierExtension.create(midKeys.publicKey),
      ],
    });
    const mid: Ca = { td: 'a.test', keys: midKeys, issued: A.issued, cert: midCert };
    const leaf = await forge(mid, {});
    assert.throws(
      () => verifyX509Svid([leaf, Buffer.from(midCert.rawData)], bundles, { now: NOW }),
      rejects('expired'),
    );
  });
});

describe('X.509-SVID: validateCsr refuses at issuance', () => {
  const cases: { name: string; code: SpiffeErrorCode; csr: () => Promise<string> }[] = [
    { name: 'a CSR with no URI SAN', code: 'invalid_csr', csr: () => csrFor([]) },
    {
      name: 'a CSR with only a DNS SAN',
      code: 'invalid_csr',
      csr: () => csrFor([{ type: 'dns', value: 'workload.a.test' }]),
    },
    {
      name: 'a CSR with two URI SANs',
      code: 'invalid_csr',
      csr: () => csrFor([url('spiffe://a.test/one'), url('spiffe://a.test/two')]),
    },
    {
      name: 'a CSR for another trust domain',
      code: 'wrong_trust_domain',
      csr: () => csrFor([url('spiffe://b.test/workload')]),
    },
    {
      name: "a CSR for the trust domain's own ID",
      code: 'invalid_spiffe_id',
      csr: () => csrFor([url('spiffe://a.test')]),
    },
    {
      name: 'a CSR whose signature does not verify',
      code: 'invalid_csr',
      csr: async () => {
        const der = x509.PemConverter.decodeFirst(await csrFor([url('spiffe://a.test/workload')]));
        const bytes = new Uint8Array(der);
        bytes[bytes.length - 5]! ^= 0x01; // inside the signature value
        return x509.PemConverter.encode(bytes, 'CERTIFICATE REQUEST');
      },
    },
    {
      name: 'a CSR with an invalid DNS SAN',
      code: 'invalid_csr',
      csr: () => csrFor([url('spiffe://a.test/workload'), { type: 'dns', value: 'bad_name.a.test' }]),
    },
    {
      name: 'garbage',
      code: 'invalid_csr',
      csr: async () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
    },
    ...MALFORMED_IDS.map(([what, id]) => ({
      name: `a CSR whose URI SAN has ${what}`,
      code: 'invalid_spiffe_id' as const,
      csr: () => csrFor([url(id)]),
    })),
  ];
  for (const c of cases) {
    test(`${c.name} (${c.code})`, async () => {
      const csr = await c.csr();
      await assert.rejects(validateCsr(csr, { trustDomain: 'a.test' }), rejects(c.code));
    });
  }

  test('an ID the caller does not allow (not_allowed)', async () => {
    const csr = await csrFor([url('spiffe://a.test/admin')]);
    await assert.rejects(
      validateCsr(csr, { trustDomain: 'a.test', allowed: (id) => id.path.startsWith('/workloads/') }),
      rejects('not_allowed'),
    );
  });

  test('a CSR asking for cA=true and keyCertSign still yields a plain leaf', async () => {
    const csr = await csrFor(
      [url('spiffe://a.test/workload')],
      [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(F.keyCertSign, true),
      ],
    );
    const req = await validateCsr(csr, { trustDomain: 'a.test' });
    const leaf = await issueX509Svid({
      ca: { cert: A.issued.certificate, privateKey: A.keys.privateKey },
      csrPublicKey: req.publicKey,
      spiffeId: req.spiffeId,
      ttlSeconds: 600,
      now: NOW,
    });
    assert.equal(leaf.certificate.ca, false);
    assert.equal(
      verifyX509Svid([leaf.der], bundles, { now: NOW }).spiffeId.toString(),
      'spiffe://a.test/workload',
    );
  });

  test('the issuer itself refuses an ID of another trust domain, or without a path', async () => {
    const { publicKey } = await generateEcKeyPair();
    const ca = { cert: A.issued.certificate, privateKey: A.keys.privateKey };
    await assert.rejects(
      issueX509Svid({ ca, csrPublicKey: publicKey, spiffeId: 'spiffe://b.test/x', ttlSeconds: 60, now: NOW }),
      rejects('wrong_trust_domain'),
    );
    await assert.rejects(
      issueX509Svid({ ca, csrPublicKey: publicKey, spiffeId: 'spiffe://a.test', ttlSeconds: 60, now: NOW }),
      rejects('invalid_spiffe_id'),
    );
    await assert.rejects(
      issueX509Svid({
        ca,
        csrPublicKey: publicKey,
        spiffeId: 'spiffe://a.test/x/',
        ttlSeconds: 60,
        now: NOW,
      }),
      rejects('invalid_spiffe_id'),
    );
  });
});

describe('X.509-SVID: accepted', () => {
  test('a correct leaf of each trust domain verifies against a federated bundle set', async () => {
    for (const ca of [A, B]) {
      const req = await validateCsr(await csrFor([url(`spiffe://${ca.td}/api`)]), { trustDomain: ca.td });
      const leaf = await issueX509Svid({
        ca: { cert: ca.issued.certificate, privateKey: ca.keys.privateKey },
        csrPublicKey: req.publicKey,
        spiffeId: req.spiffeId,
        ttlSeconds: 3600,
        now: NOW,
      });
      // through the bundle document, as a federated peer would receive it
      const parsed = [A, B].map((c) =>
        parseSpiffeBundle(
          JSON.stringify(
            toSpiffeBundle({ x509Authorities: [c.issued.certificate], jwtAuthorities: [], sequence: 1 }),
          ),
          c.td,
        ),
      );
      const result = verifyX509Svid([leaf.pem], bundleMaps(parsed).x509, { now: NOW, purpose: 'client' });
      assert.equal(result.spiffeId.toString(), `spiffe://${ca.td}/api`);
      assert.equal(result.trustDomain, ca.td);
    }
  });
});

// ---------------------------------------------------------------- JWT-SVID

const AUD = 'spiffe://a.test/api';
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
let jwtKeyA: { privateKey: KeyObject; publicKey: KeyObject; kid: string };
let jwtKeyB: { privateKey: KeyObject; publicKey: KeyObject; kid: string };
let jwtBundles: Map<string, { kid: string; publicKey: KeyObject }[]>;

function claims(extra: JWTPayload = {}): JWTPayload {
  const iat = Math.floor(NOW / 1000);
  return { sub: 'spiffe://a.test/client', aud: [AUD], iat, exp: iat + 300, ...extra };
}

async function forgeJwt(
  header: Record<string, unknown>,
  payload: JWTPayload,
  key: KeyObject = jwtKeyA.privateKey,
) {
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader(header as { alg: string })
    .sign(key);
}

describe('JWT-SVID: the verifier rejects', () => {
  before(() => {
    const mk = (kid: string) => ({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }), kid });
    jwtKeyA = mk('a-key-1');
    jwtKeyB = mk('b-key-1');
    jwtBundles = new Map([
      ['a.test', [{ kid: jwtKeyA.kid, publicKey: jwtKeyA.publicKey }]],
      ['b.test', [{ kid: jwtKeyB.kid, publicKey: jwtKeyB.publicKey }]],
    ]);
  });
  const ok = () => ({ alg: 'ES256', kid: jwtKeyA.kid, typ: 'JWT' });
  const cases: { name: string; code: SpiffeErrorCode; token: () => Promise<string> }[] = [
    {
      name: 'alg none',
      code: 'unsupported_algorithm',
      token: async () => `${b64({ alg: 'none', kid: jwtKeyA.kid, typ: 'JWT' })}.${b64(claims())}.`,
    },
    {
      name: 'HS256 keyed with the public key PEM (algorithm confusion)',
      code: 'unsupported_algorithm',
      token: async () => {
        const input = `${b64({ alg: 'HS256', kid: jwtKeyA.kid, typ: 'JWT' })}.${b64(claims())}`;
        const mac = createHmac('sha256', exportPublicKeyPem(jwtKeyA.publicKey))
          .update(input)
          .digest('base64url');
        return `${input}.${mac}`;
      },
    },
    {
      name: 'HS256 keyed with the public key DER',
      code: 'unsupported_algorithm',
      token: async () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS256', kid: jwtKeyA.kid })
          .sign(jwtKeyA.publicKey.export({ format: 'der', type: 'spki' })),
    },
    { name: 'a missing aud', code: 'invalid_jwt', token: () => forgeJwt(ok(), claims({ aud: undefined })) },
    { name: 'an empty aud', code: 'wrong_audience', token: () => forgeJwt(ok(), claims({ aud: [] })) },
    {
      name: 'a wrong aud',
      code: 'wrong_audience',
      token: () => forgeJwt(ok(), claims({ aud: ['spiffe://a.test/other'] })),
    },
    { name: 'no exp', code: 'invalid_jwt', token: () => forgeJwt(ok(), claims({ exp: undefined })) },
    {
      name: 'an expired token (beyond the 30 s skew)',
      code: 'expired',
      token: () => forgeJwt(ok(), claims({ exp: Math.floor(NOW / 1000) - 31 })),
    },
    {
      name: 'a token not valid yet (nbf beyond the skew)',
      code: 'not_yet_valid',
      token: () => forgeJwt(ok(), claims({ nbf: Math.floor(NOW / 1000) + 120 })),
    },
    {
      name: 'an unknown kid',
      code: 'unknown_key',
      token: () => forgeJwt({ ...ok(), kid: 'nope' }, claims()),
    },
    {
      name: "a kid of another trust domain's bundle",
      code: 'unknown_key',
      token: () => forgeJwt({ ...ok(), kid: jwtKeyB.kid }, claims(), jwtKeyB.privateKey),
    },
    {
      name: "a sub in b.test signed with a.test's key and kid",
      code: 'unknown_key',
      token: () => forgeJwt(ok(), claims({ sub: 'spiffe://b.test/client' })),
    },
    {
      name: 'a missing kid',
      code: 'invalid_jwt',
      token: () => forgeJwt({ alg: 'ES256', typ: 'JWT' }, claims()),
    },
    {
      name: 'a jku header',
      code: 'invalid_jwt',
      token: () => forgeJwt({ ...ok(), jku: 'https://evil.example/jwks.json' }, claims()),
    },
    {
      name: 'an x5u header',
      code: 'invalid_jwt',
      token: () => forgeJwt({ ...ok(), x5u: 'https://evil.example/cert.pem' }, claims()),
    },
    {
      name: 'an embedded jwk header (signed with the embedded key)',
      code: 'invalid_jwt',
      token: async () => {
        const evil = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        return forgeJwt(
          { ...ok(), jwk: evil.publicKey.export({ format: 'jwk' }) },
          claims(),
          evil.privateKey,
        );
      },
    },
    {
      name: 'an x5c header',
      code: 'invalid_jwt',
      token: () => forgeJwt({ ...ok(), x5c: [A.issued.der.toString('base64')] }, claims()),
    },
    {
      name: 'a typ other than JWT/JOSE',
      code: 'invalid_jwt',
      token: () => forgeJwt({ ...ok(), typ: 'at+jwt' }, claims()),
    },
    {
      name: 'a sub that is not a SPIFFE ID',
      code: 'invalid_spiffe_id',
      token: () => forgeJwt(ok(), claims({ sub: 'https://a.test/client' })),
    },
    {
      name: 'a sub with an uppercase trust domain',
      code: 'invalid_spiffe_id',
      token: () => forgeJwt(ok(), claims({ sub: 'spiffe://A.test/client' })),
    },
    { name: 'a missing sub', code: 'invalid_jwt', token: () => forgeJwt(ok(), claims({ sub: undefined })) },
    {
      name: 'a tampered payload',
      code: 'invalid_jwt',
      token: async () => {
        const [h, , s] = (await forgeJwt(ok(), claims())).split('.');
        return `${h}.${b64(claims({ sub: 'spiffe://a.test/admin' }))}.${s}`;
      },
    },
    {
      name: 'a JWE-shaped token',
      code: 'invalid_jwt',
      token: async () => 'a.b.c.d.e',
    },
  ];
  for (const c of cases) {
    test(`${c.name} (${c.code})`, async () => {
      const token = await c.token();
      await assert.rejects(
        verifyJwtSvid(token, { audience: AUD, bundles: jwtBundles, now: NOW }),
        rejects(c.code),
      );
    });
  }
});

describe('JWT-SVID: accepted', () => {
  test('tokens of both trust domains verify against a federated bundle set', async () => {
    const parsed = [
      parseSpiffeBundle(
        toSpiffeBundle({ x509Authorities: [A.issued.certificate], jwtAuthorities: [jwtKeyA], sequence: 3 }),
        'a.test',
      ),
      parseSpiffeBundle(
        toSpiffeBundle({ x509Authorities: [B.issued.certificate], jwtAuthorities: [jwtKeyB], sequence: 7 }),
        'b.test',
      ),
    ];
    const { jwt } = bundleMaps(parsed);
    for (const [key, sub] of [
      [jwtKeyA, 'spiffe://a.test/client'],
      [jwtKeyB, 'spiffe://b.test/client'],
    ] as const) {
      const token = await signJwtSvid({ key, spiffeId: sub, audience: [AUD], ttlSeconds: 300, now: NOW });
      const v = await verifyJwtSvid(token, { audience: AUD, bundles: jwt, now: NOW + 299_000 });
      assert.equal(v.spiffeId.toString(), sub);
      assert.deepEqual(v.audience, [AUD]);
    }
  });

  test('a token just past exp is accepted within the clock skew, and the skew is configurable', async () => {
    const token = await signJwtSvid({
      key: { privateKey: toKeyObject(jwtKeyA.privateKey), kid: jwtKeyA.kid },
      spiffeId: 'spiffe://a.test/client',
      audience: [AUD],
      ttlSeconds: 60,
      now: NOW,
    });
    await verifyJwtSvid(token, { audience: AUD, bundles: jwtBundles, now: NOW + 80_000 });
    await assert.rejects(
      verifyJwtSvid(token, { audience: AUD, bundles: jwtBundles, now: NOW + 80_000, clockSkewSeconds: 5 }),
      rejects('expired'),
    );
  });
});
