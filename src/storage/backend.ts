/**
 * Storage is untrusted: an ordered key/value store of opaque bytes. It never
 * sees plaintext (the barrier encrypts above it). Keys are UTF-8 strings made
 * of path segments separated by '/'; values are arbitrary bytes.
 *
 * Every backend must pass test/contracts/storage.contract.ts.
 */
export interface StorageReader {
  /** The value stored at `key`, or undefined when there is none. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Every key that starts with `prefix`, in ascending byte order. */
  list(prefix: string): Promise<string[]>;
}

export interface StorageWriter extends StorageReader {
  /** Stores `value` at `key`, replacing any previous value. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Removes `key`; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}

/** A transaction sees its own writes; nothing is visible to others until it commits. */
export interface StorageTransaction extends StorageWriter {
  /** Optional: stores every entry (keys distinct) in one statement. The barrier writes a batch's records this way. */
  putMany?(entries: readonly (readonly [string, Uint8Array])[]): Promise<void>;
  /** Optional: removes every key in one statement. */
  deleteMany?(keys: readonly string[]): Promise<void>;
}

export interface StorageBackend extends StorageWriter {
  /** Backend name for status output: 'memory' | 'sqlite' | 'postgres'. */
  readonly kind: string;
  /**
   * True when this process is the only one that can write this storage (an
   * embedded database it has locked), so what it reads may be cached. False
   * for shared storage such as PostgreSQL, where other servers write too.
   */
  readonly exclusive: boolean;
  /**
   * Optional: the values at `keys` (in order; undefined where there is none)
   * read in one consistent snapshot, in one round trip. The barrier reads a
   * record with the index root that vouches for it this way on shared
   * storage; without it, it reads them in a transaction.
   */
  getMany?(keys: readonly string[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Runs `fn` as one serializable transaction: all of its writes commit
   * together or none do, and concurrent transactions behave as if run one
   * after another. `fn` may be retried on a serialization conflict, so it must
   * have no side effects outside the transaction. When put/delete/transaction
   * resolve, the data is durable (it survives a crash of the process or host).
   */
  transaction<T>(fn: (tx: StorageTransaction) => Promise<T>): Promise<T>;
  /** Releases connections and file handles. */
  close(): Promise<void>;
}

/** Maximum key length in bytes accepted by every backend. */
export const MAX_KEY_BYTES = 1024;

export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0)
    throw new TypeError('storage key must be a non-empty string');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES)
    throw new TypeError(`storage key longer than ${MAX_KEY_BYTES} bytes`);
  if (key.includes('\0')) throw new TypeError('storage key must not contain NUL');
}
