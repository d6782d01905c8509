import type { VaultModule } from '../../contract/module.ts';
import type { AnyOperation } from '../../contract/operation.ts';
import type { AllowsPort, ClockPort, SecretsPort } from '../ports.ts';
import { exportOperations } from './export-secrets.ts';
import { importOperation } from './import-secrets.ts';
import type { Allows } from './resources.ts';

/**
 * Bulk import and export of an environment's secrets (issue 4, item 5;
 * docs/import-export.md): the module that adds them beside the kv engine,
 * writing through the engine's own writer so watchers see every change.
 */
/** Bulk import and export of an environment's secrets, on the secrets engine. */
export const bulkModule: VaultModule<SecretsPort & ClockPort & AllowsPort> = {
  name: 'bulk',
  operations: (deps) => bulkOperations(deps),
};

function bulkOperations(deps: SecretsPort & ClockPort & AllowsPort): AnyOperation[] {
  const kv = deps.kv.internals;
  const allows: Allows = (identity, action, resource, request) =>
    deps.allows(identity, action, resource, request);
  const writer = { appendVersion: kv.appendVersion, changing: kv.changing };
  const { exportNames, exportValues } = exportOperations({ store: kv.store, clock: deps.clock, allows });
  return [importOperation({ store: kv.store, writer, allows }), exportNames, exportValues];
}
