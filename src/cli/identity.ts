import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type * as api from '../api/identity.ts';
import { identityClient } from '../sdk/identity.ts';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { kv, print } from './output.ts';

const csv = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const collect = (v: string, prev: string[]) => [...prev, ...csv(v)];

interface RegisterOptions {
  app: string[];
  user: string[];
  spiffe: string[];
  cidr: string[];
  selector: string[];
  role: string[];
  scope: string[];
  provider: string[];
  ttl?: string;
}

/** `strongroom identity …`: registrations, join tokens, the CA and federation (docs/identity.md). */
export function identityCommands(program: Command, io: CliIO): void {
  const id = program
    .command('identity')
    .description('workload identity: who may obtain which SPIFFE ID, join tokens, the CA, federation');
  const client = (cmd: Command) => identityClient(clientFor(io, cmd).request);

  id.command('register')
    .argument('<spiffe-id>', 'the SPIFFE ID, e.g. spiffe://strongroom.local/ns/prod/gateway')
    .option('--app <names>', 'apps that may obtain it (repeatable)', collect, [])
    .option('--user <names>', 'users that may obtain it (repeatable)', collect, [])
    .option('--spiffe <ids>', 'workloads (by their SVID) that may obtain it (repeatable)', collect, [])
    .option('--cidr <ranges>', 'and only from these address ranges (repeatable)', collect, [])
    .option(
      '--selector <type:value>',
      'a raw selector: app:, user:, spiffe: or cidr: (repeatable)',
      collect,
      [],
    )
    .option('--role <roles>', 'roles the workload holds when it calls Strongroom with its SVID', collect, [])
    .option('--scope <paths>', 'PROJECT/ENV[,...] the workload may reach with those roles', collect, [])
    .option('--provider <providers>', 'providers the workload is limited to', collect, [])
    .option('--ttl <duration>', 'longest X.509-SVID for this ID (default: the server maximum)')
    .description('record which callers may obtain a SPIFFE ID (and what the workload may do with it)')
    .addHelpText(
      'after',
      '\nExample:\n  strongroom identity register spiffe://strongroom.local/ns/prod/gateway --app gateway --role app --scope llm/prod',
    )
    .action(async (spiffeId: string, o: RegisterOptions, cmd: Command) => {
      const selectors = [
        ...o.app.map((a) => `app:${a}`),
        ...o.user.map((u) => `user:${u}`),
        ...o.spiffe.map((s) => `spiffe:${s}`),
        ...o.cidr.map((c) => `cidr:${c}`),
        ...o.selector,
      ];
      if (selectors.length === 0)
        throw new UsageError('say who may obtain it: --app NAME, --user NAME or --spiffe ID');
      const scope: api.RegistrationRequest['scope'] =
        o.scope.length || o.provider.length
          ? {
              ...(o.scope.length ? { paths: o.scope } : {}),
              ...(o.provider.length ? { providers: o.provider } : {}),
            }
          : undefined;
      const r = await client(cmd).register({
        spiffe_id: spiffeId,
        selectors,
        ...(o.role.length ? { roles: o.role } : {}),
        ...(scope ? { scope } : {}),
        ...(o.ttl ? { x509_ttl: o.ttl } : {}),
      } satisfies api.RegistrationRequest);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          'SPIFFE ID': r.registration.spiffe_id,
          Selectors: r.registration.selectors.join(', '),
          Roles: r.registration.roles.join(', ') || '(none: only policies naming it)',
          Scope: r.registration.scope ? JSON.stringify(r.registration.scope) : '-',
        }),
      );
    });

  id.command('list')
    .description('list registrations')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await client(cmd).registrations();
      print(io.stdout, formatOf(cmd), r, () => [
        ['SPIFFE ID', 'SELECTORS', 'ROLES', 'CREATED'],
        ...r.registrations.map((x) => [
          x.spiffe_id,
          x.selectors.join(','),
          x.roles.join(',') || '-',
          x.created_at,
        ]),
      ]);
    });

  id.command('unregister')
    .argument('<spiffe-id>')
    .description('delete a registration (SVIDs already issued stay valid until they expire)')
    .action(async (spiffeId: string, _o: unknown, cmd: Command) => {
      const r = await client(cmd).unregister(spiffeId);
      print(io.stdout, formatOf(cmd), r, () => kv({ Deleted: r.deleted }));
    });

  id.command('join-token')
    .argument('<spiffe-id>')
    .option('--ttl <duration>', 'how long the token may be used (default 10m)', '10m')
    .description('make a one-time token with which a new workload obtains its first SVID (shown once)')
    .action(async (spiffeId: string, o: { ttl: string }, cmd: Command) => {
      const r = await client(cmd).joinToken(spiffeId, o.ttl);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ 'Join token': r.join_token, 'SPIFFE ID': r.spiffe_id, 'Expires at': r.expires_at }),
      );
      if (formatOf(cmd) === 'table') io.stderr.write('The join token works once and is shown only now.\n');
    });

  const ca = id.command('ca').description('the SPIFFE certificate authority');
  ca.command('status')
    .description('trust domain, authorities (active and retiring) and JWT keys')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await client(cmd).ca();
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });
  ca.command('rotate')
    .description('add a new CA and JWT key; the old ones stay trusted until their SVIDs expire')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await client(cmd).rotateCa();
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });

  id.command('bundle')
    .description('print the trust bundle (SPIFFE bundle JSON)')
    .action(async (_o: unknown, cmd: Command) => {
      io.stdout.write(`${JSON.stringify(await client(cmd).bundle(), null, 2)}\n`);
    });

  const fed = id.command('federate').description('trust SVIDs of another trust domain (e.g. a SPIRE server)');
  fed
    .command('add')
    .argument('<trust-domain>')
    .option(
      '--bundle-file <file>',
      'its SPIFFE bundle JSON (e.g. from `spire-server bundle show -format spiffe`)',
    )
    .option('--bundle-url <url>', 'an https URL serving its bundle')
    .action(async (td: string, o: { bundleFile?: string; bundleUrl?: string }, cmd: Command) => {
      if ((o.bundleFile === undefined) === (o.bundleUrl === undefined)) {
        throw new UsageError('give exactly one of --bundle-file and --bundle-url');
      }
      const source = (
        o.bundleFile ? { bundle: readFileSync(o.bundleFile, 'utf8') } : { bundle_url: o.bundleUrl! }
      ) satisfies api.FederationRequest;
      const r = await client(cmd).federate(td, source);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });
  fed.command('list').action(async (_o: unknown, cmd: Command) => {
    const r = await client(cmd).federations();
    print(io.stdout, formatOf(cmd), r, () => [
      ['TRUST DOMAIN', 'BUNDLE URL', 'UPDATED'],
      ...r.federations.map((f) => [f.trust_domain, f.bundle_url ?? '-', f.updated_at]),
    ]);
  });
  fed
    .command('remove')
    .argument('<trust-domain>')
    .action(async (td: string, _o: unknown, cmd: Command) => {
      const r = await client(cmd).unfederate(td);
      print(io.stdout, formatOf(cmd), r, () => kv(r));
    });
}
