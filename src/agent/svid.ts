// biome-ignore-all lint/style/noExcessiveLinesPerFile: the agent's SVID manager with its HTTP issuer and CSR building
import { createHash, KeyObject, type X509Certificate } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/files.ts';
import { createClient, type TokenSource } from '../sdk/client.ts';
import {
  type CryptoKeyPair,
  generateEcKeyPair,
  type JwtAuthority,
  parsePemCertificates,
  parseSpiffeBundle,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeError,
  toSpiffeBundle,
  verifyJwtSvid,
} from '../spiffe/index.ts';
import { x509 } from '../spiffe/peculiar.ts';

/**
 * The agent's SVID manager (docs/workload-api.md): holds an ECDSA P-256 key
 * in memory, has the vault sign a CSR for the configured SPIFFE ID with the
 * agent's session token, rotates the X.509-SVID at half its lifetime (with a
 * fresh key, retrying with jittered backoff on failure, keeping the current
 * one until it expires), keeps the trust bundles current, caches JWT-SVIDs
 * per audience set until half their lifetime, validates JWT-SVIDs against the
 * bundle, and tells subscribers (the Workload API streams) about every change.
 * Optionally writes the SVID, its key and the bundle to files, atomically.
 */

// ---------------------------------------------------------------- the issuer

/** The vault's answer to `POST /v1/identity/x509-svid`. */
export interface X509SvidAnswer {
  spiffe_id: string;
  /** PEM: the leaf first, then any intermediates. */
  certificate: string;
  /** PEM CA certificates of the SVID's trust domain. */
  bundle: string[];
  /** PEM CA certificates of federated trust domains, by trust domain name (or its `spiffe://` ID). */
  federated_bundles?: Record<string, string[]>;
  expires_at: string;
}

/**
 * The vault's answer to `GET /v1/identity/bundles`: the SPIFFE bundle document
 * of every trust domain it trusts, its own and the federated ones, keyed by
 * trust domain name (or its `spiffe://` ID).
 */
export interface TrustBundlesAnswer {
  trust_domain: string;
  bundles: Record<string, unknown>;
}

/** The vault's answer to `POST /v1/identity/jwt-svid`. */
export interface JwtSvidAnswer {
  token: string;
  spiffe_id: string;
  expires_at: string;
}

/**
 * Where SVIDs come from: the vault's identity API, or a stub in tests. An
 * error with a numeric `status` from 400 to 499 (except 408 and 429) means the
 * vault refused (the app is not registered for the ID, the token was
 * revoked); anything else is an outage worth retrying.
 */
export interface SvidIssuer {
  /** Signs a PEM CSR into an X.509-SVID (`POST /v1/identity/x509-svid`); `ttl` in seconds. */
  x509Svid(req: { csr: string; ttl?: number }): Promise<X509SvidAnswer>;
  /** Mints a JWT-SVID (`POST /v1/identity/jwt-svid`). */
  jwtSvid(req: { audience: string[]; spiffe_id: string; ttl?: number }): Promise<JwtSvidAnswer>;
  /** The trust domain's SPIFFE bundle document (`GET /v1/identity/bundle`). */
  bundle(): Promise<unknown>;
  /**
   * Every bundle the vault trusts, its own and the federated ones (`GET /v1/identity/bundles`).
   * Optional: without it, or when the vault answers 404 (a vault that does not serve it), the agent
   * knows its own bundle and the federated X.509 authorities each X.509-SVID answer carries, and no
   * federated JWT authorities.
   */
  bundles?(): Promise<TrustBundlesAnswer>;
}

/** The identity API of a Strongroom server, called with the agent's session token. */
export function createHttpSvidIssuer(opts: {
  addrs: readonly string[];
  token: TokenSource;
  fetch?: typeof fetch;
}): SvidIssuer {
  const client = createClient({
    addr: opts.addrs,
    token: opts.token,
    timeoutMs: 10_000,
    deadlineMs: 15_000,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  return {
    x509Svid: (req) => client.request<X509SvidAnswer>('POST', '/v1/identity/x509-svid', req),
    jwtSvid: (req) => client.request<JwtSvidAnswer>('POST', '/v1/identity/jwt-svid', req),
    bundle: () => client.request<unknown>('GET', '/v1/identity/bundle'),
    bundles: () => client.request<TrustBundlesAnswer>('GET', '/v1/identity/bundles'),
  };
}

/** True when the issuer refused (a 4xx other than 408/429): retrying soon will not help. */
export function isRefusal(err: unknown): boolean {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

// ---------------------------------------------------------------- the manager

/** An X.509-SVID with its private key, ready to hand to a workload. */
export interface X509Svid {
  readonly spiffeId: string;
  /** Leaf first. */
  readonly chain: readonly X509Certificate[];
  /** The chain's DER certificates, concatenated (the Workload API's `x509_svid`). */
  readonly chainDer: Buffer;
  readonly chainPem: string;
  /** Unencrypted PKCS#8 DER (the Workload API's `x509_svid_key`). */
  readonly keyDer: Buffer;
  readonly keyPem: string;
  /** ms since epoch */
  readonly notBefore: number;
  readonly notAfter: number;
  /** When it arrived and when it is due for rotation (ms since epoch). */
  readonly receivedAt: number;
  readonly rotateAt: number;
}

/** The trust bundles known to the agent. */
export interface TrustBundles {
  /** The agent's own trust domain. */
  readonly trustDomain: string;
  /** X.509 authorities by trust domain name: its own and the federated ones. */
  readonly x509: ReadonlyMap<string, readonly X509Certificate[]>;
  /** JWT authorities by trust domain name: its own and the federated ones the vault serves. */
  readonly jwt: ReadonlyMap<string, readonly JwtAuthority[]>;
  /** The JWK Set of each trust domain's JWT authorities (`use: "jwt-svid"` keys only). */
  readonly jwks: ReadonlyMap<string, string>;
}

/** A cached JWT-SVID. */
export interface JwtSvid {
  readonly spiffeId: string;
  readonly token: string;
  /** ms since epoch */
  readonly expiresAt: number;
}

/** `x509`: the SVID rotated or expired; `bundles`: a trust bundle changed. */
export type SvidEvent = 'x509' | 'bundles';

/** What /healthz and /metrics say about the SVID. */
export interface SvidStatus {
  /** `starting` (none yet), `ok`, `expired` (rotation kept failing), `denied` (the vault refuses). */
  readonly state: 'starting' | 'ok' | 'expired' | 'denied';
  readonly spiffeId: string;
  /** Expiry of the current SVID (ms since epoch; null: none). */
  readonly expiresAt: number | null;
  readonly rotations: number;
  readonly lastError: string | undefined;
}

export interface SvidManagerOptions {
  /** The SPIFFE ID the agent's app is registered for. */
  spiffeId: string;
  source: SvidIssuer;
  /** X.509-SVID lifetime to ask for (seconds; default: the vault's). */
  ttlSeconds?: number;
  /** Write `svid.pem`, `svid_key.pem` (0600) and `bundle.pem` here on every change. */
  files?: { dir: string };
  /** Fail at the first error instead of retrying (init container). */
  once?: boolean;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
  /** Wall clock in ms (default Date.now). */
  clock?: () => number;
  /** Delays between retries: first, doubled each time, capped (default 1 s and 30 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * The longest wait between two bundle refreshes, whatever the vault's refresh hint (default 30 s):
   * how late a federation added or removed at the vault reaches the Workload API's streams.
   */
  bundleRefreshMaxMs?: number;
}

export interface SvidManager {
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Resolves once the first X.509-SVID is in hand; with `once`, rejects at the first failure. */
  readonly ready: Promise<void>;
  /** The SVID to hand out (undefined before the first one and after it expired unrenewed). */
  current(): X509Svid | undefined;
  /** The SVID the last rotation replaced, until it expires (connections made with it still use it). */
  previous(): X509Svid | undefined;
  /** The trust bundles (undefined until one has arrived). */
  bundles(): TrustBundles | undefined;
  status(): SvidStatus;
  /** Calls `fn` after every change; returns the unsubscribe function. */
  subscribe(fn: (event: SvidEvent) => void): () => void;
  /** A JWT-SVID for this audience set, from the cache until half its lifetime has passed. */
  jwtSvid(audience: readonly string[]): Promise<JwtSvid>;
  /** Validates a JWT-SVID for `audience` against the JWT bundles (JWT-SVID.md Appendix A). */
  validateJwtSvid(
    token: string,
    audience: string,
  ): Promise<{ spiffeId: string; claims: Record<string, unknown> }>;
  /** Stops rotating; the SVIDs stay readable. */
  stop(): void;
}

const MIN_ROTATE_MS = 250;
const BUNDLE_REFRESH_DEFAULT_S = 300;
const BUNDLE_REFRESH_MIN_S = 5;
const BUNDLE_REFRESH_MAX_S = 3600;
/** The vault's refresh hint follows its CA's lifetime; federation changes at any time, so poll at least this often. */
const BUNDLE_REFRESH_CAP_MS = 30_000;
/**
 * A JWT-SVID of another trust domain is validated against federation state at most this old (the
 * vault's own federation cache lives as long), so a federation removed at the vault stops vouching
 * at the agent within seconds; a refresh for it is awaited at most FEDERATION_WAIT_MS.
 */
const FEDERATION_FRESH_MS = 5_000;
const FEDERATION_WAIT_MS = 1_500;
const JWT_CACHE_MAX = 256;
/** A refetch of the bundle for an unknown kid happens at most this often. */
const KID_REFRESH_MS = 5_000;

const describe = (err: unknown): string => (err as Error)?.message ?? String(err);

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

/** PEM of certificates, one after another. */
function certificatesPem(certs: readonly X509Certificate[]): string {
  return certs.map((c) => pem('CERTIFICATE', c.raw)).join('');
}

/** A CSR for `spiffeId` (its only SAN, a URI, X509-SVID.md §2), signed with the key pair. */
export async function buildSvidCsr(spiffeId: string, keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  return csr.toString('pem');
}

const fingerprint = (parts: readonly (Uint8Array | string)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
};

/** The trust domain of a JWT's `sub`, read without verifying anything (undefined when there is none). */
function subjectTrustDomain(token: string): string | undefined {
  if (typeof token !== 'string' || token.length > 64 * 1024) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof payload?.sub === 'string' ? parseSpiffeId(payload.sub).trustDomain : undefined;
  } catch {
    return undefined;
  }
}

/** Creates the SVID manager and starts fetching. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the SVID manager: fetching, renewal timers, backoff and listeners share the current SVID and key kept in this closure
export function createSvidManager(opts: SvidManagerOptions): SvidManager {
  const id = parseSpiffeId(opts.spiffeId);
  if (id.path === '') throw new TypeError(`${opts.spiffeId} is a trust domain ID; an SVID's ID needs a path`);
  const spiffeId = id.toString();
  const trustDomain = id.trustDomain;
  const clock = opts.clock ?? Date.now;
  const log = opts.log ?? (() => {});
  const retryMin = opts.retryMinMs ?? 1_000;
  const retryMax = opts.retryMaxMs ?? 30_000;
  const source = opts.source;

  let stopped = false;
  let svid: X509Svid | undefined;
  let prev: X509Svid | undefined;
  let rotations = 0;
  let lastError: string | undefined;
  let refused = false;
  let x509Timer: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let prevTimer: NodeJS.Timeout | undefined;
  let bundleTimer: NodeJS.Timeout | undefined;
  let x509Failures = 0;
  let bundleFailures = 0;
  const subscribers = new Set<(e: SvidEvent) => void>();

  // trust state: own X.509 roots (latest of the SVID answer and the bundle document), own JWT keys, and
  // the federated trust domains' authorities. Federation comes from two answers: each X.509-SVID answer
  // (X.509 authorities only) and the bundles answer (both kinds). Each fetch takes a number when it
  // starts; an answer older than the federation state already applied is not applied, so a slow answer
  // cannot bring back a federation a newer one removed.
  let ownRoots: X509Certificate[] | undefined;
  let jwtAuthorities: { kid: string; publicKey: KeyObject }[] | undefined;
  let federatedX509 = new Map<string, X509Certificate[]>();
  let federatedJwt = new Map<string, { kid: string; publicKey: KeyObject }[]>();
  let fetches = 0;
  let federationFetch = 0;
  let lastFederationAttempt = Number.NEGATIVE_INFINITY;
  let olderVaultLogged = false;
  const refreshCapMs = opts.bundleRefreshMaxMs ?? BUNDLE_REFRESH_CAP_MS;
  let bundlesView: TrustBundles | undefined;
  let bundlesPrint = '';
  let lastKidRefresh = 0;

  let resolveReady!: () => void;
  let rejectReady!: (err: unknown) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => {}); // a caller that never awaits it must not crash the process

  function emit(e: SvidEvent) {
    for (const fn of [...subscribers]) {
      try {
        fn(e);
      } catch (err) {
        log('an SVID subscriber failed', { error: describe(err) });
      }
    }
  }

  const backoff = (failures: number) =>
    Math.min(retryMax, retryMin * 2 ** Math.max(0, failures - 1)) * (0.5 + Math.random() / 2);

  function timer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  }

  // ---- bundles

  function rebuildBundles() {
    if (!ownRoots && !jwtAuthorities) return;
    const x509Map = new Map<string, X509Certificate[]>();
    if (ownRoots) x509Map.set(trustDomain, ownRoots);
    for (const [td, certs] of federatedX509) if (td !== trustDomain) x509Map.set(td, certs);
    const jwt = new Map<string, JwtAuthority[]>();
    const jwks = new Map<string, string>();
    // JWT bundles carry only jwt-svid keys (SPIFFE_Workload_API.md §6.2.2), of every trust domain
    // trusted: the own one and the federated ones
    const addJwt = (td: string, authorities: { kid: string; publicKey: KeyObject }[]) => {
      jwt.set(td, authorities);
      jwks.set(td, JSON.stringify(toSpiffeBundle({ x509Authorities: [], jwtAuthorities: authorities })));
    };
    if (jwtAuthorities) addJwt(trustDomain, jwtAuthorities);
    for (const [td, authorities] of federatedJwt) if (td !== trustDomain) addJwt(td, authorities);
    const print = fingerprint([
      ...[...x509Map].flatMap(([td, certs]) => [td, ...certs.map((c) => c.raw)]),
      ...[...jwks].flat(),
    ]);
    if (print === bundlesPrint) return;
    bundlesPrint = print;
    bundlesView = Object.freeze({ trustDomain, x509: x509Map, jwt, jwks });
    if (svid || ownRoots) void writeFiles('bundle');
    emit('bundles');
  }

  /**
   * Applies federated authorities from an answer whose fetch started as number `fetch`. `jwt`
   * undefined: the answer carried X.509 authorities only (an X.509-SVID answer), so the JWT
   * authorities of trust domains still federated are kept and those of the others dropped.
   */
  function applyFederation(
    fetch: number,
    x509Map: Map<string, X509Certificate[]>,
    jwt: Map<string, { kid: string; publicKey: KeyObject }[]> | undefined,
  ) {
    if (fetch <= federationFetch) return;
    federationFetch = fetch;
    federatedX509 = x509Map;
    federatedJwt = jwt ?? new Map([...federatedJwt].filter(([td]) => x509Map.has(td)));
  }

  /** Parses the bundles answer: the own trust domain's bundle (required), and every federated one that parses. */
  function parseBundlesAnswer(answer: TrustBundlesAnswer) {
    const docs = answer?.bundles;
    if (typeof docs !== 'object' || docs === null) {
      throw new SpiffeError('invalid_bundle', 'the vault sent no bundles');
    }
    let own: ReturnType<typeof parseSpiffeBundle> | undefined;
    const x509Map = new Map<string, X509Certificate[]>();
    const jwt = new Map<string, { kid: string; publicKey: KeyObject }[]>();
    for (const [key, doc] of Object.entries(docs)) {
      let td: string;
      try {
        td = parseTrustDomain(key);
      } catch {
        log('ignoring a bundle with an invalid trust domain name', { trust_domain: key.slice(0, 100) });
        continue;
      }
      if (td === trustDomain) {
        own = parseSpiffeBundle(doc as object, trustDomain);
        continue;
      }
      try {
        const b = parseSpiffeBundle(doc as object, td);
        x509Map.set(td, [...b.x509Authorities]);
        jwt.set(
          td,
          b.jwtAuthorities.map((a) => ({ kid: a.kid, publicKey: a.publicKey })),
        );
      } catch (err) {
        // a bundle that does not parse trusts nothing (fail closed for that trust domain only)
        log('ignoring the federated bundle of a trust domain', { trust_domain: td, error: describe(err) });
      }
    }
    if (!own) throw new SpiffeError('invalid_bundle', `the vault sent no bundle for ${trustDomain}`);
    return { own, x509Map, jwt };
  }

  /** The own bundle, and the federated ones when the vault serves them. */
  async function fetchBundles() {
    if (source.bundles) {
      try {
        return parseBundlesAnswer(await source.bundles());
      } catch (err) {
        if ((err as { status?: unknown } | null)?.status !== 404) throw err;
        if (!olderVaultLogged) {
          olderVaultLogged = true;
          log(
            'the vault serves no federated bundles (GET /v1/identity/bundles: 404): JWT bundles hold this trust domain only',
          );
        }
      }
    }
    return { own: parseSpiffeBundle((await source.bundle()) as object, trustDomain) };
  }

  /** Fetches the bundles (one fetch at a time; callers share it); on failure schedules a retry. Never throws. */
  let bundleFetch: Promise<void> | undefined;
  function refreshBundle(): Promise<void> {
    bundleFetch ??= doRefreshBundle().finally(() => {
      bundleFetch = undefined;
    });
    return bundleFetch;
  }

  async function doRefreshBundle(): Promise<void> {
    clearTimeout(bundleTimer);
    if (stopped) return;
    let hint = BUNDLE_REFRESH_DEFAULT_S;
    lastFederationAttempt = clock();
    const fetch = ++fetches;
    try {
      const got = await fetchBundles();
      const b = got.own;
      if (b.x509Authorities.length > 0) ownRoots = [...b.x509Authorities];
      jwtAuthorities = b.jwtAuthorities.map((a) => ({ kid: a.kid, publicKey: a.publicKey }));
      if (b.refreshHint !== undefined) hint = b.refreshHint;
      if ('jwt' in got) applyFederation(fetch, got.x509Map, got.jwt);
      bundleFailures = 0;
      rebuildBundles();
    } catch (err) {
      bundleFailures++;
      log('cannot fetch the trust bundle', { error: describe(err) });
      if (!stopped) bundleTimer = timer(() => void refreshBundle(), backoff(bundleFailures));
      return;
    }
    if (stopped) return;
    const s = Math.min(BUNDLE_REFRESH_MAX_S, Math.max(BUNDLE_REFRESH_MIN_S, hint));
    bundleTimer = timer(() => void refreshBundle(), Math.min(s * 1000, refreshCapMs));
  }

  // ---- X.509-SVIDs

  async function fetchX509(): Promise<X509Svid> {
    const fetch = ++fetches;
    const keys = await generateEcKeyPair('P-256');
    const csr = await buildSvidCsr(spiffeId, keys);
    const answer = await source.x509Svid({
      csr,
      ...(opts.ttlSeconds === undefined ? {} : { ttl: opts.ttlSeconds }),
    });
    if (answer.spiffe_id !== spiffeId) {
      throw new SpiffeError(
        'invalid_svid',
        `the vault issued an SVID for ${answer.spiffe_id}, not for ${spiffeId}`,
      );
    }
    const chain = parsePemCertificates(answer.certificate);
    const leaf = chain[0];
    if (!leaf) throw new SpiffeError('invalid_svid', 'the vault answered without a certificate');
    const privateKey = KeyObject.from(keys.privateKey);
    // the certificate must certify the key this agent generated
    if (!leaf.publicKey.equals(KeyObject.from(keys.publicKey))) {
      throw new SpiffeError('invalid_svid', 'the issued certificate does not hold the requested key');
    }
    const roots = answer.bundle.flatMap((p) => parsePemCertificates(p));
    if (roots.length > 0) ownRoots = roots;
    const fed = new Map<string, X509Certificate[]>();
    for (const [td, pems] of Object.entries(answer.federated_bundles ?? {})) {
      fed.set(
        parseTrustDomain(td),
        pems.flatMap((p) => parsePemCertificates(p)),
      );
    }
    applyFederation(fetch, fed, undefined);
    const now = clock();
    const notBefore = leaf.validFromDate.getTime();
    const notAfter = leaf.validToDate.getTime();
    // Half the lifetime, counted from arrival: issuers backdate notBefore (clock skew), which
    // would otherwise make a short-lived SVID due for rotation the moment it arrives.
    const start = Math.max(notBefore, Math.min(now, notAfter));
    const rotateAt = start + Math.max(MIN_ROTATE_MS, (notAfter - start) / 2);
    const keyDer = privateKey.export({ format: 'der', type: 'pkcs8' });
    return Object.freeze({
      spiffeId,
      chain: Object.freeze(chain),
      chainDer: Buffer.concat(chain.map((c) => c.raw)),
      chainPem: certificatesPem(chain),
      keyDer,
      keyPem: pem('PRIVATE KEY', keyDer),
      notBefore,
      notAfter,
      receivedAt: now,
      rotateAt,
    });
  }

  async function rotate(): Promise<void> {
    clearTimeout(x509Timer);
    if (stopped) return;
    try {
      const next = await fetchX509();
      if (stopped) return;
      if (svid) {
        const replaced = svid;
        prev = replaced;
        clearTimeout(prevTimer);
        prevTimer = timer(() => {
          if (prev === replaced) prev = undefined;
        }, replaced.notAfter - clock());
        rotations++;
      }
      svid = next;
      x509Failures = 0;
      refused = false;
      lastError = undefined;
      clearTimeout(expiryTimer);
      expiryTimer = timer(onExpiry, next.notAfter - clock());
      x509Timer = timer(() => void rotate(), next.rotateAt - clock());
      log(rotations === 0 ? 'obtained an X.509-SVID' : 'rotated the X.509-SVID', {
        spiffe_id: spiffeId,
        expires_at: new Date(next.notAfter).toISOString(),
      });
      rebuildBundles();
      // the answer carried the federated X.509 authorities of this moment: bring the JWT ones level
      if (clock() - lastFederationAttempt >= 1_000) void refreshBundle();
      await writeFiles('svid');
      emit('x509');
      resolveReady();
    } catch (err) {
      x509Failures++;
      lastError = describe(err);
      refused = isRefusal(err);
      log('cannot obtain an X.509-SVID', { spiffe_id: spiffeId, error: lastError });
      if (opts.once) {
        rejectReady(err);
        return;
      }
      // never wait past a quarter of what is left of the current SVID
      const left = svid ? svid.notAfter - clock() : Number.POSITIVE_INFINITY;
      x509Timer = timer(
        () => void rotate(),
        Math.min(backoff(x509Failures), Math.max(MIN_ROTATE_MS, left / 4)),
      );
    }
  }

  function onExpiry() {
    if (!svid || clock() < svid.notAfter) return;
    log('the X.509-SVID expired before it could be renewed', { spiffe_id: spiffeId, error: lastError });
    emit('x509');
  }

  /** Writes the files; the bundle first (so the new CA is trusted first), then the key, then the chain. */
  let writing: Promise<void> = Promise.resolve();
  function writeFiles(what: 'svid' | 'bundle'): Promise<void> {
    const files = opts.files;
    if (!files) return Promise.resolve();
    writing = writing.then(async () => {
      try {
        mkdirSync(files.dir, { recursive: true, mode: 0o700 });
        const roots = bundlesView?.x509.get(trustDomain) ?? ownRoots;
        if (roots) await writeFileAtomic(join(files.dir, 'bundle.pem'), certificatesPem(roots), 0o644);
        if (what === 'svid' && svid) {
          await writeFileAtomic(join(files.dir, 'svid_key.pem'), svid.keyPem, 0o600);
          await writeFileAtomic(join(files.dir, 'svid.pem'), svid.chainPem, 0o644);
        }
      } catch (err) {
        log('cannot write the SVID files', { dir: files.dir, error: describe(err) });
      }
    });
    return writing;
  }

  // ---- JWT-SVIDs

  interface CachedJwt extends JwtSvid {
    refreshAt: number;
  }
  const jwtCache = new Map<string, CachedJwt>();
  const jwtInFlight = new Map<string, Promise<JwtSvid>>();

  async function jwtSvid(audience: readonly string[]): Promise<JwtSvid> {
    const aud = [...new Set(audience)].sort();
    if (aud.length === 0 || aud.some((a) => typeof a !== 'string' || a === '')) {
      throw new TypeError('a JWT-SVID needs at least one non-empty audience');
    }
    const key = JSON.stringify(aud);
    const now = clock();
    const hit = jwtCache.get(key);
    if (hit && now < hit.refreshAt) return hit;
    let pending = jwtInFlight.get(key);
    if (!pending) {
      pending = (async () => {
        try {
          const answer = await source.jwtSvid({ audience: aud, spiffe_id: spiffeId });
          if (answer.spiffe_id !== spiffeId) {
            throw new SpiffeError(
              'invalid_jwt',
              `the vault issued a JWT-SVID for ${answer.spiffe_id}, not for ${spiffeId}`,
            );
          }
          const receivedAt = clock();
          const expiresAt = Date.parse(answer.expires_at);
          if (!Number.isFinite(expiresAt)) throw new SpiffeError('invalid_jwt', 'the vault sent no expiry');
          const entry: CachedJwt = {
            spiffeId,
            token: answer.token,
            expiresAt,
            refreshAt: receivedAt + (expiresAt - receivedAt) / 2,
          };
          jwtCache.delete(key);
          jwtCache.set(key, entry);
          if (jwtCache.size > JWT_CACHE_MAX) {
            for (const [k, v] of jwtCache) if (v.expiresAt <= receivedAt) jwtCache.delete(k);
            while (jwtCache.size > JWT_CACHE_MAX) jwtCache.delete(jwtCache.keys().next().value!);
          }
          return { spiffeId, token: entry.token, expiresAt };
        } finally {
          jwtInFlight.delete(key);
        }
      })();
      jwtInFlight.set(key, pending);
    }
    try {
      return await pending;
    } catch (err) {
      // a still-valid token beats none while the vault is unreachable
      if (hit && clock() < hit.expiresAt - 1_000 && !isRefusal(err)) {
        return { spiffeId, token: hit.token, expiresAt: hit.expiresAt };
      }
      throw err;
    }
  }

  async function validateJwtSvid(token: string, audience: string) {
    // a token of another trust domain is judged against recent federation state (FEDERATION_FRESH_MS)
    const td = subjectTrustDomain(token);
    if (td !== undefined && td !== trustDomain && clock() - lastFederationAttempt >= FEDERATION_FRESH_MS) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        refreshBundle(),
        new Promise<void>((r) => {
          t = setTimeout(r, FEDERATION_WAIT_MS);
        }),
      ]);
      clearTimeout(t);
    }
    const attempt = async () => {
      const b = bundlesView;
      if (!b || b.jwt.size === 0) throw new SpiffeError('untrusted', 'no JWT bundle has been received yet');
      return verifyJwtSvid(token, { audience, bundles: b.jwt, now: clock() });
    };
    let v: Awaited<ReturnType<typeof verifyJwtSvid>>;
    try {
      v = await attempt();
    } catch (err) {
      // a key added since the last refresh: fetch the bundle once and try again
      const now = clock();
      if (
        err instanceof SpiffeError &&
        (err.code === 'unknown_key' ||
          (err.code === 'untrusted' && (!bundlesView || (td !== undefined && td !== trustDomain)))) &&
        now - lastKidRefresh >= KID_REFRESH_MS
      ) {
        lastKidRefresh = now;
        await refreshBundle();
        v = await attempt();
      } else {
        throw err;
      }
    }
    return { spiffeId: v.spiffeId.toString(), claims: { ...v.claims } as Record<string, unknown> };
  }

  // ---- start

  void refreshBundle();
  void rotate();

  return {
    spiffeId,
    trustDomain,
    ready,
    current() {
      return svid && clock() < svid.notAfter ? svid : undefined;
    },
    previous() {
      return prev && clock() < prev.notAfter ? prev : undefined;
    },
    bundles: () => bundlesView,
    status() {
      const cur = svid && clock() < svid.notAfter ? svid : undefined;
      return {
        state: cur ? 'ok' : refused ? 'denied' : svid ? 'expired' : 'starting',
        spiffeId,
        expiresAt: cur?.notAfter ?? null,
        rotations,
        lastError,
      };
    },
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
    jwtSvid,
    validateJwtSvid,
    stop() {
      stopped = true;
      for (const t of [x509Timer, expiryTimer, prevTimer, bundleTimer]) clearTimeout(t);
      subscribers.clear();
    },
  };
}
