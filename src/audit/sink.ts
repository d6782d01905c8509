import { type Clock, systemClock } from '../lib/clock.ts';
import {
  type AuditEntry,
  type CheckpointLine,
  type CheckpointReason,
  checkpointMessage,
  GENESIS_HASH,
  lineHash,
  withSignature,
} from './entry.ts';
import type { CheckpointSigner } from './keys.ts';

/**
 * A destination for audit entries. `write` resolves only once the entry is
 * durable in the sink (for a file: written and fsynced), and rejects when it
 * is not, so the broker can fail closed.
 */
export interface AuditSink {
  readonly name: string;
  write(entry: AuditEntry): Promise<void>;
  /** Settings from the broker: checkpoint cadence, the signer (undefined while sealed), the clock. */
  configure?(opts: SinkSettings): void;
  /**
   * Appends a signed checkpoint if entries were written since the last one,
   * signed by `signer` (default: the broker's, if loaded).
   */
  checkpoint?(reason: CheckpointReason, signer?: CheckpointSigner): Promise<void>;
  /** Entries written since the last checkpoint. */
  readonly uncovered?: number;
  /** Flushes and releases the destination. */
  close?(): Promise<void>;
}

export interface SinkSettings {
  /** Write a checkpoint after this many entries (0: never by count). */
  checkpointEvery: number;
  signer: () => CheckpointSigner | undefined;
  clock: Clock;
}

/** Where a chained sink's state stands at the end of its destination. */
export interface ChainTail {
  /** seq of the last line (0 for an empty destination). */
  seq: number;
  /** Hash of the last line (GENESIS_HASH for an empty destination). */
  hash: string;
  /** Entries after the last checkpoint (at least 1 when the last line is not a checkpoint). */
  uncovered: number;
}

/**
 * The byte-level half of a sink: where lines go. The chaining, batching and
 * checkpointing are the same for every destination (createChainedSink).
 */
export interface AuditTransport {
  readonly name: string;
  /**
   * (Re)opens the destination. Returns the chain tail found there (a file) or
   * undefined to continue the chain kept in memory (a stream or socket).
   */
  open(): Promise<ChainTail | undefined>;
  /**
   * Before each batch: 'ok'; 'reopen' to reopen first; 'rotated' when the
   * destination was replaced (the old one still takes a closing checkpoint).
   * Throws when the destination is unusable.
   */
  check(): Promise<'ok' | 'reopen' | 'rotated'>;
  /** Writes whole lines, durably; on failure nothing of `data` may remain. */
  append(data: string): Promise<void>;
  /** Wraps a line for the wire (e.g. syslog framing); the chain hashes the unwrapped line. */
  frame?(line: string, now: number): string;
  /** Makes the verification key available next to the destination (a file's FILE.pub). */
  publishKey?(signer: CheckpointSigner): Promise<void>;
  /** Drops the open handle after a failure; the next batch reopens. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

type Item =
  | { kind: 'entry'; json: string; resolve(): void; reject(err: unknown): void }
  | {
      kind: 'checkpoint';
      reason: CheckpointReason;
      signer: CheckpointSigner | undefined;
      resolve(): void;
      reject(err: unknown): void;
    };

const MAX_BATCH_ITEMS = 1024;
const MAX_BATCH_CHARS = 4 * 1024 * 1024;

/**
 * A sink that chains lines (seq, prev), writes them in batches (entries that
 * arrive while a write is in flight share the next fsync: group commit) and
 * inserts signed checkpoints. An entry that fails to be written is not part
 * of the chain: the chain state only advances once a batch is durable.
 */
export function createChainedSink(transport: AuditTransport, initial?: Partial<SinkSettings>): AuditSink {
  let settings: SinkSettings = {
    checkpointEvery: initial?.checkpointEvery ?? 1000,
    signer: initial?.signer ?? (() => undefined),
    clock: initial?.clock ?? systemClock,
  };
  let chain: ChainTail = { seq: 0, hash: GENESIS_HASH, uncovered: 0 };
  let opened = false;
  let closed = false;
  let flushing = false;
  let scheduled = false;
  const queue: Item[] = [];
  const frame = (line: string) => (transport.frame ? transport.frame(line, settings.clock.now()) : line);

  function checkpointLine(seq: number, prev: string, reason: CheckpointReason, signer: CheckpointSigner) {
    const unsigned: Omit<CheckpointLine, 'signature'> = {
      seq,
      prev,
      type: 'checkpoint',
      chain_head: prev,
      reason,
      signed_at: new Date(settings.clock.now()).toISOString(),
      key_id: signer.keyId,
    };
    const json = JSON.stringify(unsigned);
    return withSignature(json, signer.sign(checkpointMessage(json)));
  }

  async function runBatch(batch: Item[]): Promise<void> {
    if (opened) {
      const state = await transport.check();
      if (state !== 'ok') {
        const signer = settings.signer();
        if (state === 'rotated' && signer && chain.uncovered > 0) {
          // close the rotated file with a checkpoint so it verifies on its own; best effort
          try {
            await transport.publishKey?.(signer);
            await transport.append(`${frame(checkpointLine(chain.seq + 1, chain.hash, 'rotate', signer))}\n`);
          } catch {}
        }
        await transport.reset();
        opened = false;
      }
    }
    if (!opened) {
      const tail = await transport.open();
      if (tail) chain = { ...tail };
      opened = true;
    }
    let { seq, hash, uncovered } = chain;
    let out = '';
    let signed: CheckpointSigner | undefined;
    const add = (line: string) => {
      out += `${frame(line)}\n`;
      seq += 1;
      hash = lineHash(line);
    };
    const maybeCheckpoint = (reason: CheckpointReason, given?: CheckpointSigner) => {
      const signer = given ?? settings.signer();
      if (!signer || uncovered === 0) return;
      add(checkpointLine(seq + 1, hash, reason, signer));
      uncovered = 0;
      signed = signer;
    };
    for (const item of batch) {
      if (item.kind === 'entry') {
        // the entry's own JSON follows seq and prev in the same object
        add(`{"seq":${seq + 1},"prev":"${hash}",${item.json.slice(1)}`);
        uncovered += 1;
        if (settings.checkpointEvery > 0 && uncovered >= settings.checkpointEvery) maybeCheckpoint('count');
      } else {
        maybeCheckpoint(item.reason, item.signer);
      }
    }
    if (signed) {
      // the key must be findable before any line signed with it
      try {
        await transport.publishKey?.(signed);
      } catch {}
    }
    if (out !== '') await transport.append(out);
    chain = { seq, hash, uncovered };
  }

  async function flush(): Promise<void> {
    scheduled = false;
    if (flushing) return;
    flushing = true;
    try {
      while (queue.length > 0) {
        let n = 0;
        let chars = 0;
        while (n < queue.length && n < MAX_BATCH_ITEMS && chars < MAX_BATCH_CHARS) {
          const it = queue[n]!;
          chars += it.kind === 'entry' ? it.json.length : 512;
          n++;
        }
        const batch = queue.splice(0, n);
        try {
          await runBatch(batch);
          for (const it of batch) it.resolve();
        } catch (err) {
          opened = false;
          await transport.reset().catch(() => {});
          for (const it of batch) it.reject(err);
        }
      }
    } finally {
      flushing = false;
    }
  }

  function enqueue(item: Item): void {
    queue.push(item);
    // let every write made in this tick join the same batch
    if (!scheduled && !flushing) {
      scheduled = true;
      queueMicrotask(() => void flush());
    }
  }

  return {
    name: transport.name,
    configure(s) {
      settings = { ...s };
    },
    get uncovered() {
      return chain.uncovered;
    },
    write(entry) {
      if (closed) return Promise.reject(new Error(`audit sink ${transport.name} is closed`));
      const json = JSON.stringify(entry);
      if (json.length < 3 || json[0] !== '{')
        return Promise.reject(new TypeError('an audit entry is an object'));
      return new Promise<void>((resolve, reject) => enqueue({ kind: 'entry', json, resolve, reject }));
    },
    checkpoint(reason, signer) {
      if (closed) return Promise.resolve();
      return new Promise<void>((resolve, reject) =>
        enqueue({ kind: 'checkpoint', reason, signer, resolve, reject }),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      // whatever is queued is still written
      while (flushing || queue.length > 0) {
        await flush();
        if (flushing) await new Promise((r) => setImmediate(r));
      }
      await transport.close();
    },
  };
}
