import type { AuditBroker } from '../audit/broker.ts';
import { type Core, createCore } from '../core/core.ts';
import type { AnyOperation } from '../core/types.ts';
import type { Clock } from '../lib/clock.ts';
import type { SealSettings } from '../seal/seal.ts';
import type { StorageBackend } from '../storage/backend.ts';
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
  audit: AuditBroker;
  rateLimit?: { requests_per_second: number; burst: number } | undefined;
  /** Extra modules (tests). */
  modules?: ((core: Core) => AnyOperation[])[];
}

export function assembleVault(deps: VaultDeps): { core: Core; routes: RouteDef[] } {
  const core = createCore({
    storage: deps.storage,
    seal: deps.seal,
    clock: deps.clock,
    audit: deps.audit,
    rateLimit: deps.rateLimit,
    modules: [...(deps.modules ?? [])],
  });
  return { core, routes: [...v1Routes] };
}
