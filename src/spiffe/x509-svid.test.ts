import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { certificateInfo, KeyUsage } from './certificate.ts';
import { OID } from './der.ts';
import { SpiffeError, type SpiffeErrorCode } from './errors.ts';
import { type CryptoKeyPair, generateEcKeyPair } from './keys.ts';
import { x509 } from './peculiar.ts';
import {
  buildCaCertificate,
  type IssuedCertificate,
  issueX509Svid,
  validateCsr,
  verifyX509Svid,
} from './x509-svid.ts';

const NOW = Date.UTC(2026, 3, 1, 8);
const HOUR = 3600_000;
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' } as const;

function code(c: SpiffeErrorCode) {
  return (e: unknown) => e instanceof SpiffeError && e.code === c;
}

async function csr(sans: { type: 'url' | 'dns'; value: string }[], keys?: CryptoKeyPair): Promise<string> {
  const k = keys ?? (await generateEcKeyPair());
  const req = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: k,
    signingAlgorithm: ECDSA,
    extensions: [new x509.SubjectAlternativeNameExtension(sans)],
  });
  return req.toString('pem');
}

let caKeys: CryptoKeyPair;
let ca: IssuedCertificate;

before(async () => {
  caKeys = await generateEcKeyPair();
  ca = await buildCaCertificate({
    trustDomain: 'example.org',
    keys: caKeys,
    notBefore: NOW - HOUR,
    notAfter: NOW + 48 * HOUR,
  });
});

describe('buildCaCertificate', () => {
  test('makes a self-signed CA SVID of the trust domain (X509-SVID.md §3.2, §4)', () => {
    const info = certificateInfo(ca.certificate);
    assert.deepEqual(info.ext.uris, ['spiffe://example.org']);
    assert.deepEqual(info.ext.basicConstraints, { ca: true, pathLen: undefined });
    assert.equal(info.ext.keyUsage, KeyUsage.keyCertSign | KeyUsage.cRLSign);
    assert.ok(info.ext.subjectKeyId && info.ext.subjectKeyId.length === 20);
    assert.ok(ca.certificate.checkIssued(ca.certificate));
    assert.ok(ca.certificate.verify(ca.certificate.publicKey));
    assert.equal(ca.notBefore.getTime(), NOW - HOUR);
    assert.ok(/^[0-9A-F]+$/.test(ca.serialNumber));
  });

  test('refuses an invalid trust domain and non-EC keys', async () => {
    await assert.rejects(
      buildCaCertificate({ trustDomain: 'Example.org', keys: caKeys, notBefore: NOW, notAfter: NOW + HOUR }),
      code('invalid_trust_domain'),
    );
    const rsa = (await globalThis.crypto.subtle.generateKey(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    await assert.rejects(
      buildCaCertificate({ trustDomain: 'example.org', keys: rsa, notBefore: NOW, notAfter: NOW + HOUR }),
      code('invalid_key'),
    );
  });
});

describe('validateCsr + issueX509Svid', () => {
  test('a CSR for a workload becomes a leaf with exactly the SPIFFE profile', async () => {
    const req = await validateCsr(
      await csr([
        { type: 'url', value: 'spiffe://example.org/ns/prod/sa/web' },
        { type: 'dns', value: 'Web.Example.org' },
      ]),
      { trustDomain: 'example.org' },
    );
    assert.equal(req.spiffeId.toString(), 'spiffe://example.org/ns/prod/sa/web');
    assert.deepEqual(req.dnsNames, ['web.example.org']);
    const leaf = await issueX509Svid({
      ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
      csrPublicKey: req.publicKey,
      spiffeId: req.spiffeId,
      ttlSeconds: 3600,
      now: NOW + 123,
      dnsNames: req.dnsNames,
    });
    const info = certificateInfo(leaf.certificate);
    assert.deepEqual(info.ext.uris, ['spiffe://example.org/ns/prod/sa/web']);
    assert.deepEqual(info.ext.dnsNames, ['web.example.org']);
    assert.deepEqual(info.ext.basicConstraints, { ca: false, pathLen: undefined });
    assert.equal(info.ext.keyUsage, KeyUsage.digitalSignature);
    assert.deepEqual(info.ext.extKeyUsage, [OID.serverAuth, OID.clientAuth]);
    assert.deepEqual(info.ext.unknownCritical, []);
    assert.equal(leaf.notBefore.getTime(), NOW - 10_000);
    assert.equal(leaf.notAfter.getTime(), NOW + HOUR);
    assert.ok(leaf.certificate.checkIssued(ca.certificate));
    assert.ok(leaf.certificate.verify(ca.certificate.publicKey));
    assert.ok(leaf.certificate.publicKey.equals(req.publicKey));
    // the peculiar parser agrees on the critical flags
    const p = new x509.X509Certificate(leaf.der);
    assert.equal(p.getExtension(x509.BasicConstraintsExtension)?.critical, true);
    assert.equal(p.getExtension(x509.KeyUsagesExtension)?.critical, true);
    const verified = verifyX509Svid([leaf.der], new Map([['example.org', [ca.certificate]]]), { now: NOW });
    assert.equal(verified.spiffeId.toString(), 'spiffe://example.org/ns/prod/sa/web');
    assert.deepEqual(verified.dnsNames, ['web.example.org']);
  });

  test('notAfter never outlives the CA, notBefore never predates it, serials are unique 128-bit', async () => {
    const { publicKey } = await generateEcKeyPair();
    const base = { ca: { cert: ca.certificate, privateKey: caKeys.privateKey }, csrPublicKey: publicKey };
    const late = await issueX509Svid({
      ...base,
      spiffeId: 'spiffe://example.org/w',
      ttlSeconds: 7 * 24 * 3600,
      now: NOW,
    });
    assert.equal(late.notAfter.getTime(), ca.notAfter.getTime());
    const early = await issueX509Svid({
      ...base,
      spiffeId: 'spiffe://example.org/w',
      ttlSeconds: 60,
      now: NOW - HOUR + 1000,
    });
    assert.equal(early.notBefore.getTime(), ca.notBefore.getTime());
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const l = await issueX509Svid({
        ...base,
        spiffeId: 'spiffe://example.org/w',
        ttlSeconds: 60,
        now: NOW,
      });
      assert.ok(l.serialNumber.replace(/^0+/, '').length <= 32);
      serials.add(l.serialNumber);
    }
    assert.equal(serials.size, 20);
  });

  test('issuance refuses an expired CA, a mismatched CA key and a non-CA issuer', async () => {
    const { publicKey } = await generateEcKeyPair();
    const base = { csrPublicKey: publicKey, spiffeId: 'spiffe://example.org/w', ttlSeconds: 60 };
    await assert.rejects(
      issueX509Svid({
        ...base,
        ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
        now: NOW + 49 * HOUR,
      }),
      code('expired'),
    );
    await assert.rejects(
      issueX509Svid({
        ...base,
        ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
        now: NOW - 2 * HOUR,
      }),
      code('not_yet_valid'),
    );
    const other = await generateEcKeyPair();
    await assert.rejects(
      issueX509Svid({ ...base, ca: { cert: ca.certificate, privateKey: other.privateKey }, now: NOW }),
      code('invalid_key'),
    );
    const leaf = await issueX509Svid({
      ...base,
      ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
      now: NOW,
    });
    await assert.rejects(
      issueX509Svid({ ...base, ca: { cert: leaf.der, privateKey: caKeys.privateKey }, now: NOW }),
      code('invalid_certificate'),
    );
    await assert.rejects(
      issueX509Svid({
        ...base,
        ca: { cert: ca.pem, privateKey: caKeys.privateKey },
        now: NOW,
        ttlSeconds: 0,
      }),
      TypeError,
    );
  });

  test('DNS names are checked like SPIRE does (labels, wildcard overlap)', async () => {
    for (const dns of ['-bad.example.org', 'a..b', '*.org', 'x.*.example.org']) {
      await assert.rejects(
        validateCsr(
          await csr([
            { type: 'url', value: 'spiffe://example.org/w' },
            { type: 'dns', value: dns },
          ]),
          {
            trustDomain: 'example.org',
          },
        ),
        code('invalid_csr'),
        dns,
      );
    }
    await assert.rejects(
      validateCsr(
        await csr([
          { type: 'url', value: 'spiffe://example.org/w' },
          { type: 'dns', value: '*.example.org' },
          { type: 'dns', value: 'api.example.org' },
        ]),
        { trustDomain: 'example.org' },
      ),
      /covers/,
    );
  });

  test('a DER CSR and an async allow policy work; an RSA-1024 CSR is refused', async () => {
    const pem = await csr([{ type: 'url', value: 'spiffe://example.org/w' }]);
    const der = x509.PemConverter.decodeFirst(pem);
    const seen: string[] = [];
    await validateCsr(new Uint8Array(der), {
      trustDomain: 'spiffe://example.org',
      allowed: async (id) => {
        seen.push(id.toString());
        return true;
      },
    });
    assert.deepEqual(seen, ['spiffe://example.org/w']);
    const rsa = (await globalThis.crypto.subtle.generateKey(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 1024,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const weak = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: rsa,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org/w' }]),
      ],
    });
    await assert.rejects(validateCsr(weak.toString('pem'), { trustDomain: 'example.org' }), /2048/);
  });
});

describe('verifyX509Svid', () => {
  async function intermediate(
    pathLen?: number,
    parent = { cert: new x509.X509Certificate(ca.der), keys: caKeys },
  ) {
    const keys = await generateEcKeyPair();
    const cert = await x509.X509CertificateGenerator.create({
      subject: `CN=intermediate ${Math.random()}`,
      issuer: parent.cert.subjectName,
      publicKey: keys.publicKey,
      signingKey: parent.keys.privateKey,
      signingAlgorithm: ECDSA,
      notBefore: new Date(NOW - HOUR),
      notAfter: new Date(NOW + HOUR),
      extensions: [
        new x509.BasicConstraintsExtension(true, pathLen, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org' }]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(parent.keys.publicKey),
      ],
    });
    return { cert, keys, node: new X509Certificate(Buffer.from(cert.rawData)) };
  }

  test('walks intermediates presented in any order and honours pathLenConstraint', async () => {
    const i1 = await intermediate(0);
    const i2 = await intermediate(undefined, i1);
    const { publicKey } = await generateEcKeyPair();
    const leaf = await issueX509Svid({
      ca: { cert: i2.node, privateKey: i2.keys.privateKey },
      csrPublicKey: publicKey,
      spiffeId: 'spiffe://example.org/deep',
      ttlSeconds: 60,
      now: NOW,
    });
    const bundles = new Map([['example.org', [ca.certificate]]]);
    // i1 has pathLen 0 but i2 sits below it: rejected
    assert.throws(
      () => verifyX509Svid([leaf.der, i1.node, i2.node], bundles, { now: NOW }),
      code('untrusted'),
    );
    const j1 = await intermediate(1);
    const j2 = await intermediate(undefined, j1);
    const leaf2 = await issueX509Svid({
      ca: { cert: j2.node, privateKey: j2.keys.privateKey },
      csrPublicKey: publicKey,
      spiffeId: 'spiffe://example.org/deep',
      ttlSeconds: 60,
      now: NOW,
    });
    const ok = verifyX509Svid([leaf2.der, j1.node, i1.node, j2.node], bundles, { now: NOW });
    assert.equal(ok.spiffeId.toString(), 'spiffe://example.org/deep');
    // missing intermediate: untrusted
    assert.throws(() => verifyX509Svid([leaf2.der, j1.node], bundles, { now: NOW }), code('untrusted'));
  });

  test('validity bounds are inclusive; an expired root is reported as expired', async () => {
    const { publicKey } = await generateEcKeyPair();
    const leaf = await issueX509Svid({
      ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
      csrPublicKey: publicKey,
      spiffeId: 'spiffe://example.org/w',
      ttlSeconds: 60,
      now: NOW,
    });
    const bundles = new Map([['example.org', [ca.certificate]]]);
    verifyX509Svid([leaf.certificate], bundles, { now: leaf.notAfter });
    verifyX509Svid([leaf.certificate], bundles, { now: leaf.notBefore });
    assert.throws(
      () => verifyX509Svid([leaf.certificate], bundles, { now: leaf.notAfter.getTime() + 1 }),
      code('expired'),
    );
    const shortKeys = await generateEcKeyPair();
    const shortCa = await buildCaCertificate({
      trustDomain: 'example.org',
      keys: shortKeys,
      notBefore: NOW - HOUR,
      notAfter: NOW + 30_000,
    });
    const l2 = await issueX509Svid({
      ca: { cert: shortCa.certificate, privateKey: shortKeys.privateKey },
      csrPublicKey: publicKey,
      spiffeId: 'spiffe://example.org/w',
      ttlSeconds: 60,
      now: NOW,
    });
    assert.equal(l2.notAfter.getTime(), NOW + 30_000);
  });

  test('purpose is checked against extKeyUsage; garbage input is invalid_certificate', async () => {
    const leaf = await issueX509Svid({
      ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
      csrPublicKey: (await generateEcKeyPair()).publicKey,
      spiffeId: 'spiffe://example.org/w',
      ttlSeconds: 60,
      now: NOW,
    });
    const bundles = new Map([['example.org', [ca.pem]]]);
    verifyX509Svid([leaf.pem], bundles, { now: NOW, purpose: 'server' });
    assert.throws(
      () => verifyX509Svid([Buffer.from('nope')], bundles, { now: NOW }),
      code('invalid_certificate'),
    );
    assert.throws(() => verifyX509Svid([], bundles, { now: NOW }), code('invalid_svid'));
  });
});
