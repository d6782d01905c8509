import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { parentPort } from 'node:worker_threads';

/** A hashing thread (src/sdk/models/pool.ts): SHA-256 of one file per job, streamed. */
parentPort!.on('message', (m: { id: number; job: { path: string } }) => {
  const h = createHash('sha256');
  createReadStream(m.job.path, { highWaterMark: 1024 * 1024 })
    .on('data', (chunk) => h.update(chunk))
    .on('error', (err) =>
      parentPort!.postMessage({ id: m.id, error: (err as NodeJS.ErrnoException).code ?? err.message }),
    )
    .on('end', () => parentPort!.postMessage({ id: m.id, result: h.digest('hex') }));
});
