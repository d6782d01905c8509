import { createSecretKey } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { parentPort } from 'node:worker_threads';
import { DecryptStream, EncryptStream } from './chunks.ts';

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

async function run(job: CryptJob): Promise<{ sha256: string; size: number }> {
  const key = createSecretKey(Buffer.from(job.key, 'base64'));
  // written beside its final name and moved there only once whole and checked
  const tmp = `${job.dst}.partial`;
  const stream =
    job.op === 'encrypt' ? new EncryptStream(key, job.path, job.chunkSize) : new DecryptStream(key, job.path);
  try {
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
