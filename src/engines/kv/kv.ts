import type { BarrierStore } from '../../barrier/barrier.ts';
import type { Clock } from '../../lib/clock.ts';
import { fieldsFrom, publicFields } from './fields.ts';
import { projectOperations } from './project-operations.ts';
import { describer } from './resources.ts';
import { secretReadOperations } from './secret-reads.ts';
import { createSecretWriter, environment, project, readValue, secret } from './secret-store.ts';
import { secretWriteOperations } from './secret-writes.ts';

// The types other modules build on (rotation, watch, usage, hygiene, the gateway); records.ts holds them.
export type { SecretAddress, SecretEvent, SecretRecord } from './records.ts';

/**
 * The `kv` engine: projects, their environments, and versioned secrets
 * (records.ts says how they are laid out in its barrier view).
 */
export function createKvEngine(store: BarrierStore, clock: Clock) {
  const writer = createSecretWriter(store, clock);
  const projects = projectOperations(store, clock);
  const reads = secretReadOperations(store);
  const writes = secretWriteOperations(writer, clock);
  const operations = [
    projects.createProject,
    projects.listProjects,
    projects.getProject,
    projects.createEnvironment,
    writes.writeSecret,
    reads.readSecret,
    reads.listSecrets,
    reads.secretVersions,
    writes.rollbackSecret,
    writes.deleteSecret,
    writes.destroySecret,
    writes.restoreSecret,
  ];

  return {
    operations,
    describe: describer(store),
    /** Change events (after commit, never values). */
    events: writer.events,
    /** For modules built on the engine (rotation, import, usage): */
    internals: {
      store,
      secret,
      readValue,
      appendVersion: writer.appendVersion,
      changing: writer.changing,
      fieldsFrom,
      publicFields,
      environment,
      project,
    },
  };
}

export type KvEngine = ReturnType<typeof createKvEngine>;
