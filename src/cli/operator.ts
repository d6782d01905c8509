import type { Command } from 'commander';
import type { InitRequest } from '../api/v1.ts';
import { type CliIO, clientFor, formatOf, parsePositiveInt, UsageError } from './context.ts';
import { generateRootCommand } from './generate-root.ts';
import { readSecretInput } from './input.ts';
import { kv, print } from './output.ts';

function sealRows(s: {
  type: string;
  initialized: boolean;
  sealed: boolean;
  t: number;
  n: number;
  progress: number;
}) {
  return kv({
    'Seal type': s.type,
    Initialized: s.initialized,
    Sealed: s.sealed,
    ...(s.type === 'shamir'
      ? { 'Total shares': s.n, Threshold: s.t, 'Unseal progress': `${s.progress}/${s.t}` }
      : {}),
  });
}

export function statusCommand(program: Command, io: CliIO): void {
  program
    .command('status')
    .description('show whether the server is initialised and sealed')
    .action(async (_o, cmd: Command) => {
      const s = await clientFor(io, cmd).sealStatus();
      print(io.stdout, formatOf(cmd), s, () => sealRows(s));
    });
}

export function operatorCommands(program: Command, io: CliIO): void {
  const op = program.command('operator').description('initialise, unseal, seal and rotate the server');

  op.command('init')
    .description('initialise a new server: prints the unseal key shares and the root token, once')
    .option('--shares <n>', 'number of key shares to split the unseal key into', '5')
    .option('--threshold <t>', 'number of shares needed to unseal', '3')
    .option('--recovery-shares <n>', 'an HSM (pkcs11) seal: number of recovery key shares', '5')
    .option('--recovery-threshold <t>', 'an HSM seal: number of recovery shares that make a quorum', '3')
    .action(
      async (
        o: { shares: string; threshold: string; recoveryShares: string; recoveryThreshold: string },
        cmd: Command,
      ) => {
        const client = clientFor(io, cmd);
        const status = await client.sealStatus();
        const req: InitRequest =
          status.type === 'shamir'
            ? {
                secret_shares: parsePositiveInt('--shares', o.shares),
                secret_threshold: parsePositiveInt('--threshold', o.threshold),
              }
            : status.type === 'pkcs11'
              ? {
                  recovery_shares: parsePositiveInt('--recovery-shares', o.recoveryShares),
                  recovery_threshold: parsePositiveInt('--recovery-threshold', o.recoveryThreshold),
                }
              : {};
        const r = await client.init(req);
        if (formatOf(cmd) === 'json') return print(io.stdout, 'json', r);
        const lines = [
          ...r.keys_base64.map((k, i) => `Unseal Key ${i + 1}: ${k}`),
          ...r.recovery_keys_base64.map((k, i) => `Recovery Key ${i + 1}: ${k}`),
        ];
        io.stdout.write(
          `${lines.join('\n')}${lines.length ? '\n\n' : ''}Initial Root Token: ${r.root_token}\n\n` +
            (r.keys.length
              ? `Strongroom is initialised with ${r.keys.length} key shares and a threshold of ${req.secret_threshold}.\n` +
                'Give each share to a different person and store them apart: these are shown only this once.\n' +
                `The server is sealed: unseal it with \`strongroom operator unseal\`, ${req.secret_threshold} times with different shares.\n`
              : r.recovery_keys.length
                ? `Strongroom is initialised with an HSM seal and unsealed itself; it unseals itself at every start.\n` +
                  `The ${r.recovery_keys.length} recovery key shares (a quorum of ${req.recovery_threshold}) authorize operator actions; they never unseal.\n` +
                  'Give each to a different person and store them apart: these are shown only this once.\n'
                : 'Strongroom is initialised with a static seal and unsealed itself.\n') +
            'Keep the root token safe; use it to set up access, then revoke it.\n',
        );
      },
    );

  op.command('unseal')
    .argument('[key]', 'an unseal key share (prompted for when absent, so it stays out of shell history)')
    .option('--reset', 'discard the shares given so far')
    .description('give one unseal key share')
    .action(async (key: string | undefined, o: { reset?: boolean }, cmd: Command) => {
      const client = clientFor(io, cmd);
      let s: Awaited<ReturnType<typeof client.sealStatus>>;
      if (o.reset) s = await client.unsealReset();
      else if (!key && (await client.sealStatus()).type !== 'shamir') {
        // a static seal unseals from its own key file, an HSM seal through the HSM
        s = await client.request('POST', '/v1/sys/unseal', {});
      } else {
        const share = key ?? (await readSecretInput(io, 'Unseal key share'));
        if (share.trim() === '') throw new UsageError('no unseal key given');
        s = await client.unseal(share.trim());
      }
      print(io.stdout, formatOf(cmd), s, () => sealRows(s));
    });

  generateRootCommand(op, io);

  op.command('seal')
    .description(
      'seal the server now: keys are wiped from memory and every request is refused until unsealed',
    )
    .action(async (_o, cmd: Command) => {
      const s = await clientFor(io, cmd).seal();
      print(io.stdout, formatOf(cmd), s, () => sealRows(s));
    });

  op.command('rotate')
    .description('add a new encryption key term; new writes use it, older data stays readable')
    .action(async (_o, cmd: Command) => {
      const r = await clientFor(io, cmd).rotate();
      print(io.stdout, formatOf(cmd), r, () => kv({ 'Key term': r.term, 'Installed at': r.installed_at }));
    });

  op.command('key-status')
    .description('show the active encryption key term')
    .action(async (_o, cmd: Command) => {
      const r = await clientFor(io, cmd).keyStatus();
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ 'Key term': r.term, 'Terms in keyring': r.terms, 'Installed at': r.installed_at }),
      );
    });
}
