import type { KeyObject, X509Certificate } from 'node:crypto';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import type { VaultModule } from '../../contract/module.ts';
import type { AnyOperation, RequestInfo } from '../../contract/operation.ts';
import { parseTrustDomain } from '../../spiffe/index.ts';
import type { ClockPort } from '../ports.ts';
import { caOperations, createCertificateAuthority } from './ca.ts';
import { createTrustedBundles, federationOperations } from './federation.ts';
import { joinTokenOperation } from './join-tokens.ts';
import { jwtSvidOperations } from './jwt-svids.ts';
import { createRegistrations, registrationOperations, type SvidIssueTimes } from './registrations.ts';
import { createWorkloadAuth, type VerifiedJwts } from './workload-auth.ts';
import { type SelfIssueAudit, x509SvidOperations } from './x509-svids.ts';

/**
 * The identity engine (issue 6; docs/identity.md): a SPIFFE certificate
 * authority per Strongroom cluster. The CA keys and JWT signing keys live in
 * the barrier (ca.ts); registrations say which callers may obtain which SPIFFE
 * ID (registrations.ts); join tokens let a new workload obtain its first SVID
 * once (join-tokens.ts); federated bundles let SVIDs of other trust domains
 * (e.g. a SPIRE server's) in (federation.ts). This file composes the parts.
 */
export interface IdentityOptions {
  /** The trust domain this server is the CA of (default `strongroom.local`). */
  trust_domain?: string;
  /** Lifetime of a CA certificate (default 1 year). */
  ca_ttl_seconds?: number;
  /** Default and maximum X.509-SVID lifetimes (default 1 h and 24 h). */
  x509_ttl_seconds?: number;
  x509_max_ttl_seconds?: number;
  /** Default and maximum JWT-SVID lifetimes (default 5 min and 1 h). */
  jwt_ttl_seconds?: number;
  jwt_max_ttl_seconds?: number;
  /** The audience a JWT-SVID must name to authenticate to this server's API (default `strongroom`). */
  api_audience?: string;
  /**
   * Issuer URL for /.well-known/openid-configuration and the `iss` of JWT-SVIDs (default: derived
   * from the listener that serves the request; none when it listens on every interface).
   */
  issuer?: string;
}

export interface IdentityEngine {
  operations: AnyOperation[];
  /** The trust domain this server is the CA of. */
  readonly trustDomain: string;
  /**
   * Issues an X.509-SVID to a component of this server itself (the gateway's
   * stages): no CSR and no registration, since the key never left this process.
   * Audited like any issuance.
   */
  issueSelf(
    spiffeId: string,
    publicKey: KeyObject,
    ttlSeconds: number,
  ): Promise<{ certificate: string; bundles: Map<string, X509Certificate[]>; expires_at: string }>;
  /** Authenticates a request by its client certificate chain or a JWT-SVID bearer token (undefined: neither). */
  authenticate(request: RequestInfo): Promise<Identity | undefined>;
  /**
   * Removes the registration of `spiffeId` (what a workload may do: its roles and scope), as
   * `identity unregister` does; false when there was none. The AI gateway revokes a compromised
   * workload this way (docs/decisions/0010-firewall-oracle.md).
   */
  unregister(spiffeId: string): Promise<boolean>;
}

const PREFIX = 'logical/identity/';

/** The options with their defaults, checked: a misconfiguration fails at start-up. */
function settingsOf(opts: IdentityOptions) {
  const s = {
    trustDomain: parseTrustDomain(opts.trust_domain ?? 'strongroom.local'),
    caTtl: opts.ca_ttl_seconds ?? 365 * 86400,
    x509Ttl: opts.x509_ttl_seconds ?? 3600,
    x509Max: opts.x509_max_ttl_seconds ?? 86400,
    jwtTtl: opts.jwt_ttl_seconds ?? 300,
    jwtMax: opts.jwt_max_ttl_seconds ?? 3600,
    apiAudience: opts.api_audience ?? 'strongroom',
    issuer: opts.issuer,
  };
  if (opts.issuer !== undefined && !/^https?:\/\/[^/\s?#]+/.test(opts.issuer)) {
    throw new TypeError(
      `identity: issuer must be an absolute http(s) URL, not ${JSON.stringify(opts.issuer)}`,
    );
  }
  if (s.caTtl < 4 * s.x509Max) {
    throw new TypeError(
      `identity: ca_ttl (${s.caTtl} s) must be at least 4 times x509_svid_max_ttl (${s.x509Max} s)`,
    );
  }
  return s;
}

/** What the identity engine needs: its barrier view, the clock, and the core's audit of SVIDs it issues to itself. */
export type IdentityDeps = ClockPort & {
  audit(entry: SelfIssueAudit): Promise<void>;
};

function createIdentityEngine(
  deps: IdentityDeps,
  store: BarrierStore,
  opts: IdentityOptions = {},
): IdentityEngine {
  const clock = deps.clock;
  const s = settingsOf(opts);
  const { trustDomain } = s;
  const verifiedJwts: VerifiedJwts = new Map();
  const onTrustChange = () => verifiedJwts.clear();
  const svidIssuedAt: SvidIssueTimes = new WeakMap();

  const ca = createCertificateAuthority({
    store,
    clock,
    trustDomain,
    caTtl: s.caTtl,
    x509Max: s.x509Max,
    jwtMax: s.jwtMax,
  });
  const bundles = createTrustedBundles({ store, clock, trustDomain, ca });
  const registrations = createRegistrations({ store, clock, trustDomain, svidIssuedAt });
  const authenticate = createWorkloadAuth({
    clock,
    apiAudience: s.apiAudience,
    trustMaps: bundles.trustMaps,
    registrationFor: registrations.registrationFor,
    svidIssuedAt,
    verifiedJwts,
  });
  const x509 = x509SvidOperations({
    store,
    clock,
    trustDomain,
    ca,
    bundles,
    registrations,
    x509Ttl: s.x509Ttl,
    x509Max: s.x509Max,
    audit: (entry: SelfIssueAudit) => deps.audit(entry),
  });
  const jwt = jwtSvidOperations({
    clock,
    trustDomain,
    ca,
    bundles,
    registrations,
    jwtTtl: s.jwtTtl,
    jwtMax: s.jwtMax,
    x509Ttl: s.x509Ttl,
    issuer: s.issuer,
  });
  const regs = registrationOperations({ store, clock, trustDomain, x509Max: s.x509Max, registrations });
  const caOps = caOperations({
    ca,
    trustDomain,
    settings: { x509Ttl: s.x509Ttl, x509Max: s.x509Max, jwtTtl: s.jwtTtl, apiAudience: s.apiAudience },
    onTrustChange,
  });
  const fed = federationOperations({
    store,
    clock,
    trustDomain,
    ca,
    bundles,
    x509Ttl: s.x509Ttl,
    onTrustChange,
  });
  const { joinToken } = joinTokenOperation({ store, clock, trustDomain });

  return {
    trustDomain,
    issueSelf: x509.issueSelf,
    operations: [
      x509.x509Svid,
      x509.x509Join,
      jwt.jwtSvid,
      jwt.jwtValidate,
      caOps.bundle,
      fed.trustBundles,
      jwt.jwks,
      jwt.oidc,
      regs.register,
      regs.listRegs,
      regs.deleteReg,
      joinToken,
      caOps.caStatus,
      caOps.caRotate,
      fed.federate,
      fed.federationList,
      fed.federationDelete,
    ] as AnyOperation[],
    authenticate,
    unregister: registrations.unregister,
  };
}

/**
 * The core module of the identity engine: registers its operations and hands the engine to `bind`
 * (the assembler gives its `authenticate` to the core, which then authenticates workloads by SVID).
 */
export function identityModule(
  opts: IdentityOptions = {},
  bind?: (engine: IdentityEngine) => void,
): VaultModule<IdentityDeps, BarrierStore> {
  return {
    name: 'identity',
    mount: PREFIX,
    operations(deps, store) {
      const engine = createIdentityEngine(deps, store, opts);
      bind?.(engine);
      return engine.operations;
    },
  };
}
