import type { KeyType, TransitKeyInfo } from '../../api/transit.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { isEncryptionKey, isSigningKey, type KeyVersion } from './keys.ts';

/** A transit key as stored at `keys/<name>` in the engine's barrier view: its policy and its versions. */
export interface TransitKeyRecord {
  name: string;
  type: KeyType;
  derived: boolean;
  exportable: boolean;
  allow_plaintext_backup: boolean;
  deletion_allowed: boolean;
  latest_version: number;
  min_decryption_version: number;
  min_encryption_version: number;
  min_available_version: number;
  /** The versions are keys in the HSM (each version's `hsm_label`), used through PKCS#11. */
  hsm?: boolean;
  versions: Record<string, KeyVersion>;
  created_at: string;
  updated_at: string;
}

export const keyPath = (name: string) => `keys/${name}`;

/** Reading keys, for the data operations: one place that loads a key and says it is missing. */
export interface Keyring {
  load(name: string): Promise<TransitKeyRecord>;
}

const CURVE: Partial<Record<KeyType, string>> = {
  'ecdsa-p256': 'P-256',
  'ecdsa-p384': 'P-384',
  'ecdsa-p521': 'P-521',
  ed25519: 'ed25519',
};

/** What `GET /v1/transit/keys/{name}` answers, as Vault does. */
export function keyInfo(k: TransitKeyRecord): TransitKeyInfo {
  const keys: Record<string, unknown> = {};
  for (const [n, v] of Object.entries(k.versions)) {
    keys[n] = v.public_key
      ? { creation_time: v.created_at, name: CURVE[k.type] ?? k.type, public_key: v.public_key }
      : Math.floor(Date.parse(v.created_at) / 1000);
  }
  return {
    data: {
      name: k.name,
      type: k.type,
      keys,
      latest_version: k.latest_version,
      min_available_version: k.min_available_version,
      min_decryption_version: k.min_decryption_version,
      min_encryption_version: k.min_encryption_version,
      deletion_allowed: k.deletion_allowed,
      derived: k.derived,
      exportable: k.exportable,
      allow_plaintext_backup: k.allow_plaintext_backup,
      supports_encryption: isEncryptionKey(k.type),
      supports_decryption: isEncryptionKey(k.type),
      supports_derivation: isEncryptionKey(k.type),
      supports_signing: isSigningKey(k.type),
      auto_rotate_period: 0,
      imported_key: false,
      hsm: k.hsm === true,
    },
  };
}

/**
 * The version new ciphertexts, signatures, HMACs and data keys are made with: the latest, or an older one
 * asked for that the key's policy still allows, never one below min_decryption_version (a retired
 * version makes nothing new) nor below min_encryption_version.
 */
export function versionForWriting(
  k: TransitKeyRecord,
  asked: number | undefined,
): { version: number; v: KeyVersion } {
  const version = asked === undefined || asked === 0 ? k.latest_version : asked;
  if (version > k.latest_version) {
    throw new StrongroomError(
      'key_version_disallowed',
      `the key ${k.name} has no version ${version} (its latest is ${k.latest_version})`,
    );
  }
  const floor = Math.max(k.min_decryption_version, k.min_encryption_version);
  if (version < floor) {
    throw new StrongroomError(
      'key_version_disallowed',
      `version ${version} of the key ${k.name} is retired for new ciphertexts, signatures and HMACs (the oldest allowed is ${floor}: min_decryption_version ${k.min_decryption_version}, min_encryption_version ${k.min_encryption_version})`,
    );
  }
  return { version, v: existing(k, version) };
}

/** The version a ciphertext or signature names, if the key's policy still lets it be opened or checked. */
export function versionForReading(k: TransitKeyRecord, version: number): KeyVersion {
  if (version < k.min_decryption_version) {
    throw new StrongroomError(
      'key_version_disallowed',
      `version ${version} of the key ${k.name} is below its min_decryption_version (${k.min_decryption_version}): rewrap older ciphertexts before raising it`,
    );
  }
  if (version > k.latest_version) {
    throw new StrongroomError(
      'key_version_disallowed',
      `the key ${k.name} has no version ${version} (its latest is ${k.latest_version})`,
    );
  }
  return existing(k, version);
}

function existing(k: TransitKeyRecord, version: number): KeyVersion {
  const v = Object.hasOwn(k.versions, String(version)) ? k.versions[String(version)] : undefined;
  if (!v) {
    throw new StrongroomError(
      'key_version_disallowed',
      `version ${version} of the key ${k.name} was trimmed (min_available_version ${k.min_available_version})`,
    );
  }
  return v;
}

export function requireEncryption(k: TransitKeyRecord, what: string): void {
  if (!isEncryptionKey(k.type)) {
    throw new StrongroomError(
      'unsupported_operation',
      `the key ${k.name} is of type ${k.type}, which cannot ${what}: use an aes256-gcm96 or chacha20-poly1305 key`,
    );
  }
}

export function requireSigning(k: TransitKeyRecord): void {
  if (!isSigningKey(k.type)) {
    throw new StrongroomError(
      'unsupported_operation',
      `the key ${k.name} is of type ${k.type}, which cannot sign: use an ed25519, ecdsa-* or rsa-* key`,
    );
  }
}

/** A derived key needs a context on every call; a key that is not derived takes none. */
export function contextFor(k: TransitKeyRecord, context: string | undefined): Buffer | undefined {
  if (!k.derived) {
    if (context !== undefined && context !== '') {
      throw new StrongroomError(
        'invalid_value',
        `the key ${k.name} is not derived: send no context (create the key with derived: true to use one)`,
      );
    }
    return undefined;
  }
  if (!context) {
    throw new StrongroomError('invalid_value', `the key ${k.name} is derived: every call needs a context`);
  }
  return Buffer.from(context, 'base64');
}

/** Applies a configuration change, with Vault's rules (docs/transit.md). Returns the new record. */
export function configure(
  k: TransitKeyRecord,
  c: {
    min_decryption_version?: number | undefined;
    min_encryption_version?: number | undefined;
    deletion_allowed?: boolean | undefined;
    exportable?: boolean | undefined;
    allow_plaintext_backup?: boolean | undefined;
  },
  now: Date,
): TransitKeyRecord {
  const next = { ...k };
  if (c.min_decryption_version !== undefined && c.min_decryption_version !== 0) {
    if (c.min_decryption_version > k.latest_version) {
      throw new StrongroomError(
        'invalid_value',
        `min_decryption_version ${c.min_decryption_version} is above the key's latest version (${k.latest_version})`,
      );
    }
    if (c.min_decryption_version < k.min_available_version) {
      throw new StrongroomError(
        'invalid_value',
        `min_decryption_version cannot go below the versions trimmed (min_available_version ${k.min_available_version})`,
      );
    }
    next.min_decryption_version = c.min_decryption_version;
  }
  if (c.min_encryption_version !== undefined) {
    if (c.min_encryption_version > k.latest_version) {
      throw new StrongroomError(
        'invalid_value',
        `min_encryption_version ${c.min_encryption_version} is above the key's latest version (${k.latest_version})`,
      );
    }
    next.min_encryption_version = c.min_encryption_version;
  }
  if (next.min_encryption_version > 0 && next.min_encryption_version < next.min_decryption_version) {
    throw new StrongroomError(
      'invalid_value',
      'min_encryption_version must be 0 (the latest) or at least min_decryption_version',
    );
  }
  if (c.exportable === false && k.exportable) {
    throw new StrongroomError(
      'invalid_value',
      'a key made exportable stays exportable (its material may have left)',
    );
  }
  if (c.allow_plaintext_backup === false && k.allow_plaintext_backup) {
    throw new StrongroomError('invalid_value', 'allow_plaintext_backup cannot be turned off once on');
  }
  if (c.exportable && k.hsm) {
    throw new StrongroomError(
      'invalid_value',
      'a key held in the HSM never leaves it: it cannot be made exportable',
    );
  }
  if (c.exportable) next.exportable = true;
  if (c.allow_plaintext_backup) next.allow_plaintext_backup = true;
  if (c.deletion_allowed !== undefined) next.deletion_allowed = c.deletion_allowed;
  next.updated_at = now.toISOString();
  return next;
}

/** Removes the versions below `min`, with Vault's rules: never a version still allowed to decrypt. */
export function trim(k: TransitKeyRecord, min: number, now: Date): TransitKeyRecord {
  if (min < k.min_available_version) {
    throw new StrongroomError(
      'invalid_value',
      `versions below ${k.min_available_version} are already trimmed`,
    );
  }
  if (min > k.min_decryption_version) {
    throw new StrongroomError(
      'invalid_value',
      `min_available_version cannot be above min_decryption_version (${k.min_decryption_version}): raise that first`,
    );
  }
  if (k.min_encryption_version > 0 && min > k.min_encryption_version) {
    throw new StrongroomError(
      'invalid_value',
      `min_available_version cannot be above min_encryption_version (${k.min_encryption_version})`,
    );
  }
  const versions: Record<string, KeyVersion> = {};
  for (const [n, v] of Object.entries(k.versions)) if (Number(n) >= min) versions[n] = v;
  return { ...k, versions, min_available_version: min, updated_at: now.toISOString() };
}
