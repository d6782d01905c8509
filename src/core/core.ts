import type { AuditBroker, AuditEntry } from '../audit/broker.ts';
import { createTokenStore, type TokenStore } from '../auth/tokens.ts';
import { type Barrier, createBarrier } from '../barrier/barrier.ts';
import { createKvEngine } from '../engines/kv/kv.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import type { Authorizer, Decision } from '../policy/authorize.ts';
import { createSealManager, type SealManager, type SealSettings } from '../seal/seal.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { sysOperations } from './sys.ts';
import type { AnyOperation, Identity, OperationContext, RequestInfo } from './types.ts';

const PUBLIC = Object.freeze({ allowed: true, reason: 'public operation' });

export interface CoreDeps {
  storage: StorageBackend;
  seal: SealSettings;
  clock: Clock;
  audit: AuditBroker;
  authorizer: Authorizer;
}

export interface Core {
  readonly barrier: Barrier;
  readonly seal: SealManager;
  readonly tokens: TokenStore;
  /** Every registered operation, by name. */
  readonly operations: ReadonlyMap<string, AnyOperation>;
  /**
   * The request pipeline: sealed check -> authenticate -> authorize (deny by
   * default; an error is a deny) -> audit(request) -> handler -> audit(response).
   * No handler can run without passing every step.
   */
  invoke<O = unknown>(name: string, input: unknown, request: RequestInfo): Promise<O>;
  /** Unseals with the static key file when one is configured and storage is initialised. */
  start(): Promise<void>;
  /** Runs after every unseal (loads keys the auth layer keeps in the barrier). */
  afterUnseal(): Promise<void>;
  /** Wipes keys from memory. */
  sealNow(): void;
}

export function createCore(deps: CoreDeps): Core {
  const barrier = createBarrier(deps.storage, deps.clock);
  const seal = createSealManager({
    settings: deps.seal,
    storage: deps.storage,
    barrier,
    now: () => new Date(deps.clock.now()),
  });
  const tokens = createTokenStore(barrier.view('sys/token/'), deps.clock);
  const kv = createKvEngine(barrier.view('logical/kv/'), deps.clock);
  const operations = new Map<string, AnyOperation>();

  const core: Core = {
    barrier,
    seal,
    tokens,
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
      if (op.auth === 'token') {
        if (!request.token) {
          throw new StrongroomError(
            'unauthenticated',
            'this request needs a token: set STRONGROOM_TOKEN or send `Authorization: Bearer <token>`',
          );
        }
        const entry = await tokens.lookup(request.token);
        identity = {
          kind: 'token',
          accessor: entry.accessor,
          display_name: entry.display_name,
          policies: entry.policies,
        };
      }
      const resource = op.resource(input as never);
      const resourceId = `${resource.type}::${resource.id}`;
      // audit entries are only built when a sink will receive them
      const audit = deps.audit.enabled
        ? (entry: Pick<AuditEntry, 'type' | 'decision' | 'status' | 'error_code'>) =>
            deps.audit.log({
              time: new Date(deps.clock.now()).toISOString(),
              request_id: request.request_id,
              operation: op.name,
              action: op.action,
              resource: resourceId,
              actor: identity ? { accessor: identity.accessor, display_name: identity.display_name } : null,
              client_address: request.client_address,
              ...entry,
            })
        : undefined;
      let decision: Decision = PUBLIC;
      if (identity) {
        try {
          decision = await deps.authorizer.authorize(identity, op.action, resource);
        } catch {
          decision = { allowed: false, reason: 'policy evaluation failed' };
        }
      }
      if (audit) await audit({ type: 'request', decision });
      if (!decision.allowed) {
        if (audit) await audit({ type: 'response', status: 'error', error_code: 'permission_denied' });
        throw new StrongroomError(
          'permission_denied',
          `permission denied: ${op.action} on ${resourceId} (${decision.reason})`,
        );
      }
      const ctx: OperationContext = { identity, request };
      try {
        const out = await op.handle(ctx, input as never);
        if (audit) await audit({ type: 'response', status: 'ok' });
        return out;
      } catch (err) {
        const code = err instanceof StrongroomError ? err.code : 'internal';
        if (audit && code !== 'audit_unavailable')
          await audit({ type: 'response', status: 'error', error_code: code });
        throw err;
      }
    },
    async start() {
      const status = await seal.status();
      if (status.type === 'static' && status.initialized && status.sealed) {
        await seal.unsealWithKeyFile();
        await core.afterUnseal();
      }
    },
    async afterUnseal() {
      await tokens.load();
    },
    sealNow() {
      seal.seal();
      tokens.unload();
    },
  };

  for (const op of [...sysOperations(core), ...kv.operations] as AnyOperation[]) {
    if (typeof op.action !== 'string' || op.action.length === 0) {
      throw new TypeError(`operation ${op.name} declares no policy action`);
    }
    if (operations.has(op.name)) throw new TypeError(`operation ${op.name} registered twice`);
    operations.set(op.name, op);
  }
  return core;
}
