import { type KeyObject, X509Certificate } from 'node:crypto';
import * as api from '../../api/identity.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { implement } from '../../contract/operation.ts';
import { randomKey } from '../../crypto/random.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import {
  buildCaCertificate,
  exportPrivateKeyPem,
  generateEcKeyPair,
  importPrivateKeyPem,
  type JwtAuthority,
  publicKeyObject,
  type SpiffeBundleDocument,
  toKeyObject,
  toSpiffeBundle,
} from '../../spiffe/index.ts';
import { identitySystem, isoTime } from './inputs.ts';

/**
 * The certificate authority of the trust domain: its X.509 authorities and JWT
 * signing keys, kept in one barrier record (`ca`), rotated in a transaction.
 * CA rotation keeps the old authority in the bundle until every SVID it signed
 * has expired (its `retire_at` = rotation time + the maximum SVID TTL).
 */

interface Authority {
  id: string;
  cert_pem: string;
  key_pem: string;
  created_at: string;
  not_after: string;
  /** When set, no longer signs; dropped from the bundle after this time. */
  retire_at?: string;
}

interface JwtKeyRecord {
  kid: string;
  key_pem: string;
  created_at: string;
  retire_at?: string;
}

interface CaRecord {
  trust_domain: string;
  sequence: number;
  authorities: Authority[];
  jwt_keys: JwtKeyRecord[];
}

/** The loaded, parsed form of the CA record (keys as KeyObjects), cached per sequence. */
export interface LoadedCa {
  sequence: number;
  trustDomain: string;
  signer: { cert: X509Certificate; privateKey: KeyObject; notAfter: number };
  x509Authorities: X509Certificate[];
  jwtSigner: { kid: string; privateKey: KeyObject };
  jwtAuthorities: JwtAuthority[];
  /** Retiring authorities are pruned after this time (ms). */
  nextPrune: number;
}

/** The CA as the other parts of the engine use it. */
export interface CertificateAuthority {
  /** The CA, created on first use (in a transaction, so two servers agree on one). */
  current(): Promise<LoadedCa>;
  /** The CA to sign with: renewed first when it could no longer sign a full-length SVID. */
  signing(): Promise<LoadedCa>;
  /** Adds a new CA and JWT key; with `ifSequence`, only if nobody (another server) rotated since. */
  rotate(ifSequence?: number): Promise<CaRecord>;
  /** The stored record (every authority and JWT key, retiring ones included). */
  record(): Promise<Readonly<CaRecord>>;
}

export interface CaDeps {
  /** The engine's barrier view; the CA is its `ca` record. */
  store: BarrierStore;
  clock: Clock;
  trustDomain: string;
  /** Lifetime of a CA certificate, and the longest X.509- and JWT-SVIDs (seconds). */
  caTtl: number;
  x509Max: number;
  jwtMax: number;
}

/** Drops retired keys whose SVIDs have all expired. */
function prune(rec: CaRecord, at: number): CaRecord {
  const live = <T extends { retire_at?: string }>(xs: T[]) =>
    xs.filter((x) => x.retire_at === undefined || Date.parse(x.retire_at) > at);
  return { ...rec, authorities: live(rec.authorities), jwt_keys: live(rec.jwt_keys) };
}

/** The record parsed into key objects, with the time its next retiring key falls out. */
function load(rec: CaRecord, trustDomain: string, at: number): LoadedCa {
  const current = prune(rec, at);
  const active = current.authorities.find((a) => a.retire_at === undefined);
  const activeJwt = current.jwt_keys.find((k) => k.retire_at === undefined);
  if (!active || !activeJwt) throw new StrongroomError('internal', 'the identity CA has no active key');
  const certOf = (a: Authority) => new X509Certificate(a.cert_pem);
  const retireTimes = [...current.authorities, ...current.jwt_keys]
    .map((x) => (x.retire_at ? Date.parse(x.retire_at) : Number.POSITIVE_INFINITY))
    .filter(Number.isFinite);
  const signerCert = certOf(active);
  return {
    sequence: rec.sequence,
    trustDomain,
    signer: {
      cert: signerCert,
      privateKey: toKeyObject(importPrivateKeyPem(active.key_pem)),
      notAfter: Date.parse(signerCert.validTo),
    },
    x509Authorities: current.authorities.map(certOf),
    jwtSigner: { kid: activeJwt.kid, privateKey: toKeyObject(importPrivateKeyPem(activeJwt.key_pem)) },
    jwtAuthorities: current.jwt_keys.map((k) => ({
      kid: k.kid,
      publicKey: publicKeyObject(importPrivateKeyPem(k.key_pem)),
    })),
    nextPrune: retireTimes.length ? Math.min(...retireTimes) : Number.POSITIVE_INFINITY,
  };
}

export function createCertificateAuthority(deps: CaDeps): CertificateAuthority {
  const { store, clock, trustDomain, caTtl, x509Max, jwtMax } = deps;

  async function newAuthority(at: number): Promise<Authority> {
    const keys = await generateEcKeyPair('P-256', { extractable: true });
    const notAfter = at + caTtl * 1000;
    const cert = await buildCaCertificate({ trustDomain, keys, notBefore: at - 60_000, notAfter });
    return {
      id: cert.serialNumber.toLowerCase(),
      cert_pem: cert.pem,
      key_pem: exportPrivateKeyPem(keys.privateKey),
      created_at: isoTime(at),
      not_after: isoTime(cert.notAfter.getTime()),
    };
  }

  async function newJwtKey(at: number): Promise<JwtKeyRecord> {
    const keys = await generateEcKeyPair('P-256', { extractable: true });
    return {
      kid: randomKey(12).toString('base64url'),
      key_pem: exportPrivateKeyPem(keys.privateKey),
      created_at: isoTime(at),
    };
  }

  let loaded: LoadedCa | undefined;

  async function current(): Promise<LoadedCa> {
    const at = clock.now();
    let rec = await store.getJson<CaRecord>('ca');
    if (!rec || rec.trust_domain !== trustDomain) {
      const fresh: CaRecord = {
        trust_domain: trustDomain,
        sequence: 1,
        authorities: [await newAuthority(at)],
        jwt_keys: [await newJwtKey(at)],
      };
      rec = await store.transaction(async (tx) => {
        const existing = await tx.getJson<CaRecord>('ca');
        if (existing && existing.trust_domain === trustDomain) return existing;
        await tx.put('ca', Buffer.from(JSON.stringify(fresh)));
        return fresh;
      });
    }
    if (loaded && loaded.sequence === rec.sequence && at < loaded.nextPrune) return loaded;
    loaded = load(rec as CaRecord, trustDomain, at);
    return loaded;
  }

  async function rotate(ifSequence?: number): Promise<CaRecord> {
    const at = clock.now();
    const authority = await newAuthority(at);
    const jwtKey = await newJwtKey(at);
    await current(); // make sure one exists
    return store.transaction(async (tx) => {
      const rec = (await tx.getJson<CaRecord>('ca'))!;
      if (ifSequence !== undefined && rec.sequence !== ifSequence) return rec as CaRecord;
      // the old keys stay trusted until every SVID they signed has expired
      const x509RetireAt = isoTime(at + x509Max * 1000);
      const jwtRetireAt = isoTime(at + jwtMax * 1000);
      const next: CaRecord = prune(
        {
          trust_domain: rec.trust_domain,
          sequence: rec.sequence + 1,
          authorities: [
            authority,
            ...rec.authorities.map((a) => (a.retire_at ? a : { ...a, retire_at: x509RetireAt })),
          ],
          jwt_keys: [
            jwtKey,
            ...rec.jwt_keys.map((k) => (k.retire_at ? k : { ...k, retire_at: jwtRetireAt })),
          ],
        },
        at,
      );
      await tx.put('ca', Buffer.from(JSON.stringify(next)));
      return next;
    });
  }

  /**
   * The active CA is renewed while it can still sign a full-length SVID, so
   * leaves are never cut short by its expiry and it never expires unnoticed;
   * the old one stays in the bundle through the overlap.
   */
  async function signing(): Promise<LoadedCa> {
    const c = await current();
    if (c.signer.notAfter - clock.now() < 2 * x509Max * 1000) {
      await rotate(c.sequence);
      return current();
    }
    return c;
  }

  return {
    current,
    signing,
    rotate,
    record: async () => (await store.getJson<CaRecord>('ca'))!,
  };
}

/** The SPIFFE bundle document of this trust domain (RFC 7517 JWK set with SPIFFE members). */
export function bundleDocument(c: LoadedCa, x509Ttl: number): api.SpiffeBundleDocument {
  return wireBundle(
    toSpiffeBundle({
      x509Authorities: c.x509Authorities,
      jwtAuthorities: c.jwtAuthorities,
      sequence: c.sequence,
      refreshHintSeconds: Math.max(60, Math.floor(x509Ttl / 2)),
    }),
  );
}

/** The JWK members the wire names that are strings (node:crypto writes every public key member as one). */
const JWK_STRING_MEMBERS = [
  'n',
  'e',
  'x',
  'y',
  'crv',
  'use',
  'kid',
  'alg',
  'x5u',
  'x5t',
  'x5t#S256',
] as const;

/**
 * A bundle JWK as the wire types it (api/identity.ts `Jwk`): the spiffe library types a JWK's key
 * members as unknown (they come from node:crypto's export); these are its public members, copied.
 */
function wireJwk(k: SpiffeBundleDocument['keys'][number]): api.Jwk {
  const out: api.Jwk = { kty: k.kty };
  for (const m of JWK_STRING_MEMBERS) {
    const v = k[m];
    if (typeof v === 'string') out[m] = v;
  }
  if (k.x5c) out.x5c = [...k.x5c];
  const ops = k.key_ops;
  if (Array.isArray(ops) && ops.every((o) => typeof o === 'string')) out.key_ops = [...ops];
  return out;
}

/** A SPIFFE bundle document as the wire types it. */
export function wireBundle(doc: SpiffeBundleDocument): api.SpiffeBundleDocument {
  return {
    keys: doc.keys.map(wireJwk),
    ...(doc.spiffe_sequence === undefined ? {} : { spiffe_sequence: doc.spiffe_sequence }),
    ...(doc.spiffe_refresh_hint === undefined ? {} : { spiffe_refresh_hint: doc.spiffe_refresh_hint }),
  };
}

export interface CaOperationDeps {
  ca: CertificateAuthority;
  trustDomain: string;
  /** What `identity.ca.read` reports besides the keys (seconds; the JWT-SVID audience of this API). */
  settings: { x509Ttl: number; x509Max: number; jwtTtl: number; apiAudience: string };
  /** Called after a rotation: verified JWT-SVIDs must be verified again. */
  onTrustChange: () => void;
}

/** `identity.ca.read`, `identity.ca.rotate` and the public `identity.bundle`. */
export function caOperations(deps: CaOperationDeps) {
  const { ca, trustDomain, settings } = deps;

  const caStatus = implement(api.IdentityCaRead, {
    action: 'identity.read',
    auth: 'token',
    resource: identitySystem,
    async handle() {
      const c = await ca.current();
      const rec = await ca.record();
      return {
        trust_domain: trustDomain,
        sequence: c.sequence,
        authorities: rec.authorities.map((a) => ({
          id: a.id,
          created_at: a.created_at,
          not_after: a.not_after,
          retire_at: a.retire_at ?? null,
          active: a.retire_at === undefined,
        })),
        jwt_keys: rec.jwt_keys.map((k) => ({
          kid: k.kid,
          created_at: k.created_at,
          retire_at: k.retire_at ?? null,
          active: k.retire_at === undefined,
        })),
        x509_svid_ttl: settings.x509Ttl,
        x509_svid_max_ttl: settings.x509Max,
        jwt_svid_ttl: settings.jwtTtl,
        jwt_api_audience: settings.apiAudience,
      };
    },
  });

  const caRotate = implement(api.IdentityCaRotate, {
    action: 'identity.ca',
    auth: 'token',
    resource: identitySystem,
    async handle() {
      const rec = await ca.rotate();
      deps.onTrustChange();
      return {
        sequence: rec.sequence,
        active: rec.authorities[0]!.id,
        // every authority but the new one retires (the filter did not tell the type so)
        retiring: rec.authorities.flatMap((a) => (a.retire_at ? [{ id: a.id, retire_at: a.retire_at }] : [])),
      };
    },
  });

  const bundle = implement(api.IdentityBundle, {
    action: 'identity.bundle',
    auth: 'none',
    resource: identitySystem,
    handle: async () => bundleDocument(await ca.current(), settings.x509Ttl),
  });

  return { caStatus, caRotate, bundle };
}
