import { createHash, randomBytes } from 'node:crypto';
import * as api from '../../api/transit.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { VaultModule } from '../../contract/module.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { ClockPort, HsmPort, TransitPort } from '../ports.ts';
import { dataOperations } from './data.ts';
import {
  configure,
  type Keyring,
  keyInfo,
  keyPath,
  requireEncryption,
  type TransitKeyRecord,
  trim,
  versionForReading,
} from './keyring.ts';
import {
  decryptVersion,
  exportKey,
  forgetKeyObjects,
  isEncryptionKey,
  isSigningKey,
  type KeyVersion,
  newVersion,
  nodeHash,
  parseVersioned,
} from './keys.ts';

export type TransitDeps = ClockPort & HsmPort;

const SYSTEM: Resource = { type: 'System', id: 'transit' };
const keyResource = (name: string): Resource => ({ type: 'TransitKey', id: name, attrs: { name } });

/**
 * The transit engine (issue 17 item 1; docs/transit.md): named keys with versions that never leave the
 * vault unless made exportable, and encryption, signatures and HMACs under them on Vault's routes. A
 * key's record is changed only in a storage transaction (two rotations at once make two versions, never
 * one lost, since a ciphertext made under a lost version could never be opened again).
 */
export function transitModule(
  bind?: (port: TransitPort['transit']) => void,
): VaultModule<TransitDeps, BarrierStore> {
  let deps: TransitDeps | undefined;
  let store: BarrierStore | undefined;
  const now = () => new Date(deps!.clock.now());

  const keyring: Keyring = {
    async load(name) {
      const k = await store!.getJson<TransitKeyRecord>(keyPath(name));
      if (!k) {
        throw new StrongroomError(
          'not_found',
          `no transit key named ${JSON.stringify(name)}: create it with POST /v1/transit/keys/${name}`,
        );
      }
      return k;
    },
  };

  /** Changes a key's record in one transaction; `change` may be re-run, so it only computes. */
  async function update(name: string, change: (k: TransitKeyRecord) => TransitKeyRecord) {
    return store!.transaction(async (tx) => {
      const k = await tx.getJson<TransitKeyRecord>(keyPath(name));
      if (!k) throw new StrongroomError('not_found', `no transit key named ${JSON.stringify(name)}`);
      const next = change(k);
      await tx.put(keyPath(name), Buffer.from(JSON.stringify(next)));
      return next;
    });
  }

  async function create(i: api.TransitKeyParams & api.TransitKeyCreateRequest) {
    const type: api.KeyType = i.type ?? 'aes256-gcm96';
    checkCreate(i, type, deps!.hsm !== undefined);
    const existing = await store!.getJson<TransitKeyRecord>(keyPath(i.name));
    if (existing) return sameKind(existing, type);
    // made before the transaction: an RSA key pair takes a while, and a transaction may be re-run
    const first = await makeVersion(type, i.name, i.hsm === true, i.key_size || 32);
    const at = now().toISOString();
    const record = newRecord(i, type, first, at);
    return store!.transaction(async (tx) => {
      const raced = await tx.getJson<TransitKeyRecord>(keyPath(i.name));
      if (raced) return sameKind(raced, type);
      await tx.put(keyPath(i.name), Buffer.from(JSON.stringify(record)));
      return record;
    });
  }

  /** A new version: made here, or inside the HSM for an `hsm` key (only its label is kept). */
  async function makeVersion(type: api.KeyType, name: string, inHsm: boolean, hmacBytes: number) {
    const v = await newVersion(inHsm ? 'hmac' : type, now(), hmacBytes);
    if (!inHsm) return v;
    const label = `strongroom-transit/${name}/${randomBytes(8).toString('hex')}`;
    await deps!.hsm!.generate(label);
    return { key: '', hmac_key: v.hmac_key, hsm_label: label, created_at: v.created_at };
  }

  /** Destroys the HSM keys of versions that are gone (after the record that named them is written). */
  async function destroyHsmKeys(versions: Iterable<{ hsm_label?: string | undefined }>): Promise<void> {
    for (const v of versions) if (v.hsm_label) await deps!.hsm?.destroy(v.hsm_label);
  }

  // the models engine's way to a data key (TransitPort): checked by its own operation, not by Cedar here
  bind?.({
    async unwrap(name, ciphertext, aad) {
      const k = await keyring.load(name);
      requireEncryption(k, 'decrypt');
      const { version, bytes } = parseVersioned(ciphertext, 'ciphertext');
      return decryptVersion(k.type, versionForReading(k, version), bytes, { aad }, deps!.hsm);
    },
  });

  function operations(): AnyOperation[] {
    const manage = { action: 'transit.manage', auth: 'token' as const };
    const byName = (i: { name: string }) => keyResource(i.name);
    return [
      implement(api.TransitKeyCreate, {
        ...manage,
        resource: byName,
        handle: async (_ctx, i) => keyInfo(await create(i)),
      }),
      implement(api.TransitKeyRead, {
        action: 'transit.read',
        auth: 'token',
        resource: byName,
        handle: async (_ctx, i) => keyInfo(await keyring.load(i.name)),
      }),
      implement(api.TransitKeyList, {
        action: 'transit.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async () => ({
          data: { keys: (await store!.list('keys/')).map((p) => p.slice('keys/'.length)) },
        }),
      }),
      implement(api.TransitKeyDelete, {
        ...manage,
        resource: byName,
        async handle(_ctx, i) {
          const gone = await store!.transaction(async (tx) => {
            const k = await tx.getJson<TransitKeyRecord>(keyPath(i.name));
            if (!k) throw new StrongroomError('not_found', `no transit key named ${JSON.stringify(i.name)}`);
            if (!k.deletion_allowed) {
              throw new StrongroomError(
                'deletion_not_allowed',
                `the key ${i.name} is protected from deletion (everything encrypted under it would be lost): set deletion_allowed: true in its config first`,
              );
            }
            await tx.delete(keyPath(i.name));
            return k;
          });
          await destroyHsmKeys(Object.values(gone.versions));
          return { deleted: true };
        },
      }),
      implement(api.TransitKeyConfig, {
        ...manage,
        resource: byName,
        handle: async (_ctx, i) => keyInfo(await update(i.name, (k) => configure(k, i, now()))),
      }),
      implement(api.TransitKeyRotate, {
        ...manage,
        resource: byName,
        async handle(_ctx, i) {
          const k = await keyring.load(i.name);
          const v = await makeVersion(
            k.type,
            k.name,
            k.hsm === true,
            k.type === 'hmac' ? Buffer.from(k.versions[k.latest_version]!.key, 'base64').length : 32,
          );
          return keyInfo(
            await update(i.name, (cur) => ({
              ...cur,
              versions: { ...cur.versions, [cur.latest_version + 1]: v },
              latest_version: cur.latest_version + 1,
              updated_at: now().toISOString(),
            })),
          );
        },
      }),
      implement(api.TransitKeyTrim, {
        ...manage,
        resource: byName,
        async handle(_ctx, i) {
          let before: TransitKeyRecord | undefined;
          const after = await update(i.name, (k) => {
            before = k;
            return trim(k, i.min_available_version, now());
          });
          await destroyHsmKeys(
            Object.entries(before!.versions)
              .filter(([n]) => !(n in after.versions))
              .map(([, v]) => v),
          );
          return keyInfo(after);
        },
      }),
      exportOperation(keyring),
      ...dataOperations({ keyring, resource: keyResource, hsm: () => deps!.hsm }),
      ...utilityOperations(),
    ];
  }

  return {
    name: 'transit',
    mount: 'logical/transit/',
    operations(d, st) {
      deps = d;
      store = st;
      return operations();
    },
    onSeal() {
      forgetKeyObjects();
    },
  };
}

/** Key material out of the vault: only for a key made exportable (a public key is always public). */
function exportOperation(keyring: Keyring): AnyOperation {
  return implement(api.TransitKeyExport, {
    // a public key is public; the rest is key material, and a right of its own
    action: 'transit.export',
    auth: 'token',
    resource: (i) => keyResource(i.name),
    async handle(_ctx, i) {
      const k = await keyring.load(i.name);
      const kind = i.key_type;
      if (kind !== 'public-key' && (!k.exportable || k.hsm)) {
        throw new StrongroomError(
          'not_exportable',
          `the key ${k.name} is not exportable: its material never leaves the vault`,
        );
      }
      const fits =
        kind === 'hmac-key' ||
        (kind === 'encryption-key' && isEncryptionKey(k.type)) ||
        ((kind === 'signing-key' || kind === 'public-key') && isSigningKey(k.type));
      if (!fits) {
        throw new StrongroomError('unsupported_operation', `a ${k.type} key has no ${kind}`);
      }
      const keys: Record<string, string> = {};
      const only =
        i.version === undefined ? undefined : i.version === 'latest' ? k.latest_version : Number(i.version);
      for (const [n, v] of Object.entries(k.versions)) {
        if (only === undefined || Number(n) === only) keys[n] = exportKey(k.type, v, kind);
      }
      if (only !== undefined && Object.keys(keys).length === 0) {
        throw new StrongroomError('key_version_disallowed', `the key ${k.name} has no version ${only}`);
      }
      return { data: { name: k.name, type: k.type, keys } };
    },
  });
}

/** Random bytes and hashes: no key involved. */
function utilityOperations(): AnyOperation[] {
  return [
    implement(api.TransitRandom, {
      action: 'transit.random',
      auth: 'token',
      resource: () => SYSTEM,
      handle: async (_ctx, i) => {
        // the path's count (`random/{bytes}`) is not bounded by the body's schema
        if (i.bytes !== undefined && i.bytes > 131_072) {
          throw new StrongroomError('invalid_value', 'bytes must be at most 131072');
        }
        const b = randomBytes(i.bytes ?? 32);
        return { data: { random_bytes: b.toString(i.format === 'hex' ? 'hex' : 'base64') } };
      },
    }),
    implement(api.TransitHash, {
      action: 'transit.random',
      auth: 'token',
      resource: () => SYSTEM,
      handle: async (_ctx, i) => {
        const sum = createHash(nodeHash(i.algorithm ?? 'sha2-256'))
          .update(Buffer.from(i.input, 'base64'))
          .digest(i.format === 'base64' ? 'base64' : 'hex');
        return { data: { sum } };
      },
    }),
  ];
}

/** Creating a key that exists changes nothing (Vault's answer), unless another type is asked for. */
function sameKind(k: TransitKeyRecord, type: api.KeyType): TransitKeyRecord {
  if (k.type !== type) {
    throw new StrongroomError(
      'already_exists',
      `the transit key ${k.name} exists with type ${k.type}; delete it first or choose another name`,
    );
  }
  return k;
}

/** What a new key may be (Vault's rules, and ours for keys in the HSM). */
function checkCreate(i: api.TransitKeyCreateRequest, type: api.KeyType, hasHsm: boolean): void {
  if (i.convergent_encryption) {
    throw new StrongroomError(
      'unsupported_operation',
      'convergent encryption is not offered: equal plaintexts would give equal ciphertexts (docs/transit.md)',
    );
  }
  if (i.derived && !isEncryptionKey(type)) {
    throw new StrongroomError(
      'unsupported_operation',
      `a ${type} key cannot be derived: only encryption keys`,
    );
  }
  if (i.key_size !== undefined && i.key_size !== 0 && (type !== 'hmac' || i.key_size < 16)) {
    throw new StrongroomError('invalid_value', 'key_size is for hmac keys only, from 16 to 512 bytes');
  }
  if (i.hsm) {
    if (!hasHsm) {
      throw new StrongroomError(
        'unsupported_operation',
        'hsm: true needs a vault sealed by an HSM (seal: pkcs11)',
      );
    }
    if (type !== 'aes256-gcm96' || i.derived || i.exportable) {
      throw new StrongroomError(
        'unsupported_operation',
        'a key held in the HSM is an aes256-gcm96 key, not derived, never exportable',
      );
    }
  }
}

function newRecord(
  i: api.TransitKeyParams & api.TransitKeyCreateRequest,
  type: api.KeyType,
  first: KeyVersion,
  at: string,
): TransitKeyRecord {
  return {
    name: i.name,
    type,
    derived: i.derived ?? false,
    ...(i.hsm ? { hsm: true } : {}),
    exportable: i.exportable ?? false,
    allow_plaintext_backup: i.allow_plaintext_backup ?? false,
    deletion_allowed: false,
    latest_version: 1,
    min_decryption_version: 1,
    min_encryption_version: 0,
    min_available_version: 0,
    versions: { '1': first },
    created_at: at,
    updated_at: at,
  };
}
