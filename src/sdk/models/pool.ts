import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * A small pool of threads, one job at a time each (src/sdk/models/*-worker.ts): hashing and AES-GCM run
 * on the thread that calls them, so working through a model's shards on every core needs one thread per
 * core. A job answers `{result}` or `{error}`.
 */
export interface Pool<Req, Res> {
  run(job: Req): Promise<Res>;
  close(): Promise<void>;
}

export function createPool<Req, Res>(worker: URL, size = availableParallelism()): Pool<Req, Res> {
  const workers: Worker[] = [];
  const idle: Worker[] = [];
  const queue: Array<{ job: Req; resolve: (r: Res) => void; reject: (e: Error) => void }> = [];
  const pending = new Map<
    number,
    { resolve: (r: Res) => void; reject: (e: Error) => void; worker: Worker }
  >();
  let next = 0;

  function pump(): void {
    while (idle.length && queue.length) {
      const w = idle.pop()!;
      const { job, resolve, reject } = queue.shift()!;
      const id = next++;
      pending.set(id, { resolve, reject, worker: w });
      w.postMessage({ id, job });
    }
  }

  for (let n = 0; n < Math.max(1, size); n++) {
    const w = new Worker(worker);
    w.on('message', (m: { id: number; result?: Res; error?: string }) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.result as Res);
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
    workers.push(w);
    idle.push(w);
  }
  return {
    run: (job) =>
      new Promise((resolve, reject) => {
        queue.push({ job, resolve, reject });
        pump();
      }),
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
