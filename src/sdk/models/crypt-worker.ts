import { createHash, createSecretKey } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { parentPort } from 'node:worker_threads';
import { DEFAULT_CHUNK, DecryptStream, header, sealChunk } from './chunks.ts';

/** One file per job (src/sdk/models/pool.ts): encrypt or decrypt, streamed, memory bounded by the chunk size. */
export interface CryptJob {
  op: 'encrypt' | 'decrypt';
  src: string;
  dst: string;
  /** base64 of the file's data key. */
  key: string;
  /** The file's name in the model: bound into every chunk. */
  path: string;
  chunkSize?: number;
  /** decrypt: the signed SHA-256 the plaintext must have, or the output is removed. */
  sha256?: string;
}

/**
 * Encrypts with one reused read buffer and one write in flight: memory stays at a few chunks whatever
 * the file's size (streams would let a megabyte of garbage pile up per chunk until the next collection).
 */
async function encryptFile(
  job: CryptJob,
  tmp: string,
): Promise<{ sha256: string; size: number; enc_sha256?: string }> {
  const key = createSecretKey(Buffer.from(job.key, 'base64'));
  const size = job.chunkSize ?? DEFAULT_CHUNK;
  const path = createHash('sha256').update(job.path).digest();
  const hash = createHash('sha256');
  const encHash = createHash('sha256');
  const src = await open(job.src, 'r');
  const dst = await open(tmp, 'w', 0o600);
  try {
    const { size: total } = await src.stat();
    const buf = Buffer.allocUnsafe(size);
    const head = header(size);
    encHash.update(head);
    await dst.write(head);
    let index = 0;
    let done = 0;
    do {
      let got = 0;
      while (got < size && done + got < total) {
        const { bytesRead } = await src.read(buf, got, size - got, done + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const plain = buf.subarray(0, got);
      hash.update(plain);
      done += got;
      const [body, tag] = sealChunk(key, path, index++, done >= total, plain);
      encHash.update(body).update(tag);
      await dst.writev([body, tag]);
    } while (done < total);
    await dst.sync();
    return { sha256: hash.digest('hex'), size: done, enc_sha256: encHash.digest('hex') };
  } finally {
    await src.close();
    await dst.close();
  }
}

async function run(job: CryptJob): Promise<{ sha256: string; size: number; enc_sha256?: string }> {
  const key = createSecretKey(Buffer.from(job.key, 'base64'));
  // written beside its final name and moved there only once whole and checked
  const tmp = `${job.dst}.partial`;
  const stream = new DecryptStream(key, job.path, job.sha256);
  try {
    if (job.op === 'encrypt') {
      const d = await encryptFile(job, tmp);
      await rename(tmp, job.dst);
      return d;
    }
    await pipeline(
      createReadStream(job.src, { highWaterMark: 1024 * 1024 }),
      stream,
      createWriteStream(tmp, { mode: 0o600 }),
    );
    const d = stream.digest();
    if (job.sha256 !== undefined && d.sha256 !== job.sha256) {
      throw new Error(`${job.path}: the decrypted file’s SHA-256 is not the signed one`);
    }
    await rename(tmp, job.dst);
    return d;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

parentPort!.on('message', (m: { id: number; job: CryptJob }) => {
  run(m.job).then(
    (result) => parentPort!.postMessage({ id: m.id, result }),
    (err: Error) => parentPort!.postMessage({ id: m.id, error: err.message }),
  );
});
