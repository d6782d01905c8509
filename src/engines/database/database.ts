import * as api from '../../api/database.ts';
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
import type { ClockPort } from '../ports.ts';
import {
  DEFAULT_RENEW,
  DEFAULT_REVOCATION,
  leaseKeyOf,
  newPassword,
  newRolePrefix,
  type PostgresPlugin,
  pgTime,
  postgresPlugin,
  render,
  roleNameOf,
  unknownPlaceholders,
} from './postgres.ts';

export type DatabaseDeps = ClockPort & LeasesPort;

const DATABASE_MOUNT = 'logical/database/';
const ENGINE = 'database';
const SYSTEM: Resource = { type: 'System', id: 'database' };
const DEFAULT_TTL = 3600;
const DEFAULT_MAX_TTL = 24 * 3600;

interface ConfigRecord {
  name: string;
  plugin: 'postgresql';
  connection_url: string;
  username: string;
  password: string;
  allowed_roles: string[];
  max_open_connections: number;
  updated_at: string;
  root_rotated_at: string | null;
  /** The prefix of the roles this connection makes (fixed at first write). */
  role_prefix: string;
}

interface RoleRecord {
  name: string;
  db_name: string;
  creation_statements: string[];
  revocation_statements: string[];
  renew_statements: string[];
  default_ttl: number;
  max_ttl: number;
  tenant: { setting: string } | null;
  updated_at: string;
}

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
const configPath = (name: string) => `config/${name}`;
const rolePath = (name: string) => `roles/${name}`;

function seconds(v: string | number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  try {
    const s = parseDuration(v);
    if (s < 1) throw new TypeError(`${what} must be at least 1 second`);
    return s;
  } catch (err) {
    throw new StrongroomError('invalid_value', `${what}: ${(err as Error).message}`);
  }
}

function checkUrl(u: string): void {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new StrongroomError(
      'invalid_value',
      'connection_url is not a URL: use postgres://host:port/database',
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new StrongroomError('invalid_value', 'connection_url must be a postgres:// URL');
  }
  if (url.password) {
    throw new StrongroomError(
      'invalid_value',
      'put the password in `password`, not in connection_url (it would be shown back)',
    );
  }
}

const configOut = (c: ConfigRecord) => ({
  name: c.name,
  plugin: c.plugin,
  connection_url: c.connection_url,
  username: c.username,
  allowed_roles: c.allowed_roles,
  max_open_connections: c.max_open_connections,
  updated_at: c.updated_at,
  root_rotated_at: c.root_rotated_at,
  role_prefix: c.role_prefix,
});

/**
 * Dynamic PostgreSQL credentials (issue 16, item 5; docs/database.md): connections with an admin role
 * held in the barrier, roles defined by SQL templates, and a role per lease, named from the lease,
 * dropped (its sessions ended first) when the lease ends.
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the connections and the store stay in one closure with the operations that use them
export function databaseModule(): VaultModule<DatabaseDeps, BarrierStore> {
  let deps: DatabaseDeps | undefined;
  let store: BarrierStore | undefined;
  const plugins = new Map<string, { at: string; plugin: PostgresPlugin }>();
  const s = () => store!;
  const now = () => deps!.clock.now();

  async function config(name: string): Promise<ConfigRecord> {
    const c = await s().getJson<ConfigRecord>(configPath(name));
    if (!c) throw new StrongroomError('not_found', `no database connection named ${JSON.stringify(name)}`);
    return c;
  }
  async function role(name: string): Promise<RoleRecord> {
    const r = await s().getJson<RoleRecord>(rolePath(name));
    if (!r) throw new StrongroomError('not_found', `no database role named ${JSON.stringify(name)}`);
    return r;
  }
  /** The connection pool of a configuration, made again when the configuration changes. */
  function pluginOf(c: ConfigRecord): PostgresPlugin {
    const have = plugins.get(c.name);
    if (have?.at === c.updated_at) return have.plugin;
    void have?.plugin.close();
    const plugin = postgresPlugin(c);
    plugins.set(c.name, { at: c.updated_at, plugin });
    return plugin;
  }
  async function closeAll() {
    const all = [...plugins.values()];
    plugins.clear();
    await Promise.all(all.map((p) => p.plugin.close()));
  }

  /** A role with live leases stays (its revocation statements are needed to end them). */
  const refuseWhileLeased = (role: string) =>
    deps!.leases.refuseWhileLeased(`${ENGINE}/creds/${role}/`, `the role ${role}`);

  /** Ends a lease's role: with the role's own revocation statements, or NOLOGIN, end sessions, drop. */
  async function revokeRole(lease: Readonly<LeaseRecord>): Promise<void> {
    const d = lease.data as { db_name?: string; role?: string; username?: string };
    const c = await config(d.db_name ?? '');
    const username = d.username ?? roleNameOf(c.role_prefix, lease.key);
    const plugin = pluginOf(c);
    if (!(await plugin.leasedRoles(c.role_prefix)).includes(username)) return;
    const r = d.role ? await s().getJson<RoleRecord>(rolePath(d.role)) : undefined;
    await plugin.endRole(
      username,
      r?.revocation_statements.length ? r.revocation_statements : DEFAULT_REVOCATION,
    );
  }

  /** A role for the caller under a lease (the creds operation, and the tool registry's issuer). */
  async function issueCreds(
    ctx: OperationContext,
    roleName: string,
    i: { tenant?: string | undefined; ttl?: string | number | undefined; maxTtl?: number | undefined },
  ): Promise<api.DatabaseCredsResult> {
    const r = await role(roleName);
    const c = await config(r.db_name);
    if (!c.allowed_roles.includes('*') && !c.allowed_roles.includes(r.name)) {
      throw new StrongroomError(
        'permission_denied',
        `the connection ${c.name} does not allow the role ${r.name}`,
      );
    }
    if (r.tenant && i.tenant === undefined) {
      throw new StrongroomError('validation_failed', `the role ${r.name} is per tenant: give \`tenant\``);
    }
    if (!r.tenant && i.tenant !== undefined) {
      throw new StrongroomError('validation_failed', `the role ${r.name} has no tenant setting`);
    }
    const ttl = Math.min(seconds(i.ttl, r.default_ttl, 'ttl'), r.max_ttl);
    const plugin = pluginOf(c);
    const { lease, result } = await deps!.leases.issue(
      {
        engine: ENGINE,
        role: `creds/${r.name}`,
        ttl,
        maxTtl: Math.min(r.max_ttl, i.maxTtl ?? Number.POSITIVE_INFINITY),
        renewable: true,
        ctx,
        data: { db_name: c.name, role: r.name },
      },
      async (l) => {
        const username = roleNameOf(c.role_prefix, l.key);
        const password = newPassword();
        const vars = {
          name: username,
          username,
          password,
          expiration: pgTime(Date.parse(l.expires_at)),
          tenant: i.tenant,
        };
        const statements = r.creation_statements.map((x) => render(x, vars));
        if (r.tenant && i.tenant !== undefined) {
          statements.push(
            `ALTER ROLE ${render('{{name}}', vars)} SET ${r.tenant.setting} = ${render('{{tenant}}', vars)}`,
          );
        }
        await plugin.run(statements, [password]);
        return {
          data: { db_name: c.name, role: r.name, username, ...(i.tenant ? { tenant: i.tenant } : {}) },
          result: { username, password },
        };
      },
    );
    return {
      lease_id: lease.id,
      lease_duration: Math.floor((Date.parse(lease.expires_at) - now()) / 1000),
      renewable: lease.renewable,
      data: result,
    };
  }

  function configOperations(): AnyOperation[] {
    return [
      implement(api.DatabaseConfigWrite, {
        action: 'database.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          checkUrl(i.connection_url);
          const before = await s().getJson<ConfigRecord>(configPath(i.name));
          const c: ConfigRecord = {
            role_prefix: before?.role_prefix ?? newRolePrefix(),
            name: i.name,
            plugin: 'postgresql',
            connection_url: i.connection_url,
            username: i.username,
            password: i.password,
            allowed_roles: i.allowed_roles,
            max_open_connections: i.max_open_connections ?? 4,
            updated_at: new Date(now()).toISOString(),
            root_rotated_at: null,
          };
          if (i.verify_connection !== false) {
            const probe = postgresPlugin(c);
            try {
              await probe.verify();
            } finally {
              await probe.close();
            }
          }
          await s().put(configPath(i.name), enc(c));
          return configOut(c);
        },
      }),
      implement(api.DatabaseConfigRead, {
        action: 'database.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async (_ctx, i) => configOut(await config(i.name)),
      }),
      implement(api.DatabaseConfigList, {
        action: 'database.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async () => ({ names: (await s().list('config/')).map((p) => p.slice('config/'.length)) }),
      }),
      implement(api.DatabaseConfigDelete, {
        action: 'database.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          // its leases could not be revoked without it: they go first
          for (const p of await s().list('roles/')) {
            const r = await s().getJson<RoleRecord>(p);
            if (r?.db_name === i.name) await refuseWhileLeased(r.name);
          }
          const had = (await s().get(configPath(i.name))) !== undefined;
          await s().delete(configPath(i.name));
          await plugins.get(i.name)?.plugin.close();
          plugins.delete(i.name);
          return { deleted: had };
        },
      }),
      implement(api.DatabaseRotateRoot, {
        action: 'database.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          const c = await config(i.name);
          const password = newPassword();
          await pluginOf(c).run(
            [
              `ALTER ROLE ${render('{{name}}', { name: c.username })} PASSWORD ${render('{{password}}', { password })}`,
            ],
            [password],
          );
          const at = new Date(now()).toISOString();
          await s().put(configPath(i.name), enc({ ...c, password, updated_at: at, root_rotated_at: at }));
          return { name: c.name, root_rotated_at: at };
        },
      }),
    ];
  }

  function operations(): AnyOperation[] {
    return [
      ...configOperations(),
      implement(api.DatabaseRoleWrite, {
        action: 'database.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          const all = [
            ...i.creation_statements,
            ...(i.revocation_statements ?? []),
            ...(i.renew_statements ?? []),
          ];
          for (const st of all) {
            const unknown = unknownPlaceholders(st);
            if (unknown.length) {
              throw new StrongroomError(
                'invalid_value',
                `unknown placeholder {{${unknown[0]}}}: use name, username, password, expiration or tenant`,
              );
            }
          }
          if (!i.tenant && all.some((st) => /\{\{\s*tenant\s*\}\}/.test(st))) {
            throw new StrongroomError(
              'invalid_value',
              'the statements use {{tenant}}: set `tenant` on the role',
            );
          }
          const ttl = seconds(i.default_ttl, DEFAULT_TTL, 'default_ttl');
          const max = seconds(i.max_ttl, DEFAULT_MAX_TTL, 'max_ttl');
          if (ttl > max) throw new StrongroomError('invalid_value', 'default_ttl is longer than max_ttl');
          const r: RoleRecord = {
            name: i.role,
            db_name: i.db_name,
            creation_statements: i.creation_statements,
            revocation_statements: i.revocation_statements ?? [],
            renew_statements: i.renew_statements ?? [],
            default_ttl: ttl,
            max_ttl: max,
            tenant: i.tenant ?? null,
            updated_at: new Date(now()).toISOString(),
          };
          await s().put(rolePath(i.role), enc(r));
          return r;
        },
      }),
      implement(api.DatabaseRoleRead, {
        action: 'database.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async (_ctx, i) => role(i.role),
      }),
      implement(api.DatabaseRoleList, {
        action: 'database.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async () => ({ names: (await s().list('roles/')).map((p) => p.slice('roles/'.length)) }),
      }),
      implement(api.DatabaseRoleDelete, {
        action: 'database.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          await refuseWhileLeased(i.role);
          const had = (await s().get(rolePath(i.role))) !== undefined;
          await s().delete(rolePath(i.role));
          return { deleted: had };
        },
      }),
      implement(api.DatabaseCredsIssue, {
        action: 'database.creds',
        auth: 'token',
        resource: (i) => ({ type: 'System', id: `database/creds/${i.role}`, attrs: { role: i.role } }),
        // a policy can bind the tenant a caller may ask for (context.tenant)
        context: (i) => (i.tenant !== undefined ? { tenant: i.tenant } : {}),
        handle: (ctx, i) => issueCreds(ctx, i.role, i),
      }),
    ];
  }

  return {
    name: 'database',
    needs: ['leases'],
    mount: DATABASE_MOUNT,
    operations(k, st) {
      deps = k;
      store = st;
      k.issuers.register(ENGINE, (ctx, role, o) => issueCreds(ctx, role, o));
      k.leases.register({
        engine: ENGINE,
        revoke: revokeRole,
        // one connection that is down delays only its own leases
        backoffKey: (lease) => (lease.data as { db_name?: string }).db_name,
        async renew(lease, expiresAt) {
          const d = lease.data as { db_name?: string; role?: string; username?: string };
          const c = await config(d.db_name ?? '');
          const r = d.role ? await s().getJson<RoleRecord>(rolePath(d.role)) : undefined;
          const username = d.username ?? roleNameOf(c.role_prefix, lease.key);
          const statements = r?.renew_statements.length ? r.renew_statements : DEFAULT_RENEW;
          await pluginOf(c).run(
            statements.map((x) => render(x, { name: username, username, expiration: pgTime(expiresAt) })),
            [],
          );
        },
        async reconcile(held) {
          let ended = 0;
          for (const p of await s().list('config/')) {
            const c = await s().getJson<ConfigRecord>(p);
            if (!c) continue;
            const plugin = pluginOf(c);
            for (const username of await plugin.leasedRoles(c.role_prefix).catch(() => [] as string[])) {
              const key = leaseKeyOf(c.role_prefix, username);
              if (!key || (await held(key))) continue;
              await plugin
                .endRole(username, DEFAULT_REVOCATION)
                .then(() => ended++)
                .catch(() => {});
            }
          }
          return ended;
        },
      });
      return operations();
    },
    onSeal: () => void closeAll(),
    close: closeAll,
  };
}
