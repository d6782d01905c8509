import type { Command } from 'commander';
import {
  type CliIO,
  clientFor,
  formatOf,
  parseEnvAddress,
  parsePositiveInt,
  parseSecretAddress,
  UsageError,
} from './context.ts';
import { readSecretInput } from './input.ts';
import { kv, print } from './output.ts';
import { getAndWatch, staleCommand } from './stale.ts';

function parseMetadata(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new UsageError(`--meta takes KEY=VALUE, not ${JSON.stringify(p)}`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

const collect = (v: string, prev: string[]) => [...prev, v];

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: registers the `secret` subcommands with commander, one short declaration each
export function secretCommands(program: Command, io: CliIO): void {
  const s = program
    .command('secret')
    .description('store, read and manage versioned secrets (addresses are PROJECT/ENV/NAME)');

  s.command('put')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .option('--meta <key=value>', 'metadata to attach (repeatable)', collect, [])
    .option('--cas <version>', 'write only if the current version is this (0: only if it does not exist)')
    .option('--allow-empty', 'store an empty value (refused by default: an empty pipe is usually a mistake)')
    .option(
      '--provider <id>',
      'the LLM provider (openai, anthropic, …; see docs/providers.md): its key format is checked',
    )
    .option('--owner <owner>', 'who is responsible for this key')
    .option('--expires <time>', 'when the key expires (ISO date/time)')
    .option('--rotate-every <duration>', 'rotation interval, e.g. 30d')
    .option('--grace <duration>', 'how long the old key stays valid after a rotation, e.g. 1h')
    .option('--tag <tag>', 'a tag (repeatable)', collect, [])
    .option('--force', "store a value that does not look like the provider's key format")
    .description(
      'write a new version; the value is read from stdin or a hidden prompt, never from the command line',
    )
    .action(
      async (
        address: string,
        o: {
          meta: string[];
          cas?: string;
          allowEmpty?: boolean;
          provider?: string;
          owner?: string;
          expires?: string;
          rotateEvery?: string;
          grace?: string;
          tag: string[];
          force?: boolean;
        },
        cmd: Command,
      ) => {
        const a = parseSecretAddress(address);
        const value = await readSecretInput(io, `Value for ${address}`);
        if (value === '' && !o.allowEmpty) {
          throw new UsageError(
            'the value is empty (nothing on standard input?); pipe the value in, or pass --allow-empty',
          );
        }
        const options = {
          ...(o.meta.length ? { metadata: parseMetadata(o.meta) } : {}),
          ...(o.cas === undefined ? {} : { cas: o.cas === '0' ? 0 : parsePositiveInt('--cas', o.cas) }),
          ...(o.provider ? { provider: o.provider } : {}),
          ...(o.owner ? { owner: o.owner } : {}),
          ...(o.expires ? { expires_at: o.expires } : {}),
          ...(o.rotateEvery
            ? { rotation: { interval: o.rotateEvery, ...(o.grace ? { grace: o.grace } : {}) } }
            : {}),
          ...(o.tag.length ? { tags: o.tag } : {}),
          ...(o.force ? { force: true } : {}),
        };
        const r = await clientFor(io, cmd).putSecret(a.project, a.env, a.name, value, options);
        print(io.stdout, formatOf(cmd), r, () =>
          kv({
            Secret: address,
            Version: r.version,
            Created: r.created_at,
            ...(r.hint ? { Hint: r.hint } : {}),
          }),
        );
      },
    );

  s.command('get')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .option('--version <n>', 'a specific version')
    .option('--field <field>', 'print only this field, raw (e.g. value)')
    .option('--watch', 'keep running: print it again whenever it changes (JSON lines with --format json)')
    .description('read a secret (the current version unless --version)')
    .action(async (address: string, o: { version?: string; field?: string }, cmd: Command) => {
      const a = parseSecretAddress(address);
      if ((o as { watch?: boolean }).watch) return getAndWatch(io, cmd, a, o);
      const r = await clientFor(io, cmd).getSecret(
        a.project,
        a.env,
        a.name,
        o.version ? parsePositiveInt('--version', o.version) : undefined,
      );
      if (o.field) {
        if (!(o.field in r))
          throw new UsageError(`no field ${JSON.stringify(o.field)}; fields: ${Object.keys(r).join(', ')}`);
        const v = r[o.field as keyof typeof r];
        io.stdout.write(`${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
        return;
      }
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          Secret: address,
          Version: `${r.version} (current ${r.current_version})`,
          Created: r.created_at,
          ...(r.provider ? { Provider: r.provider } : {}),
          ...(r.owner ? { Owner: r.owner } : {}),
          ...(r.expires_at ? { Expires: r.expires_at } : {}),
          ...(r.rotation ? { Rotation: `every ${r.rotation.interval} s, grace ${r.rotation.grace} s` } : {}),
          ...(r.tags.length ? { Tags: r.tags.join(', ') } : {}),
          Metadata: r.metadata,
          Value: r.value,
        }),
      );
    });

  s.command('list')
    .argument('<env-address>', 'PROJECT/ENV')
    .description('list the secrets of an environment (names and versions, never values)')
    .action(async (address: string, _o, cmd: Command) => {
      const a = parseEnvAddress(address);
      const r = await clientFor(io, cmd).listSecrets(a.project, a.env);
      print(io.stdout, formatOf(cmd), r, () => [
        ['NAME', 'VERSION', 'UPDATED', 'DELETED'],
        ...r.secrets.map((x) => [x.name, x.version, x.updated_at, x.deleted ? 'yes' : '']),
      ]);
    });

  s.command('history')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .description('show the version history of a secret (no values)')
    .action(async (address: string, _o, cmd: Command) => {
      const a = parseSecretAddress(address);
      const r = await clientFor(io, cmd).secretVersions(a.project, a.env, a.name);
      print(io.stdout, formatOf(cmd), r, () => [
        ['VERSION', 'CREATED', 'SOURCE', 'STATE'],
        ...r.versions.map((v) => [
          v.version === r.current_version ? `${v.version} (current)` : v.version,
          v.created_at,
          v.source === 'rollback' ? `rollback of ${v.rolled_back_from}` : 'write',
          v.destroyed ? 'destroyed' : '',
        ]),
      ]);
    });

  s.command('rollback')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .requiredOption('--version <n>', 'the version whose value becomes current again')
    .description('make a new version holding the value of an older one')
    .action(async (address: string, o: { version: string }, cmd: Command) => {
      const a = parseSecretAddress(address);
      const r = await clientFor(io, cmd).rollbackSecret(
        a.project,
        a.env,
        a.name,
        parsePositiveInt('--version', o.version),
      );
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Secret: address, 'New version': r.version, 'Value of version': r.rolled_back_from }),
      );
    });

  s.command('delete')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .option('--destroy', 'erase every version for good (cannot be undone)')
    .option('--yes', 'confirm --destroy (required with it)')
    .description('delete a secret (restorable with `secret restore`), or --destroy it for good')
    .action(async (address: string, o: { destroy?: boolean; yes?: boolean }, cmd: Command) => {
      const a = parseSecretAddress(address);
      if (o.destroy && !o.yes)
        throw new UsageError('--destroy erases every version for good: add --yes to confirm');
      const r = await clientFor(io, cmd).deleteSecret(a.project, a.env, a.name, {
        destroy: o.destroy === true,
      });
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Secret: address, Deleted: r.deleted_at, Destroyed: r.destroyed }),
      );
    });

  s.command('restore')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .description('undo a (soft) delete')
    .action(async (address: string, _o, cmd: Command) => {
      const a = parseSecretAddress(address);
      const r = await clientFor(io, cmd).restoreSecret(a.project, a.env, a.name);
      print(io.stdout, formatOf(cmd), r, () => kv({ Secret: address, Version: r.version }));
    });

  staleCommand(s, io);
}
