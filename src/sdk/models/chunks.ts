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

/** Encrypts a file's bytes as they stream through; `digest()` afterwards is the plaintext's SHA-256. */
export class EncryptStream extends Transform {
  #key: KeyObject;
  #path: Buffer;
  #size: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #index = 0;
  #hash = createHash('sha256');
  #plainBytes = 0;
  #held: Buffer | undefined;

  constructor(key: KeyObject, path: string, chunkSize = DEFAULT_CHUNK) {
    super();
    this.#key = key;
    this.#path = pathDigest(path);
    this.#size = chunkSize;
    const h = Buffer.alloc(HEADER);
    MAGIC.copy(h);
    h.writeUInt32BE(chunkSize, MAGIC.length);
    this.push(h);
  }

  #seal(plain: Buffer, last: boolean): void {
    const c = createCipheriv('aes-256-gcm', this.#key, nonce(this.#index));
    c.setAAD(aad(this.#path, this.#index, last));
    this.push(Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]));
    this.#index++;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.#plainBytes += chunk.length;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    while (this.#pendingBytes >= this.#size) {
      const all = Buffer.concat(this.#pending);
      // a full chunk is held back until we know whether it is the last one
      if (this.#held) this.#seal(this.#held, false);
      this.#held = all.subarray(0, this.#size);
      const rest = all.subarray(this.#size);
      this.#pending = rest.length ? [rest] : [];
      this.#pendingBytes = rest.length;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    const rest = Buffer.concat(this.#pending);
    if (this.#held && rest.length === 0) this.#seal(this.#held, true);
    else {
      if (this.#held) this.#seal(this.#held, false);
      // an empty file is one empty, final chunk
      this.#seal(rest, true);
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
