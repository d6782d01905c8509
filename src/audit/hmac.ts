import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';

/**
 * Sensitive values never reach an audit sink: they are replaced by an
 * HMAC-SHA256 under the per-installation audit key, so an operator who knows a
 * value can find the entries that carried it (POST /v1/sys/audit-hash) while a
 * reader of the log learns nothing about it.
 */
export interface AuditHasher {
  /** `hmac-sha256:<hex>` of the UTF-8 bytes of `value` (or of the bytes given). */
  hmacField(value: string | Uint8Array): string;
}

const HMAC_PREFIX = 'hmac-sha256:';

/** What a sensitive value becomes when no audit key is loaded (the vault is sealed). */
export const REDACTED = '[redacted]';

export function createAuditHasher(key: KeyObject | Uint8Array): AuditHasher {
  const k = key instanceof Uint8Array ? createSecretKey(key) : key;
  return {
    hmacField(value) {
      return HMAC_PREFIX + createHmac('sha256', k).update(value).digest('hex');
    },
  };
}

/**
 * Field names whose values are never written in the clear, compared after
 * lower-casing and dropping `_` and `-` (so `clientSecret`, `client-secret`
 * and `CLIENT_SECRET` are the same name).
 */
export const SENSITIVE_FIELDS: readonly string[] = [
  // secret values and key material
  'value',
  'values',
  'secret',
  'secret_value',
  'plaintext',
  'api_key',
  'key',
  'keys',
  'keys_base64',
  'unseal_key',
  'private_key',
  // workload identity: a join token is a credential; a CSR is recorded by digest
  'join_token',
  'csr',
  // a remote gateway's question about vault values: pieces of a prompt, perhaps a secret
  'candidates',
  'data_key',
  'hmac_key',
  'signing_key',
  'input',
  // tokens and credentials
  'token',
  'client_token',
  'root_token',
  'access_token',
  'refresh_token',
  'id_token',
  'jwt',
  'assertion',
  'client_secret',
  'secret_id',
  'credential',
  'credentials',
  'authorization',
  'cookie',
  // passwords and second factors
  'password',
  'new_password',
  'current_password',
  'old_password',
  'passphrase',
  'passcode',
  'pin',
  'otp',
  'totp',
  'totp_code',
  'totp_secret',
  'code',
  'recovery_code',
  'recovery_codes',
  'seed',
];

/** A prepared set of sensitive names (build once, reuse per entry). */
export type SensitiveFields = ReadonlySet<string> & { readonly __normalised: true };

const normalise = (name: string) => name.toLowerCase().replace(/[-_]/g, '');

const prepared = new WeakSet<object>();

export function sensitiveFields(names: Iterable<string> = SENSITIVE_FIELDS): SensitiveFields {
  const set = new Set([...names].map(normalise));
  prepared.add(set);
  return set as Set<string> & SensitiveFields;
}

const DEFAULT_SET = sensitiveFields();
// Strongroom tokens are recognisable (src/crypto/token.ts): hide them wherever they appear.
const TOKEN_LIKE = /\bsr[a-z]_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}\b/;
const TOKEN_LENGTH = 54;
const MAX_DEPTH = 32;

// entries repeat the same few field names: remember each name's verdict per set
const verdicts = new WeakMap<SensitiveFields, Map<string, boolean>>();
function isSensitive(set: SensitiveFields, name: string): boolean {
  let cache = verdicts.get(set);
  if (!cache) {
    cache = new Map();
    verdicts.set(set, cache);
  }
  let v = cache.get(name);
  if (v === undefined) {
    v = set.has(normalise(name));
    if (cache.size >= 10_000) cache.clear();
    cache.set(name, v);
  }
  return v;
}

/**
 * A deep copy of `input` in which every field whose name is sensitive, every
 * binary value and every string containing a Strongroom token is replaced by
 * its HMAC (or by REDACTED when no hasher is given). Names are matched at any
 * depth, in objects and in arrays of objects.
 */
export function sanitize(
  input: unknown,
  names: SensitiveFields | Iterable<string> = DEFAULT_SET,
  hasher?: AuditHasher,
): unknown {
  const set = isPrepared(names as object) ? (names as SensitiveFields) : sensitiveFields(names);
  const hide = (v: unknown): unknown => {
    if (v === null || v === undefined) return v;
    if (Array.isArray(v)) return v.map(hide);
    if (!hasher) return REDACTED;
    if (typeof v === 'string' || v instanceof Uint8Array) return hasher.hmacField(v);
    if (typeof v === 'object') return hasher.hmacField(JSON.stringify(v) ?? '');
    return hasher.hmacField(String(v));
  };
  // the objects being walked, to cut cycles (entries are shallow: a short list beats a set)
  const path: object[] = [];
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.length >= TOKEN_LENGTH && TOKEN_LIKE.test(v) ? hide(v) : v;
    if (v === null || typeof v !== 'object') return typeof v === 'bigint' ? String(v) : v;
    if (v instanceof Uint8Array || v instanceof ArrayBuffer) return hide(Buffer.from(v as Uint8Array));
    if (path.length >= MAX_DEPTH || path.includes(v)) return '[elided]';
    path.push(v);
    let out: unknown;
    if (Array.isArray(v)) out = v.map(walk);
    else if (v instanceof Date) out = v.toISOString();
    else {
      const o: Record<string, unknown> = {};
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        const x = (v as Record<string, unknown>)[k];
        o[k] = isSensitive(set, k) ? hide(x) : walk(x);
      }
      out = o;
    }
    path.pop();
    return out;
  };
  return walk(input);
}

function isPrepared(names: object): names is SensitiveFields {
  return prepared.has(names);
}
