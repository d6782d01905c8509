import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * A small pool of threads that each hash whole files (src/supply-chain/hash-worker.ts): SHA-256 runs on
 * the thread that calls it, so hashing a model's shards on every core needs one thread per core.
 */
export interface HashPool {
  sha256(path: string): Promise<string>;
  close(): Promise<void>;
}

export function createHashPool(size = availableParallelism()): HashPool {
  const workers: Worker[] = [];
  const idle: Worker[] = [];
  const queue: Array<{ path: string; resolve: (d: string) => void; reject: (e: Error) => void }> = [];
  const pending = new Map<
    number,
    { resolve: (d: string) => void; reject: (e: Error) => void; worker: Worker }
  >();
  let next = 0;

  function pump(): void {
    while (idle.length && queue.length) {
      const w = idle.pop()!;
      const job = queue.shift()!;
      const id = next++;
      pending.set(id, { resolve: job.resolve, reject: job.reject, worker: w });
      w.postMessage({ id, path: job.path });
    }
  }

  function spawn(): Worker {
    const w = new Worker(new URL('./hash-worker.ts', import.meta.url));
    w.on('message', (m: { id: number; digest?: string; error?: string }) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.digest!);
      idle.push(w);
      pump();
    });
    w.on('error', (err) => {
      for (const [id, p] of pending) {
        if (p.worker === w) {
          pending.delete(id);
          p.reject(err);
        }
      }
    });
    return w;
  }

  for (let n = 0; n < Math.max(1, size); n++) {
    const w = spawn();
    workers.push(w);
    idle.push(w);
  }
  return {
    sha256: (path) =>
      new Promise((resolve, reject) => {
        queue.push({ path, resolve, reject });
        pump();
      }),
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
