import type { Command } from 'commander';
import type { DatabaseRoleRequest } from '../api/database.ts';
import { checkoutClient, databaseClient, leasesClient, wrappingClient } from '../sdk/leases.ts';
import { type CliIO, clientFor, formatOf, parseSecretAddress, UsageError } from './context.ts';
import { readSecretInput } from './input.ts';
import { kv, print } from './output.ts';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * `strongroom lease …` (docs/leases.md), `strongroom database …` (docs/database.md) and
 * `strongroom unwrap` (docs/wrapping.md).
 */
export function leaseCommands(program: Command, io: CliIO): void {
  const l = program
    .command('lease')
    .description('look at, renew and revoke the leases of dynamic credentials');
  const leases = (cmd: Command) => leasesClient(clientFor(io, cmd).request);

  l.command('list')
    .option('--prefix <prefix>', 'only leases whose id starts with this (e.g. database/creds/rag-reader/)')
    .option('--after <id>', 'the last id of the previous page')
    .option('--limit <n>', 'at most this many (1-1000, default 100)')
    .description('list leases (needs lease.manage: admin)')
    .action(async (o: { prefix?: string; after?: string; limit?: string }, cmd: Command) => {
      const r = await leases(cmd).list({
        ...(o.prefix ? { prefix: o.prefix } : {}),
        ...(o.after ? { after: o.after } : {}),
        ...(o.limit ? { limit: Number(o.limit) } : {}),
      });
      print(io.stdout, formatOf(cmd), r, () => [
        ['LEASE', 'STATE', 'EXPIRES', 'HOLDER'],
        ...r.leases.map((x) => [x.lease_id, x.state, x.expires_at, x.holder]),
        ...(r.next ? [[`(more: --after ${r.next})`, '', '', '']] : []),
      ]);
    });

  l.command('lookup')
    .argument('<lease-id>')
    .description('show a lease: expiry, maximum, state, holder, failed revocations')
    .action(async (id: string, _o, cmd: Command) => {
      const r = await leases(cmd).lookup(id);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });

  l.command('renew')
    .argument('<lease-id>')
    .option('--increment <duration>', 'from now (e.g. 30m, 1h); default the lease’s own TTL')
    .description('move a lease’s expiry (capped by its max_ttl and your token’s life)')
    .action(async (id: string, o: { increment?: string }, cmd: Command) => {
      const r = await leases(cmd).renew(id, o.increment);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Lease: r.lease_id, Expires: r.expires_at, 'Max expires': r.max_expires_at }),
      );
    });

  l.command('revoke')
    .argument('[lease-id]')
    .option('--prefix <prefix>', 'revoke every lease whose id starts with this (admin)')
    .option('--force', 'with --prefix: drop our records where the backend refuses (audited as forced)')
    .description('end a lease now (the credential is revoked at its backend first)')
    .action(async (id: string | undefined, o: { prefix?: string; force?: boolean }, cmd: Command) => {
      if ((id === undefined) === (o.prefix === undefined))
        throw new UsageError('give a lease id or --prefix, not both');
      if (o.force && !o.prefix) throw new UsageError('--force goes with --prefix');
      const r = o.prefix
        ? await leases(cmd).revokePrefix(o.prefix, { force: o.force === true })
        : await leases(cmd).revoke(id!);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Revoked: r.revoked, Forced: r.forced, 'Pending (retried with backoff)': r.pending }),
      );
      if (r.pending > 0) process.exitCode = 2;
    });

  databaseCommands(program, io);
  checkoutCommands(program, io);

  program
    .command('unwrap')
    .argument('[token]', 'the wrapping token (default: read from standard input)')
    .description('open a wrapping token, once: prints what it wrapped (JSON)')
    .action(async (token: string | undefined, _o, cmd: Command) => {
      const t = token ?? (await readSecretInput(io, 'Wrapping token'));
      const r = await wrappingClient(clientFor(io, cmd).request).unwrap(t.trim());
      io.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    });
}

function databaseCommands(program: Command, io: CliIO): void {
  const d = program
    .command('database')
    .description('dynamic database credentials: connections, roles, credentials');
  const dbc = (cmd: Command) => databaseClient(clientFor(io, cmd).request);

  const config = d.command('config').description('connections (the admin role is kept in the barrier)');
  config
    .command('write')
    .argument('<name>')
    .requiredOption('--url <url>', 'postgres://host:port/database (no password in it)')
    .requiredOption('--username <role>', 'the admin role that creates roles (CREATEROLE)')
    .requiredOption('--allowed-roles <list>', 'comma-separated role names, or *')
    .option('--no-verify', 'save without connecting first')
    .description(
      'add or change a connection; the admin password is read from standard input (or a hidden prompt)',
    )
    .action(
      async (
        name: string,
        o: { url: string; username: string; allowedRoles: string; verify: boolean },
        cmd: Command,
      ) => {
        const password = await readSecretInput(io, `Password of ${o.username}`);
        if (password === '') throw new UsageError('the password is empty (nothing on standard input?)');
        const r = await dbc(cmd).writeConfig(name, {
          plugin: 'postgresql',
          connection_url: o.url,
          username: o.username,
          password,
          allowed_roles: o.allowedRoles
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean),
          verify_connection: o.verify,
        });
        print(io.stdout, formatOf(cmd), r, () => kv(r));
      },
    );
  config
    .command('read')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await dbc(cmd).readConfig(name);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });
  config.command('list').action(async (_o, cmd: Command) => {
    const r = await dbc(cmd).listConfigs();
    print(io.stdout, formatOf(cmd), r, () => r.names.map((n) => [n]));
  });
  config
    .command('delete')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await dbc(cmd).deleteConfig(name);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });
  d.command('rotate-root')
    .argument('<name>')
    .description(
      'give the connection’s admin role a new password (set in the database, kept only in the barrier)',
    )
    .action(async (name: string, _o, cmd: Command) => {
      const r = await dbc(cmd).rotateRoot(name);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });

  const role = d.command('role').description('roles: the SQL that makes (and ends) a leased role');
  role
    .command('write')
    .argument('<name>')
    .requiredOption('--db <connection>', 'the connection its roles are made on')
    .requiredOption(
      '--creation-statement <sql>',
      'SQL with {{name}}, {{password}}, {{expiration}}, {{tenant}} (repeat)',
      collect,
    )
    .option(
      '--revocation-statement <sql>',
      'SQL that ends the role (repeat; default: end sessions, drop it)',
      collect,
    )
    .option('--ttl <duration>', 'default lease TTL (default 1h)')
    .option('--max-ttl <duration>', 'the longest a lease may be renewed to (default 24h)')
    .option(
      '--tenant-setting <name>',
      'per-session tenant: credentials need --tenant, the role gets SET <name> = tenant',
    )
    .action(
      async (
        name: string,
        o: {
          db: string;
          creationStatement: string[];
          revocationStatement?: string[];
          ttl?: string;
          maxTtl?: string;
          tenantSetting?: string;
        },
        cmd: Command,
      ) => {
        const body: DatabaseRoleRequest = {
          db_name: o.db,
          creation_statements: o.creationStatement,
          ...(o.revocationStatement ? { revocation_statements: o.revocationStatement } : {}),
          ...(o.ttl ? { default_ttl: o.ttl } : {}),
          ...(o.maxTtl ? { max_ttl: o.maxTtl } : {}),
          ...(o.tenantSetting ? { tenant: { setting: o.tenantSetting } } : {}),
        };
        const r = await dbc(cmd).writeRole(name, body);
        print(io.stdout, formatOf(cmd), r, () => kv(r));
      },
    );
  role
    .command('read')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await dbc(cmd).readRole(name);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });
  role.command('list').action(async (_o, cmd: Command) => {
    const r = await dbc(cmd).listRoles();
    print(io.stdout, formatOf(cmd), r, () => r.names.map((n) => [n]));
  });
  role
    .command('delete')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await dbc(cmd).deleteRole(name);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });

  d.command('creds')
    .argument('<role>')
    .option('--tenant <tenant>', 'the tenant of this session (roles with a tenant setting)')
    .option('--ttl <duration>', 'shorter than the role’s default TTL')
    .description('a new database role for you, under a lease: prints the username, password and lease id')
    .action(async (name: string, o: { tenant?: string; ttl?: string }, cmd: Command) => {
      const r = await dbc(cmd).creds(name, {
        ...(o.tenant ? { tenant: o.tenant } : {}),
        ...(o.ttl ? { ttl: o.ttl } : {}),
      });
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          Username: r.data.username,
          Password: r.data.password,
          Lease: r.lease_id,
          'Lease duration (s)': r.lease_duration,
        }),
      );
    });
}

function checkoutCommands(program: Command, io: CliIO): void {
  const s =
    program.commands.find((c) => c.name() === 'secret') ??
    program.command('secret').description('store, read and manage versioned secrets');
  const client = (cmd: Command) => checkoutClient(clientFor(io, cmd).request);

  s.command('checkout')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .option('--ttl <duration>', 'how long you hold it (default 1h, at most 24h)')
    .option('--exclusive', 'one holder at a time (a shared service-account credential)')
    .description('check a secret out: its value under a lease, ended by check-in or expiry')
    .action(async (address: string, o: { ttl?: string; exclusive?: boolean }, cmd: Command) => {
      const a = parseSecretAddress(address);
      const r = await client(cmd).checkout(a.project, a.env, a.name, {
        ...(o.ttl ? { ttl: o.ttl } : {}),
        ...(o.exclusive ? { exclusive: true } : {}),
      });
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          Value: r.data.value,
          Version: r.data.version,
          Lease: r.lease_id,
          'Lease duration (s)': r.lease_duration,
          Exclusive: r.exclusive,
        }),
      );
    });

  s.command('checkin')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .argument('<lease-id>', 'the lease the check-out answered')
    .description('check a secret back in: the lease ends now (and an exclusive hold is released)')
    .action(async (address: string, leaseId: string, _o, cmd: Command) => {
      const a = parseSecretAddress(address);
      const r = await client(cmd).checkin(a.project, a.env, a.name, leaseId);
      print(io.stdout, formatOf(cmd), r, () => kv({ 'Checked in': r.checked_in }));
    });
}
