import { AsyncLocalStorage } from 'node:async_hooks';
import { assertValidKey, MAX_KEY_BYTES } from './backend.ts';

/**
 * Key validation shared by every backend: assertValidKey plus well-formedness.
 * A lone surrogate cannot be encoded in UTF-8, so sqlite and postgres would
 * silently store U+FFFD instead and two distinct keys would collide.
 */
export function assertKey(key: string): void {
  assertValidKey(key);
  if (!key.isWellFormed()) throw new TypeError('storage key must be well-formed UTF-16 (no lone surrogates)');
}

export function assertValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array)) throw new TypeError('storage value must be a Uint8Array');
}

/**
 * Validates a list() prefix. Returns false when no key can start with it (it is
 * longer than the longest key), so the caller can answer [] without a query.
 */
export function checkPrefix(prefix: string): boolean {
  if (typeof prefix !== 'string') throw new TypeError('storage prefix must be a string');
  if (prefix.includes('\0')) throw new TypeError('storage prefix must not contain NUL');
  if (!prefix.isWellFormed())
    throw new TypeError('storage prefix must be well-formed UTF-16 (no lone surrogates)');
  return Buffer.byteLength(prefix) <= MAX_KEY_BYTES;
}

/**
 * The smallest string greater than every string that starts with `prefix`, in
 * code point (= UTF-8 byte) order: the prefix with its last code point
 * incremented. Surrogates are skipped (not encodable in UTF-8) and a trailing
 * U+10FFFF is dropped and the carry moves left. Returns undefined when there
 * is no upper bound (empty prefix, or only U+10FFFF code points).
 * Keys with the prefix are exactly those with `prefix <= key < bound`.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = Array.from(prefix);
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    const next = last === 0xd7ff ? 0xe000 : last + 1;
    if (next <= 0x10ffff) {
      points.push(String.fromCodePoint(next));
      return points.join('');
    }
  }
  return undefined;
}

/** Compares two keys in UTF-8 byte order (JS `<` compares UTF-16 code units, which differs above U+FFFF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** State of one transaction attempt; `active` turns false when it ends. */
export type TxState = { active: boolean };

export function assertActive(state: TxState): void {
  if (!state.active) throw new TypeError('storage transaction has already ended');
}

/**
 * Detects calls to the backend itself (put/delete/transaction) from inside a
 * transaction's fn. On memory and sqlite they would wait forever for the mutex
 * the transaction holds; on postgres they would run outside the transaction and
 * can deadlock on its row locks. Misuse of an internal API throws TypeError.
 */
export function createReentryGuard(kind: string): {
  run<T>(state: TxState, fn: () => Promise<T>): Promise<T>;
  assertOutside(): void;
} {
  const als = new AsyncLocalStorage<TxState>();
  return {
    run: (state, fn) => als.run(state, fn),
    assertOutside() {
      // a promise started in fn that outlives the transaction keeps its context: only an active one counts
      if (als.getStore()?.active) {
        throw new TypeError(
          `${kind} storage: inside transaction() use the transaction object, not the backend`,
        );
      }
    },
  };
}
