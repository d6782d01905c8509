import type { Command } from 'commander';
import type { AppCredentials, AppInfo } from '../api/auth.ts';
import { type CliIO, formatOf, UsageError } from './context.ts';
import { authFor } from './login.ts';
import { kv, print } from './output.ts';

const csv = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const collect = (v: string, prev: string[]) => [...prev, ...csv(v)];

function scopeText(a: AppInfo): string {
  return [...(a.scope.paths ?? []), ...(a.scope.providers ?? []).map((p) => `provider:${p}`)].join(', ');
}

function appRows(a: AppInfo) {
  return {
    App: a.name,
    'Client ID': a.client_id,
    Roles: a.roles.join(', '),
    Scope: scopeText(a),
    'Allowed addresses': a.allowed_cidrs.length ? a.allowed_cidrs.join(', ') : 'any',
    'Token TTL': `${a.token_ttl}s`,
  };
}

function printCredentials(io: CliIO, cmd: Command, r: AppCredentials): void {
  // JSON: exactly the server's answer, client_id and client_secret first
  print(io.stdout, formatOf(cmd), r, () =>
    kv({
      ...appRows(r),
      'Client secret': r.client_secret,
      ...(r.previous_secrets.length
        ? { 'Previous secret valid until': r.previous_secrets.map((s) => s.expires_at).join(', ') }
        : {}),
    }),
  );
  if (formatOf(cmd) === 'table')
    io.stderr.write(
      'The client secret is shown only this once: store it where the app reads it (e.g. STRONGROOM_CLIENT_SECRET).\n',
    );
}

export function appCommands(program: Command, io: CliIO): void {
  const a = program
    .command('app')
    .description('manage applications (machine identities that log in with a client id and secret)');

  a.command('create')
    .argument('<name>', 'app name (lower-case letters, digits, ".", "_", "-")')
    .option('--role <roles>', 'comma-separated roles', 'app')
    .option(
      '--scope <paths>',
      'PROJECT/ENV[,...] the app may reach (also PROJECT or PROJECT/ENV/NAME*)',
      collect,
      [],
    )
    .option('--provider <providers>', 'comma-separated providers the app is limited to', collect, [])
    .option(
      '--cidr <ranges>',
      'address ranges the app may log in from, e.g. 10.0.0.0/8 (repeatable)',
      collect,
      [],
    )
    .option('--ttl <duration>', 'lifetime of its tokens, e.g. 15m or 1h (default 1h, at most 24h)')
    .description('create an app; prints its client id and client secret (shown once)')
    .action(
      async (
        name: string,
        o: { role: string; scope: string[]; provider: string[]; cidr: string[]; ttl?: string },
        cmd: Command,
      ) => {
        if (o.scope.length === 0 && o.provider.length === 0)
          throw new UsageError(
            'an app needs --scope PROJECT/ENV[,...] (machine identities reach only what they are given)',
          );
        const r = await authFor(io, cmd).createApp({
          name,
          roles: csv(o.role),
          scope: {
            ...(o.scope.length ? { paths: o.scope } : {}),
            ...(o.provider.length ? { providers: o.provider } : {}),
          },
          ...(o.cidr.length ? { allowed_cidrs: o.cidr } : {}),
          ...(o.ttl ? { token_ttl: o.ttl } : {}),
        });
        printCredentials(io, cmd, r);
      },
    );

  a.command('list')
    .description('list apps (never their secrets)')
    .action(async (_o, cmd: Command) => {
      const r = await authFor(io, cmd).listApps();
      print(io.stdout, formatOf(cmd), r, () => [
        ['NAME', 'CLIENT ID', 'ROLES', 'SCOPE', 'ADDRESSES', 'SECRET ISSUED'],
        ...r.apps.map((x) => [
          x.name,
          x.client_id,
          x.roles.join(','),
          scopeText(x),
          x.allowed_cidrs.join(',') || 'any',
          x.secret_created_at,
        ]),
      ]);
    });

  a.command('show')
    .argument('<name>')
    .description('show an app')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await authFor(io, cmd).getApp(name);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ ...appRows(r.app), 'Secret issued': r.app.secret_created_at, Created: r.app.created_at }),
      );
    });

  a.command('rotate-secret')
    .argument('<name>')
    .option(
      '--grace <duration>',
      'how long the current secret keeps working, e.g. 10m (default 0: stops at once)',
    )
    .description('issue a new client secret (shown once)')
    .action(async (name: string, o: { grace?: string }, cmd: Command) => {
      printCredentials(io, cmd, await authFor(io, cmd).rotateAppSecret(name, o.grace));
    });

  a.command('revoke')
    .argument('<name>')
    .description('delete an app; its secret and every live token it holds stop working at once')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await authFor(io, cmd).revokeApp(name);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Revoked: r.deleted, 'Client ID': r.client_id, 'Tokens revoked': r.tokens_revoked }),
      );
    });
}
