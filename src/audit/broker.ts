import { StrongroomError } from '../errors/errors.ts';
import { type Clock, systemClock } from '../lib/clock.ts';
import type { AuditEntry, CheckpointReason } from './entry.ts';
import { type SensitiveFields, sanitize, sensitiveFields } from './hmac.ts';
import type { AuditKeys } from './keys.ts';
import type { AuditSink } from './sink.ts';

export type { AuditEntry } from './entry.ts';
export type { AuditSink } from './sink.ts';

export interface AuditBroker {
  /** False when no sink is configured (auditing disabled): callers may skip building entries. */
  readonly enabled: boolean;
  /**
   * Sanitises the entry (sensitive fields -> HMAC) and writes it to every
   * sink; throws `audit_unavailable` when none accepted it (fail closed).
   */
  log(entry: AuditEntry): Promise<void>;
  /** Attaches the audit keys (HMAC and checkpoint signing), once the barrier exists. */
  useKeys(keys: AuditKeys | undefined): void;
  /** Writes a signed checkpoint to every sink with entries since its last one (best effort). */
  checkpoint(reason?: CheckpointReason): Promise<void>;
  /** Writes a closing checkpoint, flushes and closes every sink, stops the timer. */
  close(): Promise<void>;
}

export interface AuditBrokerOptions {
  keys?: AuditKeys;
  clock?: Clock;
  /** A checkpoint after this many entries in a sink (default 1000; 0: never by count). */
  checkpointEvery?: number;
  /** A checkpoint this often when entries are waiting for one (default 60 s; 0: never by time). */
  checkpointIntervalMs?: number;
  /** Field names replaced by their HMAC (default SENSITIVE_FIELDS). */
  sensitiveFields?: readonly string[];
  /** Told about every sink failure (a failed write, checkpoint or close), for the server log. */
  onSinkError?(sink: string, err: unknown): void;
}

const DEFAULT_CHECKPOINT_EVERY = 1000;
const DEFAULT_CHECKPOINT_INTERVAL_MS = 60_000;

export function createAuditBroker(sinks: readonly AuditSink[], opts: AuditBrokerOptions = {}): AuditBroker {
  let keys = opts.keys;
  const clock = opts.clock ?? systemClock;
  const names: SensitiveFields = sensitiveFields(opts.sensitiveFields);
  const report = (sink: AuditSink, err: unknown) => {
    try {
      opts.onSinkError?.(sink.name, err);
    } catch {}
  };
  for (const s of sinks) {
    s.configure?.({
      checkpointEvery: opts.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY,
      signer: () => keys?.signer,
      clock,
    });
  }

  async function checkpoint(reason: CheckpointReason = 'manual'): Promise<void> {
    // the signer is taken now: a checkpoint asked for just before sealing is still signed
    const signer = keys?.signer;
    if (!signer) return;
    await Promise.all(
      sinks.map(async (s) => {
        if (!s.checkpoint) return;
        try {
          await s.checkpoint(reason, signer);
        } catch (err) {
          report(s, err);
        }
      }),
    );
  }

  const intervalMs = opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
  let timer: NodeJS.Timeout | undefined;
  if (sinks.length > 0 && intervalMs > 0) {
    timer = setInterval(() => void checkpoint('interval'), intervalMs);
    timer.unref();
  }
  let closed = false;

  return {
    enabled: sinks.length > 0,
    async log(entry) {
      if (sinks.length === 0) return;
      if (closed) {
        throw new StrongroomError(
          'audit_unavailable',
          'the audit log is closed: the server is shutting down',
        );
      }
      const clean = sanitize(entry, names, keys?.hasher) as AuditEntry;
      if (sinks.length === 1) {
        // the usual case: one sink, no settling of a list
        const sink = sinks[0]!;
        try {
          await sink.write(clean);
          return;
        } catch (err) {
          report(sink, err);
          throw new StrongroomError(
            'audit_unavailable',
            'no audit sink accepted the entry; the request was not performed',
          );
        }
      }
      const results = await Promise.allSettled(sinks.map((s) => s.write(clean)));
      let accepted = false;
      for (const [i, r] of results.entries()) {
        if (r.status === 'fulfilled') accepted = true;
        else report(sinks[i]!, r.reason);
      }
      if (!accepted) {
        throw new StrongroomError(
          'audit_unavailable',
          'no audit sink accepted the entry; the request was not performed',
        );
      }
    },
    useKeys(k) {
      keys = k;
    },
    checkpoint,
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await checkpoint('shutdown');
      await Promise.all(
        sinks.map(async (s) => {
          try {
            await s.close?.();
          } catch (err) {
            report(s, err);
          }
        }),
      );
    },
  };
}
