import { createPrivateKey, sign as signData, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import {
  bundleFor,
  bundleForChain,
  DEFAULT_IGNORE,
  keyHint,
  type ModelSignatureBundle,
  PAYLOAD_TYPE,
  pae,
  type Serialization,
  SignatureRefused,
  type SignerTrust,
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
  options: SignOptions = {},
): Promise<ModelSignatureBundle> {
  const info = await transit.readKey(key);
  const hash = HASH_OF_CURVE[info.type];
  if (!hash) {
    throw new ModelFileError(
      `model signatures need an ecdsa-p256, ecdsa-p384 or ecdsa-p521 transit key; ${key} is ${info.type}`,
    );
  }
  const payload = await payloadOf(dir, options);
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

type SignOptions = { name?: string; ignore?: string[]; signatureFile?: string; allowSymlinks?: boolean };

/** The statement to sign, as bytes: every file hashed (on every core), with the serialization used. */
async function payloadOf(dir: string, options: SignOptions): Promise<Buffer> {
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
  return Buffer.from(
    JSON.stringify(statementFor(options.name ?? basename(resolve(dir)), resources, serialization)),
  );
}

const CHAIN_HASH: Record<string, string> = { prime256v1: 'sha256', secp384r1: 'sha384', secp521r1: 'sha512' };

/**
 * Signs a model with a workload's X.509-SVID (its certificate chain and private key, as the agent writes
 * them): the bundle carries the chain, and a verifier checks it against the trust domain's bundle and
 * the SPIFFE IDs allowed to sign (docs/models.md). The key is used here and never sent anywhere.
 */
export async function signModelWithSvid(
  dir: string,
  svid: { certificates: string; privateKey: string },
  options: SignOptions = {},
): Promise<ModelSignatureBundle> {
  const chain = (
    svid.certificates.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  ).map((p) => new X509Certificate(p));
  if (chain.length === 0) throw new ModelFileError('no certificate in the SVID file');
  const key = createPrivateKey(svid.privateKey);
  const hash = CHAIN_HASH[key.asymmetricKeyDetails?.namedCurve ?? ''];
  if (key.asymmetricKeyType !== 'ec' || !hash) {
    throw new ModelFileError(
      'model signatures need an ECDSA key on P-256, P-384 or P-521 (an X.509-SVID’s is)',
    );
  }
  if (!chain[0]!.checkPrivateKey(key))
    throw new ModelFileError('the private key is not the SVID certificate’s');
  const payload = await payloadOf(dir, options);
  const sig = signData(hash, pae(PAYLOAD_TYPE, payload), key);
  return bundleForChain(
    payload,
    sig,
    chain.map((c) => c.raw),
  );
}

/** What `verifyModel` found: the signed manifest when it holds, the reason otherwise. */
export type ModelVerification =
  | { ok: true; model: string; signer: string; files: number }
  | { ok: false; reason: string };

/**
 * Checks a model directory against its signature and the public keys allowed to sign: the signature,
 * then every file (the first that differs, is added, removed or renamed, and symbolic links that leave
 * the directory, are named).
 */
export async function verifyModel(
  dir: string,
  signature: string | ModelSignatureBundle,
  allowed: readonly string[] | SignerTrust,
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
    return { ok: true, model: manifest.model, signer: manifest.signer, files: actual.length };
  } catch (err) {
    if (err instanceof SignatureRefused || err instanceof ModelFileError)
      return { ok: false, reason: err.message };
    throw err;
  }
}
