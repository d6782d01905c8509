import { EventEmitter } from 'node:events';
import { MAX_SECRET_VALUE_BYTES } from '../../api/v1.ts';
import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import { scopeAllows } from '../../core/scope.ts';
import type { Operation, Resource } from '../../core/types.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { parseDuration } from '../../lib/duration.ts';
import { article, formatProblem, guessProviders, PROVIDERS, provider as providerInfo } from '../providers.ts';
import { checkSecretName, checkSlug } from './names.ts';

/**
 * The `kv` engine: projects, their environments, and versioned secrets.
 *
 * Layout inside its barrier view:
 *   projects/<project>                    project record (with its environments)
 *   meta/<project>/<env>/<name>           secret metadata and version history (no values)
 *   data/<project>/<env>/<name>/<version> one version's value
 */
export type SecretMetadata = Record<string, string>;

interface ProjectRecord {
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

interface ValueRecord {
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

const pad = (v: number) => v.toString().padStart(10, '0');
const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
const dec = <T>(b: Buffer) => JSON.parse(b.toString('utf8')) as T;

/** Environments named like production are production unless said otherwise when created. */
export function defaultProduction(env: string): boolean {
  return /^(prod|production|live)([-_].*)?$/.test(env);
}

function secretResource(a: SecretAddress): Resource {
  return {
    type: 'Secret',
    id: `${a.project}/${a.env}/${a.name}`,
    attrs: { project: a.project, environment: a.env, name: a.name },
  };
}
function envResource(a: EnvAddress): Resource {
  return {
    type: 'Environment',
    id: `${a.project}/${a.env}`,
    attrs: { project: a.project, environment: a.env },
  };
}
function projectResource(project: string): Resource {
  return { type: 'Project', id: project, attrs: { project } };
}

export function createKvEngine(store: BarrierStore, clock: Clock) {
  // local change events; a server sharing storage with others also polls (see watch)
  const emitter = new EventEmitter<{ change: [SecretEvent] }>();
  emitter.setMaxListeners(0);
  const iso = () => new Date(clock.now()).toISOString();

  async function project(r: BarrierWriter, name: string): Promise<ProjectRecord> {
    const raw = await r.get(`projects/${name}`);
    if (!raw) {
      throw new StrongroomError(
        'project_not_found',
        `project ${JSON.stringify(name)} does not exist; create it with \`strongroom project create ${name}\``,
      );
    }
    return dec<ProjectRecord>(raw);
  }

  async function environment(r: BarrierWriter, a: EnvAddress): Promise<ProjectRecord> {
    const p = await project(r, a.project);
    if (!Object.hasOwn(p.environments, a.env)) {
      throw new StrongroomError(
        'environment_not_found',
        `environment ${JSON.stringify(a.env)} does not exist in project ${JSON.stringify(a.project)}; it has: ${Object.keys(p.environments).join(', ') || 'none'}`,
      );
    }
    return p;
  }

  function checkSecret(a: SecretAddress): string {
    checkSlug('project', a.project);
    checkSlug('environment', a.env);
    checkSecretName(a.name);
    return `${a.project}/${a.env}/${a.name}`;
  }

  /** The secret's record, or a precise 404 saying which part of the address is missing. */
  async function secret(
    r: BarrierWriter,
    a: SecretAddress,
    opts: { allowDeleted?: boolean } = {},
  ): Promise<Readonly<SecretRecord>> {
    const path = checkSecret(a);
    // frozen and possibly shared through the read cache: copy before changing
    const rec = await r.getJson<SecretRecord>(`meta/${path}`);
    if (!rec) {
      await environment(r, a);
      throw new StrongroomError('secret_not_found', `secret ${path} does not exist`);
    }
    if (rec.deleted_at !== null && !opts.allowDeleted) {
      throw new StrongroomError(
        'secret_deleted',
        `secret ${path} was deleted; restore it with \`strongroom secret restore ${path}\``,
      );
    }
    return rec;
  }

  async function readValue(r: BarrierWriter, path: string, version: number): Promise<string> {
    const rec = await r.getJson<ValueRecord>(`data/${path}/${pad(version)}`);
    if (!rec) throw new StrongroomError('version_destroyed', `version ${version} of ${path} was destroyed`);
    return rec.value;
  }

  async function appendVersion(
    tx: BarrierWriter,
    a: SecretAddress,
    value: string,
    opts: {
      metadata?: SecretMetadata;
      fields?: Partial<SecretFields>;
      cas?: number;
      source: 'write' | 'rollback' | 'rotation';
      from?: number;
      force?: boolean;
    },
  ): Promise<{ version: number; created_at: string }> {
    const path = checkSecret(a);
    const now = iso();
    const raw = await tx.get(`meta/${path}`);
    let rec: SecretRecord;
    if (raw) {
      rec = dec<SecretRecord>(raw);
    } else {
      await environment(tx, a);
      rec = {
        name: a.name,
        created_at: now,
        updated_at: now,
        current_version: 0,
        deleted_at: null,
        metadata: {},
        provider: null,
        owner: null,
        expires_at: null,
        rotation: null,
        tags: [],
        last_rotated_at: null,
        versions: [],
      };
    }
    if (opts.cas !== undefined && opts.cas !== rec.current_version) {
      throw new StrongroomError(
        'cas_mismatch',
        `check-and-set failed: ${path} is at version ${rec.current_version}, not ${opts.cas}; read it again and retry`,
        { details: { current_version: rec.current_version } },
      );
    }
    const version = rec.current_version + 1;
    rec.current_version = version;
    rec.updated_at = now;
    rec.deleted_at = null;
    if (opts.metadata) rec.metadata = { ...opts.metadata };
    if (opts.fields) Object.assign(rec, opts.fields);
    rec.tags ??= [];
    if (opts.source === 'rotation') rec.last_rotated_at = now;
    rec.versions.push(
      opts.source === 'rollback'
        ? { version, created_at: now, source: 'rollback', rolled_back_from: opts.from! }
        : { version, created_at: now, source: opts.source },
    );
    const provider = rec.provider;
    if (provider && opts.source !== 'rollback' && !opts.force) {
      const problem = formatProblem(provider, value);
      if (problem) throw new StrongroomError('invalid_value', problem);
    }
    await tx.put(`data/${path}/${pad(version)}`, enc({ value } satisfies ValueRecord));
    await tx.put(`meta/${path}`, enc(rec));
    return { version, created_at: now };
  }

  /** Runs a transaction and, once it committed, tells watchers what changed. */
  async function changing<T>(
    fn: (tx: BarrierWriter, changed: (e: Omit<SecretEvent, 'at'>) => void) => Promise<T>,
  ): Promise<T> {
    let events: Omit<SecretEvent, 'at'>[] = [];
    const out = await store.transaction((tx) => {
      events = [];
      return fn(tx, (e) => events.push(e));
    });
    const at = iso();
    for (const e of events) emitter.emit('change', { ...e, at } satisfies SecretEvent);
    return out;
  }

  /** Checks and normalises the optional fields of a write. */
  function fieldsFrom(i: SecretFieldsInput): Partial<SecretFields> {
    const out: Partial<SecretFields> = {};
    if (i.provider !== undefined) {
      if (i.provider !== null && !providerInfo(i.provider)) {
        throw new StrongroomError(
          'validation_failed',
          `unknown provider ${JSON.stringify(i.provider)}; known providers: ${PROVIDERS.map((p) => p.id).join(', ')}`,
        );
      }
      out.provider = i.provider;
    }
    if (i.owner !== undefined) out.owner = i.owner;
    if (i.expires_at !== undefined) {
      if (i.expires_at !== null && Number.isNaN(Date.parse(i.expires_at))) {
        throw new StrongroomError(
          'validation_failed',
          'expires_at must be a date and time like 2027-01-31T00:00:00Z',
        );
      }
      out.expires_at = i.expires_at === null ? null : new Date(i.expires_at).toISOString();
    }
    if (i.rotation !== undefined) {
      if (i.rotation === null) out.rotation = null;
      else {
        let interval: number;
        let grace: number;
        try {
          interval = parseDuration(i.rotation.interval);
          grace = parseDuration(i.rotation.grace ?? 0);
        } catch (err) {
          throw new StrongroomError('validation_failed', `rotation: ${(err as Error).message}`);
        }
        if (interval < 60)
          throw new StrongroomError('validation_failed', 'rotation.interval must be at least 1 minute');
        if (grace >= interval)
          throw new StrongroomError(
            'validation_failed',
            'rotation.grace must be shorter than rotation.interval',
          );
        out.rotation = {
          interval,
          grace,
          ...(i.rotation.adapter ? { adapter: i.rotation.adapter } : {}),
          ...(i.rotation.options ? { options: { ...i.rotation.options } } : {}),
        };
      }
    }
    if (i.tags !== undefined) out.tags = i.tags === null ? [] : [...new Set(i.tags)].sort();
    return out;
  }

  function publicFields(rec: Readonly<SecretRecord>) {
    return {
      provider: rec.provider ?? null,
      owner: rec.owner ?? null,
      expires_at: rec.expires_at ?? null,
      rotation: rec.rotation ?? null,
      tags: rec.tags ?? [],
      last_rotated_at: rec.last_rotated_at ?? null,
      // present only while a rotation is failing (docs/rotation.md)
      ...(rec.last_rotation_error
        ? {
            last_rotation_error: rec.last_rotation_error,
            next_rotation_attempt_at: rec.next_rotation_attempt_at ?? null,
          }
        : {}),
    };
  }

  const operations = {
    createProject: {
      name: 'project.create',
      action: 'project.create',
      auth: 'token',
      resource: (i) => projectResource(i.name),
      async handle(_ctx, i) {
        checkSlug('project', i.name);
        const envs = [...new Set(i.environments ?? ['dev', 'staging', 'prod'])];
        for (const e of envs) checkSlug('environment', e);
        return store.transaction(async (tx) => {
          if (await tx.get(`projects/${i.name}`)) {
            throw new StrongroomError('already_exists', `project ${JSON.stringify(i.name)} already exists`);
          }
          const now = iso();
          const rec: ProjectRecord = {
            name: i.name,
            created_at: now,
            environments: Object.fromEntries(
              envs.map((e) => [e, { created_at: now, production: defaultProduction(e) }]),
            ),
          };
          await tx.put(`projects/${i.name}`, enc(rec));
          return { name: rec.name, created_at: rec.created_at, environments: envs };
        });
      },
    } satisfies Operation<{ name: string; environments?: string[] }>,

    listProjects: {
      name: 'project.list',
      action: 'project.list',
      auth: 'token',
      // a listing filtered to the caller's scope, so scoped tokens may ask for it
      resource: () => ({ type: 'System', id: 'projects', attrs: { filtered_by_scope: true } }),
      async handle(ctx) {
        const projects = [];
        const scope = ctx.identity?.scope ?? null;
        for (const path of await store.list('projects/')) {
          const raw = await store.get(path);
          if (!raw) continue;
          const p = dec<ProjectRecord>(raw);
          if (!scopeAllows(scope, projectResource(p.name))) continue;
          projects.push({
            name: p.name,
            created_at: p.created_at,
            environments: Object.keys(p.environments).sort(),
          });
        }
        return { projects };
      },
    } satisfies Operation<Record<string, never>>,

    getProject: {
      name: 'project.read',
      action: 'project.read',
      auth: 'token',
      resource: (i) => projectResource(i.project),
      async handle(_ctx, i) {
        checkSlug('project', i.project);
        const p = await project(store, i.project);
        return { name: p.name, created_at: p.created_at, environments: Object.keys(p.environments).sort() };
      },
    } satisfies Operation<{ project: string }>,

    createEnvironment: {
      name: 'environment.create',
      action: 'environment.create',
      auth: 'token',
      // the requested production flag is part of the resource, so a policy can keep
      // someone from creating a production environment under another name
      resource: (i) => {
        const r = envResource({ project: i.project, env: i.name });
        // a production-looking name is production for authorization even if created with production: false
        return {
          ...r,
          attrs: { ...r.attrs, production: i.production === true || defaultProduction(i.name) },
        };
      },
      async handle(_ctx, i) {
        checkSlug('project', i.project);
        checkSlug('environment', i.name);
        return store.transaction(async (tx) => {
          const p = await project(tx, i.project);
          if (Object.hasOwn(p.environments, i.name)) {
            throw new StrongroomError(
              'already_exists',
              `environment ${JSON.stringify(i.name)} already exists in ${i.project}`,
            );
          }
          const production = i.production ?? defaultProduction(i.name);
          p.environments[i.name] = { created_at: iso(), production };
          await tx.put(`projects/${i.project}`, enc(p));
          return {
            project: i.project,
            name: i.name,
            production,
            created_at: p.environments[i.name]!.created_at,
          };
        });
      },
    } satisfies Operation<{ project: string; name: string; production?: boolean }>,

    writeSecret: {
      name: 'secret.write',
      action: 'secret.write',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        // the wire schema's maxLength counts characters; the limit is on UTF-8 bytes
        const bytes = Buffer.byteLength(i.value, 'utf8');
        if (bytes > MAX_SECRET_VALUE_BYTES) {
          throw new StrongroomError(
            'validation_failed',
            `a secret value may be at most ${MAX_SECRET_VALUE_BYTES} bytes of UTF-8; this one is ${bytes}`,
          );
        }
        const fields = fieldsFrom(i);
        return changing(async (tx, changed) => {
          const out = await appendVersion(tx, i, i.value, {
            source: 'write',
            fields,
            ...(i.metadata === undefined ? {} : { metadata: i.metadata }),
            ...(i.cas === undefined ? {} : { cas: i.cas }),
            ...(i.force ? { force: true } : {}),
          });
          changed({ project: i.project, env: i.env, name: i.name, kind: 'write', version: out.version });
          const guessed = i.provider === undefined ? guessProviders(i.value) : [];
          return guessed.length === 1
            ? {
                ...out,
                hint: `this looks like ${article(guessed[0]!)} ${guessed[0]} key: set provider to track its format and rotation`,
              }
            : out;
        });
      },
    } satisfies Operation<
      SecretAddress & SecretFieldsInput & { value: string; metadata?: SecretMetadata; cas?: number }
    >,

    readSecret: {
      name: 'secret.read',
      action: 'secret.read',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        const rec = await secret(store, i);
        const version = i.version ?? rec.current_version;
        const info = rec.versions.find((v) => v.version === version);
        if (!info) {
          throw new StrongroomError(
            'version_not_found',
            `${i.project}/${i.env}/${i.name} has no version ${version} (latest is ${rec.current_version})`,
          );
        }
        const value = await readValue(store, `${i.project}/${i.env}/${i.name}`, version);
        return {
          name: rec.name,
          value,
          version,
          current_version: rec.current_version,
          metadata: rec.metadata,
          ...publicFields(rec),
          created_at: info.created_at,
        };
      },
    } satisfies Operation<SecretAddress & { version?: number }>,

    listSecrets: {
      name: 'secret.list',
      action: 'secret.list',
      auth: 'token',
      resource: envResource,
      async handle(ctx, i) {
        checkSlug('project', i.project);
        checkSlug('environment', i.env);
        await environment(store, i);
        const prefix = `meta/${i.project}/${i.env}/`;
        const secrets = [];
        const scope = ctx.identity?.scope ?? null;
        for (const path of await store.list(prefix)) {
          const raw = await store.get(path);
          if (!raw) continue;
          const r = dec<SecretRecord>(raw);
          // a scoped token sees only the names its scope reaches
          if (
            scope &&
            !scopeAllows(scope, {
              ...secretResource({ ...i, name: r.name }),
              attrs: { ...secretResource({ ...i, name: r.name }).attrs, ...secretAttrs(r) },
            })
          )
            continue;
          secrets.push({
            name: r.name,
            version: r.current_version,
            updated_at: r.updated_at,
            deleted: r.deleted_at !== null,
            provider: r.provider ?? null,
            tags: r.tags ?? [],
            expires_at: r.expires_at ?? null,
          });
        }
        return { project: i.project, env: i.env, secrets };
      },
    } satisfies Operation<EnvAddress>,

    secretVersions: {
      name: 'secret.versions',
      action: 'secret.history',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        const rec = await secret(store, i, { allowDeleted: true });
        const path = `${i.project}/${i.env}/${i.name}`;
        const present = new Set(
          (await store.list(`data/${path}/`)).map((p) => Number(p.slice(p.lastIndexOf('/') + 1))),
        );
        return {
          name: rec.name,
          current_version: rec.current_version,
          deleted_at: rec.deleted_at,
          metadata: rec.metadata,
          ...publicFields(rec),
          versions: rec.versions.map((v) => ({ ...v, destroyed: !present.has(v.version) })),
        };
      },
    } satisfies Operation<SecretAddress>,

    rollbackSecret: {
      name: 'secret.rollback',
      action: 'secret.rollback',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = await secret(tx, i);
          if (!rec.versions.some((v) => v.version === i.version)) {
            throw new StrongroomError(
              'version_not_found',
              `${i.project}/${i.env}/${i.name} has no version ${i.version}`,
            );
          }
          const value = await readValue(tx, `${i.project}/${i.env}/${i.name}`, i.version);
          const out = await appendVersion(tx, i, value, { source: 'rollback', from: i.version });
          changed({ project: i.project, env: i.env, name: i.name, kind: 'rollback', version: out.version });
          return { ...out, rolled_back_from: i.version };
        });
      },
    } satisfies Operation<SecretAddress & { version: number }>,

    deleteSecret: {
      name: 'secret.delete',
      action: 'secret.delete',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = { ...(await secret(tx, i, { allowDeleted: true })) };
          if (rec.deleted_at === null) {
            rec.deleted_at = iso();
            await tx.put(`meta/${i.project}/${i.env}/${i.name}`, enc(rec));
            changed({
              project: i.project,
              env: i.env,
              name: i.name,
              kind: 'delete',
              version: rec.current_version,
            });
          }
          return { name: rec.name, deleted_at: rec.deleted_at, destroyed: false };
        });
      },
    } satisfies Operation<SecretAddress>,

    destroySecret: {
      name: 'secret.destroy',
      action: 'secret.destroy',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = await secret(tx, i, { allowDeleted: true });
          const path = `${i.project}/${i.env}/${i.name}`;
          for (const p of await tx.list(`data/${path}/`)) await tx.delete(p);
          await tx.delete(`meta/${path}`);
          changed({
            project: i.project,
            env: i.env,
            name: i.name,
            kind: 'destroy',
            version: rec.current_version,
          });
          return { name: rec.name, deleted_at: iso(), destroyed: true };
        });
      },
    } satisfies Operation<SecretAddress>,

    restoreSecret: {
      name: 'secret.restore',
      action: 'secret.restore',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = { ...(await secret(tx, i, { allowDeleted: true })), deleted_at: null };
          await tx.put(`meta/${i.project}/${i.env}/${i.name}`, enc(rec));
          changed({
            project: i.project,
            env: i.env,
            name: i.name,
            kind: 'restore',
            version: rec.current_version,
          });
          return { name: rec.name, version: rec.current_version };
        });
      },
    } satisfies Operation<SecretAddress>,
  };

  /**
   * Adds what policies need to know about a resource: whether its environment
   * is production, and a secret's provider and tags. Names are checked here,
   * before authorization, so a malformed name is a 400 for everyone.
   */
  async function describe(r: Resource): Promise<Resource> {
    if (r.type !== 'Secret' && r.type !== 'Environment') {
      if (r.type === 'Project') checkSlug('project', r.id);
      return r;
    }
    const a = r.attrs as { project: string; environment: string; name?: string; production?: boolean };
    checkSlug('project', a.project);
    checkSlug('environment', a.environment);
    if (r.type === 'Secret') checkSecretName(a.name!);
    const env = (await store.getJson<ProjectRecord>(`projects/${a.project}`))?.environments[a.environment];
    const production = a.production ?? env?.production ?? defaultProduction(a.environment);
    if (r.type === 'Environment') return { ...r, attrs: { ...a, production } };
    const meta = await store.getJson<SecretRecord>(`meta/${a.project}/${a.environment}/${a.name}`);
    return {
      ...r,
      attrs: {
        ...a,
        production,
        ...(meta ? secretAttrs(meta) : { provider: '', tags: [] }),
      },
    };
  }

  return {
    operations: Object.values(operations),
    describe,
    /** Change events (after commit, never values). */
    events: emitter,
    /** For modules built on the engine (rotation, import, usage): */
    internals: {
      store,
      secret,
      readValue,
      appendVersion,
      changing,
      fieldsFrom,
      publicFields,
      environment,
      project,
    },
  };
}

/** Policy-visible attributes of a secret, from its metadata. */
function secretAttrs(r: Readonly<SecretRecord>): { provider: string; tags: string[] } {
  return { provider: r.provider ?? '', tags: [...(r.tags ?? [])] };
}

export type KvEngine = ReturnType<typeof createKvEngine>;
