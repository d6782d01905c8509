import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import type { BarrierStore } from '../barrier/barrier.ts';
import { randomKey } from '../crypto/random.ts';
import { StrongroomError } from '../errors/errors.ts';
import { type AuditHasher, createAuditHasher } from './hmac.ts';

/** Signs checkpoints. */
export interface CheckpointSigner {
  readonly keyId: string;
  /** PEM SubjectPublicKeyInfo of the verification key. */
  readonly publicKeyPem: string;
  sign(message: Uint8Array): Buffer;
}

/**
 * The audit keys, kept in the barrier (so they exist only while unsealed): a
 * 256-bit HMAC key for sensitive values and an Ed25519 key for checkpoints.
 * Both are created on first use and never change.
 */
export interface AuditKeys {
  /** Loads the keys after unseal, creating them on first use. */
  load(): Promise<void>;
  /** Forgets the keys (on seal). */
  unload(): void;
  readonly loaded: boolean;
  readonly hmacKey: KeyObject | undefined;
  /** The Ed25519 private key. */
  readonly signingKey: KeyObject | undefined;
  /** Identifier of the signing key (see keyIdOf). */
  readonly keyId: string | undefined;
  /** HMAC of sensitive values, or undefined while not loaded. */
  readonly hasher: AuditHasher | undefined;
  /** Checkpoint signer, or undefined while not loaded. */
  readonly signer: CheckpointSigner | undefined;
  /** PEM of the public key; throws `sealed` while not loaded. */
  publicKeyPem(): string;
}

const HMAC_KEY_PATH = 'hmac-key';
const SIGNING_KEY_PATH = 'signing-key';

/** Hex SHA-256 (first 16 bytes) of the DER SubjectPublicKeyInfo of an Ed25519 key. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 32);
}

/** A signer over a given Ed25519 private key (also used by tests and benchmarks). */
export function createCheckpointSigner(privateKey: KeyObject): CheckpointSigner {
  const pub = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(pub),
    publicKeyPem: pub.export({ type: 'spki', format: 'pem' }).toString(),
    sign: (message) => sign(null, message, privateKey),
  };
}

export function createAuditKeys(store: BarrierStore): AuditKeys {
  let loaded:
    | { hmacKey: KeyObject; signingKey: KeyObject; hasher: AuditHasher; signer: CheckpointSigner }
    | undefined;

  return {
    async load() {
      const [hmacRaw, signingDer] = await store.transaction(async (tx) => {
        let h = await tx.get(HMAC_KEY_PATH);
        if (!h) {
          h = randomKey();
          await tx.put(HMAC_KEY_PATH, h);
        }
        let s = await tx.get(SIGNING_KEY_PATH);
        if (!s) {
          const { privateKey } = generateKeyPairSync('ed25519');
          s = privateKey.export({ type: 'pkcs8', format: 'der' });
          await tx.put(SIGNING_KEY_PATH, s);
        }
        return [h, s] as const;
      });
      const hmacKey = createSecretKey(hmacRaw);
      const signingKey = createPrivateKey({ key: signingDer, format: 'der', type: 'pkcs8' });
      hmacRaw.fill(0);
      signingDer.fill(0);
      loaded = {
        hmacKey,
        signingKey,
        hasher: createAuditHasher(hmacKey),
        signer: createCheckpointSigner(signingKey),
      };
    },
    unload() {
      loaded = undefined;
    },
    get loaded() {
      return loaded !== undefined;
    },
    get hmacKey() {
      return loaded?.hmacKey;
    },
    get signingKey() {
      return loaded?.signingKey;
    },
    get keyId() {
      return loaded?.signer.keyId;
    },
    get hasher() {
      return loaded?.hasher;
    },
    get signer() {
      return loaded?.signer;
    },
    publicKeyPem() {
      if (!loaded) throw new StrongroomError('sealed', 'Strongroom is sealed');
      return loaded.signer.publicKeyPem;
    },
  };
}
