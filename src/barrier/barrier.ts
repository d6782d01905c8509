import type { KeyObject } from 'node:crypto';
import { importAesKey, open, seal } from '../crypto/aead.ts';
import { randomKey } from '../crypto/random.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { Mutex } from '../lib/mutex.ts';
import type { StorageBackend, StorageReader, StorageWriter } from '../storage/backend.ts';

/**
 * The barrier is the single point of encryption between the core and untrusted
 * storage (see DESIGN.md §1; modelled on OpenBao's AESGCMBarrier).
 *
 * Record format (version 1):  0x01 | term (uint32 BE) | nonce (12) | ciphertext | tag (16)
 * Additional authenticated data: "strongroom/v1" 0x00 term(uint32 BE) 0x00 storage-path
 * so a record moved to another path, or relabelled with another term, fails to open.
 */
const RECORD_VERSION = 1;
const HEADER_BYTES = 5;
const AAD_LABEL = Buffer.from('strongroom/v1\0');

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

function integrityError(path: string): StrongroomError {
  return new StrongroomError(
    'integrity_error',
    'stored data failed its integrity check: it was modified, moved or truncated outside Strongroom',
    { details: { path } },
  );
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

function recordTerm(record: Uint8Array): number | undefined {
  if (record.byteLength < HEADER_BYTES || record[0] !== RECORD_VERSION) return undefined;
  return Buffer.from(record.buffer, record.byteOffset, record.byteLength).readUInt32BE(1);
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

export function createBarrier(storage: StorageBackend, clock: Clock, opts: BarrierOptions = {}): Barrier {
  const cacheBytes = opts.cacheBytes ?? 32 * 1024 * 1024;
  let ring: LoadedKeyring | undefined;
  let rootKey: KeyObject | undefined;
  const rotateLock = new Mutex();

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
    const term = recordTerm(raw);
    const plain = term === 0 ? open(root, raw.subarray(HEADER_BYTES), aadFor(0, KEYRING_PATH)) : undefined;
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

  async function decrypt(path: string, record: Uint8Array): Promise<Buffer> {
    const term = recordTerm(record);
    if (term === undefined || term === 0) throw integrityError(path);
    let key = keys().keys.get(term);
    if (!key && term > keys().active) {
      await refreshKeyring();
      key = keys().keys.get(term);
    }
    if (!key) throw integrityError(path);
    const plain = open(
      key,
      Buffer.from(record.buffer, record.byteOffset + HEADER_BYTES, record.byteLength - HEADER_BYTES),
      aadFor(term, path),
    );
    if (!plain) throw integrityError(path);
    return plain;
  }

  function encrypt(path: string, value: Uint8Array): Buffer {
    const k = keys();
    return encryptRecord(k.keys.get(k.active)!, k.active, path, value);
  }

  function assertLogicalPath(path: string): void {
    if (path === KEYRING_PATH || path.startsWith('core/seal/')) {
      throw new TypeError(`barrier path ${path} is reserved`);
    }
  }

  function writerOver(w: StorageWriter, onWrite?: (path: string) => void): BarrierWriter {
    const get = async (path: string) => {
      keys();
      const raw = await w.get(path);
      return raw === undefined ? undefined : decrypt(path, raw);
    };
    return {
      get,
      async getJson(path) {
        const b = await get(path);
        return b === undefined ? undefined : parseFrozen(b);
      },
      async list(prefix) {
        keys();
        return w.list(prefix);
      },
      async put(path, value) {
        assertLogicalPath(path);
        const record = encrypt(path, value);
        onWrite?.(path);
        await w.put(path, record);
        onWrite?.(path);
      },
      async delete(path) {
        assertLogicalPath(path);
        keys();
        onWrite?.(path);
        await w.delete(path);
        onWrite?.(path);
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
  const cache = storage.exclusive && cacheBytes > 0 ? new ReadCache(cacheBytes) : undefined;
  const direct = writerOver(storage, cache ? (p) => cache.invalidate(p) : undefined);
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

  function prefixed(inner: BarrierWriter, prefix: string): BarrierWriter {
    return {
      get: (p) => inner.get(prefix + p),
      getJson: (p) => inner.getJson(prefix + p),
      list: async (p) => (await inner.list(prefix + p)).map((k) => k.slice(prefix.length)),
      put: (p, v) => inner.put(prefix + p, v),
      delete: (p) => inner.delete(prefix + p),
    };
  }

  async function transaction<T>(prefix: string, fn: (tx: BarrierWriter) => Promise<T>): Promise<T> {
    const written = new Set<string>();
    try {
      return await storage.transaction((tx) => {
        const w = writerOver(tx, cache ? (p) => written.add(p) : undefined);
        return fn(prefix === '' ? w : prefixed(w, prefix));
      });
    } finally {
      // after commit (or rollback): drop what the transaction wrote
      for (const p of written) cache?.invalidate(p);
    }
  }

  function storeAt(prefix: string): BarrierStore {
    const base = prefix === '' ? rootWriter : prefixed(rootWriter, prefix);
    return {
      ...base,
      transaction: (fn) => transaction(prefix, fn),
      view(sub: string) {
        if (!sub.endsWith('/') || sub.startsWith('/')) throw new TypeError('a view prefix must end with "/"');
        return storeAt(prefix + sub);
      },
    };
  }

  const root = storeAt('');

  return {
    ...root,
    get sealed() {
      return ring === undefined;
    },
    async initialize(rawRoot, raw) {
      const rk = importAesKey(rawRoot);
      const json: KeyringJson = {
        active: 1,
        terms: [
          { term: 1, key: randomKey().toString('base64'), created_at: new Date(clock.now()).toISOString() },
        ],
      };
      await storage.transaction(async (tx) => {
        if ((await tx.get(KEYRING_PATH)) !== undefined) {
          throw new StrongroomError('already_initialized', 'the barrier is already initialised');
        }
        await tx.put(KEYRING_PATH, writeKeyring(json, rk));
        for (const [k, v] of raw ?? []) await tx.put(k, v);
      });
    },
    async unseal(rawRoot) {
      const rk = importAesKey(rawRoot);
      const json = await readKeyring(storage, rk);
      if (!json) throw new StrongroomError('invalid_unseal_key', 'the root key does not open the keyring');
      ring = loadKeyring(json);
      rootKey = rk;
    },
    seal() {
      ring = undefined;
      rootKey = undefined;
      cache?.clear();
    },
    rotate() {
      return rotateLock.run(async () => {
        const rk = rootKey;
        if (!rk) throw new StrongroomError('sealed', 'Strongroom is sealed');
        const json = await storage.transaction(async (tx) => {
          const current = await readKeyring(tx, rk);
          if (!current)
            throw new StrongroomError('integrity_error', 'the keyring failed its integrity check');
          const term = Math.max(...current.terms.map((t) => t.term)) + 1;
          const next: KeyringJson = {
            active: term,
            terms: [
              ...current.terms,
              { term, key: randomKey().toString('base64'), created_at: new Date(clock.now()).toISOString() },
            ],
          };
          await tx.put(KEYRING_PATH, writeKeyring(next, rk));
          return next;
        });
        ring = loadKeyring(json);
        return ring.info.get(json.active)!;
      });
    },
    keyStatus() {
      const k = keys();
      return { term: k.active, terms: k.keys.size, installed_at: k.info.get(k.active)!.created_at };
    },
  };
}
