// SPIFFE test helpers: CSRs as a workload builds them, a foreign trust domain's
// CA and JWT key, and checks of what the identity engine returns.
import { randomBytes } from 'node:crypto';
import {
  buildCaCertificate,
  bundleMaps,
  type CryptoKeyPair,
  exportPrivateKeyPem,
  generateEcKeyPair,
  type IssuedCertificate,
  issueX509Svid,
  parseSpiffeBundle,
  type SpiffeBundle,
  type SpiffeBundleDocument,
  signJwtSvid,
  toSpiffeBundle,
} from '../../src/spiffe/index.ts';
import { x509 } from '../../src/spiffe/peculiar.ts';

export const TRUST_DOMAIN = 'strongroom.local';
export const idOf = (path: string, td = TRUST_DOMAIN) => `spiffe://${td}/${path.replace(/^\//, '')}`;

export interface Csr {
  /** PKCS#10 PEM. */
  pem: string;
  keys: CryptoKeyPair;
  /** The private key (PKCS#8 PEM), for presenting the SVID over TLS. */
  keyPem: string;
}

/** A CSR with the given URI SANs (none when empty), signed by a fresh P-256 key. */
export async function makeCsr(uris: string | readonly string[], opts: { dns?: string[] } = {}): Promise<Csr> {
  const list = typeof uris === 'string' ? [uris] : uris;
  const keys = await generateEcKeyPair('P-256', { extractable: true });
  const names = [
    ...list.map((value) => ({ type: 'url' as const, value })),
    ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=workload',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  return { pem: csr.toString('pem'), keys, keyPem: exportPrivateKeyPem(keys.privateKey) };
}

const toPem = (label: string, der: Uint8Array) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;

/** The same CSR with one byte of its signature flipped (it still parses; it no longer verifies). */
export function tamperCsr(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 1]! ^= 0x01;
  return toPem('CERTIFICATE REQUEST', der);
}

/** Parses a bundle document served by the engine into verifier maps. */
export function trustOf(doc: unknown, td = TRUST_DOMAIN) {
  const bundle: SpiffeBundle = parseSpiffeBundle(doc as object, td);
  return { bundle, ...bundleMaps([bundle]) };
}

/** Decodes a compact JWT's header and payload (no verification). */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
} {
  const [h, p] = token.split('.');
  const dec = (s: string) =>
    JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: dec(h!), payload: dec(p!) };
}

/** Another trust domain: its X.509 CA, its JWT signing key, and its SPIFFE bundle. */
export interface ForeignDomain {
  trustDomain: string;
  ca: IssuedCertificate;
  caKeys: CryptoKeyPair;
  jwtKeys: CryptoKeyPair;
  kid: string;
  bundle: SpiffeBundleDocument;
  /** A JWT-SVID for `spiffeId` signed by this domain's JWT key. */
  jwt(spiffeId: string, audience: string[], opts?: { now?: number; ttlSeconds?: number }): Promise<string>;
  /** An X.509-SVID for `spiffeId` signed by this domain's CA: {cert, key} PEMs. */
  svid(
    spiffeId: string,
    opts?: { now?: number; ttlSeconds?: number },
  ): Promise<{ cert: string; key: string }>;
}

export async function foreignDomain(trustDomain: string, now = Date.now()): Promise<ForeignDomain> {
  const caKeys = await generateEcKeyPair('P-256', { extractable: true });
  const ca = await buildCaCertificate({
    trustDomain,
    keys: caKeys,
    notBefore: now - 3600_000,
    notAfter: now + 7 * 86400_000,
  });
  const jwtKeys = await generateEcKeyPair('P-256', { extractable: true });
  const kid = randomBytes(9).toString('base64url');
  const bundle = toSpiffeBundle({
    x509Authorities: [ca.certificate],
    jwtAuthorities: [{ kid, publicKey: jwtKeys.publicKey }],
    sequence: 1,
  });
  return {
    trustDomain,
    ca,
    caKeys,
    jwtKeys,
    kid,
    bundle,
    jwt: (spiffeId, audience, opts = {}) =>
      signJwtSvid({
        key: { privateKey: jwtKeys.privateKey, kid },
        spiffeId,
        audience,
        ttlSeconds: opts.ttlSeconds ?? 300,
        now: opts.now ?? now,
      }),
    async svid(spiffeId, opts = {}) {
      const leafKeys = await generateEcKeyPair('P-256', { extractable: true });
      const leaf = await issueX509Svid({
        ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
        csrPublicKey: leafKeys.publicKey,
        spiffeId,
        ttlSeconds: opts.ttlSeconds ?? 3600,
        now: opts.now ?? now,
      });
      return { cert: leaf.pem, key: exportPrivateKeyPem(leafKeys.privateKey) };
    },
  };
}
