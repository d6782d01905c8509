import type { AuditCheckpointConfig, AuditConfig } from '../audit/config.ts';
import { type AuditSetup, createAudit } from '../audit/module.ts';
import { tokensModule } from '../auth/token-ops.ts';
import { type AuthMethodOptions, authMethods } from '../auth/user-ops.ts';
import type { BarrierStore } from '../barrier/barrier.ts';
import type { GatewayConfig } from '../config/gateway.ts';
import type { VaultModule } from '../contract/module.ts';
import { CORE_MOUNTS, type Core, createCore } from '../core/core.ts';
import { generateRootModule } from '../core/generate-root.ts';
import { sysModule } from '../core/sys.ts';
import { checkoutModule } from '../engines/checkout/checkout.ts';
import { databaseModule } from '../engines/database/database.ts';
import {
  type GatewayKeysEngine,
  type GatewayKeysOptions,
  gatewayKeysModule,
} from '../engines/gateway/virtual-keys.ts';
import { hygieneModule } from '../engines/hygiene/hygiene.ts';
import { type IdentityEngine, type IdentityOptions, identityModule } from '../engines/identity/identity.ts';
import { secretsModule } from '../engines/kv/kv.ts';
import {
  type LeaseManager,
  type LeaseOptions,
  type LeasesPort,
  leasesModule,
} from '../engines/leases/leases.ts';
import { metricsModule } from '../engines/metrics/metrics.ts';
import { modelsModule } from '../engines/models/models.ts';
import type {
  HsmPort,
  SecretsPort,
  SecretsReader,
  SecretsWriterPort,
  TransitPort,
  VirtualKeysPort,
} from '../engines/ports.ts';
import { providerKeysModule } from '../engines/provider-keys/provider-keys.ts';
import { createRotation, type RotationOptions, type RotationService } from '../engines/rotation/rotation.ts';
import { toolsModule } from '../engines/tools/tools.ts';
import { transitModule } from '../engines/transit/transit.ts';
import { createUsage, type UsageOptions, type UsageSetup } from '../engines/usage/usage.ts';
import { type WatchEngine, type WatchOptions, watchModule } from '../engines/watch/watch.ts';
import { wrappingModule } from '../engines/wrapping/wrapping.ts';
import type { GatewayDeps } from '../gateway/gateway.ts';
import type { ProviderKeys } from '../gateway/provider-keys.ts';
import type { Clock } from '../lib/clock.ts';
import { policiesModule } from '../policy/operations.ts';
import { hsmFor, type SealSettings } from '../seal/seal.ts';
import type { StorageBackend } from '../storage/backend.ts';
import type { LocalEngines } from './gateway-vault/local-vault.ts';
import { gatewayVaultModule } from './gateway-vault/vault-service.ts';
import { checkMounts, closeModules, orderModules } from './modules.ts';

/**
 * The composition root: the one place where the vault is assembled from its
 * modules (the core with its own operations, every auth method and engine)
 * and where their lifecycle is kept. The server process, the test harness and
 * the benches all build the vault here, so what the tests exercise is what
 * runs. The HTTP routes that reach the operations are the server's
 * (src/server/routes/vault-routes.ts).
 */

/** What every module of the vault may ask for: the core's parts and the ports modules offer each other. */
export type ModuleDeps = Core &
  SecretsPort &
  SecretsWriterPort &
  LeasesPort &
  VirtualKeysPort &
  TransitPort &
  HsmPort;

/** The core's own modules (seal and status, tokens, custom policies): every vault has them. */
export const CORE_MODULES: readonly VaultModule<Core, BarrierStore>[] = [
  sysModule,
  generateRootModule,
  tokensModule,
  policiesModule,
];
export interface VaultDeps {
  storage: StorageBackend;
  seal: SealSettings;
  clock: Clock;
  /** Audit sinks; [] disables auditing. */
  audit: AuditConfig;
  auditCheckpoint?: AuditCheckpointConfig | undefined;
  onAuditSinkError?: (sink: string, err: unknown) => void;
  /** A module's onSeal threw (the others still ran, and the vault is sealed). */
  onModuleError?: (module: string, phase: 'seal', err: unknown) => void;
  /** An HSM seal could not unseal at start (src/core/core.ts): the server stays sealed and retries. */
  onAutoUnsealError?: (err: unknown) => void;
  autoUnsealRetryMs?: number;
  rateLimit?: { requests_per_second: number; burst: number } | undefined;
  /** Settings of the user and app auth methods (login limits, lockout, token TTLs). */
  auth?: AuthMethodOptions;
  /** Extra modules (tests). */
  modules?: readonly VaultModule<ModuleDeps, BarrierStore>[];
  /** Usage analytics (counting secret reads); on by default. */
  usage?: UsageOptions | undefined;
  /** Secret rotation: scheduler period, cluster holder id, adapter base URLs (docs/rotation.md). */
  rotation?: RotationOptions | undefined;
  /** Watch streams: heartbeat and shared-storage poll intervals (docs/watch.md). */
  watch?: WatchOptions | undefined;
  /** Leases: the sweeper's period and batch, this server's name in the cluster (docs/leases.md). */
  leases?: LeaseOptions | undefined;
  /** Workload identity: the SPIFFE CA (docs/identity.md). */
  identity?: IdentityOptions | undefined;
  /** Gateway virtual keys and budgets (docs/gateway-keys.md); `bind` receives the engine (key lookups, budgets). */
  gatewayKeys?: (GatewayKeysOptions & { bind?: (engine: GatewayKeysEngine) => void }) | undefined;
}

export interface Vault {
  core: Core;
  /** The secrets engine, read-only (its change events): what the modules built on it see. */
  secrets: SecretsReader;
  audit: AuditSetup;
  usage: UsageSetup;
  /** Secret rotation: the scheduler (tick() drives it in tests). */
  rotation: RotationService;
  /** Leases: the sweeper (sweep() drives it in tests). */
  leases: LeaseManager;
  /** What the gateway needs from the engines assembled here (virtual keys, budgets, stages). */
  gatewayDeps(config: GatewayConfig, keys: ProviderKeys): Promise<Omit<GatewayDeps, 'config' | 'logger'>>;
  /** Closing checkpoint in the audit log, then the keys leave memory. */
  close(): Promise<void>;
}

/** Operations after which some tokens may no longer be valid. */
const REVOKING = new Set([
  'token.revoke',
  'token.revoke-self',
  'token.revoke-accessor',
  'app.delete',
  'app.rotate-secret',
  'user.delete',
  'user.set-password',
  'user.set-roles',
  'user.change-own-password',
]);

/** What the gateway port needs of the engines, in process or serving a remote gateway. */
function gatewayEngines(
  engine: GatewayKeysEngine,
  identity: IdentityEngine | undefined,
): Omit<LocalEngines, 'keys'> {
  return {
    ...(identity ? { workloads: { unregister: (id: string) => identity.unregister(id) } } : {}),
    virtualKeys: {
      lookup: (k) => engine.lookup(k),
      get: (id) => engine.get(id),
      revoke: (id) => engine.revoke(id),
      live: (id) => engine.live(id),
      reader: (key) => engine.reader(key),
    },
    budgets: engine.budgets,
  };
}

export function assembleVault(deps: VaultDeps): Vault {
  let watch: WatchEngine | undefined;
  let identityEngine: IdentityEngine | undefined;
  let gatewayKeys: GatewayKeysEngine | undefined;
  let transit: TransitPort['transit'] | undefined;
  const audit = createAudit(deps.audit, {
    clock: deps.clock,
    ...(deps.auditCheckpoint ? { checkpoint: deps.auditCheckpoint } : {}),
    ...(deps.onAuditSinkError ? { onSinkError: deps.onAuditSinkError } : {}),
  });
  const usage = createUsage(deps.usage, deps.clock);
  const rotation = createRotation(deps.rotation);
  const secrets = secretsModule();
  const leases = leasesModule(deps.leases);
  // every module of the vault, in dependency order (src/assemble/modules.ts); the core registers their
  // operations and runs their onUnseal/onSeal, and close() below closes them in reverse
  const modules = orderModules<ModuleDeps, BarrierStore>([
    ...CORE_MODULES,
    audit.module,
    secrets.module,
    authMethods(deps.auth),
    usage.module,
    rotation.module,
    leases.module,
    databaseModule(),
    checkoutModule(),
    providerKeysModule({ adapters: deps.rotation?.adapters }),
    toolsModule(),
    transitModule((t) => (transit = t)),
    modelsModule(),
    wrappingModule(),
    watchModule(deps.storage, deps.watch, (e) => (watch = e)),
    hygieneModule(),
    identityModule(deps.identity, (e) => (identityEngine = e)),
    gatewayKeysModule(
      // one process owns exclusive storage: budgets are counted in memory and written behind (decision 0008)
      { ...deps.gatewayKeys, ...(deps.storage.exclusive ? { budgets_write_behind_ms: 1_000 } : {}) },
      (e) => {
        gatewayKeys = e;
        deps.gatewayKeys?.bind?.(e);
      },
    ),
    // the vault's side of gateways running elsewhere (docs/gateway-remote.md)
    gatewayVaultModule(() => ({
      ...gatewayEngines(gatewayKeys!, identityEngine),
      exclusiveStorage: deps.storage.exclusive,
    })),
    metricsModule(),
    ...(deps.modules ?? []),
  ]);
  checkMounts(modules, CORE_MOUNTS);
  const core = createCore({
    ...(deps.onModuleError ? { onModuleError: deps.onModuleError } : {}),
    ...(deps.onAutoUnsealError ? { onAutoUnsealError: deps.onAutoUnsealError } : {}),
    ...(deps.autoUnsealRetryMs ? { autoUnsealRetryMs: deps.autoUnsealRetryMs } : {}),
    storage: deps.storage,
    seal: deps.seal,
    clock: deps.clock,
    audit: audit.broker,
    rateLimit: deps.rateLimit,
    modules,
    ports: {
      ...secrets.ports,
      ...leases.ports,
      // the gateway-keys engine, bound once its module is mounted
      virtualKeys: {
        mint: (ctx, input) => gatewayKeys!.mint(ctx, input),
        revoke: (id) => gatewayKeys!.revoke(id),
        idsNamed: (name) => gatewayKeys!.idsNamed(name),
      },
      transit: { unwrap: (name, ciphertext, aad) => transit!.unwrap(name, ciphertext, aad) },
      // a PKCS#11 seal's HSM may hold transit keys too
      hsm: hsmFor(deps.seal)?.keys,
    } satisfies SecretsPort & SecretsWriterPort & LeasesPort & VirtualKeysPort & TransitPort & HsmPort,
    onSuccess: [
      ...(usage.observe ? [usage.observe] : []),
      // a revocation ends open watch streams at once, not at their next heartbeat
      (op) => {
        if (REVOKING.has(op)) {
          watch?.recheckAll();
          // leases end with their holder token: look at the holders at the next pass
          leases.ports.leases.holdersChanged();
        }
      },
    ],
  });
  // workloads authenticate by SVID through the identity engine (the modules were built by createCore)
  core.workloadAuth = identityEngine?.authenticate;
  return {
    core,
    secrets: secrets.ports.secrets,
    audit,
    usage,
    rotation,
    leases: leases.ports.leases,
    async gatewayDeps(config, keys) {
      // the gateway's modules are loaded only by a server that runs the gateway
      const [{ gatewayParts }, { createGatewayIdentity }, { localVault }] = await Promise.all([
        import('../gateway/assemble.ts'),
        import('../gateway/self-identity.ts'),
        import('./gateway-vault/local-vault.ts'),
      ]);
      const engine = gatewayKeys!;
      const identity =
        config.provenance !== false || config.remote_stages?.length
          ? createGatewayIdentity(
              config.spiffe_id ?? `spiffe://${identityEngine!.trustDomain}/strongroom/gateway`,
              (id, key, ttl) => identityEngine!.issueSelf(id, key, ttl),
            )
          : undefined;
      const vault = localVault(core, { keys, ...gatewayEngines(engine, identityEngine) });
      return gatewayParts(config, vault, identity);
    },
    async close() {
      core.stop();
      // while the barrier is unsealed, in reverse dependency order: the rotation scheduler hands its
      // cluster lease back, budgets and usage counts kept in memory are written, and the audit log gets its
      // closing checkpoint last; then the keys leave memory, whatever a module's close did
      try {
        await closeModules(modules);
      } finally {
        core.sealNow();
      }
    },
  };
}
