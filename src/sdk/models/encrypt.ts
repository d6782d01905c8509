import { createSecretKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULT_IGNORE, type ModelSignatureBundle, type Serialization } from '../../api/model-signing.ts';
import { type ModelFile, type ModelRelease, modelKeyBinding } from '../../api/models.ts';
import type { OutputOf } from '../../contract/operation.ts';
import type { transitClient } from '../transit.ts';
import { DEFAULT_CHUNK, DecryptStream } from './chunks.ts';
import type { CryptJob } from './crypt-worker.ts';
import { ModelFileError, modelFiles } from './files.ts';
import { createPool } from './pool.ts';

type Transit = ReturnType<typeof transitClient>;
type Call = <T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) => Promise<T>;

/** The encrypted model's manifest, beside its files (docs/models.md). */
const MANIFEST = 'strongroom-model.json';
export interface EncryptedManifest {
  format: 'strongroom-model/v1';
  model: string;
  /** The transit key that wraps the data keys. */
  key: string;
  chunk_size: number;
  files: ModelFile[];
}

export type Progress = (done: { bytes: number; total: number; files: number; of: number }) => void;

const encName = (path: string) => `${path}.enc`;
/** The SBOM a model's policy may gate on (docs/sbom.md): copied in the clear beside the encrypted files. */
const SBOM = 'sbom.cdx.json';
const ENCRYPT: Serialization = {
  method: 'files',
  hash_type: 'sha256',
  allow_symlinks: false,
  ignore_paths: DEFAULT_IGNORE,
};

function cryptPool(files: number) {
  return createPool<CryptJob, { sha256: string; size: number; enc_sha256?: string }>(
    new URL('./crypt-worker.ts', import.meta.url),
    Math.min(Math.max(files, 1), availableParallelism()),
  );
}

/**
 * Encrypts every file of a model directory into `out` (docs/models.md): a fresh data key per file from
 * the transit key `key`, chunked AES-256-GCM (memory bounded by the chunk size, whatever the file's
 * size), files in parallel on every core; each data key is then wrapped by the transit key bound to the
 * file's path and SHA-256. The signature (`model.sig`), if any, is copied as it is.
 */
export async function encryptModel(
  transit: Transit,
  dir: string,
  key: string,
  out: string,
  options: { chunkSize?: number; onProgress?: Progress; name?: string } = {},
): Promise<EncryptedManifest> {
  const names = await modelFiles(dir, ENCRYPT);
  // the model's name is the signature's, if it is signed (the vault binds keys to the signed name)
  const model = options.name ?? (await signedName(dir)) ?? basename(resolve(dir));
  const sizes = await Promise.all(names.map(async (n) => (await stat(join(dir, n))).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  const pool = cryptPool(names.length);
  let bytes = 0;
  let done = 0;
  try {
    const files = await Promise.all(
      names.map(async (path, n): Promise<ModelFile> => {
        const dst = join(out, encName(path));
        await mkdir(dirname(dst), { recursive: true });
        const dk = await transit.dataKey(key, { bits: 256 });
        try {
          const r = await pool.run({
            op: 'encrypt',
            src: join(dir, path),
            dst,
            key: dk.plaintext!.toString('base64'),
            path,
            chunkSize,
          });
          const wrapped = await transit.encrypt(key, dk.plaintext!, {
            associatedData: modelKeyBinding(model, path, r.sha256, r.enc_sha256!),
          });
          bytes += sizes[n]!;
          options.onProgress?.({ bytes, total, files: ++done, of: names.length });
          return {
            path,
            sha256: r.sha256,
            enc_sha256: r.enc_sha256!,
            size: r.size,
            wrapped_key: wrapped.ciphertext,
          };
        } finally {
          dk.plaintext?.fill(0);
        }
      }),
    );
    const manifest: EncryptedManifest = {
      format: 'strongroom-model/v1',
      model,
      key,
      chunk_size: chunkSize,
      files,
    };
    await writeFile(join(out, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    // the signature and the SBOM are not secret, and the vault checks them before any key is released
    for (const plain of ['model.sig', SBOM]) {
      let info: Awaited<ReturnType<typeof lstat>>;
      try {
        info = await lstat(join(dir, plain));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      // copied in the clear: a link could point anywhere (~/.aws/credentials), so regular files only
      if (!info.isFile())
        throw new ModelFileError(`${plain} is not a regular file (a symbolic link?): it is not copied`);
      await copyFile(join(dir, plain), join(out, plain));
    }
    return manifest;
  } finally {
    await pool.close();
  }
}

/** The model name a directory's signature (model.sig) gives, if it has one. */
async function signedName(dir: string): Promise<string | undefined> {
  try {
    const bundle = JSON.parse(await readFile(join(dir, 'model.sig'), 'utf8')) as ModelSignatureBundle;
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8')) as {
      subject?: Array<{ name?: string }>;
    };
    return statement.subject?.[0]?.name;
  } catch {
    return undefined;
  }
}

async function readManifest(dir: string): Promise<EncryptedManifest> {
  let m: EncryptedManifest;
  try {
    m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as EncryptedManifest;
  } catch (err) {
    throw new ModelFileError(`${join(dir, MANIFEST)}: ${(err as Error).message}`);
  }
  if (m.format !== 'strongroom-model/v1' || !Array.isArray(m.files)) {
    throw new ModelFileError(`${join(dir, MANIFEST)} is not an encrypted model's manifest`);
  }
  for (const f of m.files) {
    // a manifest names files inside the model only
    if (f.path.startsWith('/') || f.path.split('/').includes('..'))
      throw new ModelFileError(`${f.path}: not a path inside the model`);
  }
  return m;
}

/** Writes each file's plaintext into `out`, checked against its SHA-256; a file that fails leaves nothing. */
async function decryptAll(
  dir: string,
  out: string,
  m: EncryptedManifest,
  keyOf: (f: ModelFile) => Promise<Buffer>,
  onProgress?: Progress,
): Promise<void> {
  const pool = cryptPool(m.files.length);
  const total = m.files.reduce((a, f) => a + f.size, 0);
  let bytes = 0;
  let done = 0;
  try {
    await Promise.all(
      m.files.map(async (f) => {
        const dst = join(out, f.path);
        await mkdir(dirname(dst), { recursive: true });
        const key = await keyOf(f);
        try {
          await pool.run({
            op: 'decrypt',
            src: join(dir, encName(f.path)),
            dst,
            key: key.toString('base64'),
            path: f.path,
            sha256: f.sha256,
          });
        } finally {
          key.fill(0);
        }
        bytes += f.size;
        onProgress?.({ bytes, total, files: ++done, of: m.files.length });
      }),
    );
  } finally {
    await pool.close();
  }
}

/** Decrypts an encrypted model with the transit key itself (needs transit.decrypt on it): no policy. */
export async function decryptModel(
  transit: Transit,
  dir: string,
  out: string,
  options: { onProgress?: Progress } = {},
) {
  const m = await readManifest(dir);
  await decryptAll(
    dir,
    out,
    m,
    (f) =>
      transit.decrypt(m.key, f.wrapped_key, {
        associatedData: modelKeyBinding(m.model, f.path, f.sha256, f.enc_sha256),
      }),
    options.onProgress,
  );
  return m;
}

export type ModelReleaseResult = OutputOf<typeof ModelRelease>;

/** Asks the vault to check the model and release its data keys (verify, then unwrap). */
async function release(call: Call, dir: string, policy: string) {
  const m = await readManifest(dir);
  let signature: ModelSignatureBundle;
  try {
    signature = JSON.parse(await readFile(join(dir, 'model.sig'), 'utf8')) as ModelSignatureBundle;
  } catch (err) {
    throw new ModelFileError(
      `the encrypted model has no readable signature (model.sig): ${(err as Error).message}`,
    );
  }
  let sbom: string | undefined;
  try {
    sbom = await readFile(join(dir, SBOM), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // the encrypted files as they are here: a file changed since it was encrypted gets no key
  const pool = createPool<{ path: string }, string>(
    new URL('./hash-worker.ts', import.meta.url),
    Math.min(m.files.length, availableParallelism()),
  );
  let files: ModelFile[];
  try {
    files = await Promise.all(
      m.files.map(async (f) => ({ ...f, enc_sha256: await pool.run({ path: join(dir, encName(f.path)) }) })),
    );
  } catch (err) {
    throw new ModelFileError(`cannot read an encrypted file: ${(err as Error).message}`);
  } finally {
    await pool.close();
  }
  const r = await call<ModelReleaseResult>('POST', `/v1/models/${encodeURIComponent(policy)}/release`, {
    signature,
    files,
    ...(sbom === undefined ? {} : { sbom }),
  });
  return {
    manifest: m,
    release: r,
    keys: new Map(r.keys.map((k) => [k.path, Buffer.from(k.data_key, 'base64')])),
  };
}

/**
 * `model fetch`: the vault checks the signature, digests and formats and releases the data keys under a
 * lease; the files are decrypted into `out`, each checked against its signed SHA-256.
 */
export async function fetchModel(
  call: Call,
  dir: string,
  policy: string,
  out: string,
  options: { onProgress?: Progress } = {},
) {
  const { manifest, release: r, keys } = await release(call, dir, policy);
  await decryptAll(dir, out, manifest, async (f) => keys.get(f.path)!, options.onProgress);
  return { model: r.model, lease_id: r.lease_id, files: manifest.files.length };
}

/**
 * `models.open(dir)`: the vault releases the keys (verify, then unwrap) and each file is streamed to the
 * caller decrypted, never written; a stream whose plaintext is not the signed one ends with an error.
 */
export async function openModel(call: Call, dir: string, policy: string) {
  const { manifest, release: r, keys } = await release(call, dir, policy);
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  return {
    model: r.model,
    lease_id: r.lease_id,
    files: manifest.files.map((f) => f.path),
    open(path: string): Readable {
      const f = byPath.get(path);
      const k = keys.get(path);
      if (!f || !k) throw new ModelFileError(`${path} is not a file of this model`);
      const d = new DecryptStream(createSecretKey(k), path);
      const src = createReadStream(join(dir, encName(path)));
      src.on('error', (err) => d.destroy(err));
      d.on('end', () => {
        const got = d.digest();
        if (got.sha256 !== f.sha256)
          d.destroy(new ModelFileError(`${path}: the decrypted file's SHA-256 is not the signed one`));
      });
      return src.pipe(d);
    },
    /** Forgets the data keys (they also go when this object does). */
    close() {
      for (const k of keys.values()) k.fill(0);
      keys.clear();
    },
  };
}
