import type { Command } from 'commander';
import { rotateSecret, rotationStatus } from '../sdk/rotation.ts';
import { type CliIO, clientFor, formatOf, parseSecretAddress, UsageError } from './context.ts';
import { readSecretInput } from './input.ts';
import { kv, print } from './output.ts';

/**
 * `strongroom secret rotate` and `strongroom secret rotation` (docs/rotation.md),
 * added to the `secret` command group.
 */
export function rotateCommands(program: Command, io: CliIO): void {
  const s =
    program.commands.find((c) => c.name() === 'secret') ??
    program.command('secret').description('store, read and manage versioned secrets');

  s.command('rotate')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .option(
      '--value-from-stdin',
      'the new key is given by the operator (stdin, or a hidden prompt on a terminal); without it the provider adapter mints one',
    )
    .option('--force', "store a value that does not look like the provider's key format")
    .description(
      'rotate a secret now: the new version is current at once, the old key stays valid through the grace period',
    )
    .action(async (address: string, o: { valueFromStdin?: boolean; force?: boolean }, cmd: Command) => {
      const a = parseSecretAddress(address);
      let value: string | undefined;
      if (o.valueFromStdin) {
        value = await readSecretInput(io, `New value for ${address}`);
        if (value === '') throw new UsageError('the new value is empty (nothing on standard input?)');
      } else if (o.force) {
        throw new UsageError('--force applies to an operator value: add --value-from-stdin');
      }
      const r = await rotateSecret(clientFor(io, cmd).request, a.project, a.env, a.name, {
        ...(value === undefined ? {} : { value }),
        ...(o.force ? { force: true } : {}),
      });
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          Secret: address,
          Version: `${r.version} (was ${r.previous_version})`,
          'Minted by': r.minted_by === 'adapter' ? `${r.adapter} adapter` : 'operator',
          'Old key valid until': r.old_key_valid_until,
        }),
      );
    });

  s.command('rotation')
    .argument('<address>', 'PROJECT/ENV/NAME')
    .description('show when a secret rotates next, the last failure, and old keys waiting for deletion')
    .action(async (address: string, _o, cmd: Command) => {
      const a = parseSecretAddress(address);
      const r = await rotationStatus(clientFor(io, cmd).request, a.project, a.env, a.name);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          Secret: address,
          Version: r.current_version,
          Rotation: r.rotation
            ? `every ${r.rotation.interval} s, grace ${r.rotation.grace} s${r.rotation.adapter ? `, ${r.rotation.adapter} adapter` : ''}`
            : 'not configured',
          'Last rotated': r.last_rotated_at ?? 'never',
          'Next rotation': r.next_rotation_at ?? '-',
          ...(r.last_rotation_error
            ? { 'Last error': `${r.last_rotation_error} (${r.consecutive_failures} in a row)` }
            : {}),
          'Pending deletions':
            r.pending_revocations.map((p) => `v${p.version} at ${p.revoke_at}`).join(', ') || '-',
        }),
      );
    });
}
