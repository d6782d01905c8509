import * as api from '../api/v1.ts';
import type { VaultModule } from '../contract/module.ts';
import { implement } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Core } from './core.ts';

const SYSTEM = { type: 'System', id: 'sys' } as const;

/** The vault's own module: init, seal/unseal, status, key rotation. */
/** What the vault's own operations use of the core: the seal, the barrier's keys, the root token's store. */
type SysDeps = Pick<Core, 'seal' | 'barrier' | 'tokens' | 'afterUnseal' | 'sealNow'>;

export const sysModule: VaultModule<SysDeps> = { name: 'sys', operations: (core) => sysOperations(core) };

/** Operations on the vault itself: init, seal/unseal, status, key rotation. */
function sysOperations(core: SysDeps) {
  const sealStatus = () => core.seal.status();

  return [
    implement(api.SysSealStatus, {
      action: 'sys.status',
      auth: 'none',
      whenSealed: true,
      resource: () => SYSTEM,
      handle: async () => sealStatus(),
    }),

    implement(api.SysInit, {
      action: 'sys.init',
      auth: 'none',
      whenSealed: true,
      resource: () => SYSTEM,
      async handle(_ctx, i) {
        const status = await core.seal.status();
        if (status.initialized)
          throw new StrongroomError('already_initialized', 'Strongroom is already initialised');
        let shares = 0;
        let threshold = 0;
        if (status.type === 'shamir') {
          shares = i.secret_shares ?? 5;
          threshold = i.secret_threshold ?? 3;
          if (threshold > shares) {
            throw new StrongroomError(
              'validation_failed',
              'secret_threshold cannot be larger than secret_shares',
            );
          }
          if (threshold < 2 && shares > 1) {
            throw new StrongroomError(
              'validation_failed',
              'secret_threshold must be at least 2 when there is more than one share',
            );
          }
        } else if (i.secret_shares !== undefined || i.secret_threshold !== undefined) {
          throw new StrongroomError(
            'validation_failed',
            `this server uses a ${status.type} seal: do not give secret_shares or secret_threshold`,
          );
        }
        const recovery =
          status.type === 'pkcs11'
            ? { shares: i.recovery_shares ?? 5, threshold: i.recovery_threshold ?? 3 }
            : undefined;
        if (
          recovery &&
          (recovery.threshold > recovery.shares || (recovery.threshold < 2 && recovery.shares > 1))
        ) {
          throw new StrongroomError(
            'validation_failed',
            'recovery_threshold must be at most recovery_shares, and at least 2 when there is more than one share',
          );
        }
        if (!recovery && (i.recovery_shares !== undefined || i.recovery_threshold !== undefined)) {
          throw new StrongroomError('validation_failed', 'recovery keys are for an HSM (pkcs11) seal');
        }
        const { shares: keys, recoveryShares } = await core.seal.initialize(shares, threshold, recovery);
        await core.afterUnseal();
        const { token } = await core.tokens.create({
          policies: ['root'],
          display_name: 'root',
          owner: { type: 'root', id: 'root', name: 'root' },
          ttl: null,
        });
        // a Shamir-sealed vault starts sealed: the key holders must unseal it
        if (status.type === 'shamir') core.sealNow();
        const out = {
          keys: keys.map((k) => k.toString('hex')),
          keys_base64: keys.map((k) => k.toString('base64')),
          recovery_keys: recoveryShares.map((k) => k.toString('hex')),
          recovery_keys_base64: recoveryShares.map((k) => k.toString('base64')),
          root_token: token,
        };
        for (const k of [...keys, ...recoveryShares]) k.fill(0);
        return out;
      },
    }),

    implement(api.SysUnseal, {
      action: 'sys.unseal',
      auth: 'none',
      whenSealed: true,
      resource: () => SYSTEM,
      async handle(_ctx, i) {
        if (i.reset) {
          core.seal.resetProgress();
          return sealStatus();
        }
        const wasSealed = core.barrier.sealed;
        const status = await core.seal.status();
        if (status.type !== 'shamir') {
          // a static seal unseals from its key file, an HSM seal through the HSM; shares do not apply
          if (i.key !== undefined) {
            throw new StrongroomError(
              'validation_failed',
              status.type === 'static'
                ? 'this server uses a static seal: send {} to unseal it from its key file'
                : 'this server uses an HSM (pkcs11) seal: send {} to unseal it through the HSM (recovery keys do not unseal)',
            );
          }
          if (!status.initialized)
            throw new StrongroomError(
              'not_initialized',
              'Strongroom is not initialised: run `strongroom operator init`',
            );
          if (wasSealed) {
            await core.seal.autoUnseal();
            await core.afterUnseal();
          }
          return sealStatus();
        }
        if (i.key === undefined)
          throw new StrongroomError('validation_failed', 'give either `key` or `reset: true`');
        await core.seal.submitShare(i.key);
        if (wasSealed && !core.barrier.sealed) await core.afterUnseal();
        return sealStatus();
      },
    }),

    implement(api.SysSeal, {
      action: 'sys.seal',
      auth: 'token',
      resource: () => SYSTEM,
      async handle() {
        core.sealNow();
        return sealStatus();
      },
    }),

    implement(api.SysRotate, {
      action: 'sys.rotate',
      auth: 'token',
      resource: () => SYSTEM,
      async handle() {
        const info = await core.barrier.rotate();
        return { term: info.term, installed_at: info.created_at };
      },
    }),

    implement(api.SysKeyStatus, {
      action: 'sys.status',
      auth: 'token',
      resource: () => SYSTEM,
      async handle() {
        return core.barrier.keyStatus();
      },
    }),
  ];
}
