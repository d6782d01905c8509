import type { BarrierStore } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import type { VaultModule } from '../../contract/module.ts';
import type { AnyOperation } from '../../contract/operation.ts';
import type { Clock } from '../../lib/clock.ts';
import { parseDuration } from '../../lib/duration.ts';
import type { BarrierPort } from '../ports.ts';
import type { UsageVault } from './operations.ts';
import { usageOperations } from './operations.ts';
import { createRecorder, type UsageRecorder } from './recorder.ts';

/** Where usage counts live in the barrier. */
const USAGE_BARRIER_PREFIX = 'sys/usage/';
const DEFAULT_FLUSH_INTERVAL = 10;

/** The `usage` section of the server configuration. */
export interface UsageOptions {
  /** Count secret reads (default true). Off: nothing is recorded; stored counts can still be queried. */
  enabled?: boolean;
  /** How often pending counts are written to storage: seconds or a duration like `10s` (default 10 s). */
  flush_interval?: string | number;
}

/** Everything the vault needs for usage analytics, shaped for CoreDeps. */
export interface UsageSetup {
  readonly enabled: boolean;
  readonly recorder: UsageRecorder;
  /** For CoreDeps.onSuccess: counts reads (absent when recording is off, so reads pay nothing). */
  readonly observe:
    | ((op: string, identity: Identity | undefined, input: unknown, output: unknown) => void)
    | undefined;
  /**
   * The usage module: attaches the recorder to the barrier and serves the query operations; on unseal it
   * starts the periodic flush (and writes counts kept while sealed); at shutdown it writes what is pending.
   */
  module: VaultModule<UsageVault & BarrierPort, BarrierStore>;
  /** Writes pending counts now. */
  flush(): Promise<{ cells: number }>;
  /** At shutdown, while still unsealed: stops the timer and writes what is pending. */
  close(): Promise<void>;
}

export function createUsage(options: UsageOptions | undefined, clock: Clock): UsageSetup {
  const enabled = options?.enabled ?? true;
  const intervalMs = parseDuration(options?.flush_interval ?? DEFAULT_FLUSH_INTERVAL) * 1000;
  if (intervalMs < 1000) throw new TypeError('usage.flush_interval must be at least 1 second');
  const recorder = createRecorder({ clock });
  async function close() {
    try {
      await recorder.close();
    } catch {
      // a failed last flush must not keep the server from shutting down
    }
  }
  return {
    enabled,
    recorder,
    observe: enabled ? recorder.observe : undefined,
    module: {
      name: 'usage',
      needs: ['secrets'],
      mount: USAGE_BARRIER_PREFIX,
      operations(vault, store) {
        recorder.attach(store, () => vault.barrier.sealed);
        return usageOperations({
          vault,
          store,
          recorder,
          recording: enabled,
        }) as AnyOperation[];
      },
      async onUnseal() {
        if (!enabled) return;
        recorder.start(intervalMs);
        // counts taken before a seal were kept in memory: write them now, but do not hold up the unseal
        recorder.flush().catch(() => {});
      },
      close,
    },
    flush: () => recorder.flush(),
    close,
  };
}
