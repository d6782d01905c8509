import type { KeyCreateRequest } from '../api/gateway.ts';
import type { Barrier, BarrierReader, BarrierWriter } from '../barrier/barrier.ts';
import type { Identity, TokenEntry } from '../contract/identity.ts';
import type { OperationContext, RequestInfo } from '../contract/operation.ts';
import type { Resource } from '../contract/resource.ts';
import type { Clock } from '../lib/clock.ts';
import type {
  AppendOptions,
  EnvAddress,
  ProjectRecord,
  SecretAddress,
  SecretEvent,
  SecretRecord,
} from './kv/records.ts';

/**
 * The narrow ports engine modules declare they need (issue 14: a module never
 * receives the whole core). Each module's factory names the ones it uses; the
 * assembler hands over the core, which has them all, and a test can hand over
 * just these.
 */

/** The pipeline's authorization step, for filtering lists: may `identity` do `action` on `resource`? */
export interface AllowsPort {
  allows(identity: Identity, action: string, resource: Resource, request: RequestInfo): Promise<boolean>;
}

export interface ClockPort {
  clock: Clock;
}

/** A secret's record where it was found (its project and environment). */
export interface SecretEntry {
  project: string;
  env: string;
  record: Readonly<SecretRecord>;
}

/**
 * Reading the secrets engine (the `secrets` module), for the modules built on it: records and values,
 * never its store. Every method checks names and answers the engine's own 404s
 * (`project_not_found`, `environment_not_found`, `secret_not_found`, `secret_deleted`).
 */
export interface SecretsReader {
  project(name: string): Promise<Readonly<ProjectRecord>>;
  /** Every project's record (with its environments), by name. */
  projects(): AsyncGenerator<Readonly<ProjectRecord>>;
  /** The project record of an existing environment. */
  environment(a: EnvAddress): Promise<Readonly<ProjectRecord>>;
  /** The secret's record; a deleted one only with `allowDeleted`. */
  secret(a: SecretAddress, opts?: { allowDeleted?: boolean }): Promise<Readonly<SecretRecord>>;
  /** One version's value (`version_destroyed` when it was destroyed). */
  value(a: SecretAddress, version: number): Promise<string>;
  /**
   * The secrets' records (deleted ones included) of one environment, of one project, or of every
   * project, by project, environment and name; read a few at a time, as the caller consumes them.
   */
  records(where?: { project?: string; env?: string }): AsyncGenerator<SecretEntry>;
  /** Every change once it committed (never values). */
  readonly events: {
    on(event: 'change', listener: (e: SecretEvent) => void): unknown;
    off(event: 'change', listener: (e: SecretEvent) => void): unknown;
    listenerCount(event: 'change'): number;
  };
}

/** What one transaction of a module built on secrets may do (see SecretsWriter). */
export interface SecretsTx {
  secret(a: SecretAddress, opts?: { allowDeleted?: boolean }): Promise<Readonly<SecretRecord>>;
  /** Adds a version, as a write, a rollback or a rotation does (checking `cas` and the provider's format). */
  appendVersion(
    a: SecretAddress,
    value: string,
    opts: AppendOptions,
  ): Promise<{ version: number; created_at: string }>;
  /** Sets the rotation status a read shows, with no new version; a missing secret is left alone. */
  setRotationStatus(
    a: SecretAddress,
    status: Pick<SecretRecord, 'last_rotation_error' | 'next_rotation_attempt_at'>,
  ): Promise<void>;
  /** Tells watchers of a change, once the transaction committed. */
  changed(e: Omit<SecretEvent, 'at'>): void;
  /** The module's own records attached to the secrets, in this transaction. */
  readonly own: BarrierWriter;
}

/**
 * Writing secrets, for a module whose own records must change atomically with them (rotation keeps
 * its claim and pending revocations beside the version it adds): one transaction over the secrets
 * and the module's records, which live in the secrets mount under a prefix of the module's own.
 */
export interface SecretsWriter {
  /** One serializable transaction; may be retried, so `fn` must have no outside side effects. */
  transaction<T>(fn: (tx: SecretsTx) => Promise<T>): Promise<T>;
  /** The module's own records, outside a transaction. */
  readonly own: BarrierReader;
}

/** The secrets engine, read-only. */
export interface SecretsPort {
  secrets: SecretsReader;
}

/** Writing secrets together with records of one's own, kept under `attach` (e.g. `rotation/`) in the secrets mount. */
export interface SecretsWriterPort {
  secretsWriter(attach: string): SecretsWriter;
}

/** The barrier: a view of one's own prefix, and whether the vault is sealed. */
export interface BarrierPort {
  barrier: Pick<Barrier, 'view' | 'sealed'>;
}

/** Gateway virtual keys, for engines that hand one out per lease (providers with no key-minting API). */
export interface VirtualKeysPort {
  virtualKeys: {
    /** Mints a key held by the caller's token (it ends with it); the key string is returned once. */
    mint(
      ctx: OperationContext,
      input: KeyCreateRequest,
    ): Promise<{ virtual_key: string; id: string; ttl: number }>;
    revoke(id: string): Promise<void>;
    /** Ids of the live keys named `name`. */
    idsNamed(name: string): Promise<string[]>;
  };
}

/** Token lookups, for modules whose credentials live and die with a token. */
export interface TokensPort {
  tokens: {
    lookup(token: string): Promise<TokenEntry>;
    refOf(token: string): string;
    lookupRef(ref: string | undefined): Promise<TokenEntry | undefined>;
  };
}

/**
 * The transit engine's keys, for the engines built on them (the models engine unwraps a file's data key
 * once its own checks passed): no Cedar decision of its own, the caller's operation was authorized.
 */
export interface TransitPort {
  transit: {
    /** Decrypts `ciphertext` (vault:vN:…) under the key `name` with `aad` as associated data. */
    unwrap(name: string, ciphertext: string, aad: Buffer): Promise<Buffer>;
  };
}

/**
 * AES-256 keys held in the HSM of a PKCS#11 seal (src/seal/pkcs11.ts), for transit keys created with
 * `hsm: true` (docs/transit.md): undefined when the vault has no HSM.
 */
export interface HsmPort {
  hsm:
    | {
        generate(label: string): Promise<void>;
        /** `iv ‖ ciphertext ‖ tag`, made inside the HSM. */
        encrypt(label: string, plaintext: Buffer, aad: Buffer | undefined): Promise<Buffer>;
        /** Undefined when the data does not open (tampered, another key). */
        decrypt(label: string, data: Buffer, aad: Buffer | undefined): Promise<Buffer | undefined>;
        destroy(label: string): Promise<void>;
      }
    | undefined;
}
