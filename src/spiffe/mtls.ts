// biome-ignore-all lint/style/noExcessiveLinesPerFile: the mTLS library of the published strongroom/mtls entry point: server, agent and their shared SVID checks
import { randomBytes, type X509Certificate } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { Agent, type buildConnector, Dispatcher } from 'undici';
import { quote, SpiffeError } from './errors.ts';
import type { SvidMaterial, SvidSource } from './svid-source.ts';
import { MAX_CHAIN_LENGTH, type VerifiedX509Svid, verifyX509Svid, type X509Bundles } from './x509-svid.ts';

/**
 * Mutual TLS between workloads by the SPIFFE rules (X509-SVID.md §5): each
 * side presents its X.509-SVID and checks the other's against the bundle of
 * the peer's own trust domain, never against host names. TLS 1.3 only.
 *
 * - createMtlsServer: a node:https server that verifies the client's SVID,
 *   authorizes its SPIFFE ID on every request and swaps its own SVID on rotation;
 * - mtlsAgent: an undici Dispatcher (for fetch / undici.request) that
 *   presents the current SVID and checks the server's ID;
 * - mtlsHttpsAgent: the same for node:https.
 *
 * See docs/mtls.md.
 */

/** A peer whose X.509-SVID verified. */
export interface MtlsPeer {
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Uppercase hex serial of the peer's leaf. */
  readonly serialNumber: string;
  /** The leaf's expiry: requests after it are refused. */
  readonly notAfter: Date;
  readonly certificate: X509Certificate;
}

function toPeer(v: VerifiedX509Svid): MtlsPeer {
  return Object.freeze({
    spiffeId: v.spiffeId.toString(),
    trustDomain: v.trustDomain,
    serialNumber: v.certificate.serialNumber,
    notAfter: v.notAfter,
    certificate: v.certificate,
  });
}

/** The certificates the peer presented, leaf first, as DER, and the leaf's SHA-256 fingerprint. */
function peerChain(socket: TLSSocket): { chain: Buffer[]; fingerprint: string } {
  const leaf = socket.getPeerCertificate(true);
  if (!leaf?.raw) return { chain: [], fingerprint: '' };
  const chain = [leaf.raw];
  const seen = new Set([leaf.fingerprint256]);
  let next = leaf.issuerCertificate;
  while (next?.raw && !seen.has(next.fingerprint256) && chain.length < MAX_CHAIN_LENGTH) {
    chain.push(next.raw);
    seen.add(next.fingerprint256);
    next = next.issuerCertificate;
  }
  return { chain, fingerprint: leaf.fingerprint256 };
}

/** The TLS context options of a workload presenting `svid`. The key is exported only into OpenSSL. */
function identityOptions(svid: SvidMaterial): tls.SecureContextOptions {
  return {
    cert: svid.chainPem,
    key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
  };
}

// ---------------------------------------------------------------- server

/** Decides, per request, whether a verified peer may be served. An exception is a refusal. */
export type MtlsAuthorize = (peer: MtlsPeer, req: IncomingMessage) => boolean | Promise<boolean>;

/** Why a request was refused, for logs and audit (never holds key material). */
export interface MtlsRefusal {
  /** 401: no valid SVID; 403: a valid SVID that `authorize` refused. */
  readonly status: 401 | 403;
  /** The SpiffeError code (`invalid_svid`, `expired`, `untrusted`, ...) or `not_authorized`. */
  readonly reason: string;
  readonly message: string;
  readonly spiffeId?: string;
  readonly remoteAddress?: string;
}

export interface MtlsServerOptions {
  /** This server's identity, and the bundles its clients are checked against. */
  source: SvidSource;
  /** Called on every request with the verified client; false (or a throw) refuses it with 403. */
  authorize: MtlsAuthorize;
  /** Clock in ms (tests move it); Date.now by default. */
  now?: () => number;
  /** Told of each refused request. */
  onRefused?: (refusal: MtlsRefusal) => void;
  /**
   * Further node:https options (timeouts, header limits...). The TLS settings
   * this module owns (cert, key, ca, requestCert, rejectUnauthorized,
   * minVersion, maxVersion, ticketKeys) are overwritten.
   */
  serverOptions?: https.ServerOptions;
}

interface PeerState {
  readonly bundles: X509Bundles;
  readonly chain: readonly Buffer[];
  readonly peer?: MtlsPeer;
  readonly error?: Error;
  /** ms; past it the SVID is verified again (and found expired). */
  readonly validUntil: number;
}

const peers = new WeakMap<IncomingMessage, MtlsPeer>();
const MAX_REMEMBERED_CHAINS = 1024;

/** The verified and authorized client of a request served by createMtlsServer (undefined for any other request). */
export function peerOf(req: IncomingMessage): MtlsPeer | undefined {
  return peers.get(req);
}

/**
 * What a refused client is told. Which rule its certificate broke is for the
 * server's log (onRefused): told to the client, it guides an attacker forging
 * certificates one check at a time. Its own state (no certificate, an expired
 * one) it may learn.
 */
function clientReason(state: { chain: readonly Buffer[] }, reason: string): string {
  if (state.chain.length === 0) return 'a valid X.509-SVID is required: no certificate was presented';
  if (reason === 'expired')
    return 'a valid X.509-SVID is required: the presented certificate chain has expired';
  if (reason === 'not_yet_valid')
    return 'a valid X.509-SVID is required: the presented certificate chain is not valid yet';
  return 'a valid X.509-SVID of a trusted trust domain is required: the client certificate was refused';
}

function refuse(res: ServerResponse, status: 401 | 403, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  // the connection's identity is what failed, so the connection goes too
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/**
 * An https.Server (not yet listening) that serves only clients holding a
 * valid X.509-SVID of a trusted trust domain whose SPIFFE ID `authorize`
 * accepts:
 *
 * - TLS 1.3 only; a client certificate is requested. The TLS layer does not
 *   judge it (rejectUnauthorized: false): verifyX509Svid against the source's
 *   current bundles does, once per connection and again whenever the bundles
 *   change or the SVID's notAfter passes, so an identity that expires on an
 *   open keep-alive connection is refused on its next request (401).
 * - `authorize(peer, req)` runs on every request: a peer that it starts
 *   refusing (revoked) is refused on its next request (403).
 *   Refusals answer `{"error":{"code","message"}}` and close the connection;
 *   which X.509-SVID rule a certificate broke goes to onRefused only.
 * - When the source rotates, the server's own SVID is swapped with
 *   setSecureContext: new handshakes use it, open connections are kept.
 *
 * The handler reads the client with `peerOf(req)`.
 */
export function createMtlsServer(options: MtlsServerOptions, handler: RequestListener): https.Server {
  const { source, authorize } = options;
  if (!source || typeof source.current !== 'function')
    throw new TypeError('createMtlsServer: source is required');
  if (typeof authorize !== 'function') throw new TypeError('createMtlsServer: authorize must be a function');
  if (typeof handler !== 'function') throw new TypeError('createMtlsServer: a request handler is required');
  const now = options.now ?? Date.now;
  // one set of ticket keys for the server's life, so session resumption survives context swaps
  const ticketKeys = randomBytes(48);
  const contextOptions = (svid: SvidMaterial): tls.SecureContextOptions => ({
    ...identityOptions(svid),
    ticketKeys,
  });
  const states = new WeakMap<TLSSocket, PeerState>();
  // A resumed session gives the server back the client's leaf but not its intermediates: keep the chains
  // seen on full handshakes, by leaf fingerprint, so a resumed connection verifies like the first one.
  const chains = new Map<string, Buffer[]>();
  const chainOf = (socket: TLSSocket): Buffer[] => {
    const { chain, fingerprint } = peerChain(socket);
    if (chain.length > 1) {
      chains.delete(fingerprint);
      if (chains.size >= MAX_REMEMBERED_CHAINS) chains.delete(chains.keys().next().value!);
      chains.set(fingerprint, chain);
    } else if (chain.length === 1 && socket.isSessionReused()) {
      return chains.get(fingerprint) ?? chain;
    }
    return chain;
  };

  const peerState = (socket: TLSSocket, at: number): PeerState => {
    const bundles = source.current().bundles;
    const prev = states.get(socket);
    if (prev && prev.bundles === bundles && (prev.error || at <= prev.validUntil)) return prev;
    const chain = prev?.chain ?? chainOf(socket);
    let next: PeerState;
    try {
      const v = verifyX509Svid(chain, bundles, { now: at, purpose: 'client' });
      next = { bundles, chain, peer: toPeer(v), validUntil: v.notAfter.getTime() };
    } catch (err) {
      next = { bundles, chain, error: err as Error, validUntil: Number.NEGATIVE_INFINITY };
    }
    states.set(socket, next);
    return next;
  };

  /** `message` (specific) goes to onRefused; the client gets `clientMessage` when given. */
  const refused = (
    req: IncomingMessage,
    res: ServerResponse,
    status: 401 | 403,
    reason: string,
    message: string,
    clientMessage: string = message,
    spiffeId?: string,
  ): void => {
    options.onRefused?.({
      status,
      reason,
      message,
      ...(spiffeId !== undefined ? { spiffeId } : {}),
      ...(req.socket.remoteAddress !== undefined ? { remoteAddress: req.socket.remoteAddress } : {}),
    });
    refuse(res, status, status === 401 ? 'unauthenticated' : 'permission_denied', clientMessage);
  };

  const serve = (req: IncomingMessage, res: ServerResponse, peer: MtlsPeer, allowed: unknown): void => {
    if (allowed !== true) {
      refused(
        req,
        res,
        403,
        'not_authorized',
        `the SPIFFE ID ${quote(peer.spiffeId)} is not authorized`,
        undefined,
        peer.spiffeId,
      );
      return;
    }
    peers.set(req, peer);
    handler(req, res);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const state = peerState(req.socket as TLSSocket, now());
    if (!state.peer) {
      const err = state.error;
      const reason = err instanceof SpiffeError ? err.code : 'invalid_svid';
      const why = err instanceof SpiffeError ? err.message : 'the client certificate could not be verified';
      refused(req, res, 401, reason, `a valid X.509-SVID is required: ${why}`, clientReason(state, reason));
      return;
    }
    const peer = state.peer;
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = authorize(peer, req);
    } catch {
      serve(req, res, peer, false);
      return;
    }
    if (verdict instanceof Promise) {
      verdict.then(
        (ok) => serve(req, res, peer, ok),
        () => serve(req, res, peer, false),
      );
    } else {
      serve(req, res, peer, verdict);
    }
  };

  const server = https.createServer(
    {
      ...options.serverOptions,
      ...contextOptions(source.current()),
      ca: undefined,
      requestCert: true,
      // the SPIFFE verification above decides, not OpenSSL's CA-only check
      rejectUnauthorized: false,
    },
    onRequest,
  );
  const unsubscribe = source.onUpdate((svid) => server.setSecureContext(contextOptions(svid)));
  server.once('close', unsubscribe);
  return server;
}

// ---------------------------------------------------------------- clients

/**
 * Who the server must be: one SPIFFE ID, a list, or a predicate given the ID
 * and the origin (`https://host:port`).
 */
export type ExpectedServer = string | readonly string[] | ((spiffeId: string, origin: string) => boolean);

function expectation(expect: ExpectedServer): {
  test: (id: string, origin: string) => boolean;
  text: string;
} {
  if (typeof expect === 'string') return { test: (id) => id === expect, text: quote(expect) };
  if (Array.isArray(expect)) {
    const set = new Set<string>(expect);
    return { test: (id) => set.has(id), text: `one of ${expect.map((e) => quote(e)).join(', ')}` };
  }
  if (typeof expect === 'function')
    return { test: (id, origin) => expect(id, origin) === true, text: 'the expected ID' };
  throw new TypeError('expect must be a SPIFFE ID, a list of them, or a function');
}

interface ClientOptions {
  /** This client's identity, and the bundles servers are checked against. */
  source: SvidSource;
  /** The server's expected SPIFFE ID(s). Any other verified ID fails the request. */
  expect: ExpectedServer;
  /** Clock in ms (tests move it); Date.now by default. */
  now?: () => number;
  /** TCP + TLS handshake limit (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Told of each server verified on a new connection. */
  onConnect?: (peer: MtlsPeer, origin: string) => void;
  /** Resume TLS sessions on new connections (default true; false forces a full handshake each time). */
  sessionResumption?: boolean;
}

interface CachedSession {
  readonly session: Buffer;
  /** The server as verified on the connection that issued the session. */
  readonly peer: MtlsPeer;
}

const MAX_CACHED_SESSIONS = 100;

/** State for the connections opened with one SVID. */
interface Generation {
  readonly svid: SvidMaterial;
  readonly context: SecureContext;
  readonly sessions: Map<string, CachedSession>;
  /** ms: the earliest notAfter of a server SVID verified on this generation's connections. */
  refreshAt: number;
}

function newGeneration(svid: SvidMaterial): Generation {
  return {
    svid,
    context: tls.createSecureContext(identityOptions(svid)),
    sessions: new Map(),
    refreshAt: Number.POSITIVE_INFINITY,
  };
}

/**
 * Opens a TLS 1.3 connection presenting the generation's SVID and calls back
 * only once the server's SVID verified and matched `expect`, so no request
 * byte reaches an unverified server. Resumes sessions of this generation
 * whose server SVID is still valid.
 */
function connectVerified(
  gen: Generation,
  target: { host: string; port: number; servername?: string; localAddress?: string },
  options: ClientOptions,
  check: ReturnType<typeof expectation>,
  callback: (err: Error | null, socket: TLSSocket | null) => void,
): void {
  const now = options.now ?? Date.now;
  const host = target.host.replace(/^\[(.*)\]$/, '$1');
  const origin = `https://${isIP(host) === 6 ? `[${host}]` : host}:${target.port}`;
  const servername = target.servername || (isIP(host) ? undefined : host);
  const key = `${origin}|${servername ?? ''}`;
  let offered = options.sessionResumption === false ? undefined : gen.sessions.get(key);
  if (offered && now() > offered.peer.notAfter.getTime()) {
    gen.sessions.delete(key);
    offered = undefined;
  }
  const session = offered?.session;

  let done = false;
  let peer: MtlsPeer | undefined;
  let pendingSession: Buffer | undefined;
  const remember = (s: Buffer): void => {
    if (options.sessionResumption === false) return;
    if (!peer) {
      pendingSession = s;
      return;
    }
    gen.sessions.delete(key);
    if (gen.sessions.size >= MAX_CACHED_SESSIONS) gen.sessions.delete(gen.sessions.keys().next().value!);
    gen.sessions.set(key, { session: s, peer });
  };
  const socket = tls.connect({
    host,
    port: target.port,
    ...(servername !== undefined ? { servername } : {}),
    ...(target.localAddress ? { localAddress: target.localAddress } : {}),
    secureContext: gen.context,
    // the SPIFFE verification below decides; OpenSSL's CA and host name checks do not apply (X509-SVID.md §5)
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
    ...(session ? { session } : {}),
  });
  const finish = (err: Error | null): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.off('error', finish);
    if (err) {
      socket.destroy();
      callback(err, null);
    } else {
      callback(null, socket);
    }
  };
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const timer = setTimeout(
    () => finish(new Error(`connecting to ${origin} took longer than ${timeoutMs} ms`)),
    timeoutMs,
  );
  socket.on('session', remember);
  socket.once('error', finish);
  socket.once('secureConnect', () => {
    const at = now();
    try {
      if (socket.isSessionReused()) {
        // TLS 1.3 resumption (RFC 8446 §2.2): the server proved it holds the secret of a session
        // whose SVID we verified; OpenSSL does not hand that certificate back on the client side
        if (!offered || offered.session !== session) {
          throw new SpiffeError(
            'untrusted',
            `the server at ${origin} resumed a session this client did not offer`,
          );
        }
        if (at > offered.peer.notAfter.getTime()) {
          throw new SpiffeError('expired', `the SVID of the server at ${origin} has expired`);
        }
        peer = offered.peer;
      } else {
        try {
          peer = toPeer(
            verifyX509Svid(peerChain(socket).chain, gen.svid.bundles, { now: at, purpose: 'server' }),
          );
        } catch (err) {
          if (!(err instanceof SpiffeError)) throw err;
          throw new SpiffeError(err.code, `the server at ${origin} has no valid X.509-SVID: ${err.message}`, {
            cause: err,
          });
        }
      }
      if (!check.test(peer.spiffeId, origin)) {
        throw new SpiffeError(
          'not_allowed',
          `the server at ${origin} is ${quote(peer.spiffeId)}, not ${check.text}`,
        );
      }
    } catch (err) {
      peer = undefined;
      finish(err as Error);
      return;
    }
    gen.refreshAt = Math.min(gen.refreshAt, peer.notAfter.getTime());
    if (pendingSession) remember(pendingSession);
    socket.setNoDelay(true);
    options.onConnect?.(peer, origin);
    finish(null);
  });
}

export interface MtlsAgentOptions extends ClientOptions {
  /** undici Agent options (keepAliveTimeout, connections, pipelining...); `connect` is this module's. */
  agent?: Omit<Agent.Options, 'connect'>;
}

/**
 * An undici Dispatcher for mTLS by the SPIFFE rules: use it as
 * `fetch(url, { dispatcher })` or `undici.request(url, { dispatcher })`.
 *
 * Connections present the source's current SVID and are handed to undici only
 * after the server's SVID verified (verifyX509Svid against the source's
 * bundles, purpose serverAuth, no host name check) and its ID matched `expect`.
 * Connections are kept alive and TLS sessions resumed.
 *
 * Each SVID gets its own undici Agent (a "generation"). When the source
 * rotates, new requests go to a new generation; the old one finishes its
 * in-flight requests and closes its connections, so no connection outlives
 * the SVID it presented. A generation is also retired once a server SVID it
 * verified has expired.
 */
export class MtlsAgent extends Dispatcher {
  readonly #options: MtlsAgentOptions;
  readonly #check: ReturnType<typeof expectation>;
  readonly #now: () => number;
  readonly #retiring = new Set<Agent>();
  readonly #unsubscribe: () => void;
  #gen: { state: Generation; agent: Agent };
  #closed = false;

  constructor(options: MtlsAgentOptions) {
    super();
    if (!options?.source || typeof options.source.current !== 'function') {
      throw new TypeError('mtlsAgent: source is required');
    }
    this.#options = options;
    this.#check = expectation(options.expect);
    this.#now = options.now ?? Date.now;
    this.#gen = this.#generation(options.source.current());
    this.#unsubscribe = options.source.onUpdate((svid) => this.#rotate(svid));
  }

  /** The SVID new connections present. */
  get svid(): SvidMaterial {
    return this.#gen.state.svid;
  }

  #generation(svid: SvidMaterial): { state: Generation; agent: Agent } {
    const state = newGeneration(svid);
    const connect: ReturnType<typeof buildConnector> = (opts, cb) => {
      if (opts.protocol !== 'https:') {
        cb(new TypeError(`mtlsAgent speaks https only, not ${opts.protocol}`), null);
        return;
      }
      connectVerified(
        state,
        {
          host: opts.hostname,
          port: Number(opts.port) || 443,
          ...(opts.servername ? { servername: opts.servername } : {}),
          ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        },
        this.#options,
        this.#check,
        (err, socket) => (err ? cb(err, null) : cb(null, socket!)),
      );
    };
    return { state, agent: new Agent({ ...this.#options.agent, connect }) };
  }

  #rotate(svid: SvidMaterial): void {
    if (this.#closed) return;
    const old = this.#gen.agent;
    this.#gen = this.#generation(svid);
    this.#retiring.add(old);
    // close() lets queued and in-flight requests finish, then ends the connections
    old
      .close()
      .catch(() => {})
      .finally(() => this.#retiring.delete(old));
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (!this.#closed && this.#now() > this.#gen.state.refreshAt) this.#rotate(this.#gen.state.svid);
    return this.#gen.agent.dispatch(opts, handler);
  }

  async #shutdown(how: (a: Agent) => Promise<void>): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    await Promise.all([this.#gen.agent, ...this.#retiring].map((a) => how(a).catch(() => {})));
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | undefined {
    const p = this.#shutdown((a) => a.close());
    if (!callback) return p;
    p.then(callback, callback);
    return undefined;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | undefined {
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    const p = this.#shutdown((agent) => agent.destroy(err));
    if (!callback) return p;
    p.then(callback, callback);
    return undefined;
  }
}

/** An undici Dispatcher doing mTLS by the SPIFFE rules; see MtlsAgent. */
export function mtlsAgent(options: MtlsAgentOptions): MtlsAgent {
  return new MtlsAgent(options);
}

export interface MtlsHttpsAgentOptions extends ClientOptions {
  /** node:https Agent options (keepAlive is on by default; maxSockets...). */
  agent?: https.AgentOptions;
}

const socketGeneration = new WeakMap<Duplex, Generation>();
const idleTimers = new WeakMap<Duplex, NodeJS.Timeout>();

/**
 * A node:https Agent doing mTLS by the SPIFFE rules, with the same checks as
 * MtlsAgent: sockets are handed to the request only once the server verified;
 * on rotation, idle sockets of the previous SVID are closed and busy ones are
 * not reused.
 */
export class MtlsHttpsAgent extends https.Agent {
  readonly #options: MtlsHttpsAgentOptions;
  readonly #check: ReturnType<typeof expectation>;
  readonly #now: () => number;
  readonly #unsubscribe: () => void;
  #gen: Generation;

  constructor(options: MtlsHttpsAgentOptions) {
    super({ keepAlive: true, ...options.agent });
    if (!options?.source || typeof options.source.current !== 'function') {
      throw new TypeError('mtlsHttpsAgent: source is required');
    }
    this.#options = options;
    this.#check = expectation(options.expect);
    this.#now = options.now ?? Date.now;
    this.#gen = newGeneration(options.source.current());
    this.#unsubscribe = options.source.onUpdate((svid) => {
      this.#gen = newGeneration(svid);
      for (const list of Object.values(this.freeSockets)) for (const s of list ?? []) s.destroy();
    });
  }

  #usable(socket: Duplex): boolean {
    const gen = socketGeneration.get(socket);
    return gen === this.#gen && this.#now() <= gen.refreshAt;
  }

  override createConnection(
    options: import('node:http').ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    if (!callback) throw new TypeError('mtlsHttpsAgent: createConnection needs a callback');
    if (this.#now() > this.#gen.refreshAt) this.#gen = newGeneration(this.#gen.svid);
    const gen = this.#gen;
    connectVerified(
      gen,
      {
        host: options.host ?? options.hostname ?? 'localhost',
        port: Number(options.port) || 443,
        ...((options as tls.ConnectionOptions).servername
          ? { servername: (options as tls.ConnectionOptions).servername! }
          : {}),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      this.#options,
      this.#check,
      (err, socket) => {
        if (socket) socketGeneration.set(socket, gen);
        callback(err, socket as Duplex);
      },
    );
    return undefined;
  }

  override keepSocketAlive(socket: Duplex): boolean {
    if (!this.#usable(socket)) return false;
    (super.keepSocketAlive as (s: Duplex) => boolean)(socket);
    // an idle socket must not outlive the server SVID it verified
    const left = socketGeneration.get(socket)!.refreshAt - this.#now();
    if (Number.isFinite(left)) {
      const timer = setTimeout(() => socket.destroy(), left + 1);
      timer.unref();
      idleTimers.set(socket, timer);
    }
    return true;
  }

  override reuseSocket(socket: Duplex, req: import('node:http').ClientRequest): void {
    clearTimeout(idleTimers.get(socket));
    super.reuseSocket(socket as never, req);
  }

  override destroy(): void {
    this.#unsubscribe();
    super.destroy();
  }
}

/** A node:https Agent doing mTLS by the SPIFFE rules; see MtlsHttpsAgent. */
export function mtlsHttpsAgent(options: MtlsHttpsAgentOptions): MtlsHttpsAgent {
  return new MtlsHttpsAgent(options);
}
