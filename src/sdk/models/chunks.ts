import { createCipheriv, createDecipheriv, createHash, type KeyObject } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Encrypted model files (docs/models.md): a header, then chunks of AES-256-GCM under the file's own data
 * key. Chunk `i` has the nonce `i` (a counter: the key is never used for another file) and binds, as
 * associated data, the format, the file's path, its index and whether it is the last: a chunk moved,
 * repeated, dropped or cut short, a file renamed, or a file ending early fails to decrypt.
 *
 *   header: "SRMODEL1" (8) ‖ chunk size, u32 big-endian (4)
 *   chunk:  ciphertext (chunk size bytes; fewer in the last) ‖ tag (16)
 */
const MAGIC = Buffer.from('SRMODEL1');
const HEADER = MAGIC.length + 4;
const TAG = 16;
export const DEFAULT_CHUNK = 1024 * 1024;

class ChunkError extends Error {}

function nonce(index: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

function aad(pathDigest: Buffer, index: number, last: boolean): Buffer {
  const a = Buffer.alloc(MAGIC.length + 32 + 8 + 1);
  MAGIC.copy(a, 0);
  pathDigest.copy(a, MAGIC.length);
  a.writeBigUInt64BE(BigInt(index), MAGIC.length + 32);
  a[a.length - 1] = last ? 1 : 0;
  return a;
}

const pathDigest = (path: string) => createHash('sha256').update(path).digest();

/** The file header: magic and chunk size. */
export function header(chunkSize: number): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h);
  h.writeUInt32BE(chunkSize, MAGIC.length);
  return h;
}

/** Chunk `index` of the file `path` sealed: its ciphertext and its tag (written one after the other). */
export function sealChunk(
  key: KeyObject,
  path: Buffer | string,
  index: number,
  last: boolean,
  plain: Buffer,
): [Buffer, Buffer] {
  const c = createCipheriv('aes-256-gcm', key, nonce(index));
  c.setAAD(aad(typeof path === 'string' ? pathDigest(path) : path, index, last));
  const body = c.update(plain);
  c.final();
  return [body, c.getAuthTag()];
}

/** Encrypts a file's bytes as they stream through; `digest()` afterwards is the plaintext's SHA-256. */
export class EncryptStream extends Transform {
  #key: KeyObject;
  #path: Buffer;
  #size: number;
  // a full chunk waits until more bytes follow it (then it is not the last); a partial one fills up
  #held: Buffer | undefined;
  #partial: Buffer[] = [];
  #partialBytes = 0;
  #index = 0;
  #hash = createHash('sha256');
  #plainBytes = 0;

  constructor(key: KeyObject, path: string, chunkSize = DEFAULT_CHUNK) {
    super();
    this.#key = key;
    this.#path = pathDigest(path);
    this.#size = chunkSize;
    this.push(header(chunkSize));
  }

  #seal(plain: Buffer, last: boolean): void {
    // pushed as they come, not joined: a chunk is copied once, by the cipher
    const [body, tag] = sealChunk(this.#key, this.#path, this.#index, last, plain);
    this.push(body);
    this.push(tag);
    this.#index++;
  }

  #add(piece: Buffer): void {
    if (this.#held) this.#seal(this.#held, false);
    this.#held = piece;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.#plainBytes += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      if (this.#partialBytes === 0 && chunk.length - off >= this.#size) {
        this.#add(chunk.subarray(off, off + this.#size));
        off += this.#size;
        continue;
      }
      const take = Math.min(this.#size - this.#partialBytes, chunk.length - off);
      this.#partial.push(chunk.subarray(off, off + take));
      this.#partialBytes += take;
      off += take;
      if (this.#partialBytes === this.#size) {
        this.#add(Buffer.concat(this.#partial));
        this.#partial = [];
        this.#partialBytes = 0;
      }
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#partialBytes > 0) {
      if (this.#held) this.#seal(this.#held, false);
      this.#seal(Buffer.concat(this.#partial), true);
    } else {
      // the last full chunk, or one empty, final chunk for an empty file
      this.#seal(this.#held ?? Buffer.alloc(0), true);
    }
    done();
  }

  digest(): { sha256: string; size: number } {
    return { sha256: this.#hash.digest('hex'), size: this.#plainBytes };
  }
}

/** Decrypts an encrypted file as it streams through; any tampering ends the stream with a ChunkError. */
export class DecryptStream extends Transform {
  #key: KeyObject;
  #path: Buffer;
  #name: string;
  #size = 0;
  #buf: Buffer = Buffer.alloc(0);
  #index = 0;
  #headerRead = false;
  #hash = createHash('sha256');
  #plainBytes = 0;
  #sawLast = false;
  #expected: string | undefined;

  /** `sha256`: what the plaintext must hash to; otherwise its last chunk is withheld and the stream fails. */
  constructor(key: KeyObject, path: string, sha256?: string) {
    super();
    this.#key = key;
    this.#path = pathDigest(path);
    this.#name = path;
    this.#expected = sha256;
  }

  #open(sealed: Buffer, last: boolean): void {
    if (this.#sawLast) throw new ChunkError(`${this.#name}: data after the last chunk`);
    if (sealed.length < TAG) throw new ChunkError(`${this.#name}: chunk ${this.#index} is cut short`);
    const d = createDecipheriv('aes-256-gcm', this.#key, nonce(this.#index));
    d.setAAD(aad(this.#path, this.#index, last));
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    let plain: Buffer;
    try {
      plain = Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
    } catch {
      throw new ChunkError(
        `${this.#name}: chunk ${this.#index} does not decrypt (changed, moved, repeated or cut short, or another file's key)`,
      );
    }
    this.#hash.update(plain);
    this.#plainBytes += plain.length;
    this.#index++;
    if (last) {
      this.#sawLast = true;
      this.#digest = this.#hash.digest('hex');
      if (this.#expected !== undefined && this.#digest !== this.#expected) {
        throw new ChunkError(`${this.#name}: the decrypted file's SHA-256 is not the signed one`);
      }
    }
    this.push(plain);
  }

  #digest: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
      if (!this.#headerRead) {
        if (this.#buf.length < HEADER) {
          done();
          return;
        }
        if (!this.#buf.subarray(0, MAGIC.length).equals(MAGIC))
          throw new ChunkError(`${this.#name}: not an encrypted model file`);
        this.#size = this.#buf.readUInt32BE(MAGIC.length);
        if (this.#size < 1 || this.#size > 64 * 1024 * 1024)
          throw new ChunkError(`${this.#name}: bad chunk size`);
        this.#buf = this.#buf.subarray(HEADER);
        this.#headerRead = true;
      }
      const record = this.#size + TAG;
      // a full record is opened as not-last only once more bytes follow it
      while (this.#buf.length > record) {
        this.#open(this.#buf.subarray(0, record), false);
        this.#buf = this.#buf.subarray(record);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (!this.#headerRead) throw new ChunkError(`${this.#name}: empty or cut short`);
      if (!this.#sawLast) this.#open(this.#buf, true);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  digest(): { sha256: string; size: number } {
    return { sha256: this.#digest ?? '', size: this.#plainBytes };
  }
}
