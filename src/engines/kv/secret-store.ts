import { EventEmitter } from 'node:events';
import type { BarrierReader, BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { formatProblem } from '../provider-catalog.ts';
import { checkSecretName, checkSlug } from './names.ts';
import {
  type AppendOptions,
  dec,
  type EnvAddress,
  enc,
  type ProjectRecord,
  pad,
  type SecretAddress,
  type SecretEvent,
  type SecretRecord,
  type ValueRecord,
} from './records.ts';

/**
 * Reading and writing the kv engine's records: projects, secrets and their
 * versions, and the change events watchers see once a transaction committed.
 */

/** The project record, or a 404 saying how to create it. */
export async function project(r: BarrierReader, name: string): Promise<ProjectRecord> {
  const raw = await r.get(`projects/${name}`);
  if (!raw) {
    throw new StrongroomError(
      'project_not_found',
      `project ${JSON.stringify(name)} does not exist; create it with \`strongroom project create ${name}\``,
    );
  }
  return dec<ProjectRecord>(raw);
}

/** The project record of an existing environment, or a 404 naming the environments there are. */
export async function environment(r: BarrierReader, a: EnvAddress): Promise<ProjectRecord> {
  const p = await project(r, a.project);
  if (!Object.hasOwn(p.environments, a.env)) {
    throw new StrongroomError(
      'environment_not_found',
      `environment ${JSON.stringify(a.env)} does not exist in project ${JSON.stringify(a.project)}; it has: ${Object.keys(p.environments).join(', ') || 'none'}`,
    );
  }
  return p;
}

/** Checks the address and returns its path (`project/env/name`). */
export function checkSecret(a: SecretAddress): string {
  checkSlug('project', a.project);
  checkSlug('environment', a.env);
  checkSecretName(a.name);
  return `${a.project}/${a.env}/${a.name}`;
}

/** The secret's record, or a precise 404 saying which part of the address is missing. */
export async function secret(
  r: BarrierReader,
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

/** One version's value; a destroyed version is refused. */
export async function readValue(r: BarrierReader, path: string, version: number): Promise<string> {
  const rec = await r.getJson<ValueRecord>(`data/${path}/${pad(version)}`);
  if (!rec) throw new StrongroomError('version_destroyed', `version ${version} of ${path} was destroyed`);
  return rec.value;
}

/** Local change events; a server sharing storage with others also polls (see watch). */
export type SecretEvents = EventEmitter<{ change: [SecretEvent] }>;

export function secretEvents(): SecretEvents {
  const emitter: SecretEvents = new EventEmitter();
  emitter.setMaxListeners(0);
  return emitter;
}

/** Every project's record, by name. */
export async function* projects(r: BarrierReader): AsyncGenerator<Readonly<ProjectRecord>> {
  for (const p of await r.list('projects/')) {
    const proj = await r.getJson<ProjectRecord>(p);
    if (proj) yield proj;
  }
}

/** Records read at once when walking an environment (bounded: a walk must not monopolise the pool). */
const READ_BATCH = 16;

/**
 * The secrets' records (deleted ones included) of one environment, one project or every project, by
 * project, environment and name; a project's environments come from its record.
 */
export async function* records(
  r: BarrierReader,
  where: { project?: string; env?: string } = {},
): AsyncGenerator<{ project: string; env: string; record: Readonly<SecretRecord> }> {
  if (where.project !== undefined) checkSlug('project', where.project);
  if (where.env !== undefined) checkSlug('environment', where.env);
  const all =
    where.project !== undefined
      ? [await r.getJson<ProjectRecord>(`projects/${where.project}`)].filter((p) => p !== undefined)
      : projects(r);
  for await (const proj of all) {
    const envs = where.env !== undefined ? [where.env] : Object.keys(proj.environments).sort();
    for (const env of envs) {
      const paths = await r.list(`meta/${proj.name}/${env}/`);
      for (let i = 0; i < paths.length; i += READ_BATCH) {
        const batch = await Promise.all(
          paths.slice(i, i + READ_BATCH).map((path) => r.getJson<SecretRecord>(path)),
        );
        for (const record of batch) if (record) yield { project: proj.name, env, record };
      }
    }
  }
}

/** Writes versions of secrets, and tells watchers of every change once it committed. */
export function createSecretWriter(store: BarrierStore, clock: Clock, emitter: SecretEvents) {
  const iso = () => new Date(clock.now()).toISOString();

  /** Adds a version to a secret (creating it in an existing environment), checking `cas` and the provider's format. */
  async function appendVersion(
    tx: BarrierWriter,
    a: SecretAddress,
    value: string,
    opts: AppendOptions,
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

  return { events: emitter, appendVersion, changing };
}

export type SecretWriter = ReturnType<typeof createSecretWriter>;
