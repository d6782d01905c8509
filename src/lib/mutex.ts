/** A FIFO async mutex: `run` executes critical sections one at a time. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(fn, fn);
    // keep the chain alive whatever the outcome of this section
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
