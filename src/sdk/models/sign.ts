import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import {
  bundleFor,
  DEFAULT_IGNORE,
  keyHint,
  type ModelSignatureBundle,
  PAYLOAD_TYPE,
  pae,
  type Serialization,
  SignatureRefused,
  statementFor,
  verifyModelSignature,
} from '../../api/model-signing.ts';
import type { transitClient } from '../transit.ts';
import { firstDifference, hashModel, ModelFileError } from './files.ts';

type Transit = ReturnType<typeof transitClient>;

const HASH_OF_CURVE: Record<string, 'sha2-256' | 'sha2-384' | 'sha2-512'> = {
  'ecdsa-p256': 'sha2-256',
  'ecdsa-p384': 'sha2-384',
  'ecdsa-p521': 'sha2-512',
};

/**
 * Signs a model directory in the OpenSSF model signing v1.0 format with a transit key
 * (docs/models.md): the files are hashed here, on every core; the vault signs the statement and never
 * sees the model. `ignore` adds to the upstream defaults (and the signature file's own name).
 */
export async function signModel(
  transit: Transit,
  dir: string,
  key: string,
  options: { name?: string; ignore?: string[]; signatureFile?: string; allowSymlinks?: boolean } = {},
): Promise<ModelSignatureBundle> {
  const info = await transit.readKey(key);
  const hash = HASH_OF_CURVE[info.type];
  if (!hash) {
    throw new ModelFileError(
      `model signatures need an ecdsa-p256, ecdsa-p384 or ecdsa-p521 transit key; ${key} is ${info.type}`,
    );
  }
  const serialization: Serialization = {
    method: 'files',
    hash_type: 'sha256',
    allow_symlinks: options.allowSymlinks ?? false,
    ignore_paths: [
      ...new Set([
        ...DEFAULT_IGNORE,
        ...(options.signatureFile ? [basename(options.signatureFile)] : []),
        ...(options.ignore ?? []),
      ]),
    ],
  };
  const resources = await hashModel(dir, serialization);
  const statement = statementFor(options.name ?? basename(resolve(dir)), resources, serialization);
  const payload = Buffer.from(JSON.stringify(statement));
  const signed = await transit.sign(key, pae(PAYLOAD_TYPE, payload), {
    hash_algorithm: hash,
    marshaling_algorithm: 'asn1',
  });
  const version = info.keys[String(signed.key_version)] as { public_key?: string } | undefined;
  // the key read may predate a rotation that happened meanwhile: read the version that signed
  const pem =
    version?.public_key ??
    ((await transit.readKey(key)).keys[String(signed.key_version)] as { public_key: string }).public_key;
  const sig = Buffer.from(signed.signature.slice(signed.signature.indexOf(':', 6) + 1), 'base64');
  return bundleFor(payload, sig, keyHint(pem));
}

/** What `verifyModel` found: the signed manifest when it holds, the reason otherwise. */
export type ModelVerification = { ok: true; model: string; files: number } | { ok: false; reason: string };

/**
 * Checks a model directory against its signature and the public keys allowed to sign: the signature,
 * then every file (the first that differs, is added, removed or renamed, and symbolic links that leave
 * the directory, are named).
 */
export async function verifyModel(
  dir: string,
  signature: string | ModelSignatureBundle,
  allowed: readonly string[],
): Promise<ModelVerification> {
  let bundle: unknown = signature;
  if (typeof signature === 'string') {
    try {
      bundle = JSON.parse(await readFile(signature, 'utf8'));
    } catch (err) {
      return { ok: false, reason: `cannot read the signature ${signature}: ${(err as Error).message}` };
    }
  }
  try {
    const manifest = verifyModelSignature(bundle, allowed);
    const actual = await hashModel(dir, manifest.serialization);
    const diff = firstDifference(manifest.resources, actual);
    if (diff) return { ok: false, reason: diff };
    return { ok: true, model: manifest.model, files: actual.length };
  } catch (err) {
    if (err instanceof SignatureRefused || err instanceof ModelFileError)
      return { ok: false, reason: err.message };
    throw err;
  }
}
