import { MAX_SECRET_VALUE_BYTES } from '../../api/v1.ts';
import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import { scopeAllows } from '../../core/scope.ts';
import type { Operation, Resource } from '../../core/types.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
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

interface VersionInfo {
  version: number;
  created_at: string;
  /** 'write' or 'rollback' (a rollback copies an older version's value into a new version). */
  source: 'write' | 'rollback';
  rolled_back_from?: number;
}

interface SecretRecord {
  name: string;
  created_at: string;
  updated_at: string;
  current_version: number;
  deleted_at: string | null;
  metadata: SecretMetadata;
  versions: VersionInfo[];
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
    opts: { metadata?: SecretMetadata; cas?: number; source: 'write' | 'rollback'; from?: number },
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
    rec.versions.push(
      opts.source === 'rollback'
        ? { version, created_at: now, source: 'rollback', rolled_back_from: opts.from! }
        : { version, created_at: now, source: 'write' },
    );
    await tx.put(`data/${path}/${pad(version)}`, enc({ value } satisfies ValueRecord));
    await tx.put(`meta/${path}`, enc(rec));
    return { version, created_at: now };
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
        return store.transaction((tx) =>
          appendVersion(tx, i, i.value, {
            source: 'write',
            ...(i.metadata === undefined ? {} : { metadata: i.metadata }),
            ...(i.cas === undefined ? {} : { cas: i.cas }),
          }),
        );
      },
    } satisfies Operation<SecretAddress & { value: string; metadata?: SecretMetadata; cas?: number }>,

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
        return store.transaction(async (tx) => {
          const rec = await secret(tx, i);
          if (!rec.versions.some((v) => v.version === i.version)) {
            throw new StrongroomError(
              'version_not_found',
              `${i.project}/${i.env}/${i.name} has no version ${i.version}`,
            );
          }
          const value = await readValue(tx, `${i.project}/${i.env}/${i.name}`, i.version);
          const out = await appendVersion(tx, i, value, { source: 'rollback', from: i.version });
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
        return store.transaction(async (tx) => {
          const rec = { ...(await secret(tx, i, { allowDeleted: true })) };
          if (rec.deleted_at === null) {
            rec.deleted_at = iso();
            await tx.put(`meta/${i.project}/${i.env}/${i.name}`, enc(rec));
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
        return store.transaction(async (tx) => {
          const rec = await secret(tx, i, { allowDeleted: true });
          const path = `${i.project}/${i.env}/${i.name}`;
          for (const p of await tx.list(`data/${path}/`)) await tx.delete(p);
          await tx.delete(`meta/${path}`);
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
        return store.transaction(async (tx) => {
          const rec = { ...(await secret(tx, i, { allowDeleted: true })), deleted_at: null };
          await tx.put(`meta/${i.project}/${i.env}/${i.name}`, enc(rec));
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

  return { operations: Object.values(operations), describe };
}

/** Policy-visible attributes of a secret, from its metadata. */
function secretAttrs(r: Readonly<SecretRecord>): { provider: string; tags: string[] } {
  const m = r.metadata ?? {};
  return {
    provider: typeof m.provider === 'string' ? m.provider : '',
    tags:
      typeof m.tags === 'string'
        ? m.tags
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean)
        : [],
  };
}
