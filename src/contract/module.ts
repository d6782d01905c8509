import type { AnyOperation } from './operation.ts';
import type { Resource } from './resource.ts';

/**
 * One shape for every module of the vault (issue 14 item 1): a name, the
 * modules it needs, its operations built from the narrow ports it declares
 * (`D`, e.g. `BarrierPort & ClockPort`; never the whole core), and its
 * lifecycle. The assembler (src/assemble/modules.ts) orders modules so that a
 * module comes after the ones it needs: its operations are built after
 * theirs, its `onUnseal` runs after theirs, and its `onSeal` and `close` run
 * before theirs.
 */
export interface VaultModule<D = never, S = never> {
  readonly name: string;
  /** Names of the modules that must come first. */
  readonly needs?: readonly string[];
  /**
   * Where the module keeps its data in the barrier (`logical/identity/`): the core mounts the module on
   * a view of that prefix (`S`, the store handed to `operations`), as OpenBao's router mounts each
   * backend on its storage view; the assembler refuses mounts that overlap another module's or the core's.
   */
  readonly mount?: string;
  /** Builds the module's operations (once, when the vault is assembled), with its mounted store. */
  operations(deps: D, store: S): readonly AnyOperation[];
  /**
   * The resource types the module owns, each with what policies learn about one (the secrets engine:
   * a secret's provider, tags and whether its environment is production), read from its mounted store.
   */
  resources?(
    store: S,
  ): Readonly<Partial<Record<Resource['type'], (resource: Resource) => Promise<Resource>>>>;
  /** After every unseal, once the core's own keys are loaded (load keys kept in the barrier, start timers). */
  onUnseal?(): Promise<void>;
  /** When the vault seals: forget keys, stop timers. Synchronous: sealing never waits. */
  onSeal?(): void;
  /** At shutdown, while the barrier is still unsealed: write what is pending, hand back leases. */
  close?(): Promise<void>;
}
