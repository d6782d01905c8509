import type { AuditBroker, AuditEntry } from '../audit/broker.ts';
import { createTokenStore, type TokenStore } from '../auth/tokens.ts';
import { type Barrier, type BarrierStore, createBarrier } from '../barrier/barrier.ts';
import type { Identity, TokenEntry } from '../contract/identity.ts';
import type { VaultModule } from '../contract/module.ts';
import type { AnyOperation, OperationContext, RequestInfo, Resource } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { createMetricsRegistry, type MetricsRegistry } from '../lib/metrics.ts';
import type { Decision } from '../policy/authorize.ts';
import { createPolicyEngine, type PolicyEngine } from '../policy/engine.ts';
import { ACTIONS, PUBLIC_ACTIONS, UNSCOPED_ACTIONS } from '../policy/schema.ts';
import { createSealManager, type SealManager, type SealSettings } from '../seal/seal.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { auditStep } from './pipeline/audit.ts';
import { type Authenticated, authenticationStep } from './pipeline/authenticate.ts';
import { authorizationStep } from './pipeline/authorize.ts';
import { type Describer, describeStep } from './pipeline/describe.ts';
import { rateLimitStep } from './pipeline/rate-limit.ts';
import { runOperation } from './pipeline/run.ts';

export type { Authenticated } from './pipeline/authenticate.ts';

const PUBLIC: Decision = Object.freeze({ allowed: true, reason: 'public operation' });

/**
 * The barrier prefixes the core keeps for itself (the barrier's own records live under `core/`): no
 * module may be mounted on or inside them, nor above them.
 */
export const CORE_MOUNTS = {
  barrier: 'core/',
  tokens: 'sys/token/',
  policies: 'sys/policy/',
} as const;

export interface CoreDeps<P extends object = object> {
  storage: StorageBackend;
  seal: SealSettings;
  clock: Clock;
  audit: AuditBroker;
  /**
   * The modules (the core's own operations, auth methods, audit, the secrets engine and the engines
   * built on it), in the order the assembler put them (src/assemble/modules.ts): each one is mounted on
   * a view of its `mount`, its operations are registered and the resource types it owns described, its
   * `onUnseal` runs after every unseal (in this order) and its `onSeal` when the core seals (in reverse).
   */
  modules?: readonly VaultModule<Core & P, BarrierStore>[];
  /**
   * Ports modules offer each other (the secrets engine's reader and writer), handed to every module
   * with the core's own: `operations(deps)` sees the core's parts and these.
   */
  ports?: P;
  /** A module's onSeal threw (the others still ran, and the vault is sealed): for the server log. */
  onModuleError?: (module: string, phase: 'seal', err: unknown) => void;
  /**
   * An HSM seal could not unseal at start (docs/seal.md): the server stays sealed, says why here, and
   * tries again every `autoUnsealRetryMs` (default 10 s) until it can or someone unseals it.
   */
  onAutoUnsealError?: (err: unknown) => void;
  autoUnsealRetryMs?: number;
  /** Requests per second (and burst) allowed per token, or per app for app tokens; root tokens are exempt. */
  rateLimit?: { requests_per_second: number; burst: number } | undefined;
  /**
   * Called after each successful operation, once its response was audited
   * (usage analytics). On the hot path: must be synchronous, cheap and never throw.
   */
  onSuccess?: ((
    operation: string,
    identity: Identity | undefined,
    input: unknown,
    output: unknown,
  ) => void)[];
  /** Where request counts and durations go, and where modules register their metrics (default: a new registry). */
  metrics?: MetricsRegistry;
}

export interface Core {
  readonly barrier: Barrier;
  readonly seal: SealManager;
  readonly tokens: TokenStore;
  readonly policies: PolicyEngine;
  readonly clock: Clock;
  /** Counters and histograms of this server (request counts and durations; modules add theirs). */
  readonly metrics: MetricsRegistry;
  /** Every registered operation, by name. */
  readonly operations: ReadonlyMap<string, AnyOperation>;
  /**
   * The request pipeline: sealed check -> authenticate -> resolve the resource
   * -> authorize (scope, then Cedar; deny by default; an error is a deny) ->
   * audit(request) -> handler -> audit(response). No handler can run without
   * passing every step, and every operation declares its action.
   */
  invoke<O = unknown>(name: string, input: unknown, request: RequestInfo): Promise<O>;
  /**
   * The pipeline's authentication step, the one `invoke` runs and the only
   * one (the AI gateway authenticates through it too, so a credential means
   * the same everywhere): an SVID (a client certificate chain with no token,
   * or a JWT-SVID as the token) through `workloadAuth`, else the token
   * looked up; then, unless `rateLimit` is false, the per-principal rate
   * limit (by owner: one app, one user, one standalone token tree, one
   * workload; root-policy tokens exempt); then, for a limited-use token, one
   * use counted (only once the rate limit passed; the last use revokes it).
   * Throws `sealed`, `unauthenticated`, `invalid_token`, `invalid_svid` or
   * `rate_limited` (with `details.retry_after`), as `invoke` answers them.
   * `exhausted`: this request spent the token's last use (the token, and its
   * children, are revoked already: nothing is left to check or revoke later).
   * Writes no audit entry: the caller records refusals (`invoke` does).
   */
  authenticate(request: RequestInfo, opts?: { rateLimit?: boolean }): Promise<Authenticated>;
  /** Adds what policies need to know about a resource (production flag, provider, tags). */
  describe(resource: Resource): Promise<Resource>;
  /**
   * Audits work the server does on its own, outside any request (scheduled
   * rotation): sanitised and fail-closed like request entries (throws
   * `audit_unavailable` when no sink accepted it). `time` defaults to now.
   */
  audit(entry: Omit<AuditEntry, 'time'> & { time?: string }): Promise<void>;
  /**
   * Authenticates workloads by SVID (a client certificate chain, or a JWT-SVID
   * as bearer token): set once by the assembler, from the identity engine. Undefined: no SVIDs.
   */
  workloadAuth: ((request: RequestInfo) => Promise<Identity | undefined>) | undefined;
  /** Whether `identity` may perform `action` on `resource` (for filtering lists). */
  allows(identity: Identity, action: string, resource: Resource, request: RequestInfo): Promise<boolean>;
  /** Unseals without people when storage is initialised: from the static key file, or through the HSM. */
  start(): Promise<void>;
  /** Runs after every unseal (loads keys the auth layer keeps in the barrier). */
  afterUnseal(): Promise<void>;
  /** Wipes keys from memory. */
  sealNow(): void;
  /** Stops background work. */
  stop(): void;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the core object: its methods share the barrier, token store, policy engine and pipeline steps created here; the steps themselves are in pipeline/
export function createCore<P extends object = object>(deps: CoreDeps<P>): Core {
  const modules = deps.modules ?? [];
  const barrier = createBarrier(deps.storage, deps.clock);
  const seal = createSealManager({
    settings: deps.seal,
    storage: deps.storage,
    barrier,
    now: () => new Date(deps.clock.now()),
  });
  const tokens = createTokenStore(barrier.view(CORE_MOUNTS.tokens), deps.clock);
  const policies = createPolicyEngine(barrier.view(CORE_MOUNTS.policies));
  const operations = new Map<string, AnyOperation>();
  const onSuccess = deps.onSuccess?.length ? deps.onSuccess : undefined;
  const metrics = deps.metrics ?? createMetricsRegistry();
  let refresher: NodeJS.Timeout | undefined;
  let unsealRetry: NodeJS.Timeout | undefined;

  // the pipeline's steps (src/core/pipeline/), composed by invoke; the gateway runs the same ones
  const limits = rateLimitStep(deps.rateLimit, deps.clock);
  const authentication = authenticationStep({
    tokens,
    workloadAuth: () => core.workloadAuth,
    rateLimit: limits,
  });
  // each module describes the resource types it owns (filled in as modules are mounted, below)
  const describers = new Map<Resource['type'], Describer>();
  const describe = describeStep(describers);
  const decide = authorizationStep(policies, deps.clock, UNSCOPED_ACTIONS);
  const audits = auditStep(deps.audit, deps.clock);

  const core: Core = {
    barrier,
    seal,
    tokens,
    policies,
    clock: deps.clock,
    metrics,
    workloadAuth: undefined,
    operations,
    async invoke(name, input, request) {
      const op = operations.get(name);
      if (!op) throw new TypeError(`unknown operation ${name}`);
      if (barrier.sealed && !op.whenSealed) {
        if (!(await seal.status()).initialized) {
          throw new StrongroomError(
            'not_initialized',
            'Strongroom is not initialised: run `strongroom operator init`',
          );
        }
        throw new StrongroomError(
          'sealed',
          'Strongroom is sealed: unseal it with `strongroom operator unseal`',
        );
      }
      let identity: Identity | undefined;
      let entry: TokenEntry | undefined;
      if (op.auth === 'token') {
        try {
          const who = await authentication.authenticate(request, op.rateLimit !== false);
          identity = who.identity;
          entry = who.token;
          if (identity.kind === 'workload' && op.action.startsWith('token.')) {
            // a workload holds no Strongroom token: nothing to look up, renew or revoke
            throw new StrongroomError(
              'permission_denied',
              `${op.action}: workloads authenticated by SVID hold no token; renew the SVID instead`,
            );
          }
        } catch (err) {
          // refused before authorization: still an access attempt worth a record
          if (err instanceof StrongroomError)
            await audits.refusal(op, input, request, err.code, entry ?? authentication.refusedAfter(err));
          throw err;
        }
      }
      const resource = await describe(op.resource(input as never));
      const resourceId = `${resource.type}::${resource.id}`;
      const audit = audits.forRequest(op, input, request, resourceId, identity);
      const decision = identity
        ? await decide(identity, op.action, resource, request, op.context?.(input as never))
        : PUBLIC;
      if (!decision.allowed && op.rateLimit === false && identity && !identity.policies.includes('root')) {
        // outside the rate limit only once allowed: refused callers are limited (and so are their audit entries)
        limits?.takeRefused(identity.owner);
      }
      if (!decision.allowed) {
        if (audit) {
          await audit({ type: 'request', decision });
          await audit({ type: 'response', status: 'error', error_code: 'permission_denied' });
        }
        throw new StrongroomError(
          'permission_denied',
          `permission denied: ${op.action} on ${resourceId} (${decision.reason})`,
        );
      }
      const ctx: OperationContext = entry ? { identity, request, token: entry } : { identity, request };
      return runOperation(op, ctx, input, decision, audit, onSuccess) as Promise<never>;
    },
    authenticate(request, opts) {
      if (barrier.sealed)
        return Promise.reject(
          new StrongroomError('sealed', 'Strongroom is sealed: unseal it with `strongroom operator unseal`'),
        );
      return authentication.authenticate(request, opts?.rateLimit !== false);
    },
    describe,
    async audit(entry) {
      if (!deps.audit.enabled) return;
      await deps.audit.log({ ...entry, time: entry.time ?? new Date(deps.clock.now()).toISOString() });
    },
    async allows(identity, action, resource, request) {
      return (await decide(identity, action, await describe(resource), request)).allowed;
    },
    async start() {
      const status = await seal.status();
      if (!status.initialized || !status.sealed) return;
      if (status.type === 'static') {
        await seal.autoUnseal();
        await core.afterUnseal();
      } else if (status.type === 'pkcs11') {
        // an HSM that is away leaves the server up and sealed, saying why, and trying again
        const attempt = async () => {
          if (!barrier.sealed) return true;
          try {
            await seal.autoUnseal();
            await core.afterUnseal();
            return true;
          } catch (err) {
            deps.onAutoUnsealError?.(err);
            return false;
          }
        };
        if (!(await attempt())) {
          unsealRetry = setInterval(() => {
            attempt().then(
              (done) => {
                if (done && unsealRetry) {
                  clearInterval(unsealRetry);
                  unsealRetry = undefined;
                }
              },
              () => {},
            );
          }, deps.autoUnsealRetryMs ?? 10_000);
          unsealRetry.unref();
        }
      }
    },
    async afterUnseal() {
      await tokens.load();
      await policies.load();
      for (const m of modules) await m.onUnseal?.();
      // other servers sharing the storage may change policies: re-read them now and then
      if (!deps.storage.exclusive && !refresher) {
        refresher = setInterval(() => {
          if (!barrier.sealed) policies.refresh().catch(() => {});
        }, 5000);
        refresher.unref();
      }
    },
    sealNow() {
      seal.seal();
      tokens.unload();
      policies.unload();
      // every module forgets its keys, even if one of them throws; sealing itself never fails
      for (const m of [...modules].reverse()) {
        try {
          m.onSeal?.();
        } catch (err) {
          deps.onModuleError?.(m.name, 'seal', err);
        }
      }
    },
    stop() {
      if (refresher) clearInterval(refresher);
      refresher = undefined;
      if (unsealRetry) clearInterval(unsealRetry);
      unsealRetry = undefined;
    },
  };

  // each module on a view of its own mount (the assembler checked that mounts do not overlap), seeing
  // the core's parts and the ports modules offer each other
  const moduleDeps = (deps.ports ? Object.assign(Object.create(core), deps.ports) : core) as Core & P;
  const all: AnyOperation[] = [];
  for (const m of modules) {
    const store = (m.mount ? barrier.view(m.mount) : undefined) as BarrierStore;
    all.push(...m.operations(moduleDeps, store));
    for (const [type, describer] of Object.entries(m.resources?.(store) ?? {})) {
      if (describers.has(type as Resource['type']))
        throw new TypeError(`module ${m.name} describes ${type}, which another module describes`);
      describers.set(type as Resource['type'], describer);
    }
  }
  for (const op of all) {
    if (typeof op.action !== 'string' || op.action.length === 0) {
      throw new TypeError(`operation ${op.name} declares no policy action`);
    }
    if (op.auth === 'token' && !Object.hasOwn(ACTIONS, op.action)) {
      throw new TypeError(
        `operation ${op.name} has action ${op.action}, which the Cedar schema does not declare`,
      );
    }
    if (op.auth === 'none' && !PUBLIC_ACTIONS.has(op.action)) {
      throw new TypeError(
        `operation ${op.name} is public but its action ${op.action} is not a public action`,
      );
    }
    if (operations.has(op.name)) throw new TypeError(`operation ${op.name} registered twice`);
    operations.set(op.name, op);
  }

  // request counts and durations (src/engines/metrics/metrics.ts exposes them): a wrapper, so no path through invoke is missed
  const requests = metrics.counter(
    'strongroom_requests_total',
    'Requests by operation and outcome (ok or the error code).',
    ['operation', 'status'],
  );
  const durations = metrics.histogram(
    'strongroom_request_duration_seconds',
    'Time spent in the core pipeline per operation (authentication to response audit).',
    ['operation'],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  const invokeInner = core.invoke;
  core.invoke = async function invoke<O>(name: string, input: unknown, request: RequestInfo): Promise<O> {
    const started = performance.now();
    let status = 'ok';
    try {
      return await invokeInner<O>(name, input, request);
    } catch (err) {
      status = err instanceof StrongroomError ? err.code : 'internal';
      throw err;
    } finally {
      if (operations.has(name)) {
        requests.inc([name, status]);
        durations.observe([name], (performance.now() - started) / 1000);
      }
    }
  };
  return core;
}
