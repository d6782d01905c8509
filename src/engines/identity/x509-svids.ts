import { type KeyObject, X509Certificate } from 'node:crypto';
import * as api from '../../api/identity.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { implement } from '../../contract/operation.ts';
import { constantTimeEqual } from '../../crypto/random.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { csrDer, parseCsr } from '../../spiffe/csr.ts';
import { isSpiffeError, issueX509Svid, type SpiffeId, validateCsr } from '../../spiffe/index.ts';
import type { CertificateAuthority } from './ca.ts';
import type { TrustedBundles } from './federation.ts';
import { bad, identityResource, sha, spiffeIdOf, ttlOf } from './inputs.ts';
import { consumeJoinToken, joinTokenPath, liveJoinToken } from './join-tokens.ts';
import { type Registration, type Registrations, refuseNotEntitled, regMax } from './registrations.ts';

/**
 * X.509-SVIDs: issued for a CSR to a caller a registration entitles (or a
 * workload renewing its own), for a CSR with a join token, and to components
 * of this server itself (`issueSelf`).
 */

/** The audit record of an SVID issued to a component of this server (no request carried it). */
export interface SelfIssueAudit {
  type: 'response';
  request_id: string;
  operation: string;
  action: string;
  resource: string;
  actor: null;
  client_address: string;
  decision: { allowed: boolean; reason: string };
  request: { spiffe_id: string; serial: string };
  status: 'ok';
}

export interface X509SvidDeps {
  store: BarrierStore;
  clock: Clock;
  trustDomain: string;
  ca: CertificateAuthority;
  bundles: TrustedBundles;
  registrations: Registrations;
  /** Default and longest X.509-SVID lifetimes (seconds). */
  x509Ttl: number;
  x509Max: number;
  /** Writes an audit entry (the broker: it throws when no sink accepted it). */
  audit: (entry: SelfIssueAudit) => Promise<void>;
}

/** The SPIFFE ID a CSR asks for, read without verifying it (for the policy resource; the handler verifies). */
function csrSpiffeId(csr: unknown): string {
  try {
    const parsed = parseCsr(csrDer(csr as string));
    const uri = parsed.uris?.[0];
    return typeof uri === 'string' ? uri : 'spiffe://invalid/csr';
  } catch {
    return 'spiffe://invalid/csr';
  }
}

export function x509SvidOperations(deps: X509SvidDeps) {
  const { store, clock, trustDomain, ca, bundles, registrations, x509Ttl, x509Max } = deps;

  /** Issues for a CSR once `check` says who may have its ID (the registration bounds the TTL). */
  async function issueX509(
    csr: string,
    requestedTtl: string | number | undefined,
    check: (id: SpiffeId) => Promise<Registration | undefined>,
  ): Promise<api.X509SvidResponse> {
    const c = await ca.signing();
    let validated: Awaited<ReturnType<typeof validateCsr>>;
    try {
      validated = await validateCsr(csr, { trustDomain });
    } catch (err) {
      if (isSpiffeError(err)) throw bad('invalid_csr', err.message);
      throw err;
    }
    const reg = await check(validated.spiffeId);
    const max = regMax(reg, x509Max);
    const ttl = ttlOf(requestedTtl, Math.min(x509Ttl, max), max, 'ttl');
    const leaf = await issueX509Svid({
      ca: { cert: c.signer.cert, privateKey: c.signer.privateKey },
      csrPublicKey: validated.publicKey,
      spiffeId: validated.spiffeId,
      ttlSeconds: ttl,
      now: clock.now(),
      dnsNames: validated.dnsNames,
    });
    // fromEntries: a trust domain named like an Object.prototype key (`__proto__`) stays an own key
    const fed = Object.fromEntries(
      (await bundles.federated()).map((b) => [b.trustDomain, b.x509Authorities.map((x) => x.toString())]),
    );
    return {
      spiffe_id: validated.spiffeId.toString(),
      certificate: leaf.pem,
      bundle: c.x509Authorities.map((x) => x.toString()),
      federated_bundles: fed,
      serial: leaf.serialNumber.toLowerCase(),
      expires_at: leaf.notAfter.toISOString(),
      csr_sha256: sha(csrDer(csr)),
    };
  }

  const x509Svid = implement(api.IdentityX509Svid, {
    action: 'identity.issue',
    auth: 'token',
    resource: (i) => identityResource(csrSpiffeId(i.csr), true),
    async handle(ctx, i) {
      return issueX509(
        i.csr,
        i.ttl,
        async (id) => (await registrations.entitled(id.toString(), ctx)) ?? refuseNotEntitled(id.toString()),
      );
    },
  });

  const x509Join = implement(api.IdentityX509SvidJoin, {
    action: 'identity.join',
    auth: 'none',
    resource: (i) => identityResource(csrSpiffeId(i.csr), true),
    async handle(ctx, i) {
      const path = joinTokenPath(i.join_token);
      return issueX509(i.csr, i.ttl, async (id) => {
        // the token is checked before anything about the ID is said (no probing for registrations
        // without a live token), and consumed only once the SVID may be issued
        const rec = await liveJoinToken(store, clock, path);
        if (!constantTimeEqual(rec.spiffe_id, id.toString())) {
          throw new StrongroomError(
            'permission_denied',
            `this join token is for another SPIFFE ID, not ${id}`,
          );
        }
        // a join token is an admin's grant of one SVID, registered ID or not; a registration's
        // networks and TTL bind it too (renewing the SVID it gets needs a registration)
        const reg = await registrations.registrationFor(rec.spiffe_id);
        if (reg && !registrations.fromAllowedNetwork(reg, ctx.request)) refuseNotEntitled(rec.spiffe_id);
        await consumeJoinToken(store, path);
        return reg;
      });
    },
  });

  /**
   * An X.509-SVID for a component of this server itself (the gateway's stages): no CSR and no
   * registration, since the key never left this process. Audited like any issuance.
   */
  async function issueSelf(spiffeId: string, publicKey: KeyObject, ttlSeconds: number) {
    const id = spiffeIdOf(spiffeId);
    if (id.trustDomain !== trustDomain) throw bad('invalid_value', `${spiffeId} is not in ${trustDomain}`);
    const c = await ca.signing();
    const leaf = await issueX509Svid({
      ca: { cert: c.signer.cert, privateKey: c.signer.privateKey },
      csrPublicKey: publicKey,
      spiffeId: id,
      ttlSeconds: Math.min(ttlSeconds, x509Max),
      now: clock.now(),
    });
    await deps.audit({
      type: 'response',
      request_id: `self-${leaf.serialNumber.toLowerCase()}`,
      operation: 'identity.x509-svid.self',
      action: 'identity.issue',
      resource: `Identity::${id}`,
      actor: null,
      client_address: '127.0.0.1',
      decision: { allowed: true, reason: 'issued to a component of this server' },
      request: { spiffe_id: id.toString(), serial: leaf.serialNumber.toLowerCase() },
      status: 'ok',
    });
    const maps = await bundles.trustMaps();
    const trusted = new Map<string, X509Certificate[]>();
    for (const [td, certs] of maps.x509)
      trusted.set(
        td,
        certs.map((x) => (x instanceof X509Certificate ? x : new X509Certificate(x as string))),
      );
    return { certificate: leaf.pem, bundles: trusted, expires_at: leaf.notAfter.toISOString() };
  }

  return { x509Svid, x509Join, issueSelf };
}
