import type { Command } from 'commander';
import type { GenerateRootStatus } from '../api/generate-root.ts';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { readSecretInput } from './input.ts';
import { kv, print } from './output.ts';

/** The token from `encoded_token` and the one-time pad (Vault's `generate-root -decode`). */
function decode(encoded: string, otp: string): string {
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length !== otp.length)
    throw new UsageError('the encoded token and the one-time pad differ in length');
  return Buffer.from(bytes.map((b, i) => b ^ otp.charCodeAt(i))).toString();
}

/** `strongroom operator generate-root` (docs/seal.md): a new root token from a quorum of key holders. */
export function generateRootCommand(op: Command, io: CliIO): void {
  op.command('generate-root')
    .argument('[key]', 'your unseal key (Shamir seal) or recovery key (HSM seal); prompted for when absent')
    .option('--init', 'start an attempt: prints its nonce and the one-time pad (keep the pad to yourself)')
    .option('--nonce <nonce>', 'the attempt to give your key to')
    .option('--status', 'show the attempt in progress')
    .option('--cancel', 'cancel the attempt in progress')
    .option('--decode <encoded>', 'with --otp: print the root token an attempt produced')
    .option('--otp <otp>', 'the one-time pad --init printed')
    .description(
      'make a new root token with a quorum of key holders (unseal keys, or recovery keys of an HSM seal)',
    )
    .action(
      async (
        key: string | undefined,
        o: {
          init?: boolean;
          nonce?: string;
          status?: boolean;
          cancel?: boolean;
          decode?: string;
          otp?: string;
        },
        cmd: Command,
      ) => {
        if (o.decode !== undefined) {
          if (!o.otp) throw new UsageError('--decode needs --otp');
          io.stdout.write(`${decode(o.decode, o.otp)}\n`);
          return;
        }
        const c = clientFor(io, cmd);
        const path = '/v1/sys/generate-root/attempt';
        let s: GenerateRootStatus;
        if (o.init) s = await c.request<GenerateRootStatus>('POST', path, o.otp ? { otp: o.otp } : {});
        else if (o.cancel) s = await c.request<GenerateRootStatus>('DELETE', path);
        else if (o.status || !o.nonce) {
          if (!o.status)
            throw new UsageError('give --init, --status, --cancel, --decode, or --nonce with your key');
          s = await c.request<GenerateRootStatus>('GET', path);
        } else {
          const share = key ?? (await readSecretInput(io, 'Unseal or recovery key'));
          if (share.trim() === '') throw new UsageError('no key given');
          s = await c.request<GenerateRootStatus>('POST', '/v1/sys/generate-root/update', {
            key: share.trim(),
            nonce: o.nonce,
          });
        }
        print(io.stdout, formatOf(cmd), s, () =>
          kv({
            Nonce: s.nonce,
            Started: s.started,
            Progress: `${s.progress}/${s.required}`,
            Complete: s.complete,
            ...(s.otp ? { OTP: s.otp } : {}),
            ...(s.encoded_token
              ? {
                  'Encoded Token': s.encoded_token,
                  Next: 'strongroom operator generate-root --decode TOKEN --otp OTP',
                }
              : {}),
          }),
        );
      },
    );
}
