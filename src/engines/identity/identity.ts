import { createHash, type KeyObject, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import type { Core } from '../../core/core.ts';
import { type Scope, scopeProblem, scopeWithin } from '../../core/scope.ts';
import type {
  AnyOperation,
  Identity,
  Operation,
  OperationContext,
  RequestInfo,
  Resource,
} from '../../core/types.ts';
import { constantTimeEqual, randomKey } from '../../crypto/random.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import { csrDer, parseCsr } from '../../spiffe/csr.ts';
import {
  buildCaCertificate,
  bundleMaps,
  exportPrivateKeyPem,
  generateEcKeyPair,
  ISSUANCE_BACKDATE_SECONDS,
  importPrivateKeyPem,
  isSpiffeError,
  issueX509Svid,
  type JwtAuthority,
  parseSpiffeBundle,
  parseSpiffeId,
  parseTrustDomain,
  publicKeyObject,
  type SpiffeBundle,
  type SpiffeBundleDocument,
  type SpiffeId,
  signJwtSvid,
  toKeyObject,
  toSpiffeBundle,
  validateCsr,
  verifyJwtSvid,
  verifyX509Svid,
} from '../../spiffe/index.ts';

/**
 * The identity engine (issue 6; docs/identity.md): a SPIFFE certificate
 * authority per Strongroom cluster. The CA keys and JWT signing keys live in
 * the barrier; registrations say which callers may obtain which SPIFFE ID;
 * join tokens let a new workload obtain its first SVID once; federated
 * bundles let SVIDs of other trust domains (e.g. a SPIRE server's) in.
 *
 * CA rotation keeps the old authority in the bundle until every SVID it
 * signed has expired (its `retire_at` = rotation time + the maximum SVID TTL).
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

const PREFIX = 'logical/identity/';
const MAX_SELECTORS = 16;
const SELECTOR_RE = /^(app|user|cidr|spiffe):(.{1,2048})$/;

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

/** A registration: who may obtain `spiffe_id`, and what a workload holding it may do. */
export interface Registration {
  id: string;
  spiffe_id: string;
  /** `app:NAME`, `user:NAME`, `cidr:10.0.0.0/8`, `spiffe:ID` (a workload holding that SVID). Any one entitles. */
  selectors: string[];
  /** Roles and scope of the workload when it calls this API with the SVID. */
  roles: string[];
  scope: Scope | null;
  /** Longest SVID issued for it, in seconds (0: the server maxima); bounds JWT-SVIDs too. */
  x509_ttl: number;
  created_at: string;
  created_by: string;
  /**
   * SVIDs of this ID issued before this time do not renew themselves: set when the ID was
   * unregistered and registered again, or re-registered without a selector it had (a holder may
   * have obtained it through that selector). Absent: every SVID of this ID may renew.
   */
  renewable_since?: string;
}

/** What is left of an unregistered ID: SVIDs issued before `at` never renew under a later registration. */
interface UnregisteredRecord {
  spiffe_id: string;
  at: string;
}

interface JoinRecord {
  spiffe_id: string;
  expires_at: string;
  created_by: string;
}

interface FederationRecord {
  trust_domain: string;
  /** The bundle (SPIFFE bundle JSON) as configured or last fetched. */
  bundle: string;
  bundle_url?: string;
  updated_at: string;
}

/** The loaded, parsed form of the CA record (keys as KeyObjects), cached per sequence. */
interface LoadedCa {
  sequence: number;
  trustDomain: string;
  signer: { cert: X509Certificate; privateKey: KeyObject; notAfter: number };
  x509Authorities: X509Certificate[];
  jwtSigner: { kid: string; privateKey: KeyObject };
  jwtAuthorities: JwtAuthority[];
  /** Retiring authorities are pruned after this time (ms). */
  nextPrune: number;
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

const sha = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');
const bad = (code: 'invalid_value' | 'invalid_csr' | 'invalid_svid', message: string) =>
  new StrongroomError(code, message);

function spiffeIdOf(text: string, what = 'spiffe_id'): SpiffeId {
  try {
    const id = parseSpiffeId(text);
    if (id.path === '') throw bad('invalid_value', `${what}: ${text} names a trust domain, not a workload`);
    return id;
  } catch (err) {
    if (err instanceof StrongroomError) throw err;
    throw bad('invalid_value', `${what}: ${(err as Error).message}`);
  }
}

const identityResource = (id: string, issuance = false): Resource => {
  const m = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(id);
  return {
    type: 'Identity',
    id,
    // issuance is bound by registrations (checked by the handler), not by token scopes
    attrs: {
      trust_domain: m?.[1] ?? '',
      path: m?.[2] ?? '',
      ...(issuance ? { entitlement_checked: true } : {}),
    },
  };
};

function ttlOf(v: string | number | undefined, fallback: number, max: number, what: string): number {
  if (v === undefined) return fallback;
  let s: number;
  try {
    s = parseDuration(v);
  } catch (err) {
    throw bad('invalid_value', `${what}: ${(err as Error).message}`);
  }
  if (s < 1 || s > max) throw bad('invalid_value', `${what} must be between 1 s and ${max} s`);
  return s;
}

/** An IPv4 or IPv6 network with a prefix length its family allows. */
function validCidr(cidr: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return false;
  const family = isIP(m[1]!);
  const bits = Number(m[2]);
  return (family === 4 && bits <= 32) || (family === 6 && bits <= 128);
}

/** Does `address` fall within `cidr` (IPv4 or IPv6)? */
function inCidr(address: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/');
  const toBytes = (a: string): number[] | undefined => {
    const v4 = a.replace(/^::ffff:/, '');
    if (/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return v4.split('.').map(Number);
    if (!a.includes(':')) return undefined;
    const [head, tail] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return groups.flatMap((g) => {
      const n = Number.parseInt(g, 16);
      return [n >> 8, n & 255];
    });
  };
  const a = toBytes(address);
  const n = toBytes(net ?? '');
  if (!a || !n || a.length !== n.length) return false;
  const bits = bitsText === undefined ? a.length * 8 : Number(bitsText);
  for (let i = 0; i < a.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
    if ((a[i]! & mask) !== (n[i]! & mask)) return false;
  }
  return true;
}

export function createIdentityEngine(core: Core, opts: IdentityOptions = {}): IdentityEngine {
  const store: BarrierStore = core.barrier.view(PREFIX);
  const trustDomain = parseTrustDomain(opts.trust_domain ?? 'strongroom.local');
  const caTtl = opts.ca_ttl_seconds ?? 365 * 86400;
  const x509Ttl = opts.x509_ttl_seconds ?? 3600;
  const x509Max = opts.x509_max_ttl_seconds ?? 86400;
  const jwtTtl = opts.jwt_ttl_seconds ?? 300;
  const jwtMax = opts.jwt_max_ttl_seconds ?? 3600;
  const apiAudience = opts.api_audience ?? 'strongroom';
  if (opts.issuer !== undefined && !/^https?:\/\/[^/\s?#]+/.test(opts.issuer)) {
    throw new TypeError(
      `identity: issuer must be an absolute http(s) URL, not ${JSON.stringify(opts.issuer)}`,
    );
  }
  /** The OIDC issuer: the configured one, else the URL of the listener the request came in on. */
  const issuerFor = (listener: string | undefined) => opts.issuer ?? listener;
  if (caTtl < 4 * x509Max) {
    throw new TypeError(
      `identity: ca_ttl (${caTtl} s) must be at least 4 times x509_svid_max_ttl (${x509Max} s)`,
    );
  }
  const now = () => core.clock.now();
  const iso = (ms = now()) => new Date(ms).toISOString();

  // ---------------------------------------------------------------- the CA

  async function newAuthority(at: number): Promise<Authority> {
    const keys = await generateEcKeyPair('P-256', { extractable: true });
    const notAfter = at + caTtl * 1000;
    const cert = await buildCaCertificate({ trustDomain, keys, notBefore: at - 60_000, notAfter });
    return {
      id: cert.serialNumber.toLowerCase(),
      cert_pem: cert.pem,
      key_pem: exportPrivateKeyPem(keys.privateKey),
      created_at: iso(at),
      not_after: iso(cert.notAfter.getTime()),
    };
  }

  async function newJwtKey(at: number): Promise<JwtKeyRecord> {
    const keys = await generateEcKeyPair('P-256', { extractable: true });
    return {
      kid: randomKey(12).toString('base64url'),
      key_pem: exportPrivateKeyPem(keys.privateKey),
      created_at: iso(at),
    };
  }

  /** Drops retired keys whose SVIDs have all expired. */
  function prune(rec: CaRecord, at: number): CaRecord {
    const live = <T extends { retire_at?: string }>(xs: T[]) =>
      xs.filter((x) => x.retire_at === undefined || Date.parse(x.retire_at) > at);
    return { ...rec, authorities: live(rec.authorities), jwt_keys: live(rec.jwt_keys) };
  }

  let loaded: LoadedCa | undefined;

  /** The CA, created on first use (in a transaction, so two servers agree on one). */
  async function ca(): Promise<LoadedCa> {
    const at = now();
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
    const current = prune(rec as CaRecord, at);
    const active = current.authorities.find((a) => a.retire_at === undefined);
    const activeJwt = current.jwt_keys.find((k) => k.retire_at === undefined);
    if (!active || !activeJwt) throw new StrongroomError('internal', 'the identity CA has no active key');
    const certOf = (a: Authority) => new X509Certificate(a.cert_pem);
    const retireTimes = [...current.authorities, ...current.jwt_keys]
      .map((x) => (x.retire_at ? Date.parse(x.retire_at) : Number.POSITIVE_INFINITY))
      .filter(Number.isFinite);
    const signerCert = certOf(active);
    loaded = {
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
    return loaded;
  }

  /** Adds a new CA and JWT key; with `ifSequence`, only if nobody (another server) rotated since. */
  async function rotateCa(ifSequence?: number): Promise<CaRecord> {
    const at = now();
    const authority = await newAuthority(at);
    const jwtKey = await newJwtKey(at);
    await ca(); // make sure one exists
    return store.transaction(async (tx) => {
      const rec = (await tx.getJson<CaRecord>('ca'))!;
      if (ifSequence !== undefined && rec.sequence !== ifSequence) return rec as CaRecord;
      // the old keys stay trusted until every SVID they signed has expired
      const x509RetireAt = iso(at + x509Max * 1000);
      const jwtRetireAt = iso(at + jwtMax * 1000);
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
   * The CA to sign with. The active CA is renewed while it can still sign a
   * full-length SVID, so leaves are never cut short by its expiry and it never
   * expires unnoticed; the old one stays in the bundle through the overlap.
   */
  async function signingCa(): Promise<LoadedCa> {
    const c = await ca();
    if (c.signer.notAfter - now() < 2 * x509Max * 1000) {
      await rotateCa(c.sequence);
      return ca();
    }
    return c;
  }

  // ---------------------------------------------------------------- federation

  async function federations(): Promise<FederationRecord[]> {
    const names = await store.list('federation/');
    const out: FederationRecord[] = [];
    for (const n of names) {
      const r = await store.getJson<FederationRecord>(n);
      if (r) out.push(r);
    }
    return out;
  }

  let federationCache: { at: number; bundles: SpiffeBundle[] } | undefined;
  async function federatedBundles(): Promise<SpiffeBundle[]> {
    if (federationCache && now() - federationCache.at < 5_000) return federationCache.bundles;
    const out: SpiffeBundle[] = [];
    for (const f of await federations()) {
      try {
        out.push(parseSpiffeBundle(f.bundle, f.trust_domain));
      } catch {
        // a bundle that no longer parses trusts nothing (fail closed)
      }
    }
    federationCache = { at: now(), bundles: out };
    return out;
  }

  /** X.509 and JWT authorities of every trusted trust domain: ours and the federated ones. */
  async function trustMaps() {
    const c = await ca();
    const own: SpiffeBundle = {
      trustDomain,
      x509Authorities: c.x509Authorities,
      jwtAuthorities: c.jwtAuthorities.map((a) => ({ kid: a.kid, publicKey: toKeyObject(a.publicKey) })),
      sequence: c.sequence,
      refreshHint: undefined,
    } as SpiffeBundle;
    return bundleMaps([own, ...(await federatedBundles())]);
  }

  function bundleDocument(c: LoadedCa) {
    return toSpiffeBundle({
      x509Authorities: c.x509Authorities,
      jwtAuthorities: c.jwtAuthorities,
      sequence: c.sequence,
      refreshHintSeconds: Math.max(60, Math.floor(x509Ttl / 2)),
    });
  }

  // ---------------------------------------------------------------- registrations and entitlement

  /** A workload SPIFFE ID of this server's trust domain (the only ones it registers and issues). */
  function ownId(text: string): SpiffeId {
    const id = spiffeIdOf(text);
    if (id.trustDomain !== trustDomain) {
      throw bad(
        'invalid_value',
        `spiffe_id: this server's trust domain is ${trustDomain}, not ${id.trustDomain}`,
      );
    }
    return id;
  }

  async function registrationFor(spiffeId: string): Promise<Registration | undefined> {
    return (await store.getJson<Registration>(`reg/${sha(spiffeId)}`)) as Registration | undefined;
  }

  function selectorMatches(sel: string, identity: Identity | undefined, request: RequestInfo): boolean {
    const m = SELECTOR_RE.exec(sel);
    if (!m) return false;
    const [, type, value] = m;
    if (type === 'cidr') return inCidr(request.client_address, value!);
    if (!identity) return false;
    if (type === 'app') return identity.owner.type === 'app' && identity.owner.name === value;
    if (type === 'user') return identity.owner.type === 'user' && identity.owner.name === value;
    if (type === 'spiffe') return identity.owner.type === 'workload' && identity.owner.id === value;
    return false;
  }

  /** When the SVID a workload authenticated with was issued (ms), by the identity it authenticated as. */
  const svidIssuedAt = new WeakMap<Identity, number>();

  /**
   * Is this workload's identity still alive as a source of new SVIDs? One of this trust domain needs
   * its own registration, and an SVID issued since that registration's `renewable_since` (issue 13:
   * unregistering ends an identity; it must not live on by renewing itself, or as a `spiffe:`
   * selector of another ID). A federated workload is vouched for by its trust domain's bundle.
   */
  async function liveWorkload(identity: Identity): Promise<boolean> {
    if (identity.owner.type !== 'workload') return false;
    const id = identity.owner.id;
    if (!id.startsWith(`spiffe://${trustDomain}/`)) return true;
    const reg = await registrationFor(id);
    if (!reg) return false;
    const issuedAt = svidIssuedAt.get(identity);
    const since = reg.renewable_since === undefined ? 0 : Date.parse(reg.renewable_since);
    return issuedAt !== undefined && issuedAt >= since;
  }

  /** Every `cidr` selector of the registration (if any) matches the caller's address. */
  function fromAllowedNetwork(reg: Registration, request: RequestInfo): boolean {
    const where = reg.selectors.filter((s) => s.startsWith('cidr:'));
    return where.length === 0 || where.some((s) => selectorMatches(s, undefined, request));
  }

  /**
   * The registration that entitles this caller to `spiffeId` now, or undefined: there must be a
   * registration for the ID (issue 13: deleting it ends the workload's identity at its next
   * issuance), the caller must come from a network its `cidr` selectors allow (they only narrow),
   * and either match one of its `app`/`user`/`spiffe` selectors or be the workload itself renewing,
   * a workload only while its own identity is alive (liveWorkload).
   */
  async function entitled(spiffeId: string, ctx: OperationContext): Promise<Registration | undefined> {
    const reg = await registrationFor(spiffeId);
    const who = ctx.identity;
    if (!reg || !who || !fromAllowedNetwork(reg, ctx.request)) return undefined;
    const self = who.owner.type === 'workload' && who.owner.id === spiffeId;
    const matches = reg.selectors.some((s) => !s.startsWith('cidr:') && selectorMatches(s, who, ctx.request));
    if (!self && !matches) return undefined;
    if (who.owner.type === 'workload' && !(await liveWorkload(who))) return undefined;
    return reg;
  }

  /** The longest SVID `reg` allows, within the server's maximum `max` (seconds). */
  const regMax = (reg: Registration | undefined, max: number) =>
    reg?.x509_ttl ? Math.min(reg.x509_ttl, max) : max;

  function refuseNotEntitled(spiffeId: string): never {
    throw new StrongroomError(
      'permission_denied',
      `not entitled to ${spiffeId}: register the caller for it first (strongroom identity register ${spiffeId} --app NAME)`,
    );
  }

  // ---------------------------------------------------------------- issuance

  async function issueX509(
    csr: string,
    requestedTtl: string | number | undefined,
    check: (id: SpiffeId) => Promise<Registration | undefined>,
  ) {
    const c = await signingCa();
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
      now: now(),
      dnsNames: validated.dnsNames,
    });
    const fed: Record<string, string[]> = {};
    for (const b of await federatedBundles()) fed[b.trustDomain] = b.x509Authorities.map((x) => x.toString());
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

  // ---------------------------------------------------------------- workload authentication

  /**
   * Verified JWT-SVIDs, until they expire: what the signature proved (the ID, when it was issued). The
   * registration (roles, scope) is read at every request, so a change reaches every server sharing
   * the storage at once; a change of trust (federation, CA rotation) clears this server's cache.
   */
  const jwtCache = new Map<string, { spiffeId: string; issuedAt: number; exp: number }>();
  const JWT_CACHE_MAX = 10_000;
  /** Verified client chains: a change of trust (CA rotation, federation) reaches them within X509_CACHE_MS. */
  const x509Cache = new Map<string, { spiffeId: string; issuedAt: number; until: number }>();
  const X509_CACHE_MAX = 10_000;
  const X509_CACHE_MS = 5_000;
  const chainKey = (chain: readonly Uint8Array[]) => {
    const h = createHash('sha256');
    for (const c of chain) h.update(c).update('\u0000');
    return h.digest('base64');
  };

  async function workloadIdentity(
    spiffeId: string,
    via: 'x509' | 'jwt',
    issuedAt: number,
  ): Promise<Identity> {
    const reg = await registrationFor(spiffeId);
    const roles = reg?.roles ?? [];
    const scope = reg?.scope ?? null;
    const identity: Identity = {
      kind: 'workload',
      // the accessor keys the decision cache: it changes with the roles and scope the registration grants
      accessor: `svid:${sha(`${spiffeId}\u0000${JSON.stringify(roles)}\u0000${JSON.stringify(scope)}`).slice(0, 32)}`,
      display_name: `${via === 'x509' ? 'x509-svid' : 'jwt-svid'}:${spiffeId}`,
      policies: roles,
      owner: { type: 'workload', id: spiffeId, name: spiffeId },
      scope,
      mfa: false,
    };
    svidIssuedAt.set(identity, issuedAt);
    return identity;
  }

  async function authenticate(request: RequestInfo): Promise<Identity | undefined> {
    const token = request.token;
    if (token && /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
      const key = sha(token);
      const hit = jwtCache.get(key);
      if (hit && hit.exp > now()) return await workloadIdentity(hit.spiffeId, 'jwt', hit.issuedAt);
      const maps = await trustMaps();
      let v: Awaited<ReturnType<typeof verifyJwtSvid>>;
      try {
        v = await verifyJwtSvid(token, { audience: apiAudience, bundles: maps.jwt, now: now() });
      } catch (err) {
        throw new StrongroomError('invalid_svid', `the JWT-SVID was refused: ${(err as Error).message}`);
      }
      // JWT-SVIDs of this server always carry iat; one without it never renews itself
      const iat = typeof v.claims.iat === 'number' ? v.claims.iat * 1000 : Number.NEGATIVE_INFINITY;
      if (jwtCache.size >= JWT_CACHE_MAX) jwtCache.clear();
      jwtCache.set(key, { spiffeId: v.spiffeId.toString(), issuedAt: iat, exp: v.expiresAt.getTime() });
      return await workloadIdentity(v.spiffeId.toString(), 'jwt', iat);
    }
    if (!token && request.peer_certificates?.length) {
      // a chain verified in the last few seconds is not verified again (a workload on a kept-alive
      // connection sends the same chain with every request); its expiry is still checked every time,
      // and the registration (roles, scope) is read every time
      const key = chainKey(request.peer_certificates);
      const hit = x509Cache.get(key);
      if (hit && now() < hit.until) return await workloadIdentity(hit.spiffeId, 'x509', hit.issuedAt);
      const maps = await trustMaps();
      try {
        const v = verifyX509Svid(request.peer_certificates, maps.x509, { now: now(), purpose: 'client' });
        // this CA backdates notBefore by ISSUANCE_BACKDATE_SECONDS (never earlier: it would only make
        // the SVID look older, so a renewal is refused rather than wrongly allowed)
        const issuedAt = v.certificate.validFromDate.getTime() + ISSUANCE_BACKDATE_SECONDS * 1000;
        if (x509Cache.size >= X509_CACHE_MAX) x509Cache.clear();
        x509Cache.set(key, {
          spiffeId: v.spiffeId.toString(),
          issuedAt,
          until: Math.min(v.notAfter.getTime(), now() + X509_CACHE_MS),
        });
        return await workloadIdentity(v.spiffeId.toString(), 'x509', issuedAt);
      } catch (err) {
        if (err instanceof StrongroomError) throw err;
        // which rule the certificate broke goes to the server log only (details.reason)
        throw new StrongroomError('invalid_svid', 'the client certificate was refused', {
          details: { reason: (err as Error).message },
        });
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------- operations

  type X509Input = { csr: string; ttl?: string | number };
  const x509Svid: Operation<X509Input, unknown> = {
    name: 'identity.x509-svid',
    action: 'identity.issue',
    auth: 'token',
    resource: (i) => identityResource(csrSpiffeId(i.csr), true),
    async handle(ctx, i) {
      return issueX509(
        i.csr,
        i.ttl,
        async (id) => (await entitled(id.toString(), ctx)) ?? refuseNotEntitled(id.toString()),
      );
    },
  };

  type JoinInput = { csr: string; join_token: string; ttl?: string | number };
  const x509Join: Operation<JoinInput, unknown> = {
    name: 'identity.x509-svid.join',
    action: 'identity.join',
    auth: 'none',
    resource: (i) => identityResource(csrSpiffeId(i.csr), true),
    async handle(ctx, i) {
      const invalid = () =>
        new StrongroomError(
          'invalid_join_token',
          'the join token is unknown, used or expired: ask for a new one',
        );
      if (!/^srj_[A-Za-z0-9_-]{43}$/.test(i.join_token)) throw invalid();
      const path = `join/${sha(i.join_token)}`;
      return issueX509(i.csr, i.ttl, async (id) => {
        // the token is checked before anything about the ID is said (no probing for registrations
        // without a live token), and consumed only once the SVID may be issued
        const rec = await store.getJson<JoinRecord>(path);
        if (!rec || Date.parse(rec.expires_at) <= now()) throw invalid();
        if (!constantTimeEqual(rec.spiffe_id, id.toString())) {
          throw new StrongroomError(
            'permission_denied',
            `this join token is for another SPIFFE ID, not ${id}`,
          );
        }
        // a join token is an admin's grant of one SVID, registered ID or not; a registration's
        // networks and TTL bind it too (renewing the SVID it gets needs a registration)
        const reg = await registrationFor(rec.spiffe_id);
        if (reg && !fromAllowedNetwork(reg, ctx.request)) refuseNotEntitled(rec.spiffe_id);
        // consumed in one transaction: of two concurrent uses, exactly one succeeds
        const consumed = await store.transaction(async (tx: BarrierWriter) => {
          if (!(await tx.get(path))) return false;
          await tx.delete(path);
          return true;
        });
        if (!consumed) throw invalid();
        return reg;
      });
    },
  };

  /** `listener`: the URL of the listener the request came in on (set by the HTTP adapter), for `iss`. */
  type JwtInput = { audience: string[]; spiffe_id?: string; ttl?: string | number; listener?: string };
  const jwtSvid: Operation<JwtInput, unknown> = {
    name: 'identity.jwt-svid',
    action: 'identity.issue',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id ?? 'spiffe://self/caller', true),
    async handle(ctx, i) {
      let id = i.spiffe_id;
      if (id === undefined) {
        if (ctx.identity?.owner.type === 'workload') id = ctx.identity.owner.id;
        else throw bad('invalid_value', 'spiffe_id: say which SPIFFE ID the JWT-SVID is for');
      }
      const sid = spiffeIdOf(id);
      if (sid.trustDomain !== trustDomain) {
        throw bad(
          'invalid_value',
          `spiffe_id: this server issues for ${trustDomain}, not ${sid.trustDomain}`,
        );
      }
      const reg = (await entitled(sid.toString(), ctx)) ?? refuseNotEntitled(sid.toString());
      if (i.audience.some((a) => a.length === 0 || a.length > 512)) {
        throw bad('invalid_value', 'audience: each entry is 1 to 512 characters');
      }
      const max = regMax(reg, jwtMax);
      const ttl = ttlOf(i.ttl, Math.min(jwtTtl, max), max, 'ttl');
      const issuer = issuerFor(i.listener);
      const c = await signingCa();
      const at = now();
      const token = await signJwtSvid({
        key: c.jwtSigner,
        spiffeId: sid,
        audience: i.audience,
        ttlSeconds: ttl,
        now: at,
        ...(issuer ? { issuer } : {}),
      });
      return { token, spiffe_id: sid.toString(), expires_at: iso(Math.floor(at / 1000) * 1000 + ttl * 1000) };
    },
  };

  const jwtValidate: Operation<{ token: string; audience: string }, unknown> = {
    name: 'identity.jwt-svid.validate',
    action: 'identity.validate',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle(_ctx, i) {
      const maps = await trustMaps();
      try {
        const v = await verifyJwtSvid(i.token, { audience: i.audience, bundles: maps.jwt, now: now() });
        return { spiffe_id: v.spiffeId.toString(), expires_at: v.expiresAt.toISOString(), claims: v.claims };
      } catch (err) {
        // 400, not 401: the caller is authenticated; the token it asks about is what is wrong
        throw bad('invalid_value', `the JWT-SVID is not valid: ${(err as Error).message}`);
      }
    },
  };

  const publicOp = (
    name: string,
    handle: () => Promise<unknown>,
  ): Operation<Record<string, never>, unknown> => ({
    name,
    action: 'identity.bundle',
    auth: 'none',
    resource: () => ({ type: 'System', id: 'identity' }),
    handle: () => handle(),
  });

  const bundle = publicOp('identity.bundle', async () => bundleDocument(await ca())); // Every bundle this server trusts, its own first, as SPIFFE bundle documents: what a relying party
  // (the agent's Workload API) needs to validate SVIDs of federated trust domains too. Not public, as
  // the own bundle is: it names the trust domains this one federates with. Any authenticated caller
  // may read it (identity.validate is granted to every principal and is outside token scopes).
  const trustBundles: Operation<Record<string, never>, unknown> = {
    name: 'identity.bundles',
    action: 'identity.validate',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle() {
      const entries: [string, SpiffeBundleDocument][] = [[trustDomain, bundleDocument(await ca())]];
      for (const b of await federatedBundles()) {
        if (b.trustDomain === trustDomain) continue;
        try {
          entries.push([
            b.trustDomain,
            toSpiffeBundle({
              x509Authorities: b.x509Authorities,
              jwtAuthorities: b.jwtAuthorities,
              sequence: b.sequence,
              refreshHintSeconds: b.refreshHint,
            }),
          ]);
        } catch {
          // a bundle that cannot be written back trusts nothing (fail closed), as one that does not parse
        }
      }
      // fromEntries: a trust domain named like an Object.prototype key stays an own key
      return { trust_domain: trustDomain, bundles: Object.fromEntries(entries) };
    },
  };

  const jwks = publicOp('identity.jwks', async () => {
    const doc = bundleDocument(await ca());
    // a plain JWKS for OIDC verifiers: only the JWT signing keys, with alg
    return {
      keys: doc.keys.filter((k) => k.use === 'jwt-svid').map((k) => ({ ...k, use: 'sig', alg: 'ES256' })),
    };
  });
  // OpenID Connect Discovery 1.0 §3-§4: `issuer` and `jwks_uri` are absolute URLs, and `issuer` is what
  // the JWT-SVIDs' `iss` says; with neither a configured issuer nor a listener of one address, say so
  const oidc: Operation<{ listener?: string }, unknown> = {
    name: 'identity.openid-configuration',
    action: 'identity.bundle',
    auth: 'none',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle(_ctx, i) {
      const issuer = issuerFor(i.listener);
      if (!issuer) {
        throw new StrongroomError(
          'not_found',
          'no OpenID configuration: identity.issuer is not set, and the listener has no one address to derive it from (it is bound to every interface); set identity.issuer to the URL relying parties reach this server at (e.g. https://vault.example.com)',
        );
      }
      return {
        issuer,
        jwks_uri: `${issuer.replace(/\/+$/, '')}/v1/identity/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
      };
    },
  };

  type RegInput = {
    spiffe_id: string;
    selectors: string[];
    roles?: string[];
    scope?: Scope;
    x509_ttl?: string | number;
  };
  const register: Operation<RegInput, unknown> = {
    name: 'identity.registration.create',
    action: 'identity.register',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id),
    async handle(ctx, i) {
      const id = ownId(i.spiffe_id);
      if (i.selectors.length === 0 || i.selectors.length > MAX_SELECTORS) {
        throw bad(
          'invalid_value',
          `selectors: give 1 to ${MAX_SELECTORS} (app:NAME, user:NAME, spiffe:ID, cidr:NET)`,
        );
      }
      for (const s of i.selectors) {
        const m = SELECTOR_RE.exec(s);
        if (!m)
          throw bad(
            'invalid_value',
            `selector ${JSON.stringify(s.slice(0, 80))}: use app:NAME, user:NAME, spiffe:ID or cidr:NET`,
          );
        if (m[1] === 'spiffe') spiffeIdOf(m[2]!, `selector ${s}`);
        if (m[1] === 'cidr' && !validCidr(m[2]!)) {
          throw bad('invalid_value', `selector ${s}: a network like 10.0.0.0/8 or fd00::/8`);
        }
      }
      if (!i.selectors.some((s) => !s.startsWith('cidr:'))) {
        throw bad(
          'invalid_value',
          'selectors: a cidr selector only narrows; add who (app:, user: or spiffe:)',
        );
      }
      const roles = i.roles ?? [];
      if (roles.includes('root')) throw bad('invalid_value', 'roles: a workload cannot hold root');
      // as for users and apps: nobody grants a role they do not hold (auth/users.ts checkGrantable)
      const held = ctx.identity?.policies ?? [];
      const extra =
        held.includes('root') || held.includes('admin') ? [] : roles.filter((r) => !held.includes(r));
      if (extra.length) {
        throw new StrongroomError(
          'permission_denied',
          `you cannot grant roles you do not hold yourself: ${extra.join(', ')}`,
        );
      }
      // both read secrets: app its own, gateway the provider keys it injects
      const reading = roles.find((r) => r === 'app' || r === 'gateway');
      if (reading && !i.scope) {
        throw bad(
          'invalid_value',
          `roles: a workload with the ${reading} role needs a scope (e.g. {"paths": ["myproj/prod"]})`,
        );
      }
      if (i.scope) {
        const problem = scopeProblem(i.scope);
        if (problem) throw bad('invalid_value', `scope: ${problem}`);
      }
      if (i.scope && ctx.identity?.scope && !scopeWithin(i.scope, ctx.identity.scope)) {
        throw new StrongroomError('permission_denied', 'scope: you cannot grant a scope wider than your own');
      }
      const who = (sels: readonly string[]) => sels.filter((s) => !s.startsWith('cidr:'));
      const selectors = [...new Set(i.selectors)];
      const base = {
        id: sha(id.toString()).slice(0, 16),
        spiffe_id: id.toString(),
        selectors,
        roles,
        scope: i.scope ?? null,
        x509_ttl: i.x509_ttl === undefined ? 0 : ttlOf(i.x509_ttl, 0, x509Max, 'x509_ttl'),
        created_at: iso(),
        created_by: ctx.identity?.display_name ?? 'unknown',
      };
      const key = sha(id.toString());
      const reg = await store.transaction(async (tx) => {
        const old = (await tx.getJson<Registration>(`reg/${key}`)) as Registration | undefined;
        const gone = (await tx.getJson<UnregisteredRecord>(`unreg/${key}`)) as UnregisteredRecord | undefined;
        // SVIDs issued under an earlier registration, or through a selector taken away, do not renew
        // themselves under this one (they must be obtained again through a selector it has)
        let since: string | undefined;
        if (old) {
          const kept = who(old.selectors).every((s) => selectors.includes(s));
          since = kept ? old.renewable_since : base.created_at;
        } else if (gone) {
          since = gone.at;
        }
        const next: Registration = since === undefined ? base : { ...base, renewable_since: since };
        await tx.put(`reg/${key}`, Buffer.from(JSON.stringify(next)));
        if (gone) await tx.delete(`unreg/${key}`);
        return next;
      });
      // workloads already seen take the new roles and scope at their next request (read at every one)
      return { registration: reg };
    },
  };

  const listRegs: Operation<Record<string, never>, unknown> = {
    name: 'identity.registration.list',
    action: 'identity.read',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle() {
      const out: Registration[] = [];
      for (const p of await store.list('reg/')) {
        const r = await store.getJson<Registration>(p);
        if (r) out.push(r as Registration);
      }
      out.sort((a, b) => a.spiffe_id.localeCompare(b.spiffe_id));
      return { registrations: out, trust_domain: trustDomain };
    },
  };

  /**
   * Deletes the registration and the ID's unused join tokens, and remembers when: no SVID is issued
   * for the ID from now on, and SVIDs issued before never renew themselves, even under a later
   * registration of the same ID. SVIDs already issued stay valid until they expire (docs/identity.md).
   */
  async function unregister(spiffeId: string): Promise<boolean> {
    const key = sha(spiffeId);
    const joins = await store.list('join/');
    const deleted = await store.transaction(async (tx) => {
      if (!(await tx.get(`reg/${key}`))) return false;
      await tx.delete(`reg/${key}`);
      const rec: UnregisteredRecord = { spiffe_id: spiffeId, at: iso() };
      await tx.put(`unreg/${key}`, Buffer.from(JSON.stringify(rec)));
      for (const p of joins) {
        const j = await tx.getJson<JoinRecord>(p);
        if (j?.spiffe_id === spiffeId) await tx.delete(p);
      }
      return true;
    });
    return deleted;
  }

  const deleteReg: Operation<{ spiffe_id: string }, unknown> = {
    name: 'identity.registration.delete',
    action: 'identity.register',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id),
    async handle(_ctx, i) {
      if (!(await unregister(spiffeIdOf(i.spiffe_id).toString())))
        throw new StrongroomError('not_found', `no registration for ${i.spiffe_id}`);
      return { deleted: i.spiffe_id };
    },
  };

  const joinToken: Operation<{ spiffe_id: string; ttl?: string | number }, unknown> = {
    name: 'identity.join-token.create',
    action: 'identity.register',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id),
    async handle(ctx, i) {
      const id = ownId(i.spiffe_id);
      const ttl = ttlOf(i.ttl, 600, 7 * 86400, 'ttl');
      const token = `srj_${randomKey(32).toString('base64url')}`;
      const rec: JoinRecord = {
        spiffe_id: id.toString(),
        expires_at: iso(now() + ttl * 1000),
        created_by: ctx.identity?.display_name ?? 'unknown',
      };
      // only a digest is stored: the token is shown once, here
      await store.put(`join/${sha(token)}`, Buffer.from(JSON.stringify(rec)));
      return { join_token: token, spiffe_id: rec.spiffe_id, expires_at: rec.expires_at };
    },
  };

  const caStatus: Operation<Record<string, never>, unknown> = {
    name: 'identity.ca.read',
    action: 'identity.read',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle() {
      const c = await ca();
      const rec = (await store.getJson<CaRecord>('ca'))!;
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
        x509_svid_ttl: x509Ttl,
        x509_svid_max_ttl: x509Max,
        jwt_svid_ttl: jwtTtl,
        jwt_api_audience: apiAudience,
      };
    },
  };

  const caRotate: Operation<Record<string, never>, unknown> = {
    name: 'identity.ca.rotate',
    action: 'identity.ca',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle() {
      const rec = await rotateCa();
      jwtCache.clear();
      return {
        sequence: rec.sequence,
        active: rec.authorities[0]!.id,
        retiring: rec.authorities
          .filter((a) => a.retire_at)
          .map((a) => ({ id: a.id, retire_at: a.retire_at })),
      };
    },
  };

  type FedInput = { trust_domain: string; bundle?: string; bundle_url?: string };
  const federate: Operation<FedInput, unknown> = {
    name: 'identity.federation.put',
    action: 'identity.federate',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle(_ctx, i) {
      let td: string;
      try {
        td = parseTrustDomain(i.trust_domain);
      } catch (err) {
        throw bad('invalid_value', `trust_domain: ${(err as Error).message}`);
      }
      if (td === trustDomain)
        throw bad('invalid_value', "trust_domain: that is this server's own trust domain");
      if ((i.bundle === undefined) === (i.bundle_url === undefined)) {
        throw bad('invalid_value', 'give exactly one of bundle (SPIFFE bundle JSON) and bundle_url');
      }
      let text = i.bundle;
      if (i.bundle_url !== undefined) {
        if (!/^https:\/\//.test(i.bundle_url)) throw bad('invalid_value', 'bundle_url: must be https://');
        try {
          const res = await fetch(i.bundle_url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          text = await res.text();
        } catch (err) {
          throw new StrongroomError(
            'provider_error',
            `cannot fetch ${i.bundle_url}: ${(err as Error).message}`,
          );
        }
      }
      let parsed: SpiffeBundle;
      try {
        parsed = parseSpiffeBundle(text!, td);
      } catch (err) {
        throw bad('invalid_value', `bundle: ${(err as Error).message}`);
      }
      const rec: FederationRecord = {
        trust_domain: td,
        bundle: text!,
        ...(i.bundle_url ? { bundle_url: i.bundle_url } : {}),
        updated_at: iso(),
      };
      await store.put(`federation/${td}`, Buffer.from(JSON.stringify(rec)));
      federationCache = undefined;
      // a key the new bundle no longer holds must stop vouching at once
      jwtCache.clear();
      return {
        trust_domain: td,
        x509_authorities: parsed.x509Authorities.length,
        jwt_authorities: parsed.jwtAuthorities.length,
        updated_at: rec.updated_at,
      };
    },
  };

  const federationList: Operation<Record<string, never>, unknown> = {
    name: 'identity.federation.list',
    action: 'identity.read',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle() {
      return {
        federations: (await federations()).map((f) => ({
          trust_domain: f.trust_domain,
          bundle_url: f.bundle_url ?? null,
          updated_at: f.updated_at,
        })),
      };
    },
  };

  const federationDelete: Operation<{ trust_domain: string }, unknown> = {
    name: 'identity.federation.delete',
    action: 'identity.federate',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'identity' }),
    async handle(_ctx, i) {
      let td: string;
      try {
        td = parseTrustDomain(i.trust_domain);
      } catch (err) {
        throw bad('invalid_value', `trust_domain: ${(err as Error).message}`);
      }
      const path = `federation/${td}`;
      if (!(await store.get(path)))
        throw new StrongroomError('not_found', `no federation with ${i.trust_domain}`);
      await store.delete(path);
      federationCache = undefined;
      jwtCache.clear();
      return { deleted: td };
    },
  };

  async function issueSelf(spiffeId: string, publicKey: KeyObject, ttlSeconds: number) {
    const id = spiffeIdOf(spiffeId);
    if (id.trustDomain !== trustDomain) throw bad('invalid_value', `${spiffeId} is not in ${trustDomain}`);
    const c = await signingCa();
    const leaf = await issueX509Svid({
      ca: { cert: c.signer.cert, privateKey: c.signer.privateKey },
      csrPublicKey: publicKey,
      spiffeId: id,
      ttlSeconds: Math.min(ttlSeconds, x509Max),
      now: now(),
    });
    await core.audit({
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
    const maps = await trustMaps();
    const bundles = new Map<string, X509Certificate[]>();
    for (const [td, certs] of maps.x509)
      bundles.set(
        td,
        certs.map((x) => (x instanceof X509Certificate ? x : new X509Certificate(x as string))),
      );
    return { certificate: leaf.pem, bundles, expires_at: leaf.notAfter.toISOString() };
  }

  return {
    trustDomain,
    issueSelf,
    operations: [
      x509Svid,
      x509Join,
      jwtSvid,
      jwtValidate,
      bundle,
      trustBundles,
      jwks,
      oidc,
      register,
      listRegs,
      deleteReg,
      joinToken,
      caStatus,
      caRotate,
      federate,
      federationList,
      federationDelete,
    ] as AnyOperation[],
    authenticate,
    unregister,
  };
}

/** The core module that registers the identity engine and lets the core authenticate workloads by SVID. */
export function identityModule(opts: IdentityOptions = {}, bind?: (engine: IdentityEngine) => void) {
  return (core: Core) => {
    const engine = createIdentityEngine(core, opts);
    core.workloadAuth = engine.authenticate;
    bind?.(engine);
    return engine.operations;
  };
}
