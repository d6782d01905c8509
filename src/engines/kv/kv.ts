import { type BarrierStore, writerAt } from '../../barrier/barrier.ts';
import type { VaultModule } from '../../contract/module.ts';
import type { AnyOperation } from '../../contract/operation.ts';
import type { Clock } from '../../lib/clock.ts';
import type {
  AllowsPort,
  ClockPort,
  SecretsPort,
  SecretsReader,
  SecretsWriter,
  SecretsWriterPort,
} from '../ports.ts';
import { exportOperations } from './export-secrets.ts';
import { importOperation } from './import-secrets.ts';
import { checkSlug } from './names.ts';
import { projectOperations } from './project-operations.ts';
import { enc, type SecretRecord } from './records.ts';
import { type Allows, describer } from './resources.ts';
import { secretReadOperations } from './secret-reads.ts';
import {
  checkSecret,
  createSecretWriter,
  environment,
  project,
  projects,
  readValue,
  records,
  type SecretEvents,
  secret,
  secretEvents,
} from './secret-store.ts';
import { secretWriteOperations } from './secret-writes.ts';

// The types other modules build on (rotation, watch, usage, hygiene, the gateway); records.ts holds them.
export type { SecretAddress, SecretEvent, SecretRecord } from './records.ts';

/** Where the secrets engine is mounted in the barrier. */
export const SECRETS_MOUNT = 'logical/kv/';

/** The engine's own prefixes in its mount: no module may attach records there. */
const OWN_PREFIXES = ['projects/', 'meta/', 'data/'];

/**
 * The `kv` engine: projects, their environments, and versioned secrets
 * (records.ts says how they are laid out in its barrier view), with bulk import
 * and export; and the ports the modules built on it use (a reader, and a
 * writer for records of their own that change with the secrets).
 */
function createKvEngine(store: BarrierStore, clock: Clock, allows: Allows, events: SecretEvents) {
  const writer = createSecretWriter(store, clock, events);
  const projectOps = projectOperations(store, clock);
  const reads = secretReadOperations(store);
  const writes = secretWriteOperations(writer, clock);
  const { exportNames, exportValues } = exportOperations({ store, clock, allows });
  const operations: AnyOperation[] = [
    projectOps.createProject,
    projectOps.listProjects,
    projectOps.getProject,
    projectOps.createEnvironment,
    writes.writeSecret,
    reads.readSecret,
    reads.listSecrets,
    reads.secretVersions,
    writes.rollbackSecret,
    writes.deleteSecret,
    writes.destroySecret,
    writes.restoreSecret,
    importOperation({ store, writer, allows }),
    exportNames,
    exportValues,
  ];

  const reader: SecretsReader = {
    // async: a bad name is a rejected promise, like every other refusal
    async project(name) {
      checkSlug('project', name);
      return project(store, name);
    },
    async environment(a) {
      checkSlug('project', a.project);
      checkSlug('environment', a.env);
      return environment(store, a);
    },
    projects: () => projects(store),
    secret: (a, opts) => secret(store, a, opts),
    async value(a, version) {
      return readValue(store, checkSecret(a), version);
    },
    records: (where) => records(store, where),
    events,
  };

  const attached = new Set<string>();
  function secretsWriter(attach: string): SecretsWriter {
    if (!/^[a-z][a-z0-9-]*\/$/.test(attach) || OWN_PREFIXES.includes(attach))
      throw new TypeError(`records attached to secrets need a prefix of their own, not ${attach}`);
    if (attached.has(attach)) throw new TypeError(`two modules attach records under ${attach}`);
    attached.add(attach);
    return {
      own: store.view(attach),
      transaction: (fn) =>
        writer.changing((tx, changed) =>
          fn({
            secret: (a, opts) => secret(tx, a, opts),
            appendVersion: (a, value, opts) => writer.appendVersion(tx, a, value, opts),
            async setRotationStatus(a, status) {
              const path = `meta/${checkSecret(a)}`;
              const rec = await tx.getJson<SecretRecord>(path);
              if (rec) await tx.put(path, enc({ ...rec, ...status }));
            },
            changed,
            own: writerAt(tx, attach),
          }),
        ),
    };
  }

  return { operations, reader, writer: secretsWriter };
}

type KvEngine = ReturnType<typeof createKvEngine>;

/**
 * The secrets engine as a module, mounted on `logical/kv/`, and the ports it offers the modules
 * built on it (hygiene, watch, usage, metrics, rotation, the gateway's provider keys). The ports
 * work once the vault is assembled (the core mounts the module before any module that needs it).
 */
export function secretsModule(): {
  module: VaultModule<ClockPort & AllowsPort, BarrierStore>;
  ports: SecretsPort & SecretsWriterPort;
} {
  const events = secretEvents();
  let engine: KvEngine | undefined;
  const e = (): KvEngine => {
    if (!engine) throw new TypeError('the secrets engine was used before it was mounted');
    return engine;
  };
  const mounted = (deps: ClockPort & AllowsPort, store: BarrierStore): KvEngine => {
    engine ??= createKvEngine(
      store,
      deps.clock,
      (identity, action, resource, request) => deps.allows(identity, action, resource, request),
      events,
    );
    return engine;
  };
  return {
    module: {
      name: 'secrets',
      mount: SECRETS_MOUNT,
      operations: (deps, store) => mounted(deps, store).operations,
      resources(store) {
        const describe = describer(store);
        return { Project: describe, Environment: describe, Secret: describe };
      },
    },
    ports: {
      secrets: {
        project: (name) => e().reader.project(name),
        projects: () => e().reader.projects(),
        environment: (a) => e().reader.environment(a),
        secret: (a, opts) => e().reader.secret(a, opts),
        value: (a, version) => e().reader.value(a, version),
        records: (where) => e().reader.records(where),
        events,
      },
      secretsWriter: (attach) => e().writer(attach),
    },
  };
}
