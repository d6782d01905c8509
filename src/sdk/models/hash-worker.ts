import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';

/** One buffer per thread, reused for every read: no garbage per megabyte hashed. */
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** A hashing thread (src/sdk/models/pool.ts): SHA-256 of one file per job. */
parentPort!.on('message', (m: { id: number; job: { path: string } }) => {
  sha256(m.job.path).then(
    (result) => parentPort!.postMessage({ id: m.id, result }),
    (err: NodeJS.ErrnoException) => parentPort!.postMessage({ id: m.id, error: err.code ?? err.message }),
  );
});
