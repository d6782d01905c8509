import type { BarrierStore } from '../barrier/barrier.ts';
import type { VaultModule } from '../contract/module.ts';
import type { AnyOperation } from '../contract/operation.ts';
import { type Clock, systemClock } from '../lib/clock.ts';
import { type AuditBroker, createAuditBroker } from './broker.ts';
import {
  type AuditCheckpointConfig,
  type AuditConfig,
  auditFilePath,
  checkpointOptions,
  createSinks,
} from './config.ts';
import { type AuditKeys, createAuditKeys } from './keys.ts';
import { auditOperations } from './operations.ts';

/** Where the audit keys live in the barrier. */
const AUDIT_BARRIER_PREFIX = 'sys/audit/';

/** Everything the server needs to audit, shaped for CoreDeps. */
export interface AuditSetup {
  /** CoreDeps.audit */
  broker: AuditBroker;
  /**
   * The audit module: its operations (the keys are made over the core's barrier), its keys loaded (or
   * created) on unseal, and on seal a last signed checkpoint before the keys are forgotten.
   */
  module: VaultModule<unknown, BarrierStore>;
  /** The keys, once module() ran. */
  readonly keys: AuditKeys | undefined;
  /** At shutdown: a closing checkpoint in every sink, then the sinks are closed. */
  close(): Promise<void>;
}

export interface AuditSetupOptions {
  clock?: Clock;
  checkpoint?: AuditCheckpointConfig;
  stdout?: NodeJS.WritableStream;
  onSinkError?(sink: string, err: unknown): void;
}

export function createAudit(config: AuditConfig, opts: AuditSetupOptions = {}): AuditSetup {
  const clock = opts.clock ?? systemClock;
  const broker = createAuditBroker(createSinks(config, opts.stdout ? { stdout: opts.stdout } : {}), {
    clock,
    ...checkpointOptions(opts.checkpoint),
    ...(opts.onSinkError ? { onSinkError: opts.onSinkError } : {}),
  });
  let keys: AuditKeys | undefined;
  return {
    broker,
    get keys() {
      return keys;
    },
    module: {
      name: 'audit',
      mount: AUDIT_BARRIER_PREFIX,
      operations(_deps, store) {
        keys = createAuditKeys(store);
        broker.useKeys(keys);
        return auditOperations({ keys, clock, file: auditFilePath(config) }) as AnyOperation[];
      },
      async onUnseal() {
        await keys?.load();
      },
      onSeal() {
        void broker.checkpoint('seal');
        keys?.unload();
      },
      close: () => broker.close(),
    },
    close: () => broker.close(),
  };
}
