import type { Command } from 'commander';
import type { UserInfo } from '../api/auth.ts';
import { type CliIO, formatOf, UsageError } from './context.ts';
import { authFor, newPassword, promptHidden, promptText, stdinLines } from './login.ts';
import { kv, print } from './output.ts';

const csv = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function userRows(u: UserInfo) {
  return kv({
    User: u.name,
    ID: u.id,
    Roles: u.roles.join(', '),
    MFA: u.mfa.totp
      ? `TOTP since ${u.mfa.enrolled_at} (${u.mfa.recovery_codes_left} recovery codes left)`
      : 'none',
    Created: u.created_at,
    'Password changed': u.password_changed_at,
  });
}

export function userCommands(program: Command, io: CliIO): void {
  const u = program.command('user').description('manage users (people who log in with a password and TOTP)');

  u.command('create')
    .argument('<name>', 'username (case, spacing and Unicode width do not matter)')
    .requiredOption('--role <roles>', 'comma-separated roles, e.g. developer or admin,auditor')
    .description('create a user; the password is asked for (hidden, twice) or read from standard input')
    .action(async (name: string, o: { role: string }, cmd: Command) => {
      const roles = csv(o.role);
      if (roles.length === 0) throw new UsageError('--role needs at least one role');
      const lines = await stdinLines(io);
      const password = await newPassword(io, lines, `Password for ${name}`);
      const r = await authFor(io, cmd).createUser({ username: name, password, roles });
      print(io.stdout, formatOf(cmd), r, () => userRows(r.user));
    });

  u.command('list')
    .description('list users')
    .action(async (_o, cmd: Command) => {
      const r = await authFor(io, cmd).listUsers();
      print(io.stdout, formatOf(cmd), r, () => [
        ['NAME', 'ROLES', 'MFA', 'CREATED'],
        ...r.users.map((x) => [x.name, x.roles.join(','), x.mfa.totp ? 'totp' : '', x.created_at]),
      ]);
    });

  u.command('show')
    .argument('[name]', 'a user (default: yourself)')
    .description('show a user (roles, MFA state; never a password or secret)')
    .action(async (name: string | undefined, _o, cmd: Command) => {
      const auth = authFor(io, cmd);
      const r = name ? await auth.getUser(name) : await auth.userSelf();
      print(io.stdout, formatOf(cmd), r, () => userRows(r.user));
    });

  u.command('delete')
    .argument('<name>')
    .description('delete a user; every token they hold is revoked at once')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await authFor(io, cmd).deleteUser(name);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Deleted: r.deleted, 'Tokens revoked': r.tokens_revoked }),
      );
    });

  u.command('passwd')
    .argument('[name]', 'a user whose password you set as an admin (default: change your own)')
    .description(
      "set a user's password (admin; their tokens are revoked and a lockout lifted), or change your own (current then new password; from standard input: one per line)",
    )
    .action(async (name: string | undefined, _o, cmd: Command) => {
      const auth = authFor(io, cmd);
      const lines = await stdinLines(io);
      if (name) {
        const password = await newPassword(io, lines, `New password for ${name}`);
        const r = await auth.setUserPassword(name, password);
        print(io.stdout, formatOf(cmd), r, () =>
          kv({
            User: r.user.name,
            'Password changed': r.user.password_changed_at,
            'Tokens revoked': r.tokens_revoked,
          }),
        );
        return;
      }
      const current = io.stdin.isTTY ? await promptHidden(io, 'Current password') : lines.shift();
      if (current === undefined) throw new UsageError('pipe the current and the new password, one per line');
      const next = await newPassword(io, lines, 'New password');
      const r = await auth.changeOwnPassword(current, next);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({
          User: r.user.name,
          'Password changed': r.user.password_changed_at,
          'Tokens revoked': r.tokens_revoked,
        }),
      );
      if (formatOf(cmd) === 'table')
        io.stderr.write('Your tokens were revoked: log in again with `strongroom login`.\n');
    });

  u.command('roles')
    .argument('<name>')
    .requiredOption('--set <roles>', 'the complete new list of roles, comma-separated')
    .description("replace a user's roles (when a role is removed, the user's tokens are revoked)")
    .action(async (name: string, o: { set: string }, cmd: Command) => {
      const roles = csv(o.set);
      if (roles.length === 0) throw new UsageError('--set needs at least one role');
      const r = await authFor(io, cmd).setUserRoles(name, roles);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ User: r.user.name, Roles: r.user.roles.join(', '), 'Tokens revoked': r.tokens_revoked }),
      );
    });

  const m = u.command('mfa').description('two-factor authentication (TOTP) for your account, and MFA rules');

  m.command('enroll')
    .description(
      'enrol a TOTP authenticator app: prints its secret and otpauth URI, then asks for a code to confirm',
    )
    .action(async (_o, cmd: Command) => {
      const auth = authFor(io, cmd);
      const r = await auth.enrollTotp();
      if (formatOf(cmd) === 'json') {
        print(io.stdout, 'json', r);
      } else {
        print(io.stdout, 'table', r, () =>
          kv({ Secret: r.secret, URI: r.otpauth_uri, 'Confirm before': r.expires_at }),
        );
        io.stderr.write(
          'Add the secret (or the URI, as a QR code) to your authenticator app. It is shown only this once.\n',
        );
      }
      if (!io.stdin.isTTY) {
        io.stderr.write('Then run `strongroom user mfa confirm CODE` with the code the app shows.\n');
        return;
      }
      const code = (await promptText(io, 'Code shown by the app')).trim();
      printRecovery(io, cmd, (await auth.confirmTotp(code)).recovery_codes);
    });

  m.command('confirm')
    .argument('<code>', 'the 6-digit code your authenticator app shows')
    .description('finish enrolment; prints your recovery codes (shown once)')
    .action(async (code: string, _o, cmd: Command) => {
      printRecovery(io, cmd, (await authFor(io, cmd).confirmTotp(code.trim())).recovery_codes);
    });

  m.command('reset')
    .argument('<name>')
    .description("remove a user's TOTP enrolment (admin; for a lost device)")
    .action(async (name: string, _o, cmd: Command) => {
      const r = await authFor(io, cmd).resetUserMfa(name);
      print(io.stdout, formatOf(cmd), r, () => userRows(r.user));
    });

  m.command('required-roles')
    .option('--set <roles>', 'roles whose holders must log in with TOTP, comma-separated')
    .option('--clear', 'no role requires MFA')
    .description('show or set the roles that require MFA to log in')
    .action(async (o: { set?: string; clear?: boolean }, cmd: Command) => {
      const auth = authFor(io, cmd);
      if (o.set !== undefined && o.clear) throw new UsageError('give --set or --clear, not both');
      const r =
        o.set !== undefined
          ? await auth.setMfaRequiredRoles(csv(o.set))
          : o.clear
            ? await auth.setMfaRequiredRoles([])
            : await auth.mfaRequiredRoles();
      print(io.stdout, formatOf(cmd), r, () => kv({ 'Roles requiring MFA': r.roles.join(', ') || '(none)' }));
    });
}

function printRecovery(io: CliIO, cmd: Command, codes: string[]): void {
  if (formatOf(cmd) === 'json') {
    print(io.stdout, 'json', { recovery_codes: codes });
    return;
  }
  io.stdout.write(`TOTP is active. Recovery codes (each works once instead of a code; shown only now):\n`);
  for (const c of codes) io.stdout.write(`  ${c}\n`);
}
