import type { Command } from 'commander';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { readSecretInput } from './input.ts';
import { kv, print } from './output.ts';

const csv = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function tokenCommands(program: Command, io: CliIO): void {
  const t = program.command('token').description('create, inspect, renew and revoke tokens');

  t.command('create')
    .option('--role <roles>', "comma-separated roles (default: all of the calling token's)")
    .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h (default 1h)')
    .option('--max-ttl <duration>', 'no renewal past this')
    .option('--uses <n>', 'number of uses (0: unlimited)')
    .option('--scope <paths>', 'comma-separated PROJECT[/ENV[/NAME*]] the token is limited to')
    .option('--provider <providers>', 'comma-separated providers the token is limited to')
    .option('--no-renewable', 'the token cannot be renewed')
    .option('--name <name>', 'display name')
    .description('create a child token: never more roles, scope or lifetime than the calling token')
    .action(
      async (
        o: {
          role?: string;
          ttl?: string;
          maxTtl?: string;
          uses?: string;
          scope?: string;
          provider?: string;
          renewable: boolean;
          name?: string;
        },
        cmd: Command,
      ) => {
        if (o.uses !== undefined && !/^\d{1,7}$/.test(o.uses))
          throw new UsageError('--uses must be a whole number');
        const scope =
          o.scope || o.provider
            ? {
                ...(o.scope ? { paths: csv(o.scope) } : {}),
                ...(o.provider ? { providers: csv(o.provider) } : {}),
              }
            : undefined;
        const r = await clientFor(io, cmd).createToken({
          ...(o.role ? { roles: csv(o.role) } : {}),
          ...(o.ttl ? { ttl: o.ttl } : {}),
          ...(o.maxTtl ? { explicit_max_ttl: o.maxTtl } : {}),
          ...(o.uses !== undefined ? { num_uses: Number(o.uses) } : {}),
          ...(scope ? { scope } : {}),
          ...(o.renewable === false ? { renewable: false } : {}),
          ...(o.name ? { display_name: o.name } : {}),
        });
        print(io.stdout, formatOf(cmd), r, () =>
          kv({
            Token: r.auth.client_token,
            Accessor: r.auth.accessor,
            Policies: r.auth.policies.join(', '),
            'Expires at': r.auth.expires_at,
            Uses: r.auth.num_uses || 'unlimited',
            Scope: r.auth.scope,
          }),
        );
      },
    );

  t.command('lookup')
    .argument('[accessor]', 'a token accessor (default: the calling token)')
    .description("show a token's record (never the token itself)")
    .action(async (accessor: string | undefined, _o, cmd: Command) => {
      const c = clientFor(io, cmd);
      const r = accessor ? await c.lookupAccessor(accessor) : await c.lookupSelf();
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          Accessor: r.data.accessor,
          Name: r.data.display_name,
          Owner: `${r.data.owner.type}:${r.data.owner.name}`,
          Policies: r.data.policies.join(', '),
          Scope: r.data.scope,
          MFA: r.data.mfa,
          'Expires at': r.data.expires_at ?? 'never',
          'Max expires at': r.data.max_expires_at ?? 'never',
          Renewable: r.data.renewable,
          Uses: r.data.num_uses || 'unlimited',
          Parent: r.data.parent,
        }),
      );
    });

  t.command('renew')
    .option('--increment <duration>', "new lifetime from now (default: the token's TTL)")
    .description('extend the calling token, up to its maximum lifetime')
    .action(async (o: { increment?: string }, cmd: Command) => {
      const r = await clientFor(io, cmd).renewSelf(o.increment);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Accessor: r.auth.accessor, 'Expires at': r.auth.expires_at, TTL: r.auth.ttl }),
      );
    });

  t.command('revoke')
    .option('--accessor <accessor>', 'revoke the token with this accessor')
    .option('--self', 'revoke the calling token')
    .description(
      'revoke a token and all its children (the token value is read from stdin unless --accessor or --self)',
    )
    .action(async (o: { accessor?: string; self?: boolean }, cmd: Command) => {
      const c = clientFor(io, cmd);
      const r = o.self
        ? await c.revokeSelf()
        : o.accessor
          ? await c.revokeAccessor(o.accessor)
          : await c.revokeToken((await readSecretInput(io, 'Token to revoke')).trim());
      print(io.stdout, formatOf(cmd), r, () => kv({ 'Tokens revoked': r.revoked }));
    });
}
