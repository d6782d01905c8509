import * as api from '../../api/provider-keys.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { VaultModule } from '../../contract/module.ts';
import {
  type AnyOperation,
  implement,
  type OperationContext,
  type Resource,
} from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import type { LeaseRecord, LeasesPort } from '../leases/leases.ts';
import type { ClockPort, SecretsPort, VirtualKeysPort } from '../ports.ts';
import type { AdapterContext, AdapterSettings, RotationAdapter } from '../rotation/adapters/http.ts';
import { createOpenAiAdapter } from '../rotation/adapters/openai.ts';
import { createOpenRouterAdapter } from '../rotation/adapters/openrouter.ts';

export type ProviderKeysDeps = ClockPort & SecretsPort & LeasesPort & VirtualKeysPort;

export interface ProviderKeysOptions {
  /** Base URLs of the providers' management APIs (proxies and tests; default the real ones). */
  adapters?: { openai?: AdapterSettings; openrouter?: AdapterSettings } | undefined;
}

const ENGINE = 'provider-keys';
const SYSTEM: Resource = { type: 'System', id: 'provider-keys' };
const DEFAULT_TTL = 3600;
const DEFAULT_MAX_TTL = 24 * 3600;

interface RoleRecord {
  name: string;
  provider: 'openai' | 'openrouter' | 'gateway';
  admin_secret: string | null;
  key_scope: NonNullable<api.ProviderRoleRequest['key_scope']> | null;
  key_limits: NonNullable<api.ProviderRoleRequest['key_limits']> | null;
  project_id: string | null;
  limit: number | null;
  default_ttl: number;
  max_ttl: number;
  updated_at: string;
}

const rolePath = (name: string) => `roles/${name}`;
/** The provider-side name of a lease's key: found by it after a crash, before its id was recorded. */
const labelOf = (leaseKey: string) => `strongroom-lease-${leaseKey}`;

function seconds(v: string | number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  try {
    const s = parseDuration(v);
    if (s < 60) throw new TypeError('at least a minute');
    return s;
  } catch (err) {
    throw new StrongroomError('invalid_value', `${what}: ${(err as Error).message}`);
  }
}

/**
 * Per-lease LLM provider keys (issue 16, item 6; docs/provider-keys.md): each lease gets a key of its
 * own from the provider's management API, named from the lease, deleted when the lease ends. OpenAI:
 * a project service account per lease. OpenRouter: a key with the role's credit limit and the lease's
 * end as its own expiry, so the provider ends it even if the vault never gets to.
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the adapters, the store and the issuer stay in one closure with the operations that use them
export function providerKeysModule(
  opts: ProviderKeysOptions = {},
): VaultModule<ProviderKeysDeps, BarrierStore> {
  let deps: ProviderKeysDeps | undefined;
  let store: BarrierStore | undefined;
  const adapters: Record<'openai' | 'openrouter', RotationAdapter> = {
    openai: createOpenAiAdapter(opts.adapters?.openai),
    openrouter: createOpenRouterAdapter(opts.adapters?.openrouter),
  };
  const now = () => deps!.clock.now();

  async function role(name: string): Promise<RoleRecord> {
    const r = await store!.getJson<RoleRecord>(rolePath(name));
    if (!r) throw new StrongroomError('not_found', `no provider-key role named ${JSON.stringify(name)}`);
    return r;
  }

  /** What an adapter call needs: the admin key, read from the vault for this call only. */
  async function contextOf(r: RoleRecord, leaseKey: string, expiresAt?: number): Promise<AdapterContext> {
    const [project, env, name] = (r.admin_secret ?? '').split('/') as [string, string, string];
    const rec = await deps!.secrets.secret({ project, env, name });
    return {
      adminKey: await deps!.secrets.value({ project, env, name }, rec.current_version),
      options: {
        ...(r.project_id ? { project_id: r.project_id } : {}),
        ...(r.limit !== null ? { limit: String(r.limit) } : {}),
      },
      label: labelOf(leaseKey),
      ...(expiresAt !== undefined ? { expiresAt: new Date(expiresAt) } : {}),
    };
  }

  /** Ends a lease's key: by its recorded id, or by its name when a crash came before the id was kept. */
  async function revokeKey(lease: Readonly<LeaseRecord>): Promise<void> {
    const d = lease.data as { role?: string; key_id?: string };
    const r = await role(d.role ?? '');
    if (r.provider === 'gateway') {
      const v = deps!.virtualKeys;
      const ids = d.key_id ? [d.key_id] : await v.idsNamed(labelOf(lease.key));
      for (const id of ids) await v.revoke(id);
      return;
    }
    const adapter = adapters[r.provider];
    const ctx = await contextOf(r, lease.key);
    const ids = d.key_id ? [d.key_id] : ((await adapter.findByLabel?.(ctx)) ?? []);
    for (const id of ids) await adapter.revoke(ctx, id);
  }

  /** A key of the role for the caller under a lease (the creds operation, and the tool registry's issuer). */
  async function issueKey(
    ctx: OperationContext,
    roleName: string,
    i: { ttl?: string | number | undefined; maxTtl?: number | undefined },
  ) {
    const r = await role(roleName);
    // a token scoped to providers gets keys of those providers only (a gateway key's own scope is
    // checked against the token's by the virtual-key engine)
    const providers = ctx.identity?.scope?.providers;
    if (providers && r.provider !== 'gateway' && !providers.includes(r.provider)) {
      throw new StrongroomError(
        'permission_denied',
        `your token is scoped to providers ${providers.join(', ')}: it cannot get ${r.provider} keys`,
      );
    }
    const ttl = Math.min(seconds(i.ttl, r.default_ttl, 'ttl'), r.max_ttl);
    // OpenRouter keys and virtual keys carry their end themselves: their leases are not renewed
    const renewable = r.provider === 'openai';
    const { lease, result } = await deps!.leases.issue(
      {
        engine: ENGINE,
        role: `creds/${r.name}`,
        ttl,
        maxTtl: renewable ? Math.min(r.max_ttl, i.maxTtl ?? Number.POSITIVE_INFINITY) : ttl,
        renewable,
        ctx,
        data: { role: r.name },
      },
      async (l) => {
        if (r.provider === 'gateway') {
          const v = await deps!.virtualKeys.mint(ctx, {
            name: labelOf(l.key),
            ...(r.key_scope ? { scope: r.key_scope } : {}),
            ...(r.key_limits ? { limits: r.key_limits } : {}),
            ttl: Math.max(1, Math.ceil((Date.parse(l.expires_at) - now()) / 1000)),
          });
          return {
            data: { key_id: v.id },
            result: { provider: 'gateway', api_key: v.virtual_key, key_id: v.id },
          };
        }
        const c = await contextOf(
          r,
          l.key,
          r.provider === 'openrouter' ? Date.parse(l.expires_at) : undefined,
        );
        const minted = await adapters[r.provider].create(c);
        return {
          data: { key_id: minted.id },
          result: { provider: r.provider, api_key: minted.value, key_id: minted.id },
        };
      },
    );
    return {
      lease_id: lease.id,
      lease_duration: Math.floor((Date.parse(lease.expires_at) - now()) / 1000),
      renewable,
      data: result,
    };
  }

  function operations(): AnyOperation[] {
    return [
      implement(api.ProviderRoleWrite, {
        action: 'provider-key.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          if (i.provider === 'openai' && !i.project_id) {
            throw new StrongroomError('validation_failed', 'an openai role needs project_id (proj_…)');
          }
          if (i.provider === 'openrouter' && i.project_id) {
            throw new StrongroomError('validation_failed', 'project_id is for openai roles');
          }
          if (i.provider === 'gateway' ? i.admin_secret !== undefined : i.admin_secret === undefined) {
            throw new StrongroomError(
              'validation_failed',
              i.provider === 'gateway'
                ? 'a gateway role mints virtual keys: it has no admin_secret'
                : `an ${i.provider} role needs admin_secret: the vault secret holding the admin key (PROJECT/ENV/NAME)`,
            );
          }
          if (i.provider !== 'gateway' && (i.key_scope || i.key_limits)) {
            throw new StrongroomError('validation_failed', 'key_scope and key_limits are for gateway roles');
          }
          const ttl = seconds(i.default_ttl, DEFAULT_TTL, 'default_ttl');
          const max = seconds(i.max_ttl, DEFAULT_MAX_TTL, 'max_ttl');
          if (ttl > max) throw new StrongroomError('invalid_value', 'default_ttl is longer than max_ttl');
          const r: RoleRecord = {
            name: i.role,
            provider: i.provider,
            admin_secret: i.admin_secret ?? null,
            key_scope: i.key_scope ?? null,
            key_limits: i.key_limits ?? null,
            project_id: i.project_id ?? null,
            limit: i.limit ?? null,
            default_ttl: ttl,
            max_ttl: max,
            updated_at: new Date(now()).toISOString(),
          };
          await store!.put(rolePath(i.role), Buffer.from(JSON.stringify(r)));
          return r;
        },
      }),
      implement(api.ProviderRoleRead, {
        action: 'provider-key.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async (_ctx, i) => role(i.role),
      }),
      implement(api.ProviderRoleList, {
        action: 'provider-key.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async () => ({ names: (await store!.list('roles/')).map((p) => p.slice('roles/'.length)) }),
      }),
      implement(api.ProviderRoleDelete, {
        action: 'provider-key.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          // its leases' keys could not be deleted without it: they go first
          await deps!.leases.refuseWhileLeased(`${ENGINE}/creds/${i.role}/`, `the role ${i.role}`);
          const had = (await store!.get(rolePath(i.role))) !== undefined;
          await store!.delete(rolePath(i.role));
          return { deleted: had };
        },
      }),
      implement(api.ProviderCreds, {
        action: 'provider-key.creds',
        auth: 'token',
        resource: (i) => ({ type: 'System', id: `provider-keys/creds/${i.role}`, attrs: { role: i.role } }),
        handle: (ctx, i) => issueKey(ctx, i.role, i),
      }),
    ];
  }

  return {
    name: 'provider-keys',
    needs: ['leases', 'secrets'],
    mount: 'logical/provider-keys/',
    operations(k, st) {
      deps = k;
      store = st;
      k.leases.register({ engine: ENGINE, revoke: revokeKey });
      k.issuers.register(ENGINE, (ctx, role, o) => issueKey(ctx, role, o));
      return operations();
    },
  };
}
