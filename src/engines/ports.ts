import type { Barrier } from '../barrier/barrier.ts';
import type { Identity, TokenEntry } from '../contract/identity.ts';
import type { RequestInfo } from '../contract/operation.ts';
import type { Resource } from '../contract/resource.ts';
import type { Clock } from '../lib/clock.ts';
import type { KvEngine } from './kv/kv.ts';

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

/** The secrets engine, for the modules built on it (its store, helpers and change events). */
export interface SecretsPort {
  kv: Pick<KvEngine, 'internals' | 'events'>;
}

/** The barrier: a view of one's own prefix, and whether the vault is sealed. */
export interface BarrierPort {
  barrier: Pick<Barrier, 'view' | 'sealed'>;
}

/** Token lookups, for modules whose credentials live and die with a token. */
export interface TokensPort {
  tokens: {
    lookup(token: string): Promise<TokenEntry>;
    refOf(token: string): string;
    lookupRef(ref: string | undefined): Promise<TokenEntry | undefined>;
  };
}
