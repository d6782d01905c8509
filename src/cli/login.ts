import { password as hiddenPrompt, text as textPrompt } from '@clack/prompts';
import type { Command } from 'commander';
import type { LoginRequest, LoginResponse } from '../api/auth.ts';
import { type AuthClient, authClient } from '../sdk/auth.ts';
import { StrongroomApiError } from '../sdk/client.ts';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { readStdin } from './input.ts';
import { kv, print } from './output.ts';

/** The auth-method calls of the SDK, over the command's client. */
export function authFor(io: CliIO, cmd: Command): AuthClient {
  return authClient(clientFor(io, cmd).request);
}

/** Standard input split into lines (for secrets piped in, one per line), or [] on a terminal. */
export async function stdinLines(io: CliIO): Promise<string[]> {
  if (io.stdin.isTTY) return [];
  const text = await readStdin(io, 64 * 1024);
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

export async function promptText(io: CliIO, message: string): Promise<string> {
  const v = await textPrompt({
    message,
    input: io.stdin as NodeJS.ReadStream,
    output: io.stderr as NodeJS.WriteStream,
  });
  if (typeof v !== 'string') throw new UsageError('cancelled');
  return v;
}

export async function promptHidden(io: CliIO, message: string): Promise<string> {
  const v = await hiddenPrompt({
    message,
    mask: '*',
    input: io.stdin as NodeJS.ReadStream,
    output: io.stderr as NodeJS.WriteStream,
  });
  if (typeof v !== 'string') throw new UsageError('cancelled');
  return v;
}

/** A new password: twice on a terminal (they must match), else the next line of stdin. */
export async function newPassword(io: CliIO, lines: string[], label: string): Promise<string> {
  if (!io.stdin.isTTY) {
    const p = lines.shift();
    if (p === undefined) throw new UsageError(`${label}: pipe it on standard input (one line)`);
    return p;
  }
  const a = await promptHidden(io, label);
  const b = await promptHidden(io, `${label} (again)`);
  if (a !== b) throw new UsageError('the two passwords differ');
  return a;
}

function codeField(code: string): Pick<LoginRequest, 'totp' | 'recovery_code'> {
  const c = code.trim();
  return /^[0-9]{6}$/.test(c) ? { totp: c } : { recovery_code: c };
}

function printLogin(io: CliIO, cmd: Command, r: LoginResponse): void {
  const format = formatOf(cmd);
  if (format === 'json') {
    print(io.stdout, 'json', r);
    return;
  }
  print(io.stdout, format, r, () =>
    kv({
      'Logged in as': r.auth.display_name,
      Policies: r.auth.policies.length ? r.auth.policies.join(', ') : '(none: this token can only enrol MFA)',
      MFA: r.auth.mfa ? 'yes' : 'no',
      Expires: r.auth.expires_at,
      Accessor: r.auth.accessor,
      ...(r.auth.scope ? { Scope: r.auth.scope } : {}),
    }),
  );
  io.stdout.write(`\nexport STRONGROOM_TOKEN=${r.auth.client_token}\n`);
  io.stderr.write('Run the export line above (or set STRONGROOM_TOKEN another way) to use this token.\n');
}

async function appLogin(io: CliIO, cmd: Command): Promise<void> {
  let clientId = io.env.STRONGROOM_CLIENT_ID || undefined;
  let secret = io.env.STRONGROOM_CLIENT_SECRET || undefined;
  if (!clientId || !secret) {
    if (io.stdin.isTTY) {
      clientId ??= (await promptText(io, 'Client ID')).trim();
      secret ??= await promptHidden(io, 'Client secret');
    } else {
      const text = (await readStdin(io, 64 * 1024)).trim();
      if (text.startsWith('{')) {
        // the output of `strongroom app create --format json`
        let creds: { client_id?: unknown; client_secret?: unknown };
        try {
          creds = JSON.parse(text) as typeof creds;
        } catch {
          throw new UsageError('standard input starts with "{" but is not valid JSON');
        }
        clientId ??= typeof creds.client_id === 'string' ? creds.client_id : undefined;
        secret ??= typeof creds.client_secret === 'string' ? creds.client_secret : undefined;
      } else {
        const lines = text.split(/\r?\n/).map((l) => l.trim());
        if (!clientId) clientId = lines.shift();
        secret ??= lines.shift();
      }
    }
  }
  if (!clientId || !secret)
    throw new UsageError(
      'give the client id and secret in STRONGROOM_CLIENT_ID and STRONGROOM_CLIENT_SECRET, or on standard input (one per line)',
    );
  const r = await authFor(io, cmd).appLogin({ client_id: clientId, client_secret: secret });
  printLogin(io, cmd, r);
}

export function loginCommand(program: Command, io: CliIO): void {
  program
    .command('login')
    .argument('[username]', 'your username (asked for when omitted)')
    .option(
      '--app',
      'log in as an application: the client id and secret come from $STRONGROOM_CLIENT_ID and $STRONGROOM_CLIENT_SECRET, or standard input',
    )
    .option(
      '--enroll-mfa',
      'when your role requires MFA and none is enrolled: get a short token that can only enrol (`strongroom user mfa enroll`)',
    )
    .description(
      'log in and print a token. The password is asked for (hidden) or read from standard input; a TOTP code is asked for when the account has one (or read from the second line of standard input)',
    )
    .action(async (username: string | undefined, o: { app?: boolean; enrollMfa?: boolean }, cmd: Command) => {
      if (o.app) {
        if (username) throw new UsageError('--app takes no username');
        return appLogin(io, cmd);
      }
      const lines = await stdinLines(io);
      let name = username;
      if (!name) {
        if (!io.stdin.isTTY) throw new UsageError('give the username: `strongroom login NAME`');
        name = await promptText(io, 'Username');
      }
      const password = io.stdin.isTTY ? await promptHidden(io, 'Password') : lines.shift();
      if (password === undefined)
        throw new UsageError('no password: type it at the prompt, or pipe it on standard input');
      const auth = authFor(io, cmd);
      const req: LoginRequest = {
        username: name,
        password,
        ...(o.enrollMfa ? { mfa_enrollment: true } : {}),
      };
      let r: LoginResponse;
      try {
        r = await auth.login(req);
      } catch (err) {
        // the server asks for the second factor only once the password is right
        const needsCode =
          err instanceof StrongroomApiError && err.code === 'mfa_required' && !/enrol/i.test(err.message);
        if (!needsCode) throw err;
        const code = io.stdin.isTTY
          ? await promptText(io, 'TOTP code from your authenticator app (or a recovery code)')
          : lines.shift();
        if (!code)
          throw new UsageError(
            'this account needs a TOTP code: type it at the prompt, or pipe it as the second line of standard input',
          );
        r = await auth.login({ ...req, ...codeField(code) });
      }
      printLogin(io, cmd, r);
    });
}
