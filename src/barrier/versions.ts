/**
 * The version index: what makes a replayed record detectable (decision 0012).
 *
 * Every barrier record carries a version, bound into its AAD. The index says
 * which version each path must have: 256 buckets (`core/index/b/XX`) map
 * paths to versions, and one root (`core/index/root`) holds each bucket's
 * version and the global write counter. The root and the buckets are barrier
 * records themselves, versioned the same way, so restoring an older copy of
 * any one record (or of a bucket with its records) disagrees with the record
 * above it. Only a rollback of everything written since a point in time
 * agrees with itself; docs/production.md says what that does and does not
 * reveal.
 *
 * Pure data: encoding and the bucket of a path. The barrier does the I/O.
 */

export const INDEX_PREFIX = 'core/index/';
export const ROOT_PATH = 'core/index/root';
const BUCKETS = 256;

export interface IndexRoot {
  /** The highest version written: every write transaction takes counter + 1. */
  counter: number;
  /** The version of each bucket's record; 0 = the bucket has never been written (empty). */
  buckets: number[];
  /** SHA-256 (hex) of the seal's own records, fixed at initialisation. */
  seal: string;
}

export interface Bucket {
  version: number;
  /** Path -> version of every live record in the bucket. */
  entries: Map<string, number>;
}

/** FNV-1a over the path's UTF-16 code units: cheap, and a path's bucket is not a secret (paths are stored in clear). */
export function bucketOf(path: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) {
    h ^= path.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & (BUCKETS - 1);
}

const BUCKET_PATHS = Array.from(
  { length: BUCKETS },
  (_, b) => `${INDEX_PREFIX}b/${b.toString(16).padStart(2, '0')}`,
);

export function bucketPath(b: number): string {
  return BUCKET_PATHS[b]!;
}

export function emptyRoot(seal: string): IndexRoot {
  return { counter: 0, buckets: new Array<number>(BUCKETS).fill(0), seal };
}

/**
 * The root in binary: counter (uint48) | seal digest (32 bytes) | 256 bucket
 * versions (uint48 each), 1,574 bytes. Small enough that PostgreSQL keeps the
 * row inline (under its 2 KB TOAST threshold), since every read on shared
 * storage fetches it with the record.
 */
const ROOT_BYTES = 6 + 32 + BUCKETS * 6;

export function encodeRoot(root: IndexRoot): Buffer {
  const out = Buffer.alloc(ROOT_BYTES);
  out.writeUIntBE(root.counter, 0, 6);
  const digest = Buffer.from(root.seal, 'hex');
  if (digest.byteLength !== 32) throw new TypeError('the seal digest is a SHA-256');
  digest.copy(out, 6);
  for (let b = 0; b < BUCKETS; b++) out.writeUIntBE(root.buckets[b]!, 38 + b * 6, 6);
  return out;
}

/** Undefined when the plaintext is not a well-formed root (it authenticated, so only a bug gets here). */
export function decodeRoot(plain: Buffer): IndexRoot | undefined {
  if (plain.byteLength !== ROOT_BYTES) return undefined;
  const buckets = new Array<number>(BUCKETS);
  for (let b = 0; b < BUCKETS; b++) buckets[b] = plain.readUIntBE(38 + b * 6, 6);
  return { counter: plain.readUIntBE(0, 6), buckets, seal: plain.subarray(6, 38).toString('hex') };
}

export function encodeBucket(bucket: Bucket): Buffer {
  return Buffer.from(JSON.stringify({ v: bucket.version, e: Object.fromEntries(bucket.entries) }));
}

export function decodeBucket(plain: Buffer): Bucket | undefined {
  const j = JSON.parse(plain.toString('utf8')) as { v?: unknown; e?: unknown };
  if (!Number.isSafeInteger(j.v) || j.e === null || typeof j.e !== 'object') return undefined;
  const entries = new Map<string, number>();
  for (const [k, v] of Object.entries(j.e as Record<string, unknown>)) {
    if (!Number.isSafeInteger(v)) return undefined;
    entries.set(k, v as number);
  }
  return { version: j.v as number, entries };
}

export function emptyBucket(): Bucket {
  return { version: 0, entries: new Map() };
}
