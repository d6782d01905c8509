import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { kv, print } from './output.ts';

export function policyCommands(program: Command, io: CliIO): void {
  const p = program.command('policy').description('manage custom Cedar policies and explain decisions');

  p.command('put')
    .argument('<name>')
    .argument('<file>', 'a .cedar file')
    .description('validate a Cedar policy file against the schema and store it (refused when invalid)')
    .action(async (name: string, file: string, _o, cmd: Command) => {
      let text: string;
      try {
        text = readFileSync(resolve(io.cwd, file), 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      const r = await clientFor(io, cmd).putPolicy(name, text);
      print(io.stdout, formatOf(cmd), r, () => kv({ Policy: r.name, 'Policies in file': r.policies }));
    });

  p.command('list')
    .description('list custom policies')
    .action(async (_o, cmd: Command) => {
      const r = await clientFor(io, cmd).listPolicies();
      print(io.stdout, formatOf(cmd), r, () => [['NAME'], ...r.policies.map((n) => [n])]);
    });

  p.command('get')
    .argument('<name>')
    .description('print a custom policy')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await clientFor(io, cmd).getPolicy(name);
      if (formatOf(cmd) === 'json') return print(io.stdout, 'json', r);
      io.stdout.write(r.policy.endsWith('\n') ? r.policy : `${r.policy}\n`);
    });

  p.command('delete')
    .argument('<name>')
    .description('delete a custom policy')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await clientFor(io, cmd).deletePolicy(name);
      print(io.stdout, formatOf(cmd), r, () => kv({ Deleted: r.deleted }));
    });

  p.command('test')
    .requiredOption(
      '--principal <spec>',
      'role:NAME[,role:NAME...][,user:NAME|app:NAME][,mfa] or accessor:ACCESSOR',
    )
    .requiredOption('--action <action>', 'e.g. secret.read')
    .requiredOption('--resource <resource>', 'e.g. myproj/prod/OPENAI_API_KEY, or Environment:myproj/prod')
    .option(
      '--attr <key=value>',
      'resource attribute, e.g. provider=openai, production=true (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .description(
      'explain whether a principal may perform an action on a resource, and which policies decided it',
    )
    .action(
      async (o: { principal: string; action: string; resource: string; attr: string[] }, cmd: Command) => {
        const parts = o.principal.split(',').map((x) => x.trim());
        const accessor = parts.find((x) => x.startsWith('accessor:'))?.slice(9);
        const roles = parts.filter((x) => x.startsWith('role:')).map((x) => x.slice(5));
        const user = parts.find((x) => x.startsWith('user:'))?.slice(5);
        const app = parts.find((x) => x.startsWith('app:'))?.slice(4);
        const attrs: Record<string, string | boolean> = {};
        for (const a of o.attr) {
          const i = a.indexOf('=');
          if (i <= 0) throw new UsageError(`--attr takes KEY=VALUE, not ${JSON.stringify(a)}`);
          const v = a.slice(i + 1);
          attrs[a.slice(0, i)] = v === 'true' ? true : v === 'false' ? false : v;
        }
        const r = await clientFor(io, cmd).testPolicy({
          ...(accessor
            ? { accessor }
            : {
                principal: {
                  roles,
                  ...(user ? { user } : {}),
                  ...(app ? { app } : {}),
                  ...(parts.includes('mfa') ? { mfa: true } : {}),
                },
              }),
          action: o.action,
          resource: o.resource,
          ...(Object.keys(attrs).length ? { resource_attrs: attrs } : {}),
        });
        print(io.stdout, formatOf(cmd), r, () =>
          kv({
            Decision: r.decision.toUpperCase(),
            Reason: r.reason,
            'Determining policies': r.policies.join(', ') || '-',
            Errors: r.errors.join('; ') || '-',
          }),
        );
        if (r.decision === 'deny') io.exitCode = 3;
      },
    );
}
