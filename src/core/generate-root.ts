import { randomBytes, randomUUID } from 'node:crypto';
import * as api from '../api/generate-root.ts';
import type { VaultModule } from '../contract/module.ts';
import { implement } from '../contract/operation.ts';
import { constantTimeEqual } from '../crypto/random.ts';
import { StrongroomError } from '../errors/errors.ts';
import { parseShare } from '../seal/seal.ts';
import type { Core } from './core.ts';

const SYSTEM = { type: 'System', id: 'sys' } as const;
/** A root token's length (`srt_` + 43 + `_` + 6): the one-time pad's. */
const OTP_LENGTH = 54;
const OTP_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

type Deps = Pick<Core, 'seal' | 'tokens'>;

interface Attempt {
  nonce: string;
  otp: string;
  shares: string[];
}

function newOtp(): string {
  // 62 symbols: reject bytes ≥ 248 so each symbol is uniform
  let out = '';
  while (out.length < OTP_LENGTH) {
    for (const b of randomBytes(OTP_LENGTH)) {
      if (b < 248 && out.length < OTP_LENGTH) out += OTP_ALPHABET[b % 62];
    }
  }
  return out;
}

/** base64 of `token` XOR `otp` (equal lengths), as Vault encodes a generated root token. */
function encodeRootToken(token: string, otp: string): string {
  const t = Buffer.from(token);
  const o = Buffer.from(otp);
  if (t.length !== o.length) throw new TypeError('the one-time pad must be as long as the token');
  return Buffer.from(t.map((b, i) => b ^ o[i]!)).toString('base64');
}

/**
 * A new root token from a quorum of key holders (docs/seal.md): Vault's generate-root flow. One attempt
 * at a time per server, held in memory; shares of a finished or cancelled attempt are forgotten. The
 * routes are public (the shares are the credential) and audited like unseal.
 */
export const generateRootModule: VaultModule<Deps> = {
  name: 'generate-root',
  needs: ['sys'],
  operations(core) {
    let attempt: Attempt | undefined;
    const status = async (extra: Partial<api.GenerateRootStatus> = {}): Promise<api.GenerateRootStatus> => ({
      started: attempt !== undefined,
      nonce: attempt?.nonce ?? '',
      progress: attempt?.shares.length ?? 0,
      required: await core.seal.quorum(),
      complete: false,
      encoded_token: '',
      encoded_root_token: '',
      otp_length: OTP_LENGTH,
      otp: '',
      pgp_fingerprint: '',
      ...extra,
    });
    const common = { action: 'sys.generate-root', auth: 'none' as const, resource: () => SYSTEM };
    return [
      implement(api.GenerateRootRead, { ...common, handle: () => status() }),
      implement(api.GenerateRootStart, {
        ...common,
        async handle(_ctx, i) {
          await core.seal.quorum();
          if (attempt) {
            throw new StrongroomError(
              'unseal_in_progress',
              'a root token generation is already in progress: finish it, or cancel it (DELETE /v1/sys/generate-root/attempt)',
            );
          }
          if (i.otp !== undefined && i.otp.length !== OTP_LENGTH) {
            throw new StrongroomError(
              'validation_failed',
              `the one-time pad must be ${OTP_LENGTH} characters long`,
            );
          }
          const made = i.otp === undefined;
          attempt = { nonce: randomUUID(), otp: i.otp ?? newOtp(), shares: [] };
          return status(made ? { otp: attempt.otp } : {});
        },
      }),
      implement(api.GenerateRootCancel, {
        ...common,
        async handle() {
          attempt = undefined;
          return status();
        },
      }),
      implement(api.GenerateRootUpdate, {
        ...common,
        async handle(_ctx, i) {
          const a = attempt;
          if (!a)
            throw new StrongroomError('bad_request', 'no root token generation in progress: start one first');
          if (!constantTimeEqual(a.nonce, i.nonce)) {
            throw new StrongroomError(
              'validation_failed',
              'the nonce is not the one of the attempt in progress',
            );
          }
          const required = await core.seal.quorum();
          if (attempt !== a)
            throw new StrongroomError('bad_request', 'the attempt ended meanwhile: start again');
          // a share already given does not count twice, however it is written (hex, base64, case)
          const bytes = parseShare(i.key);
          if (!a.shares.some((s) => constantTimeEqual(parseShare(s), bytes))) a.shares.push(i.key.trim());
          if (a.shares.length < required) return status();
          // from here on synchronously this attempt is over: a second final share arriving meanwhile finds none
          attempt = undefined;
          try {
            await core.seal.checkQuorum(a.shares);
          } catch (err) {
            if (err instanceof StrongroomError) {
              throw new StrongroomError(
                'invalid_unseal_key',
                `${err.message}: the attempt was cancelled, start again with correct shares`,
              );
            }
            throw err;
          }
          const { token } = await core.tokens.create({
            policies: ['root'],
            display_name: 'root',
            owner: { type: 'root', id: 'root', name: 'root' },
            ttl: null,
          });
          const encoded = encodeRootToken(token, a.otp);
          return {
            ...(await status()),
            nonce: a.nonce,
            progress: required,
            complete: true,
            encoded_token: encoded,
            encoded_root_token: encoded,
          };
        },
      }),
    ];
  },
};
