// biome-ignore-all lint/style/noExcessiveLinesPerFile: the three SVID sources (static, files, Workload API) behind one interface, with their rotation notices
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CertificateInput,
  certificateInfo,
  parsePemCertificates,
  toNodeCertificate,
} from './certificate.ts';
import { DerError, readTlv } from './der.ts';
import { quote, SpiffeError } from './errors.ts';
import { parseSpiffeId, parseTrustDomain } from './id.ts';
import { type AnyKey, toKeyObject } from './keys.ts';
import type { X509Bundles } from './x509-svid.ts';

/**
 * Where a workload's own X.509-SVID comes from, for the mTLS library
 * (src/spiffe/mtls.ts): a fixed value, files the sidecar agent rewrites, or
 * the SPIFFE Workload API. Every source hands out an immutable snapshot and
 * tells its listeners when a new one replaces it (rotation).
 */

/** One snapshot of a workload's identity: its SVID, the SVID's key, and the bundles it trusts. */
export interface SvidMaterial {
  /** The SVID's SPIFFE ID (the leaf's URI SAN). */
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Leaf first, then intermediates. */
  readonly chain: readonly X509Certificate[];
  /** The leaf's private key. Never printed, never put in an error. */
  readonly privateKey: KeyObject;
  /** X.509 authorities by trust domain: whom this workload trusts. */
  readonly bundles: X509Bundles;
  /** Uppercase hex serial of the leaf. */
  readonly serialNumber: string;
  readonly notAfter: Date;
  /** The chain as one PEM document (what a TLS context loads). */
  readonly chainPem: string;
}

/** A workload's current identity, and notice when it rotates. */
export interface SvidSource {
  /** The current snapshot. Cheap: sources keep it ready. */
  current(): SvidMaterial;
  /** Calls `listener` with each new snapshot; returns the unsubscribe function. */
  onUpdate(listener: (svid: SvidMaterial) => void): () => void;
  /** Stops watching (timers, streams). current() keeps returning the last snapshot. */
  close(): void;
}

/** What a caller may hand over to make a snapshot. */
export interface SvidInput {
  /** The chain, leaf first: one PEM document holding every certificate, or a list of certificates. */
  chain: string | readonly CertificateInput[];
  /** The leaf's private key: a KeyObject or CryptoKey, or PKCS#8/SEC1 PEM, or PKCS#8 DER. */
  privateKey: AnyKey | string | Uint8Array;
  /**
   * Trusted authorities: a map by trust domain, or CA certificates (PEM or a
   * list), each filed under the trust domain of its `spiffe://<td>` URI SAN, or
   * the SVID's own trust domain when it has none.
   */
  bundles: X509Bundles | string | readonly CertificateInput[];
}

function isBundleMap(b: SvidInput['bundles']): b is X509Bundles {
  return b instanceof Map;
}

function importKey(key: SvidInput['privateKey']): KeyObject {
  try {
    if (typeof key === 'string') return createPrivateKey(key);
    if (key instanceof Uint8Array)
      return createPrivateKey({ key: Buffer.from(key), format: 'der', type: 'pkcs8' });
    return toKeyObject(key);
  } catch (err) {
    // the cause (an OpenSSL decoder error) never quotes the key, but keep the message ours
    throw new SpiffeError('invalid_key', 'the SVID private key does not parse', { cause: err });
  }
}

function chainOf(chain: SvidInput['chain']): X509Certificate[] {
  if (typeof chain === 'string') return parsePemCertificates(chain);
  if (!Array.isArray(chain)) throw new TypeError('an SVID chain must be PEM or a list of certificates');
  return chain.map((c) => toNodeCertificate(c));
}

/** The trust domain of a CA certificate's `spiffe://<td>` URI SAN, if it has exactly one such. */
function caTrustDomain(cert: X509Certificate): string | undefined {
  const uris = certificateInfo(cert).ext.uris.filter((u) => u.startsWith('spiffe://'));
  if (uris.length !== 1) return undefined;
  try {
    return parseSpiffeId(uris[0]!).trustDomain;
  } catch {
    return undefined;
  }
}

/** Files CA certificates under trust domains (see SvidInput.bundles). */
export function bundlesFromCertificates(
  certs: readonly CertificateInput[] | string,
  defaultTrustDomain: string,
): X509Bundles {
  const list =
    typeof certs === 'string' ? parsePemCertificates(certs) : certs.map((c) => toNodeCertificate(c));
  const out = new Map<string, X509Certificate[]>();
  for (const cert of list) {
    const td = caTrustDomain(cert) ?? defaultTrustDomain;
    const group = out.get(td);
    if (group) group.push(cert);
    else out.set(td, [cert]);
  }
  return out;
}

function pemOf(chain: readonly X509Certificate[]): string {
  return chain.map((c) => c.toString()).join('');
}

/**
 * Checks and freezes an SVID: the leaf carries exactly one SPIFFE ID, and the
 * private key is the leaf's (so a cert and key caught mid-rotation are
 * refused rather than served). Throws SpiffeError (invalid_svid, invalid_key,
 * invalid_certificate, invalid_spiffe_id).
 */
export function toSvidMaterial(input: SvidInput | SvidMaterial): SvidMaterial {
  if (isSvidMaterial(input)) return input;
  const chain = chainOf(input.chain);
  if (chain.length === 0) throw new SpiffeError('invalid_svid', 'the SVID chain is empty');
  const leaf = chain[0]!;
  const info = certificateInfo(leaf);
  if (info.ext.uris.length !== 1) {
    throw new SpiffeError(
      'invalid_svid',
      `the SVID has ${info.ext.uris.length} URI SANs; an X.509-SVID has one`,
    );
  }
  const id = parseSpiffeId(info.ext.uris[0]!);
  const privateKey = importKey(input.privateKey);
  if (privateKey.type !== 'private')
    throw new SpiffeError('invalid_key', 'the SVID key is not a private key');
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new SpiffeError(
      'invalid_key',
      `the private key does not belong to the SVID of ${quote(id.toString())} (serial ${info.serialNumber})`,
    );
  }
  const bundles = isBundleMap(input.bundles)
    ? input.bundles
    : bundlesFromCertificates(input.bundles, id.trustDomain);
  return seal({
    spiffeId: id.toString(),
    trustDomain: id.trustDomain,
    chain: Object.freeze([...chain]),
    privateKey,
    bundles,
    serialNumber: info.serialNumber,
    notAfter: new Date(info.notAfter),
    chainPem: pemOf(chain),
  });
}

const materials = new WeakSet<object>();

function isSvidMaterial(x: unknown): x is SvidMaterial {
  return typeof x === 'object' && x !== null && materials.has(x);
}

/** Freezes a snapshot and marks it as checked (toSvidMaterial passes it through). */
function seal(m: SvidMaterial): SvidMaterial {
  const frozen = Object.freeze(m);
  materials.add(frozen);
  return frozen;
}

function sameBundles(a: X509Bundles, b: X509Bundles): boolean {
  if (a.size !== b.size) return false;
  for (const [td, certs] of a) {
    const other = b.get(td);
    if (!other || other.length !== certs.length) return false;
    for (let i = 0; i < certs.length; i++) {
      if (!toNodeCertificate(certs[i]!).raw.equals(toNodeCertificate(other[i]!).raw)) return false;
    }
  }
  return true;
}

/**
 * Keeps the previous bundles object when the content did not change, so the
 * mTLS server does not re-verify every open connection after a plain SVID rotation.
 */
function withStableBundles(next: SvidMaterial, previous: SvidMaterial | undefined): SvidMaterial {
  if (!previous || previous.bundles === next.bundles || !sameBundles(previous.bundles, next.bundles))
    return next;
  return seal({ ...next, bundles: previous.bundles });
}

/** Listener bookkeeping shared by the sources. */
class Emitter {
  #listeners = new Set<(svid: SvidMaterial) => void>();
  #onError: ((err: Error) => void) | undefined;

  constructor(onError?: (err: Error) => void) {
    this.#onError = onError;
  }

  on(listener: (svid: SvidMaterial) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('onUpdate: the listener must be a function');
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  emit(svid: SvidMaterial): void {
    for (const l of [...this.#listeners]) {
      try {
        l(svid);
      } catch (err) {
        this.error(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  error(err: Error): void {
    this.#onError?.(err);
  }

  clear(): void {
    this.#listeners.clear();
  }
}

// ---------------------------------------------------------------- static

/** A source whose SVID changes only when told (tests, or a caller that rotates by itself). */
export interface StaticSvidSource extends SvidSource {
  /** Replaces the SVID and notifies the listeners. Throws (and keeps the old one) when the new one is invalid. */
  set(next: SvidInput | SvidMaterial): SvidMaterial;
}

/** A source holding a given SVID; `set()` rotates it. */
export function staticSvidSource(initial: SvidInput | SvidMaterial): StaticSvidSource {
  let cur = toSvidMaterial(initial);
  const emitter = new Emitter();
  return {
    current: () => cur,
    onUpdate: (l) => emitter.on(l),
    close: () => emitter.clear(),
    set(next) {
      cur = withStableBundles(toSvidMaterial(next), cur);
      emitter.emit(cur);
      return cur;
    },
  };
}

// ---------------------------------------------------------------- files

export interface FileSvidSourceOptions {
  /** A folder holding `svid.pem` (chain), `svid_key.pem` and `bundle.pem`, as the agent writes them. */
  dir?: string;
  certFile?: string;
  keyFile?: string;
  bundleFile?: string;
  /** How often to look for changed files (default 1000 ms). */
  pollMs?: number;
  /** How long the first read may wait for the files to appear (default 0: fail at once). */
  initialTimeoutMs?: number;
  /** Told when a change could not be loaded (the previous SVID stays in use). */
  onError?: (err: Error) => void;
}

/** A file-backed source; `refresh()` reads the files now. */
export interface FileSvidSource extends SvidSource {
  refresh(): Promise<void>;
}

async function fingerprint(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    files.map(async (f) => {
      const s = await stat(f, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    }),
  );
  return parts.join('|');
}

/**
 * Reads the SVID from PEM files and re-reads them when they change (polling
 * `pollMs`: inode, size, mtime). The agent replaces each file atomically, but
 * not the three together, so a read may catch a new certificate with the old
 * key: such a snapshot fails the key check and is retried on the next poll
 * while the previous SVID stays in use.
 */
export async function fileSvidSource(options: FileSvidSourceOptions): Promise<FileSvidSource> {
  const dir = options.dir;
  const certFile = options.certFile ?? (dir !== undefined ? join(dir, 'svid.pem') : undefined);
  const keyFile = options.keyFile ?? (dir !== undefined ? join(dir, 'svid_key.pem') : undefined);
  const bundleFile = options.bundleFile ?? (dir !== undefined ? join(dir, 'bundle.pem') : undefined);
  if (!certFile || !keyFile || !bundleFile) {
    throw new TypeError('fileSvidSource: give `dir`, or all of `certFile`, `keyFile` and `bundleFile`');
  }
  const pollMs = options.pollMs ?? 1000;
  if (!Number.isFinite(pollMs) || pollMs <= 0) throw new TypeError('fileSvidSource: pollMs must be positive');
  const files = [certFile, keyFile, bundleFile] as const;
  const emitter = new Emitter(options.onError);

  const load = async (): Promise<{ svid: SvidMaterial; print: string }> => {
    const print = await fingerprint(files);
    const [cert, key, bundle] = await Promise.all(files.map((f) => readFile(f, 'utf8')));
    let svid: SvidMaterial;
    try {
      svid = toSvidMaterial({ chain: cert!, privateKey: key!, bundles: new Map() });
    } catch (err) {
      throw new Error(`cannot load the SVID from ${certFile} and ${keyFile}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    let bundles: X509Bundles;
    try {
      bundles = bundlesFromCertificates(bundle!, svid.trustDomain);
    } catch (err) {
      throw new Error(`cannot load the bundle from ${bundleFile}: ${(err as Error).message}`, { cause: err });
    }
    // the files may have changed while we read them: only trust a read that started and ended on the same version
    if ((await fingerprint(files)) !== print) throw new Error('the SVID files changed while being read');
    return { svid: seal({ ...svid, bundles }), print };
  };

  // A missing file fails at once unless told to wait; files caught mid-rotation (a new certificate with the
  // old key) are retried for a second in any case.
  const start = Date.now();
  const waitMs = options.initialTimeoutMs ?? 0;
  let first: { svid: SvidMaterial; print: string };
  for (;;) {
    try {
      first = await load();
      break;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const missing = e.code === 'ENOENT';
      if (Date.now() - start >= (missing ? waitMs : Math.max(waitMs, 1000))) {
        if (missing) throw new Error(`fileSvidSource: ${e.path ?? 'a file'} does not exist`, { cause: err });
        throw err;
      }
      await new Promise((r) => setTimeout(r, Math.min(50, pollMs)));
    }
  }
  let cur = first.svid;
  let print = first.print;
  let closed = false;
  let running: Promise<void> | undefined;

  const check = async (): Promise<void> => {
    let now: string;
    try {
      now = await fingerprint(files);
    } catch (err) {
      // a file briefly missing (a non-atomic writer) is not fatal: keep the current SVID
      emitter.error(err as Error);
      return;
    }
    if (now === print || closed) return;
    try {
      const next = await load();
      if (closed) return;
      print = next.print;
      const changed =
        next.svid.serialNumber !== cur.serialNumber || !sameBundles(next.svid.bundles, cur.bundles);
      if (!changed) return;
      cur = withStableBundles(next.svid, cur);
      emitter.emit(cur);
    } catch (err) {
      emitter.error(err as Error);
    }
  };
  const refresh = (): Promise<void> => {
    running ??= check().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void refresh(), pollMs);
  timer.unref();

  return {
    current: () => cur,
    onUpdate: (l) => emitter.on(l),
    refresh,
    close() {
      closed = true;
      clearInterval(timer);
      emitter.clear();
    },
  };
}

// ---------------------------------------------------------------- Workload API

/** Splits concatenated DER certificates (the Workload API's `x509_svid` and `bundle` fields). */
export function splitDerCertificates(buf: Uint8Array): X509Certificate[] {
  const out: X509Certificate[] = [];
  let pos = 0;
  try {
    while (pos < buf.length) {
      const t = readTlv(buf, pos, buf.length);
      out.push(toNodeCertificate(buf.subarray(pos, t.end)));
      pos = t.end;
    }
  } catch (err) {
    if (err instanceof DerError)
      throw new SpiffeError('invalid_certificate', `malformed DER certificates: ${err.message}`);
    throw err;
  }
  return out;
}

export interface WorkloadApiSvidSourceOptions {
  /** The agent's Workload API socket: a path, or `unix:///path`. */
  socketPath: string;
  /** The vendored workload.proto (default: proto/spiffe/workload/workload.proto in this repository). */
  protoPath?: string;
  /** How long to wait for the first SVID (default 10 000 ms). */
  timeoutMs?: number;
  /** Chooses among several SVIDs of the workload (default: the first, as the spec's default identity). */
  pick?: (spiffeIds: readonly string[]) => number;
  /** Told when the stream breaks or an update cannot be used; the source reconnects by itself. */
  onError?: (err: Error) => void;
}

interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
}

interface X509SvidResponse {
  svids: X509SvidMessage[];
  federated_bundles: Record<string, Buffer>;
}

/** A snapshot from one FetchX509SVID response (SPIFFE Workload API, X509-SVID profile). */
export function svidFromWorkloadResponse(
  res: X509SvidResponse,
  pick?: (ids: readonly string[]) => number,
): SvidMaterial {
  if (!res.svids || res.svids.length === 0)
    throw new SpiffeError('invalid_svid', 'the Workload API sent no SVID');
  const index = pick ? pick(res.svids.map((s) => s.spiffe_id)) : 0;
  const chosen = res.svids[index];
  if (!chosen) throw new TypeError('workloadApiSvidSource: pick returned an index out of range');
  const chain = splitDerCertificates(chosen.x509_svid);
  const svid = toSvidMaterial({ chain, privateKey: chosen.x509_svid_key, bundles: new Map() });
  if (svid.spiffeId !== chosen.spiffe_id) {
    throw new SpiffeError(
      'invalid_svid',
      `the Workload API labelled the SVID ${quote(chosen.spiffe_id)} but it holds ${quote(svid.spiffeId)}`,
    );
  }
  const bundles = new Map<string, X509Certificate[]>();
  bundles.set(svid.trustDomain, splitDerCertificates(chosen.bundle));
  for (const [td, der] of Object.entries(res.federated_bundles ?? {})) {
    const name = parseTrustDomain(td);
    if (name !== svid.trustDomain) bundles.set(name, splitDerCertificates(der));
  }
  return seal({ ...svid, bundles });
}

const DEFAULT_PROTO = join(import.meta.dirname, '../../proto/spiffe/workload/workload.proto');

/**
 * A client of the SPIFFE Workload API (SPIFFE_Workload_API.md): keeps a
 * FetchX509SVID stream open on the agent's Unix socket, with the
 * `workload.spiffe.io: true` metadata the spec requires (§5.1), and publishes
 * each new SVID it receives. When the stream ends or fails it reconnects with
 * backoff (1 s doubling up to 30 s, or to a quarter of the current SVID's
 * remaining life if that is less) and keeps serving the last SVID.
 */
export async function workloadApiSvidSource(options: WorkloadApiSvidSourceOptions): Promise<SvidSource> {
  const grpc = await import('@grpc/grpc-js');
  const protoLoader = await import('@grpc/proto-loader');
  const socket = options.socketPath.replace(/^unix:\/\//, '');
  if (!socket) throw new TypeError('workloadApiSvidSource: socketPath is required');
  const definition = await protoLoader.load(options.protoPath ?? DEFAULT_PROTO, {
    keepCase: true,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as Record<
    string,
    new (
      address: string,
      creds: ReturnType<typeof grpc.credentials.createInsecure>,
    ) => import('@grpc/grpc-js').Client & {
      FetchX509SVID(
        req: object,
        metadata: import('@grpc/grpc-js').Metadata,
      ): import('@grpc/grpc-js').ClientReadableStream<X509SvidResponse>;
    }
  >;
  const Service = pkg.SpiffeWorkloadAPI;
  if (!Service) throw new Error(`${options.protoPath ?? DEFAULT_PROTO} does not define SpiffeWorkloadAPI`);
  const client = new Service(`unix:${socket}`, grpc.credentials.createInsecure());
  const emitter = new Emitter(options.onError);
  let cur: SvidMaterial | undefined;
  let closed = false;
  let call: ReturnType<InstanceType<typeof Service>['FetchX509SVID']> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let backoff = 1000;
  let resolveFirst: ((s: SvidMaterial) => void) | undefined;
  let lastError: Error | undefined;

  const open = (): void => {
    if (closed) return;
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    const c = client.FetchX509SVID({}, md);
    call = c;
    c.on('data', (res: X509SvidResponse) => {
      try {
        const next = withStableBundles(svidFromWorkloadResponse(res, options.pick), cur);
        backoff = 1000;
        const first = cur === undefined;
        const changed = first || next.serialNumber !== cur!.serialNumber || next.bundles !== cur!.bundles;
        cur = next;
        if (first) resolveFirst?.(next);
        else if (changed) emitter.emit(next);
      } catch (err) {
        lastError = err as Error;
        emitter.error(lastError);
      }
    });
    const again = (err?: Error): void => {
      if (call !== c) return;
      call = undefined;
      if (closed) return;
      lastError = new Error(`the Workload API stream at ${socket} ended${err ? `: ${err.message}` : ''}`, {
        cause: err,
      });
      emitter.error(lastError);
      retry = setTimeout(open, backoff);
      retry.unref();
      // no longer than a quarter of what is left of the SVID in hand (1 s once it expired): an agent
      // back after an outage is found before the workload's identity runs out, or soon after
      const left = cur ? cur.notAfter.getTime() - Date.now() : 0;
      backoff = Math.min(backoff * 2, Math.max(1_000, Math.min(30_000, left / 4)));
    };
    c.on('error', (err: Error) => again(err));
    c.on('end', () => again());
  };

  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    await new Promise<SvidMaterial>((resolve, reject) => {
      resolveFirst = resolve;
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no X.509-SVID from the Workload API at ${socket} within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      open();
    }).finally(() => {
      resolveFirst = undefined;
    });
  } catch (err) {
    closed = true;
    clearTimeout(retry);
    call?.cancel();
    client.close();
    throw err;
  }

  return {
    current: () => cur!,
    onUpdate: (l) => emitter.on(l),
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(retry);
      const c = call;
      call = undefined;
      c?.cancel();
      client.close();
      emitter.clear();
    },
  };
}
