import type { AuditCheckpointConfig, AuditConfig } from '../audit/config.ts';
import { type AuditSetup, createAudit } from '../audit/module.ts';
import { type AuthMethodOptions, authMethods } from '../auth/user-ops.ts';
import { type Core, createCore } from '../core/core.ts';
import type { AnyOperation } from '../core/types.ts';
import type { Clock } from '../lib/clock.ts';
import type { SealSettings } from '../seal/seal.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { auditRoutes } from './routes/v1/audit.ts';
import { authRoutes } from './routes/v1/auth.ts';
import type { RouteDef } from './routes/v1/routes.ts';
import { v1Routes } from './routes/v1/routes.ts';

/**
 * The one place where the vault is assembled from its modules: the core with
 * every auth method and engine, and the routes that reach them. The server
 * process and the test harness both build the vault here, so what the tests
 * exercise is what runs.
 */
export interface VaultDeps {
  storage: StorageBackend;
  seal: SealSettings;
  clock: Clock;
  /** Audit sinks; [] disables auditing. */
  audit: AuditConfig;
  auditCheckpoint?: AuditCheckpointConfig | undefined;
  onAuditSinkError?: (sink: string, err: unknown) => void;
  rateLimit?: { requests_per_second: number; burst: number } | undefined;
  /** Settings of the user and app auth methods (login limits, lockout, token TTLs). */
  auth?: AuthMethodOptions;
  /** Extra modules (tests). */
  modules?: ((core: Core) => AnyOperation[])[];
}

export interface Vault {
  core: Core;
  routes: RouteDef[];
  audit: AuditSetup;
  /** Closing checkpoint in the audit log, then the keys leave memory. */
  close(): Promise<void>;
}

export function assembleVault(deps: VaultDeps): Vault {
  const audit = createAudit(deps.audit, {
    clock: deps.clock,
    ...(deps.auditCheckpoint ? { checkpoint: deps.auditCheckpoint } : {}),
    ...(deps.onAuditSinkError ? { onSinkError: deps.onAuditSinkError } : {}),
  });
  const core = createCore({
    storage: deps.storage,
    seal: deps.seal,
    clock: deps.clock,
    audit: audit.broker,
    rateLimit: deps.rateLimit,
    modules: [audit.module, authMethods(deps.auth), ...(deps.modules ?? [])],
    onUnseal: [() => audit.onUnseal()],
    onSeal: [() => audit.onSeal()],
  });
  return {
    core,
    routes: [...v1Routes, ...auditRoutes, ...authRoutes],
    audit,
    async close() {
      core.stop();
      await audit.close();
      core.sealNow();
    },
  };
}
