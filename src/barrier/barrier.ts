// biome-ignore-all lint/style/noExcessiveLinesPerFile: the single point of encryption: every path to the keys, the record format and the version index stay in one file to audit (decisions 0005, 0012)
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, type KeyObject } from 'node:crypto';
import { importAesKey, open, seal } from '../crypto/aead.ts';
import { randomKey } from '../crypto/random.ts';
import { isStrongroomError, StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { Mutex } from '../lib/mutex.ts';
import type { StorageBackend, StorageReader, StorageTransaction } from '../storage/backend.ts';
import { compareKeys } from '../storage/shared.ts';
import {
  type Bucket,
  bucketOf,
  bucketPath,
  decodeBucket,
  decodeRoot,
  emptyBucket,
  emptyRoot,
  encodeBucket,
  encodeRoot,
  INDEX_PREFIX,
  type IndexRoot,
  ROOT_PATH,
} from './versions.ts';

/**
 * The barrier is the single point of encryption between the core and untrusted
 * storage (see DESIGN.md §1; modelled on OpenBao's AESGCMBarrier).
 *
 * Record format 2 (every logical record):
 *   0x02 | term (uint32 BE) | version (uint48 BE) | nonce (12) | ciphertext | tag (16)
 *   AAD: "strongroom/v2" 0x00 term(uint32 BE) version(uint48 BE) 0x00 storage-path
 * so a record moved to another path, relabelled with another term, or
 * relabelled with another version fails to open; the version index
 * (versions.ts, decision 0012) says which version each path must hold, so an
 * older copy put back at its own path, or a deleted record put back, is an
 * integrity error.
 *
 * Record format 1 (records sealed by the root or unseal key, term 0: the
 * keyring and the seal's root-key record; and logical records written before
 * the version index, rewritten to format 2 at the first unseal):
 *   0x01 | term (uint32 BE) | nonce (12) | ciphertext | tag (16)
 *   AAD: "strongroom/v1" 0x00 term(uint32 BE) 0x00 storage-path
 */
const RECORD_VERSION = 1;
const RECORD_VERSION_2 = 2;
const HEADER_BYTES = 5;
const HEADER_BYTES_2 = 11;
const AAD_LABEL = Buffer.from('strongroom/v1\0');
const AAD_LABEL_2 = Buffer.from('strongroom/v2\0');
/** Versions are uint48: 2^48 write transactions. */
const MAX_VERSION = 2 ** 48 - 1;

/** Storage paths the barrier keeps for itself. */
export const KEYRING_PATH = 'core/keyring';

export interface BarrierReader {
  /** Decrypted value at `path`, or undefined. Throws `integrity_error` when the stored record fails authentication. */
  get(path: string): Promise<Buffer | undefined>;
  /**
   * The value at `path` parsed as JSON and deeply frozen: outside transactions
   * it may be shared with other callers through the read cache, so it must
   * never be mutated (copy it to change it).
   */
  getJson<T>(path: string): Promise<Readonly<T> | undefined>;
  /** Paths under `prefix`, in byte order (paths are not secret: they are stored in clear). */
  list(prefix: string): Promise<string[]>;
}

export interface BarrierWriter extends BarrierReader {
  /** Encrypts and stores `value` at `path` under the active key term. */
  put(path: string, value: Uint8Array): Promise<void>;
  delete(path: string): Promise<void>;
}

/** An encrypted view over storage, confined to a prefix when obtained with `view()`. */
export interface BarrierStore extends BarrierWriter {
  /** One serializable storage transaction; may be retried, so `fn` must have no outside side effects. */
  transaction<T>(fn: (tx: BarrierWriter) => Promise<T>): Promise<T>;
  /** A store whose paths are relative to `prefix` (which must end in '/'). */
  view(prefix: string): BarrierStore;
}

/**
 * `inner` confined to `prefix` (ending in '/'): paths are relative to it, as in a view. Also for a
 * transaction's writer, so a module can be handed part of a transaction it shares with another.
 */
export function writerAt(inner: BarrierWriter, prefix: string): BarrierWriter {
  return {
    get: (p) => inner.get(prefix + p),
    getJson: (p) => inner.getJson(prefix + p),
    list: async (p) => (await inner.list(prefix + p)).map((k) => k.slice(prefix.length)),
    put: (p, v) => inner.put(prefix + p, v),
    delete: (p) => inner.delete(prefix + p),
  };
}

export interface KeyTermInfo {
  term: number;
  created_at: string;
}

export interface Barrier extends BarrierStore {
  readonly sealed: boolean;
  /**
   * Creates the first keyring, encrypted under `rootKey`, and writes `raw`
   * records (the seal's own, already protected) in the same transaction.
   * Fails if a keyring exists.
   */
  initialize(rootKey: Uint8Array, raw?: ReadonlyMap<string, Uint8Array>): Promise<void>;
  /** Loads the keyring with `rootKey`; throws `invalid_unseal_key` when the root key does not open it. */
  unseal(rootKey: Uint8Array): Promise<void>;
  /** Drops every key from memory. */
  seal(): void;
  /** Adds a new key term; new writes use it, old terms still decrypt. */
  rotate(): Promise<KeyTermInfo>;
  keyStatus(): { term: number; terms: number; installed_at: string };
}

interface KeyringJson {
  active: number;
  terms: { term: number; key: string; created_at: string }[];
}

interface LoadedKeyring {
  active: number;
  keys: Map<number, KeyObject>;
  info: Map<number, KeyTermInfo>;
}

function aadFor(term: number, path: string): Buffer {
  const aad = Buffer.allocUnsafe(AAD_LABEL.byteLength + 5 + Buffer.byteLength(path));
  AAD_LABEL.copy(aad, 0);
  aad.writeUInt32BE(term, AAD_LABEL.byteLength);
  aad[AAD_LABEL.byteLength + 4] = 0;
  aad.write(path, AAD_LABEL.byteLength + 5);
  return aad;
}

/** Why a record failed; in the error's details (for the server log), never in the client's message. */
export type IntegrityReason =
  | 'unauthentic'
  | 'replayed'
  | 'deleted'
  | 'unindexed'
  | 'index_rolled_back'
  | 'index_missing'
  | 'seal_changed';

function integrityError(path: string, reason: IntegrityReason = 'unauthentic'): StrongroomError {
  return new StrongroomError(
    'integrity_error',
    reason === 'replayed' || reason === 'unindexed' || reason === 'deleted'
      ? 'stored data failed its integrity check: a record was replaced by an older copy, put back after its deletion, or deleted outside Strongroom'
      : 'stored data failed its integrity check: it was modified, moved, rolled back or truncated outside Strongroom',
    { details: { path, reason } },
  );
}

/** AAD of a format-2 record at `path` under `term` holding `version` (bench/barrier.ts reads it by name). @public */
export function versionedRecordAad(term: number, version: number, path: string): Buffer {
  return aadFor2(term, version, path);
}

function aadFor2(term: number, version: number, path: string): Buffer {
  const n = AAD_LABEL_2.byteLength;
  const aad = Buffer.allocUnsafe(n + 11 + Buffer.byteLength(path));
  AAD_LABEL_2.copy(aad, 0);
  aad.writeUInt32BE(term, n);
  aad.writeUIntBE(version, n + 4, 6);
  aad[n + 10] = 0;
  aad.write(path, n + 11);
  return aad;
}

/** A logical record (format 2) at `path`, holding `version` (bench/barrier.ts reads it by name). @public */
export function encryptVersioned(
  key: KeyObject,
  term: number,
  version: number,
  path: string,
  plaintext: Uint8Array,
): Buffer {
  if (!Number.isSafeInteger(version) || version < 1 || version > MAX_VERSION) {
    throw new TypeError('record version out of range');
  }
  const header = Buffer.allocUnsafe(HEADER_BYTES_2);
  header[0] = RECORD_VERSION_2;
  header.writeUInt32BE(term, 1);
  header.writeUIntBE(version, 5, 6);
  return Buffer.concat([header, seal(key, plaintext, aadFor2(term, version, path))]);
}

interface RecordHeader {
  format: 1 | 2;
  term: number;
  /** 0 for format 1. */
  version: number;
  body: Buffer;
}

function headerOf(record: Uint8Array): RecordHeader | undefined {
  const b = Buffer.from(record.buffer, record.byteOffset, record.byteLength);
  if (b.byteLength >= HEADER_BYTES_2 && b[0] === RECORD_VERSION_2) {
    return {
      format: 2,
      term: b.readUInt32BE(1),
      version: b.readUIntBE(5, 6),
      body: b.subarray(HEADER_BYTES_2),
    };
  }
  if (b.byteLength >= HEADER_BYTES && b[0] === RECORD_VERSION) {
    return { format: 1, term: b.readUInt32BE(1), version: 0, body: b.subarray(HEADER_BYTES) };
  }
  return undefined;
}

/** AAD for a record at `path` under `term` (term 0 is for records sealed by the root or unseal key). */
export function recordAad(term: number, path: string): Buffer {
  return aadFor(term, path);
}

export function encryptRecord(key: KeyObject, term: number, path: string, plaintext: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header[0] = RECORD_VERSION;
  header.writeUInt32BE(term, 1);
  return Buffer.concat([header, seal(key, plaintext, aadFor(term, path))]);
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function parseFrozen<T>(b: Buffer): Readonly<T> {
  return deepFreeze(JSON.parse(b.toString('utf8')) as T);
}

/** A bounded LRU of decrypted records, by storage path. */
interface CacheEntry {
  buf: Buffer;
  /** The parsed, frozen JSON of `buf`, once someone asked for it. */
  json?: unknown;
}

class ReadCache {
  readonly #max: number;
  #bytes = 0;
  #map = new Map<string, CacheEntry>();
  /** Moves on every write, so reads that overlapped a write do not fill the cache. */
  epoch = 0;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  get(path: string): CacheEntry | undefined {
    const v = this.#map.get(path);
    if (v) {
      this.#map.delete(path);
      this.#map.set(path, v);
    }
    return v;
  }

  set(path: string, value: Buffer): CacheEntry | undefined {
    if (value.byteLength > this.#max / 64) return undefined;
    this.#drop(path);
    const entry: CacheEntry = { buf: value };
    this.#map.set(path, entry);
    this.#bytes += value.byteLength + path.length;
    for (const [k] of this.#map) {
      if (this.#bytes <= this.#max) break;
      this.#drop(k);
    }
    return entry;
  }

  invalidate(path: string): void {
    this.epoch++;
    this.#drop(path);
  }

  clear(): void {
    this.epoch++;
    for (const k of [...this.#map.keys()]) this.#drop(k);
  }

  #drop(path: string): void {
    const v = this.#map.get(path);
    if (!v) return;
    this.#bytes -= v.buf.byteLength + path.length;
    v.buf.fill(0);
    this.#map.delete(path);
  }
}

export interface BarrierOptions {
  /** Bytes of decrypted records to cache when storage is exclusive (0 disables; default 32 MiB). */
  cacheBytes?: number;
}

/** A bucket never written; never mutated (writes copy its entries). */
const EMPTY_BUCKET: Bucket = emptyBucket();
/** Reads that raced a commit on exclusive storage try again at most this often. */
const RACE_RETRIES = 5;
const SEAL_PREFIX = 'core/seal/';

function isReserved(path: string): boolean {
  return path === KEYRING_PATH || path.startsWith(SEAL_PREFIX) || path.startsWith(INDEX_PREFIX);
}

/** The SHA-256 of the seal's own records as stored (its config and wrapped root key), in path order. */
function sealDigest(records: Iterable<readonly [string, Uint8Array]>): string {
  const h = createHash('sha256');
  for (const [path, value] of [...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    h.update(`${path}\0${value.byteLength}\0`);
    h.update(value);
  }
  return h.digest('hex');
}

async function storedSealRecords(r: StorageReader): Promise<[string, Uint8Array][]> {
  const out: [string, Uint8Array][] = [];
  for (const path of await r.list(SEAL_PREFIX)) {
    const v = await r.get(path);
    if (v !== undefined) out.push([path, v]);
  }
  return out;
}

/** A version mismatch (as opposed to a record that does not authenticate): on exclusive storage it may be a read racing a commit. */
function isMismatch(err: unknown): boolean {
  if (!isStrongroomError(err, 'integrity_error')) return false;
  const reason = (err.details as { reason?: unknown } | undefined)?.reason;
  return reason === 'replayed' || reason === 'unindexed' || reason === 'deleted';
}

/** What a transaction changed in the index, installed in memory once it commits. */
interface IndexChange {
  root: IndexRoot;
  buckets: Map<number, Bucket>;
}

interface TxIndex {
  /** The version the index says `path` holds as this transaction sees it (its own writes included); undefined: no record. */
  expected(path: string): Promise<number | undefined>;
  /** The version every write of this transaction gets. */
  version(): Promise<number>;
  /** Records `path`'s new record (null: deleted) at `version`; written to storage by `flush`. */
  stage(path: string, version: number | null, record: Buffer | null): void;
  /** A record this transaction wrote and has not flushed: `raw` is undefined when it deleted it. */
  pending(path: string): { raw: Buffer | undefined } | undefined;
  /** Paths under `prefix` this transaction wrote (`put`) or deleted (`deleted`). */
  pendingUnder(prefix: string): { put: string[]; deleted: Set<string> };
  /**
   * Writes every staged record, the changed buckets and the root, in one
   * statement where storage offers it; undefined when nothing was written.
   */
  flush(): Promise<IndexChange | undefined>;
}

/** A barrier transaction waiting for its batch (see transaction() in createBarrier). */
interface Pending {
  prefix: string;
  fn: (tx: BarrierWriter) => Promise<unknown>;
  /** Paths it wrote: dropped from the read cache once it is settled. */
  written: Set<string>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** The most transactions one storage transaction runs (one commit, one index write). */
const MAX_BATCH = 64;

/** One transaction of a batch threw: the batch runs again without it. */
class MemberFailed extends Error {
  readonly member: Pending;
  constructor(member: Pending, cause: unknown) {
    super('a transaction of the batch failed', { cause });
    this.member = member;
  }
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the keyring, the version index and the commit queue must never leave this closure; every method of the barrier shares them
export function createBarrier(storage: StorageBackend, clock: Clock, opts: BarrierOptions = {}): Barrier {
  const cacheBytes = opts.cacheBytes ?? 32 * 1024 * 1024;
  const exclusive = storage.exclusive;
  let ring: LoadedKeyring | undefined;
  let rootKey: KeyObject | undefined;
  const rotateLock = new Mutex();

  /**
   * Exclusive storage: the index as committed. This process is storage's only
   * writer, so memory is the authority while it runs: what an attacker puts
   * back in storage is compared against it. Set at unseal.
   */
  let mem: { root: IndexRoot; buckets: Map<number, Bucket> } | undefined;
  /** Barrier transactions of this process run one at a time (see serialized()). */
  const txLock = new Mutex();
  const inTransaction = new AsyncLocalStorage<boolean>();
  let busy = 0;
  /** Moves each time a commit changes the index in memory (a read that saw it move may retry). */
  let generation = 0;
  /** Shared storage: the last root read (by its stored bytes) and buckets by version; a cache, never the authority. */
  let lastRoot: { raw: Buffer; root: IndexRoot } | undefined;
  const sharedBuckets = new Map<number, Bucket>();
  /** The highest index counter this process has seen: a root below it is a rollback. Kept across seal/unseal. */
  let highest = 0;

  function keys(): LoadedKeyring {
    if (!ring) throw new StrongroomError('sealed', 'Strongroom is sealed');
    return ring;
  }

  function loadKeyring(json: KeyringJson): LoadedKeyring {
    const loaded: LoadedKeyring = { active: json.active, keys: new Map(), info: new Map() };
    for (const t of json.terms) {
      loaded.keys.set(t.term, importAesKey(Buffer.from(t.key, 'base64')));
      loaded.info.set(t.term, { term: t.term, created_at: t.created_at });
    }
    if (!loaded.keys.has(json.active)) throw new TypeError('keyring has no active term');
    return loaded;
  }

  async function readKeyring(reader: StorageReader, root: KeyObject): Promise<KeyringJson | undefined> {
    const raw = await reader.get(KEYRING_PATH);
    if (raw === undefined) return undefined;
    const h = headerOf(raw);
    const plain = h?.format === 1 && h.term === 0 ? open(root, h.body, aadFor(0, KEYRING_PATH)) : undefined;
    if (!plain) return undefined;
    try {
      return JSON.parse(plain.toString('utf8')) as KeyringJson;
    } finally {
      plain.fill(0);
    }
  }

  function writeKeyring(json: KeyringJson, root: KeyObject): Buffer {
    const plain = Buffer.from(JSON.stringify(json));
    try {
      return encryptRecord(root, 0, KEYRING_PATH, plain);
    } finally {
      plain.fill(0);
    }
  }

  /** A record written by another server after a rotation may use a term we have not loaded yet. */
  async function refreshKeyring(): Promise<void> {
    if (!rootKey) return;
    const json = await readKeyring(storage, rootKey);
    if (json) ring = loadKeyring(json);
  }

  async function keyFor(path: string, term: number): Promise<KeyObject> {
    if (term === 0) throw integrityError(path);
    let key = keys().keys.get(term);
    if (!key && term > keys().active) {
      await refreshKeyring();
      key = keys().keys.get(term);
    }
    if (!key) throw integrityError(path);
    return key;
  }

  /** Opens a format-2 record and checks its version; throws `integrity_error` with the reason. */
  async function openVersioned(path: string, raw: Uint8Array, expected: number): Promise<Buffer> {
    const h = headerOf(raw);
    if (!h) throw integrityError(path);
    if (h.format !== 2) throw integrityError(path, 'unindexed');
    if (h.version !== expected) throw integrityError(path, 'replayed');
    const plain = open(await keyFor(path, h.term), h.body, aadFor2(h.term, h.version, path));
    if (!plain) throw integrityError(path);
    return plain;
  }

  /** The record read at `path` against the version the index expects there. */
  async function verify(
    path: string,
    raw: Uint8Array | undefined,
    expected: number | undefined,
  ): Promise<Buffer | undefined> {
    if (raw === undefined) {
      if (expected !== undefined) throw integrityError(path, 'deleted');
      return undefined;
    }
    if (expected === undefined) throw integrityError(path, 'unindexed');
    return openVersioned(path, raw, expected);
  }

  function sealLogical(path: string, version: number, value: Uint8Array): Buffer {
    const k = keys();
    return encryptVersioned(k.keys.get(k.active)!, k.active, version, path, value);
  }

  /**
   * `floor` is what `highest` was before the read that returned `raw` was
   * sent: a read in flight while this process commits may rightly return the
   * root from before that commit, but never one older than the floor.
   */
  async function openRoot(raw: Uint8Array | undefined, floor: number): Promise<IndexRoot> {
    if (raw === undefined) throw integrityError(ROOT_PATH, 'index_missing');
    const h = headerOf(raw);
    if (h?.format !== 2) throw integrityError(ROOT_PATH);
    const plain = open(await keyFor(ROOT_PATH, h.term), h.body, aadFor2(h.term, h.version, ROOT_PATH));
    const root = plain && decodeRoot(plain);
    if (!root || root.counter !== h.version) throw integrityError(ROOT_PATH);
    if (root.counter < floor) throw integrityError(ROOT_PATH, 'index_rolled_back');
    highest = Math.max(highest, root.counter);
    return root;
  }

  async function openBucket(b: number, raw: Uint8Array | undefined, expected: number): Promise<Bucket> {
    if (expected === 0) return EMPTY_BUCKET;
    const path = bucketPath(b);
    if (raw === undefined) throw integrityError(path, 'deleted');
    const plain = await openVersioned(path, raw, expected);
    const bucket = decodeBucket(plain);
    if (!bucket || bucket.version !== expected) throw integrityError(path);
    return bucket;
  }

  /** Exclusive storage: bucket `b` as committed, read from storage once and then kept. */
  async function memBucket(b: number): Promise<Bucket> {
    const m = mem;
    if (!m) throw new StrongroomError('sealed', 'Strongroom is sealed');
    const kept = m.buckets.get(b);
    if (kept) return kept;
    const version = m.root.buckets[b]!;
    const bucket = await openBucket(b, await storage.get(bucketPath(b)), version);
    if (mem === m && m.root.buckets[b] === version && !m.buckets.has(b)) m.buckets.set(b, bucket);
    return bucket;
  }

  async function exclusiveGet(path: string): Promise<Buffer | undefined> {
    for (let attempt = 0; ; attempt++) {
      const seen = generation;
      try {
        const raw = await storage.get(path);
        const bucket = await memBucket(bucketOf(path));
        return await verify(path, raw, bucket.entries.get(path));
      } catch (err) {
        // a commit landed between reading the record and the index: read both again once it has settled.
        // Never from inside a transaction: it holds the lock it would wait for (and no commit can be
        // landing then, so a mismatch there is real)
        if (
          attempt >= RACE_RETRIES ||
          !isMismatch(err) ||
          (generation === seen && busy === 0) ||
          inTransaction.getStore()
        ) {
          throw err;
        }
        await txLock.run(() => undefined);
      }
    }
  }

  /** Several records in one consistent snapshot (one statement where the backend offers it). */
  function readMany(paths: string[]): Promise<(Uint8Array | undefined)[]> {
    if (storage.getMany) return storage.getMany(paths);
    return storage.transaction(async (tx) => {
      const out: (Uint8Array | undefined)[] = [];
      for (const p of paths) out.push(await tx.get(p));
      return out;
    });
  }

  async function rootFrom(raw: Uint8Array | undefined, floor: number): Promise<IndexRoot> {
    if (raw !== undefined && lastRoot?.raw.equals(raw)) {
      if (lastRoot.root.counter < floor) throw integrityError(ROOT_PATH, 'index_rolled_back');
      return lastRoot.root;
    }
    const root = await openRoot(raw, floor);
    lastRoot = { raw: Buffer.from(raw!), root };
    return root;
  }

  function sharedBucket(b: number, version: number): Bucket | undefined {
    if (version === 0) return EMPTY_BUCKET;
    const c = sharedBuckets.get(b);
    return c?.version === version ? c : undefined;
  }

  /** Shared storage: the record and the root in one snapshot, and the bucket the root names (cached by version). */
  async function sharedGet(path: string): Promise<Buffer | undefined> {
    const b = bucketOf(path);
    const floor = highest;
    const [rootRaw, raw] = await readMany([ROOT_PATH, path]);
    const root = await rootFrom(rootRaw, floor);
    const bucket = sharedBucket(b, root.buckets[b]!);
    if (bucket) return verify(path, raw, bucket.entries.get(path));
    const [rootRaw2, bucketRaw, raw2] = await readMany([ROOT_PATH, bucketPath(b), path]);
    const root2 = await rootFrom(rootRaw2, floor);
    const fresh = await openBucket(b, bucketRaw, root2.buckets[b]!);
    if (fresh.version !== 0) sharedBuckets.set(b, fresh);
    return verify(path, raw2, fresh.entries.get(path));
  }

  /**
   * The paths under `prefix` that the index vouches for. A record put back
   * after its deletion (a stale child-token link, say) is not listed, so a
   * listing never hands a caller a path whose read would fail: a revocation
   * that walks a token tree cannot be blocked by a replayed link.
   */
  async function indexedList(prefix: string): Promise<string[]> {
    const floor = highest;
    const stored = await storage.list(prefix);
    if (stored.length === 0) return stored;
    if (exclusive) {
      // a commit may be in storage but not yet in memory: let it settle (never from inside a
      // transaction, which holds the lock; memory is then as new as storage)
      if (busy > 0 && !inTransaction.getStore()) await txLock.run(() => undefined);
      const out: string[] = [];
      for (const p of stored) if ((await memBucket(bucketOf(p))).entries.has(p)) out.push(p);
      return out;
    }
    // shared: the root (and the buckets it names that are not cached) read after the listing, in one
    // snapshot, are at least as new as it
    const needed = [...new Set(stored.map(bucketOf))];
    let root = await rootFrom(await storage.get(ROOT_PATH), floor);
    for (let attempt = 0; ; attempt++) {
      // under a stream of writes the root may move each time: the third try reads every bucket needed
      const stale = needed.filter((b) => !sharedBucket(b, root.buckets[b]!));
      if (stale.length === 0) break;
      const missing = attempt >= 2 ? needed : stale;
      const [rootRaw, ...raws] = await readMany([ROOT_PATH, ...missing.map(bucketPath)]);
      root = await rootFrom(rootRaw, floor);
      for (const [i, b] of missing.entries()) {
        const bucket = await openBucket(b, raws[i], root.buckets[b]!);
        if (bucket.version !== 0) sharedBuckets.set(b, bucket);
      }
    }
    return stored.filter((p) => sharedBucket(bucketOf(p), root.buckets[bucketOf(p)]!)!.entries.has(p));
  }

  function txIndex(tx: StorageTransaction): TxIndex {
    const floor = highest;
    let root: IndexRoot | undefined;
    const loaded = new Map<number, Bucket>();
    const staged = new Map<string, number | null>();
    const records = new Map<string, Buffer | null>();

    async function getRoot(): Promise<IndexRoot> {
      if (root) return root;
      if (exclusive) {
        if (!mem) throw new StrongroomError('sealed', 'Strongroom is sealed');
        root = mem.root;
      } else {
        // read inside the transaction: every writer reads and writes the root, so writers serialize on it
        root = await openRoot(await tx.get(ROOT_PATH), floor);
      }
      return root;
    }

    async function bucket(b: number): Promise<Bucket> {
      const seen = loaded.get(b);
      if (seen) return seen;
      const version = (await getRoot()).buckets[b]!;
      const known = exclusive ? mem?.buckets.get(b) : sharedBucket(b, version);
      const bk =
        known?.version === version ? known : await openBucket(b, await tx.get(bucketPath(b)), version);
      loaded.set(b, bk);
      return bk;
    }

    return {
      async expected(path) {
        if (staged.has(path)) return staged.get(path) ?? undefined;
        return (await bucket(bucketOf(path))).entries.get(path);
      },
      async version() {
        const r = await getRoot();
        if (r.counter >= MAX_VERSION)
          throw new StrongroomError('internal', 'the version counter is exhausted');
        return r.counter + 1;
      },
      stage(path, version, record) {
        staged.set(path, version);
        records.set(path, record);
      },
      pending(path) {
        if (!records.has(path)) return undefined;
        return { raw: records.get(path) ?? undefined };
      },
      pendingUnder(prefix) {
        const put: string[] = [];
        const deleted = new Set<string>();
        for (const [p, r] of records) {
          if (!p.startsWith(prefix)) continue;
          if (r === null) deleted.add(p);
          else put.push(p);
        }
        return { put, deleted };
      },
      async flush() {
        if (staged.size === 0) return undefined;
        const r = await getRoot();
        const v = r.counter + 1;
        const changes = new Map<number, [string, number | null][]>();
        for (const [p, version] of staged) {
          const b = bucketOf(p);
          const list = changes.get(b) ?? [];
          list.push([p, version]);
          changes.set(b, list);
        }
        const next: IndexRoot = { counter: v, buckets: [...r.buckets], seal: r.seal };
        const written = new Map<number, Bucket>();
        const puts: [string, Uint8Array][] = [];
        const deletes: string[] = [];
        for (const [p, record] of records) {
          if (record === null) deletes.push(p);
          else puts.push([p, record]);
        }
        for (const [b, list] of changes) {
          const entries = new Map((await bucket(b)).entries);
          for (const [p, version] of list) {
            if (version === null) entries.delete(p);
            else entries.set(p, version);
          }
          const nb: Bucket = { version: v, entries };
          puts.push([bucketPath(b), sealLogical(bucketPath(b), v, encodeBucket(nb))]);
          next.buckets[b] = v;
          written.set(b, nb);
        }
        puts.push([ROOT_PATH, sealLogical(ROOT_PATH, v, encodeRoot(next))]);
        if (deletes.length > 0) {
          if (tx.deleteMany) await tx.deleteMany(deletes);
          else for (const p of deletes) await tx.delete(p);
        }
        if (tx.putMany) await tx.putMany(puts);
        else for (const [p, record] of puts) await tx.put(p, record);
        return { root: next, buckets: written };
      },
    };
  }

  function install(change: IndexChange): void {
    highest = Math.max(highest, change.root.counter);
    if (exclusive) {
      if (!mem) return;
      mem = { root: change.root, buckets: mem.buckets };
      for (const [b, bk] of change.buckets) mem.buckets.set(b, bk);
      generation++;
    } else {
      for (const [b, bk] of change.buckets) sharedBuckets.set(b, bk);
    }
  }

  /**
   * Runs `fn` as this process's only barrier transaction. On exclusive
   * storage its commit and the index in memory change together. On shared
   * storage every write transaction reads and writes the index root, so two
   * of this process's transactions would only conflict and retry: queueing
   * them here is faster than a storm of serialization failures (servers still
   * serialize on the root between them).
   */
  function serialized<T>(fn: () => Promise<T>): Promise<T> {
    // a transaction started from inside another would wait for it forever: refuse it, as storage does
    if (inTransaction.getStore()) {
      return Promise.reject(new TypeError('a barrier transaction or write was started inside a transaction'));
    }
    return txLock.run(() =>
      inTransaction.run(true, async () => {
        busy++;
        try {
          return await fn();
        } finally {
          busy--;
        }
      }),
    );
  }

  function assertLogicalPath(path: string): void {
    if (isReserved(path)) throw new TypeError(`barrier path ${path} is reserved`);
  }

  function txWriter(tx: StorageTransaction, ix: TxIndex, onWrite?: (path: string) => void): BarrierWriter {
    const get = async (path: string) => {
      keys();
      const mine = ix.pending(path);
      const raw = mine ? mine.raw : await tx.get(path);
      return verify(path, raw, await ix.expected(path));
    };
    return {
      get,
      async getJson(path) {
        const b = await get(path);
        return b === undefined ? undefined : parseFrozen(b);
      },
      async list(prefix) {
        keys();
        const stored = await tx.list(prefix);
        const mine = ix.pendingUnder(prefix);
        // only what the index vouches for: a record put back after its deletion is not listed
        const indexed: string[] = [];
        for (const p of stored) if ((await ix.expected(p)) !== undefined) indexed.push(p);
        if (mine.put.length === 0) return indexed;
        return [...new Set([...indexed, ...mine.put])].sort(compareKeys);
      },
      async put(path, value) {
        assertLogicalPath(path);
        const version = await ix.version();
        const record = sealLogical(path, version, value);
        onWrite?.(path);
        ix.stage(path, version, record);
      },
      async delete(path) {
        assertLogicalPath(path);
        keys();
        await ix.version();
        onWrite?.(path);
        ix.stage(path, null, null);
      },
    };
  }

  /**
   * Reads outside transactions go through a cache of decrypted records when
   * this process is storage's only writer (SQLite, memory): every write goes
   * through here and invalidates its path. A read that overlapped any write
   * does not fill the cache (the epoch moved), so it can never pin a stale
   * value. Shared storage (PostgreSQL) is never cached: other servers write it.
   */
  const cache = exclusive && cacheBytes > 0 ? new ReadCache(cacheBytes) : undefined;

  /**
   * Group commit. Transactions queue, and the queue runs in batches: the
   * transactions of a batch run one after another inside one storage
   * transaction, which writes the index once and commits once. Each sees the
   * writes of those before it, exactly as if they had committed in turn. One
   * that throws gets its error, and the batch runs again without it (its
   * writes were never committed), so no transaction commits another's failure.
   */
  const queue: Pending[] = [];
  let draining = false;

  function transaction<T>(prefix: string, fn: (tx: BarrierWriter) => Promise<T>): Promise<T> {
    // a transaction started from inside another would wait for it forever: refuse it, as storage does
    if (inTransaction.getStore()) {
      return Promise.reject(new TypeError('a barrier transaction or write was started inside a transaction'));
    }
    return new Promise<T>((resolve, reject) => {
      queue.push({
        prefix,
        fn: fn as Pending['fn'],
        written: new Set(),
        resolve: resolve as Pending['resolve'],
        reject,
      });
      if (!draining) {
        draining = true;
        queueMicrotask(drain);
      }
    });
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, MAX_BATCH);
        await serialized(() => runBatch(batch)).catch((err: unknown) => {
          for (const m of batch) settle(m, { error: err });
        });
      }
    } finally {
      draining = false;
    }
  }

  function settle(m: Pending, outcome: { value: unknown } | { error: unknown }): void {
    // after commit (or rollback): drop what the transaction wrote
    for (const p of m.written) cache?.invalidate(p);
    m.written.clear();
    if ('error' in outcome) m.reject(outcome.error);
    else m.resolve(outcome.value);
  }

  async function runBatch(batch: Pending[]): Promise<void> {
    let members = batch;
    while (members.length > 0) {
      let change: IndexChange | undefined;
      const values = new Map<Pending, unknown>();
      try {
        await storage.transaction(async (tx) => {
          // storage may run this again after a serialization conflict: start clean
          values.clear();
          const ix = txIndex(tx);
          for (const m of members) {
            const w = txWriter(tx, ix, cache ? (p) => m.written.add(p) : undefined);
            try {
              values.set(m, await m.fn(m.prefix === '' ? w : writerAt(w, m.prefix)));
            } catch (err) {
              throw new MemberFailed(m, err);
            }
          }
          change = await ix.flush();
        });
      } catch (err) {
        if (err instanceof MemberFailed) {
          settle(err.member, { error: err.cause });
          members = members.filter((m) => m !== err.member);
          for (const m of members) {
            for (const p of m.written) cache?.invalidate(p);
            m.written.clear();
          }
          continue;
        }
        for (const m of members) settle(m, { error: err });
        return;
      }
      if (change) install(change);
      for (const m of members) settle(m, { value: values.get(m) });
      return;
    }
  }

  const direct: BarrierWriter = {
    async get(path) {
      keys();
      return exclusive ? exclusiveGet(path) : sharedGet(path);
    },
    async getJson(path) {
      const b = await direct.get(path);
      return b === undefined ? undefined : parseFrozen(b);
    },
    async list(prefix) {
      keys();
      return indexedList(prefix);
    },
    async put(path, value) {
      assertLogicalPath(path);
      cache?.invalidate(path);
      await transaction('', (tx) => tx.put(path, value));
    },
    async delete(path) {
      assertLogicalPath(path);
      cache?.invalidate(path);
      await transaction('', (tx) => tx.delete(path));
    },
  };

  const rootWriter: BarrierWriter = cache
    ? {
        ...direct,
        async get(path) {
          keys();
          const hit = cache.get(path);
          if (hit) return Buffer.from(hit.buf);
          const epoch = cache.epoch;
          const plain = await direct.get(path);
          if (plain && epoch === cache.epoch) cache.set(path, Buffer.from(plain));
          return plain;
        },
        async getJson<T>(path: string) {
          keys();
          let entry = cache.get(path);
          if (!entry) {
            const epoch = cache.epoch;
            const plain = await direct.get(path);
            if (!plain) return undefined;
            entry = epoch === cache.epoch ? cache.set(path, plain) : undefined;
            if (!entry) return parseFrozen<T>(plain);
          }
          if (entry.json === undefined) entry.json = parseFrozen(entry.buf);
          return entry.json as Readonly<T>;
        },
      }
    : direct;

  function storeAt(prefix: string): BarrierStore {
    const base = prefix === '' ? rootWriter : writerAt(rootWriter, prefix);
    return {
      ...base,
      transaction: (fn) => transaction(prefix, fn),
      view(sub: string) {
        if (!sub.endsWith('/') || sub.startsWith('/')) throw new TypeError('a view prefix must end with "/"');
        return storeAt(prefix + sub);
      },
    };
  }

  /**
   * A database written before the version index: every logical record is
   * rewritten as format 2 with version 1, in one transaction. Only a database
   * with no format-2 record at all is migrated; a missing index beside
   * versioned records is an attack (deleting the index to rebuild it from
   * replayed records), not an upgrade.
   */
  async function migrate(): Promise<void> {
    await storage.transaction(async (tx) => {
      if ((await tx.get(ROOT_PATH)) !== undefined) return; // another server did it
      const root = emptyRoot(sealDigest(await storedSealRecords(tx)));
      const v = 1;
      const buckets = new Map<number, Bucket>();
      for (const path of await tx.list('')) {
        if (isReserved(path)) continue;
        const raw = await tx.get(path);
        if (raw === undefined) continue;
        const h = headerOf(raw);
        if (h?.format !== 1) throw integrityError(path, 'index_missing');
        const plain = open(await keyFor(path, h.term), h.body, aadFor(h.term, path));
        if (!plain) throw integrityError(path);
        try {
          await tx.put(path, sealLogical(path, v, plain));
        } finally {
          plain.fill(0);
        }
        const b = bucketOf(path);
        const bk = buckets.get(b) ?? { version: v, entries: new Map<string, number>() };
        bk.entries.set(path, v);
        buckets.set(b, bk);
      }
      for (const [b, bk] of buckets) {
        await tx.put(bucketPath(b), sealLogical(bucketPath(b), v, encodeBucket(bk)));
        root.buckets[b] = v;
      }
      root.counter = v;
      await tx.put(ROOT_PATH, sealLogical(ROOT_PATH, v, encodeRoot(root)));
    });
  }

  async function loadIndex(): Promise<void> {
    lastRoot = undefined;
    sharedBuckets.clear();
    let raw = await storage.get(ROOT_PATH);
    if (raw === undefined) {
      await migrate();
      raw = await storage.get(ROOT_PATH);
    }
    const root = await openRoot(raw, highest);
    if (sealDigest(await storedSealRecords(storage)) !== root.seal) {
      throw integrityError(SEAL_PREFIX, 'seal_changed');
    }
    if (exclusive) {
      mem = { root, buckets: new Map() };
      generation++;
    }
  }

  const root = storeAt('');

  return {
    ...root,
    get sealed() {
      return ring === undefined;
    },
    async initialize(rawRoot, raw) {
      const rk = importAesKey(rawRoot);
      const termKey = randomKey();
      const json: KeyringJson = {
        active: 1,
        terms: [
          { term: 1, key: termKey.toString('base64'), created_at: new Date(clock.now()).toISOString() },
        ],
      };
      const indexRoot = emptyRoot(sealDigest(raw ?? []));
      indexRoot.counter = 1;
      const rootRecord = encryptVersioned(importAesKey(termKey), 1, 1, ROOT_PATH, encodeRoot(indexRoot));
      termKey.fill(0);
      await storage.transaction(async (tx) => {
        if ((await tx.get(KEYRING_PATH)) !== undefined) {
          throw new StrongroomError('already_initialized', 'the barrier is already initialised');
        }
        await tx.put(KEYRING_PATH, writeKeyring(json, rk));
        for (const [k, v] of raw ?? []) await tx.put(k, v);
        await tx.put(ROOT_PATH, rootRecord);
      });
    },
    async unseal(rawRoot) {
      const rk = importAesKey(rawRoot);
      const json = await readKeyring(storage, rk);
      if (!json) throw new StrongroomError('invalid_unseal_key', 'the root key does not open the keyring');
      ring = loadKeyring(json);
      rootKey = rk;
      try {
        await serialized(loadIndex);
      } catch (err) {
        ring = undefined;
        rootKey = undefined;
        mem = undefined;
        throw err;
      }
    },
    seal() {
      ring = undefined;
      rootKey = undefined;
      mem = undefined;
      lastRoot = undefined;
      sharedBuckets.clear();
      cache?.clear();
    },
    rotate() {
      return rotateLock.run(() =>
        serialized(async () => {
          const rk = rootKey;
          if (!rk) throw new StrongroomError('sealed', 'Strongroom is sealed');
          // the root moves to the new term in the same transaction: a keyring put back without
          // the new term leaves the index unreadable, so a rotation cannot be undone quietly
          const done = await storage.transaction(async (tx) => {
            const floor = highest;
            const current = await readKeyring(tx, rk);
            if (!current)
              throw new StrongroomError('integrity_error', 'the keyring failed its integrity check');
            const term = Math.max(...current.terms.map((t) => t.term)) + 1;
            const next: KeyringJson = {
              active: term,
              terms: [
                ...current.terms,
                {
                  term,
                  key: randomKey().toString('base64'),
                  created_at: new Date(clock.now()).toISOString(),
                },
              ],
            };
            const nextRing = loadKeyring(next);
            const indexRoot = exclusive && mem ? mem.root : await openRoot(await tx.get(ROOT_PATH), floor);
            const moved: IndexRoot = {
              ...indexRoot,
              buckets: [...indexRoot.buckets],
              counter: indexRoot.counter + 1,
            };
            await tx.put(KEYRING_PATH, writeKeyring(next, rk));
            await tx.put(
              ROOT_PATH,
              encryptVersioned(nextRing.keys.get(term)!, term, moved.counter, ROOT_PATH, encodeRoot(moved)),
            );
            return { nextRing, moved };
          });
          ring = done.nextRing;
          install({ root: done.moved, buckets: new Map() });
          return ring.info.get(ring.active)!;
        }),
      );
    },
    keyStatus() {
      const k = keys();
      return { term: k.active, terms: k.keys.size, installed_at: k.info.get(k.active)!.created_at };
    },
  };
}
