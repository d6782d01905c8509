import { createHmac, randomBytes } from 'node:crypto';
import type { Core } from '../../core/core.ts';
import type { SecretEvent } from '../../engines/kv/kv.ts';
import type { SecretsPort } from '../../engines/ports.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { ProviderKeys } from '../../gateway/provider-keys.ts';

/** Values shorter than this are not fingerprinted: too many false matches (e.g. "true", "prod"). */
const MIN_FINGERPRINT_LENGTH = 12;
/** What the secrets engine answers for a key that is not there (or not a secret's name at all). */
const NOT_THERE = new Set([
  'project_not_found',
  'environment_not_found',
  'secret_not_found',
  'secret_deleted',
  'invalid_name',
]);
/** On shared storage another server may change a key: cached values are re-read after this long. */
const SHARED_TTL_MS = 5_000;

export function createProviderKeys(
  core: Pick<Core, 'barrier'> & SecretsPort,
  opts: { exclusive: boolean },
): ProviderKeys {
  const { secrets } = core;
  const cache = new Map<string, { value: string; at: number }>();
  const fpKey = randomBytes(32);
  /** Fingerprint -> the secrets that held that value (a rotated-out key is still a credential). */
  const fingerprints = new Map<string, Set<string>>();
  const NONE: readonly string[] = Object.freeze([]);
  const lengths = { min: Number.POSITIVE_INFINITY, max: 0 };
  const fp = (v: string) => createHmac('sha256', fpKey).update(v).digest('base64url');

  function remember(path: string, value: string) {
    if (value.length < MIN_FINGERPRINT_LENGTH) return;
    const f = fp(value);
    const paths = fingerprints.get(f);
    if (paths) paths.add(path);
    else fingerprints.set(f, new Set([path]));
    lengths.min = Math.min(lengths.min, value.length);
    lengths.max = Math.max(lengths.max, value.length);
  }

  async function read(path: string): Promise<string> {
    const [project = '', env = '', name = ''] = path.split('/');
    const a = { project, env, name };
    let version: number;
    try {
      version = (await secrets.secret(a)).current_version;
    } catch (err) {
      if (err instanceof StrongroomError && NOT_THERE.has(err.code))
        throw new StrongroomError('secret_not_found', `the gateway's key ${path} is not in the vault`);
      throw err;
    }
    return secrets.value(a, version);
  }

  const onChange = (e: SecretEvent) => {
    const path = `${e.project}/${e.env}/${e.name}`;
    cache.delete(path);
    if (e.kind === 'delete' || e.kind === 'destroy') return;
    // a new value is fingerprinted at once; old ones stay (a rotated-out key is still a credential)
    void read(path).then(
      (v) => remember(path, v),
      () => {},
    );
  };
  secrets.events.on('change', onChange);

  // fingerprint what is there now (in the background: the first requests do not wait for it)
  void (async () => {
    try {
      for await (const { project, env, record } of secrets.records()) {
        if (record.deleted_at !== null) continue;
        const path = `${project}/${env}/${record.name}`;
        try {
          remember(path, await secrets.value({ project, env, name: record.name }, record.current_version));
        } catch {}
      }
    } catch {}
  })();

  return {
    async get(path) {
      if (core.barrier.sealed) {
        // keys leave memory with the root key
        cache.clear();
        throw new StrongroomError('sealed', 'Strongroom is sealed: the gateway cannot reach provider keys');
      }
      const hit = cache.get(path);
      if (hit && (opts.exclusive || Date.now() - hit.at < SHARED_TTL_MS)) return hit.value;
      const value = await read(path);
      cache.set(path, { value, at: Date.now() });
      remember(path, value);
      return value;
    },
    match(candidate) {
      if (candidate.length < lengths.min || candidate.length > lengths.max) return NONE;
      const paths = fingerprints.get(fp(candidate));
      return paths ? [...paths] : NONE;
    },
    lengths,
    close() {
      secrets.events.off('change', onChange);
      cache.clear();
    },
  };
}
