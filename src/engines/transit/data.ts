import { randomBytes } from 'node:crypto';
import * as api from '../../api/transit.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { isStrongroomError, StrongroomError } from '../../errors/errors.ts';
import {
  contextFor,
  type Keyring,
  requireEncryption,
  requireSigning,
  type TransitKeyRecord,
  versionForReading,
  versionForWriting,
} from './keyring.ts';
import * as crypto from './keys.ts';

/**
 * The transit engine's data operations (docs/transit.md): encrypt, decrypt, rewrap, datakey, sign,
 * verify and hmac, each on one item or on a `batch_input` of up to 1000. In a batch, an item that fails
 * gets an `error` in its place in `batch_results` and the others are still done, as Vault answers; the
 * whole request fails only for what is wrong with the key itself (missing, of the wrong type).
 */

const b64 = (s: string | undefined) => (s === undefined || s === '' ? undefined : Buffer.from(s, 'base64'));

function noNonce(nonce: string | undefined): void {
  if (nonce !== undefined && nonce !== '') {
    throw new StrongroomError(
      'unsupported_operation',
      'a caller-chosen nonce is not accepted: every encryption draws a fresh random nonce',
    );
  }
}

/** Runs `one` on each item; an item's own failure becomes its `error`. Yields to the event loop now and then. */
async function batch<T extends { reference?: string | undefined }>(
  items: readonly T[],
  one: (item: T) => api.BatchItem | Promise<api.BatchItem>,
): Promise<api.BatchItem[]> {
  const out: api.BatchItem[] = [];
  for (let n = 0; n < items.length; n++) {
    const item = items[n]!;
    const ref = item.reference === undefined ? {} : { reference: item.reference };
    try {
      out.push({ ...(await one(item)), ...ref });
    } catch (err) {
      if (!isStrongroomError(err)) throw err;
      out.push({ error: err.message, ...ref });
    }
    // a batch of RSA signatures takes a while: let other requests in between
    if (n % 32 === 31) await new Promise((r) => setImmediate(r));
  }
  return out;
}

/** The single item of a request without `batch_input`, which then must be given. */
function single<T>(value: T | null | undefined, field: string): T {
  if (value === undefined || value === null) {
    throw new StrongroomError('validation_failed', `give ${field} or batch_input`);
  }
  return value;
}

function signOptions(i: {
  hash_algorithm?: api.HashAlgorithm | undefined;
  algorithm?: api.HashAlgorithm | undefined;
  prehashed?: boolean | undefined;
  signature_algorithm?: 'pss' | 'pkcs1v15' | undefined;
  marshaling_algorithm?: 'asn1' | 'jws' | undefined;
  salt_length?: string | undefined;
}): crypto.SignOptions {
  if (i.prehashed) {
    throw new StrongroomError(
      'unsupported_operation',
      'prehashed input is not offered: send the input itself (the vault hashes it with hash_algorithm)',
    );
  }
  return {
    hash: i.hash_algorithm ?? i.algorithm ?? 'sha2-256',
    signatureAlgorithm: i.signature_algorithm ?? 'pss',
    marshaling: i.marshaling_algorithm ?? 'asn1',
    saltLength: i.salt_length ?? 'auto',
  };
}

interface DataDeps {
  keyring: Keyring;
  resource: (name: string) => Resource;
  /** The HSM holding `hsm: true` keys' versions, if the vault has one. */
  hsm: () => crypto.Hsm | undefined;
}

export const dataOperations = (deps: DataDeps): AnyOperation[] => [
  ...encryptionOperations(deps),
  ...signingOperations(deps),
];

/** encrypt, decrypt, rewrap and datakey: AEAD keys only. */
function encryptionOperations(deps: DataDeps): AnyOperation[] {
  const { keyring } = deps;
  const token = { auth: 'token' as const, resource: (i: { name: string }) => deps.resource(i.name) };

  async function encryptOne(k: TransitKeyRecord, item: api.EncryptItem): Promise<api.BatchItem> {
    noNonce(item.nonce);
    const { version, v } = versionForWriting(k, item.key_version);
    const plaintext = Buffer.from(item.plaintext, 'base64');
    try {
      const ciphertext = await crypto.encryptVersion(
        k.type,
        version,
        v,
        plaintext,
        { context: contextFor(k, item.context), aad: b64(item.associated_data) },
        deps.hsm(),
      );
      return { ciphertext, key_version: version };
    } finally {
      plaintext.fill(0);
    }
  }

  async function decryptOne(k: TransitKeyRecord, item: api.DecryptItem): Promise<Buffer> {
    noNonce(item.nonce);
    const { version, bytes } = crypto.parseVersioned(item.ciphertext, 'ciphertext');
    return crypto.decryptVersion(
      k.type,
      versionForReading(k, version),
      bytes,
      { context: contextFor(k, item.context), aad: b64(item.associated_data) },
      deps.hsm(),
    );
  }

  return [
    implement(api.TransitEncrypt, {
      action: 'transit.encrypt',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        requireEncryption(k, 'encrypt');
        if (i.convergent_encryption) {
          throw new StrongroomError('unsupported_operation', 'convergent encryption is not offered');
        }
        if (i.batch_input)
          return { data: { batch_results: await batch(i.batch_input, (it) => encryptOne(k, it)) } };
        const r = await encryptOne(k, {
          plaintext: single(i.plaintext, 'plaintext'),
          context: i.context,
          associated_data: i.associated_data,
          nonce: i.nonce,
          key_version: i.key_version,
        } as api.EncryptItem);
        return { data: { ciphertext: r.ciphertext!, key_version: r.key_version! } };
      },
    }),
    implement(api.TransitDecrypt, {
      action: 'transit.decrypt',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        requireEncryption(k, 'decrypt');
        const one = async (it: api.DecryptItem) => ({
          plaintext: (await decryptOne(k, it)).toString('base64'),
        });
        if (i.batch_input) return { data: { batch_results: await batch(i.batch_input, one) } };
        return {
          data: await one({ ...i, ciphertext: single(i.ciphertext, 'ciphertext') } as api.DecryptItem),
        };
      },
    }),
    implement(api.TransitRewrap, {
      action: 'transit.rewrap',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        requireEncryption(k, 'rewrap');
        const one = async (it: api.DecryptItem): Promise<api.BatchItem> => {
          const plaintext = await decryptOne(k, it);
          try {
            return await encryptOne(k, {
              plaintext: plaintext.toString('base64'),
              context: it.context,
              associated_data: it.associated_data,
              key_version: it.key_version ?? i.key_version,
            } as api.EncryptItem);
          } finally {
            plaintext.fill(0);
          }
        };
        if (i.batch_input) return { data: { batch_results: await batch(i.batch_input, one) } };
        const r = await one({ ...i, ciphertext: single(i.ciphertext, 'ciphertext') } as api.DecryptItem);
        return { data: { ciphertext: r.ciphertext!, key_version: r.key_version! } };
      },
    }),
    implement(api.TransitDatakey, {
      action: 'transit.datakey',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        requireEncryption(k, 'wrap a data key');
        noNonce(i.nonce);
        const raw = randomBytes((i.bits ?? 256) / 8);
        try {
          const { version, v } = versionForWriting(k, i.key_version);
          const ciphertext = await crypto.encryptVersion(
            k.type,
            version,
            v,
            raw,
            { context: contextFor(k, i.context) },
            deps.hsm(),
          );
          return {
            data: {
              ...(i.kind === 'plaintext' ? { plaintext: raw.toString('base64') } : {}),
              ciphertext,
              key_version: version,
            },
          };
        } finally {
          raw.fill(0);
        }
      },
    }),
  ];
}

/** sign, verify and hmac: key pairs sign; every key computes HMACs with its versions' HMAC keys. */
function signingOperations(deps: DataDeps): AnyOperation[] {
  const { keyring } = deps;
  const token = { auth: 'token' as const, resource: (i: { name: string }) => deps.resource(i.name) };
  return [
    implement(api.TransitSign, {
      action: 'transit.sign',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        requireSigning(k);
        const opts = signOptions(i);
        const { version, v } = versionForWriting(k, i.key_version);
        const one = (it: { input: string }): api.BatchItem => ({
          signature: crypto.sign(k.type, version, v, Buffer.from(it.input, 'base64'), opts),
          key_version: version,
        });
        if (i.batch_input) return { data: { batch_results: await batch(i.batch_input, one) } };
        const r = one({ input: single(i.input, 'input') });
        return { data: { signature: r.signature!, key_version: version } };
      },
    }),
    implement(api.TransitVerify, {
      action: 'transit.verify',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        const opts = signOptions(i);
        const one = (it: { input: string; signature?: string | undefined; hmac?: string | undefined }) => {
          if ((it.signature === undefined) === (it.hmac === undefined)) {
            throw new StrongroomError('validation_failed', 'give either signature or hmac, not both');
          }
          const input = Buffer.from(it.input, 'base64');
          if (it.hmac !== undefined) {
            const { version, bytes } = crypto.parseVersioned(it.hmac, 'hmac');
            return { valid: crypto.verifyHmac(versionForReading(k, version), input, bytes, opts.hash) };
          }
          requireSigning(k);
          const jws = k.type.startsWith('ecdsa-') && opts.marshaling === 'jws';
          const { version, bytes } = crypto.parseVersioned(it.signature!, 'signature', jws);
          return { valid: crypto.verify(k.type, versionForReading(k, version), input, bytes, opts) };
        };
        if (i.batch_input) return { data: { batch_results: await batch(i.batch_input, one) } };
        return {
          data: one({
            input: single(i.input, 'input'),
            ...(i.signature === undefined ? {} : { signature: i.signature }),
            ...(i.hmac === undefined ? {} : { hmac: i.hmac }),
          }),
        };
      },
    }),
    implement(api.TransitHmac, {
      action: 'transit.hmac',
      ...token,
      async handle(_ctx, i) {
        const k = await keyring.load(i.name);
        const hash = i.hash_algorithm ?? i.algorithm ?? 'sha2-256';
        const { version, v } = versionForWriting(k, i.key_version);
        const one = (it: { input: string }): api.BatchItem => ({
          hmac: crypto.hmac(version, v, Buffer.from(it.input, 'base64'), hash),
          key_version: version,
        });
        if (i.batch_input) return { data: { batch_results: await batch(i.batch_input, one) } };
        const r = one({ input: single(i.input, 'input') });
        return { data: { hmac: r.hmac!, key_version: version } };
      },
    }),
  ];
}
