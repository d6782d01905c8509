/**
 * What the `kv` engine stores, and the addresses and events it speaks in.
 *
 * Layout inside its barrier view:
 *   projects/<project>                    project record (with its environments)
 *   meta/<project>/<env>/<name>           secret metadata and version history (no values)
 *   data/<project>/<env>/<name>/<version> one version's value
 */
export type SecretMetadata = Record<string, string>;

export interface ProjectRecord {
  name: string;
  created_at: string;
  environments: Record<string, { created_at: string; production?: boolean }>;
}

export interface VersionInfo {
  version: number;
  created_at: string;
  /** 'write', 'rollback' (a copy of an older version's value) or 'rotation' (a new key from rotation). */
  source: 'write' | 'rollback' | 'rotation';
  rolled_back_from?: number;
}

/** How a secret is rotated: every `interval` seconds, keeping the old key valid for `grace` seconds. */
export interface RotationSettings {
  interval: number;
  grace: number;
  /** A provider adapter that mints keys ('openai', 'openrouter'), or absent for operator-supplied values. */
  adapter?: string;
  /** Adapter settings (e.g. the OpenAI project id and the vault path of the admin key); never secret values. */
  options?: Record<string, string>;
}

/** What the vault knows about a secret besides its value. */
export interface SecretFields {
  provider: string | null;
  owner: string | null;
  expires_at: string | null;
  rotation: RotationSettings | null;
  tags: string[];
}

export interface SecretRecord extends SecretFields {
  name: string;
  created_at: string;
  updated_at: string;
  current_version: number;
  deleted_at: string | null;
  /** Free-form labels. */
  metadata: SecretMetadata;
  last_rotated_at: string | null;
  /** Set by the rotation module: why the last rotation failed (sanitised), null once one succeeds. */
  last_rotation_error?: string | null;
  /** Set by the rotation module: when a failed rotation is retried. */
  next_rotation_attempt_at?: string | null;
  versions: VersionInfo[];
}

/** A change to a secret, as watchers see it (never the value). */
export interface SecretEvent {
  project: string;
  env: string;
  name: string;
  kind: 'write' | 'rollback' | 'rotation' | 'delete' | 'restore' | 'destroy';
  version: number;
  at: string;
}

/** Optional fields of a write: absent keeps the current setting, null clears it. */
export interface SecretFieldsInput {
  provider?: string | null;
  owner?: string | null;
  expires_at?: string | null;
  rotation?: {
    interval: string | number;
    grace?: string | number;
    adapter?: string;
    options?: Record<string, string>;
  } | null;
  tags?: string[] | null;
  /** Store a value that does not look like the provider's key format. */
  force?: boolean;
}

/** How a version is added: by a write (checking `cas` and, unless `force`, the provider's format), a rollback or a rotation. */
export interface AppendOptions {
  metadata?: SecretMetadata;
  fields?: Partial<SecretFields>;
  cas?: number;
  source: 'write' | 'rollback' | 'rotation';
  /** The version a rollback copies. */
  from?: number;
  force?: boolean;
}

export interface ValueRecord {
  value: string;
}

export interface SecretAddress {
  project: string;
  env: string;
  name: string;
}

export interface EnvAddress {
  project: string;
  env: string;
}

/** A version number as a path segment (zero-padded, so versions list in order). */
export const pad = (v: number) => v.toString().padStart(10, '0');
export const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
export const dec = <T>(b: Buffer) => JSON.parse(b.toString('utf8')) as T;

/** Environments named like production are production unless said otherwise when created. */
export function defaultProduction(env: string): boolean {
  return /^(prod|production|live)([-_].*)?$/.test(env);
}
