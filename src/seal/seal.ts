import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Barrier } from '../barrier/barrier.ts';
import { encryptRecord, recordAad } from '../barrier/barrier.ts';
import { importAesKey, open } from '../crypto/aead.ts';
import { constantTimeEqual, randomKey } from '../crypto/random.ts';
import { combineShares, splitSecret } from '../crypto/shamir.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { createHsmWrapper, type HsmWrapper, type Pkcs11Settings } from './pkcs11.ts';

/**
 * The seal protects the root key. The root key (which opens the barrier's
 * keyring) is stored encrypted under an unseal key; the unseal key is either
 * split into Shamir shares held by people, read from a key file (static), or
 * an AES key that never leaves a PKCS#11 HSM (pkcs11: the HSM wraps and
 * unwraps the root key, and people hold Shamir *recovery* keys instead,
 * which authorize operator actions but never open the vault).
 */
export type SealSettings = { shamir: object } | { static: { key_file: string } } | { pkcs11: Pkcs11Settings };
export type SealType = 'shamir' | 'static' | 'pkcs11';

const SEAL_CONFIG_PATH = 'core/seal/config';
const ROOT_KEY_PATH = 'core/seal/root-key';
const SHARE_BYTES = 33;

interface StoredSealConfig {
  type: SealType;
  shares: number;
  threshold: number;
  /** pkcs11: the recovery key's shares and threshold, and its SHA-256 (to check a quorum given later). */
  recovery_shares?: number;
  recovery_threshold?: number;
  recovery_check?: string;
  created_at: string;
}

export interface SealStatus {
  type: SealType;
  initialized: boolean;
  sealed: boolean;
  t: number;
  n: number;
  progress: number;
  /** Whether key holders hold recovery keys (an HSM seal) rather than unseal keys. */
  recovery_seal: boolean;
}

export interface InitResult {
  /** Shamir shares of the unseal key (empty for a static or pkcs11 seal). */
  shares: Buffer[];
  /** pkcs11: Shamir shares of the recovery key. */
  recoveryShares: Buffer[];
}

export interface SealManager {
  status(): Promise<SealStatus>;
  /**
   * Initialises storage: a new root key, keyring and seal configuration. Leaves the barrier unsealed.
   * `recovery`: the recovery key's shares and threshold, for a pkcs11 seal.
   */
  initialize(
    shares: number,
    threshold: number,
    recovery?: { shares: number; threshold: number },
  ): Promise<InitResult>;
  /** Adds one Shamir share; unseals when the threshold is reached. */
  submitShare(share: string): Promise<SealStatus>;
  /** Unseals without people: from the static key file, or through the HSM. */
  autoUnseal(): Promise<void>;
  /**
   * How many key holders make a quorum for an operator action (generate-root): the unseal threshold of a
   * Shamir seal, the recovery threshold of an HSM seal. A static seal has no key holders (`bad_request`).
   */
  quorum(): Promise<number>;
  /**
   * Whether `shares` (unseal keys of a Shamir seal, recovery keys of an HSM seal) reconstruct the key:
   * `invalid_unseal_key` otherwise. Never unseals.
   */
  checkQuorum(shares: readonly string[]): Promise<void>;
  resetProgress(): void;
  seal(): void;
}

/** Parses a key share given as hex or base64. */
export function parseShare(input: string): Buffer {
  const s = input.trim();
  let buf: Buffer | undefined;
  if (/^[0-9a-fA-F]+$/.test(s) && s.length === SHARE_BYTES * 2) buf = Buffer.from(s, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) buf = Buffer.from(s, 'base64');
  if (!buf || buf.byteLength !== SHARE_BYTES) {
    throw new StrongroomError(
      'invalid_unseal_key',
      'an unseal key must be a key share as printed by `operator init` (hex or base64)',
    );
  }
  return buf;
}

interface Protected {
  wrapped: Uint8Array;
  shares: Buffer[];
  recoveryShares: Buffer[];
}

/** The HSM wraps the root key (making its key on the token if need be); people get recovery keys. */
async function hsmProtect(
  hsm: ReturnType<typeof createHsmWrapper>,
  rootKey: Buffer,
  cfg: StoredSealConfig,
  recovery: { shares: number; threshold: number },
): Promise<Protected> {
  const wrapped = await hsm.wrap(rootKey, recordAad(0, ROOT_KEY_PATH), { create: true });
  const recoveryKey = randomKey();
  const recoveryShares = await splitSecret(recoveryKey, recovery.shares, recovery.threshold);
  cfg.recovery_shares = recovery.shares;
  cfg.recovery_threshold = recovery.threshold;
  cfg.recovery_check = createHash('sha256').update(recoveryKey).digest('hex');
  recoveryKey.fill(0);
  return { wrapped, shares: [], recoveryShares };
}

/** An unseal key (split into shares, or the static key file's) encrypts the root key. */
async function unsealKeyProtect(
  settings: SealSettings,
  rootKey: Buffer,
  shares: number,
  threshold: number,
): Promise<Protected> {
  let unsealKey: Buffer;
  let out: Buffer[] = [];
  if ('static' in settings) {
    unsealKey = await readKeyFile(settings.static.key_file);
  } else {
    unsealKey = randomKey();
    out = await splitSecret(unsealKey, shares, threshold);
  }
  const wrapped = encryptRecord(importAesKey(unsealKey), 0, ROOT_KEY_PATH, rootKey);
  unsealKey.fill(0);
  return { wrapped, shares: out, recoveryShares: [] };
}

/** Whether `given` reconstruct the unseal key (Shamir) or the recovery key (HSM seal); never unseals. */
async function checkShares(
  cfg: StoredSealConfig,
  given: readonly string[],
  storedRootKey: () => Promise<Buffer>,
): Promise<void> {
  const parsed = given.map(parseShare);
  let key: Buffer | undefined;
  try {
    try {
      key = await combineShares(parsed);
    } catch {
      throw new StrongroomError('invalid_unseal_key', 'the key shares given are not valid');
    }
    if (cfg.type === 'pkcs11') {
      const digest = createHash('sha256').update(key).digest('hex');
      if (!constantTimeEqual(digest, cfg.recovery_check ?? '')) {
        throw new StrongroomError(
          'invalid_unseal_key',
          'the recovery key shares given do not reconstruct the recovery key',
        );
      }
      return;
    }
    const wrapped = await storedRootKey();
    const rootKey = open(importAesKey(key), wrapped.subarray(5), recordAad(0, ROOT_KEY_PATH));
    if (!rootKey) {
      throw new StrongroomError(
        'invalid_unseal_key',
        'the key shares given do not reconstruct the unseal key',
      );
    }
    rootKey.fill(0);
  } finally {
    key?.fill(0);
    for (const p of parsed) p.fill(0);
  }
}

/** The HSM of a PKCS#11 seal, for the transit keys it may hold too (undefined for other seals). */
export function hsmFor(settings: SealSettings): HsmWrapper | undefined {
  return 'pkcs11' in settings ? createHsmWrapper(settings.pkcs11, () => readPin(settings.pkcs11)) : undefined;
}

/** The HSM user PIN: given (STRONGROOM_HSM_PIN or the configuration), or read from `pin_file`. */
async function readPin(s: Pkcs11Settings): Promise<string> {
  if (s.pin !== undefined && s.pin !== '') return s.pin;
  if (s.pin_file === undefined) {
    throw new StrongroomError(
      'hsm_unavailable',
      'no HSM PIN: set STRONGROOM_HSM_PIN or seal.pkcs11.pin_file; the vault stays sealed',
    );
  }
  try {
    return (await readFile(s.pin_file, 'utf8')).trim();
  } catch (err) {
    throw new StrongroomError(
      'hsm_unavailable',
      `cannot read the HSM PIN file ${s.pin_file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

/** Reads a 32-byte key from a file: raw bytes, 64 hex characters or base64. */
async function readKeyFile(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    throw new StrongroomError(
      'bad_request',
      `cannot read the seal key file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (raw.byteLength === 32) return raw;
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const b64 = Buffer.from(text, 'base64');
  if (b64.byteLength === 32) return b64;
  throw new StrongroomError(
    'bad_request',
    `the seal key file ${path} must hold 32 bytes (raw, 64 hex characters or base64)`,
  );
}

export function createSealManager(opts: {
  settings: SealSettings;
  storage: StorageBackend;
  barrier: Barrier;
  now: () => Date;
}): SealManager {
  const { settings, storage, barrier } = opts;
  const type: SealType = 'shamir' in settings ? 'shamir' : 'static' in settings ? 'static' : 'pkcs11';
  const hsm =
    'pkcs11' in settings ? createHsmWrapper(settings.pkcs11, () => readPin(settings.pkcs11)) : undefined;
  let pending: Buffer[] = [];

  async function storedConfig(): Promise<StoredSealConfig | undefined> {
    const raw = await storage.get(SEAL_CONFIG_PATH);
    if (!raw) return undefined;
    const cfg = JSON.parse(Buffer.from(raw).toString('utf8')) as StoredSealConfig;
    if (cfg.type !== type) {
      throw new StrongroomError(
        'bad_request',
        `this storage was initialised with a ${cfg.type} seal but the configuration asks for a ${type} seal`,
      );
    }
    return cfg;
  }

  async function storedRootKey(): Promise<Buffer> {
    const wrapped = await storage.get(ROOT_KEY_PATH);
    if (!wrapped)
      throw new StrongroomError(
        'not_initialized',
        'Strongroom is not initialised: run `strongroom operator init`',
      );
    return Buffer.from(wrapped);
  }

  async function unsealWith(unsealKey: Uint8Array): Promise<void> {
    const wrapped = await storedRootKey();
    const k = importAesKey(unsealKey);
    // root-key records use term 0 and bind their path like every barrier record
    const rootKey = open(k, wrapped.subarray(5), recordAad(0, ROOT_KEY_PATH));
    if (!rootKey) throw new StrongroomError('invalid_unseal_key', 'the unseal key is not correct');
    await unsealWithRootKey(rootKey);
  }

  async function unsealWithRootKey(rootKey: Buffer): Promise<void> {
    try {
      await barrier.unseal(rootKey);
    } finally {
      rootKey.fill(0);
    }
  }

  async function status(): Promise<SealStatus> {
    const cfg = await storedConfig();
    return {
      type,
      initialized: cfg !== undefined,
      sealed: barrier.sealed,
      t: cfg?.threshold ?? 0,
      n: cfg?.shares ?? 0,
      progress: pending.length,
      recovery_seal: type === 'pkcs11',
    };
  }

  return {
    status,
    async initialize(shares, threshold, recovery) {
      if (await storedConfig())
        throw new StrongroomError('already_initialized', 'Strongroom is already initialised');
      const rootKey = randomKey();
      const cfg: StoredSealConfig = {
        type,
        shares: type === 'shamir' ? shares : 0,
        threshold: type === 'shamir' ? threshold : 0,
        created_at: opts.now().toISOString(),
      };
      const {
        wrapped,
        shares: out,
        recoveryShares,
      } = hsm
        ? await hsmProtect(hsm, rootKey, cfg, recovery ?? { shares: 5, threshold: 3 })
        : await unsealKeyProtect(settings, rootKey, shares, threshold);
      await barrier.initialize(
        rootKey,
        new Map<string, Uint8Array>([
          [ROOT_KEY_PATH, wrapped],
          [SEAL_CONFIG_PATH, Buffer.from(JSON.stringify(cfg))],
        ]),
      );
      await barrier.unseal(rootKey);
      rootKey.fill(0);
      return { shares: out, recoveryShares };
    },
    async submitShare(input) {
      const cfg = await storedConfig();
      if (!cfg)
        throw new StrongroomError(
          'not_initialized',
          'Strongroom is not initialised: run `strongroom operator init`',
        );
      if (type !== 'shamir')
        throw new StrongroomError(
          'bad_request',
          `this server uses a ${type} seal and unseals itself${type === 'pkcs11' ? ' (recovery keys do not unseal it)' : ''}: send {} to try again`,
        );
      if (!barrier.sealed) return status();
      const share = parseShare(input);
      // a share already given does not count twice
      if (!pending.some((p) => constantTimeEqual(p, share))) pending.push(share);
      if (pending.length < cfg.threshold) return status();
      const given = pending;
      pending = [];
      try {
        const key = await combineShares(given);
        await unsealWith(key);
        key.fill(0);
      } catch (err) {
        if (err instanceof StrongroomError && err.code === 'invalid_unseal_key') {
          throw new StrongroomError(
            'invalid_unseal_key',
            'the key shares given do not reconstruct the unseal key; unseal progress was reset, start again with correct shares',
          );
        }
        throw new StrongroomError(
          'invalid_unseal_key',
          'the key shares given are not valid; unseal progress was reset',
        );
      } finally {
        for (const g of given) g.fill(0);
      }
      return status();
    },
    async quorum() {
      const cfg = await storedConfig();
      if (!cfg)
        throw new StrongroomError(
          'not_initialized',
          'Strongroom is not initialised: run `strongroom operator init`',
        );
      if (cfg.type === 'static') {
        throw new StrongroomError(
          'bad_request',
          'a static seal has no key holders: there is no quorum to ask',
        );
      }
      return cfg.type === 'pkcs11' ? (cfg.recovery_threshold ?? 0) : cfg.threshold;
    },
    async checkQuorum(given) {
      const cfg = await storedConfig();
      if (!cfg || cfg.type === 'static') throw new StrongroomError('bad_request', 'no key holders to check');
      await checkShares(cfg, given, storedRootKey);
    },
    async autoUnseal() {
      if (hsm) {
        const wrapped = await storedRootKey();
        await unsealWithRootKey(await hsm.unwrap(wrapped, recordAad(0, ROOT_KEY_PATH)));
        return;
      }
      if (type !== 'static') throw new TypeError('autoUnseal needs a static or pkcs11 seal');
      const key = await readKeyFile((settings as { static: { key_file: string } }).static.key_file);
      try {
        await unsealWith(key);
      } finally {
        key.fill(0);
      }
    },
    resetProgress() {
      for (const p of pending) p.fill(0);
      pending = [];
    },
    seal() {
      this.resetProgress();
      barrier.seal();
    },
  };
}
