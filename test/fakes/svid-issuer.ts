import type { SvidIssuer, X509SvidAnswer } from '../../src/agent/svid.ts';
import { StrongroomApiError } from '../../src/sdk/client.ts';
import {
  buildCaCertificate,
  type CryptoKey,
  generateEcKeyPair,
  issueX509Svid,
  signJwtSvid,
  toSpiffeBundle,
  validateCsr,
} from '../../src/spiffe/index.ts';

/**
 * A stub of the vault's identity API (the SvidIssuer the agent's SVID manager
 * calls), built on the SPIFFE primitives: a self-signed CA for `trustDomain`,
 * CSR validation with a list of allowed IDs, issuance, JWT-SVID signing and the
 * bundle document. Failures can be switched on: `outage` answers like an
 * unreachable server (status 0), `refuse` like a 403.
 */
export interface StubSvidSource extends SvidIssuer {
  readonly trustDomain: string;
  /** IDs an SVID may be issued for. */
  readonly allowed: Set<string>;
  failure: 'none' | 'outage' | 'refuse';
  /** Default X.509-SVID lifetime when the request names none (seconds). */
  defaultTtlSeconds: number;
  jwtTtlSeconds: number;
  /** Calls received so far. */
  readonly calls: { x509: number; jwt: number; bundle: number };
  /** CA certificates of federated trust domains to include in X.509 answers. */
  federated: Record<string, string[]>;
  /** The CA's PEM certificate. */
  readonly caPem: string;
  /** Adds a second JWT signing key and signs with it from now on (a JWT key rotation). */
  rotateJwtKey(): Promise<void>;
}

export async function createStubSvidSource(
  options: { trustDomain?: string; allowed?: string[] } = {},
): Promise<StubSvidSource> {
  const trustDomain = options.trustDomain ?? 'strongroom.test';
  const caKeys = await generateEcKeyPair('P-256');
  const now = Date.now();
  const ca = await buildCaCertificate({
    trustDomain,
    keys: caKeys,
    notBefore: now - 60_000,
    notAfter: now + 24 * 3600_000,
  });
  const jwtKeys: { kid: string; privateKey: CryptoKey; publicKey: CryptoKey }[] = [];
  const addJwtKey = async () => {
    const k = await generateEcKeyPair('P-256');
    jwtKeys.push({ kid: `k${jwtKeys.length + 1}`, privateKey: k.privateKey, publicKey: k.publicKey });
  };
  await addJwtKey();

  const stub: StubSvidSource = {
    trustDomain,
    allowed: new Set(options.allowed ?? []),
    failure: 'none',
    defaultTtlSeconds: 3600,
    jwtTtlSeconds: 300,
    calls: { x509: 0, jwt: 0, bundle: 0 },
    federated: {},
    caPem: ca.pem,
    rotateJwtKey: addJwtKey,

    async x509Svid(req): Promise<X509SvidAnswer> {
      stub.calls.x509++;
      fail();
      const csr = await validateCsr(req.csr, {
        trustDomain,
        allowed: (id) => stub.allowed.has(id.toString()),
      }).catch((err) => {
        throw new StrongroomApiError(403, 'permission_denied', (err as Error).message);
      });
      const leaf = await issueX509Svid({
        ca: { cert: ca.certificate, privateKey: caKeys.privateKey },
        csrPublicKey: csr.publicKey,
        spiffeId: csr.spiffeId,
        ttlSeconds: req.ttl ?? stub.defaultTtlSeconds,
        now: Date.now(),
      });
      return {
        spiffe_id: csr.spiffeId.toString(),
        certificate: leaf.pem,
        bundle: [ca.pem],
        federated_bundles: stub.federated,
        expires_at: leaf.notAfter.toISOString(),
      };
    },

    async jwtSvid(req) {
      stub.calls.jwt++;
      fail();
      if (!stub.allowed.has(req.spiffe_id)) {
        throw new StrongroomApiError(403, 'permission_denied', `not registered for ${req.spiffe_id}`);
      }
      const key = jwtKeys[jwtKeys.length - 1]!;
      const iat = Date.now();
      const token = await signJwtSvid({
        key,
        spiffeId: req.spiffe_id,
        audience: req.audience,
        ttlSeconds: req.ttl ?? stub.jwtTtlSeconds,
        now: iat,
      });
      const exp = (Math.floor(iat / 1000) + (req.ttl ?? stub.jwtTtlSeconds)) * 1000;
      return { token, spiffe_id: req.spiffe_id, expires_at: new Date(exp).toISOString() };
    },

    async bundle() {
      stub.calls.bundle++;
      fail();
      return toSpiffeBundle({
        x509Authorities: [ca.certificate],
        jwtAuthorities: jwtKeys.map((k) => ({ kid: k.kid, publicKey: k.publicKey })),
        sequence: jwtKeys.length,
        refreshHintSeconds: 300,
      });
    },
  };

  function fail() {
    if (stub.failure === 'outage') throw new StrongroomApiError(0, 'unreachable', 'cannot reach Strongroom');
    if (stub.failure === 'refuse') throw new StrongroomApiError(403, 'permission_denied', 'refused');
  }
  return stub;
}
