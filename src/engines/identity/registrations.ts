import type { Registration } from '../../api/identity.ts';
import * as api from '../../api/identity.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import { implement, type OperationContext, type RequestInfo } from '../../contract/operation.ts';
import { type Scope, scopeProblem, scopeWithin } from '../../contract/scope.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { inCidr, validCidr } from './cidr.ts';
import {
  bad,
  identityResource,
  identitySystem,
  isoTime,
  ownSpiffeId,
  sha,
  spiffeIdOf,
  ttlOf,
} from './inputs.ts';
import { deleteJoinTokensFor, joinTokenPaths } from './join-tokens.ts';

/**
 * Registrations (`reg/<sha256 of the ID>`): which callers may obtain which
 * SPIFFE ID, and the roles and scope of a workload holding it. Entitlement is
 * decided here; `renewable_since` and the `unreg/` records keep an ID that was
 * unregistered from living on by renewing itself (issue 13).
 */

const MAX_SELECTORS = 16;
const SELECTOR_RE = /^(app|user|cidr|spiffe):(.{1,2048})$/;

/**
 * A registration: who may obtain `spiffe_id`, and what a workload holding it may do. Declared once, in
 * the wire contract (src/api/identity.ts): it is stored as it is answered. `renewable_since` is set when
 * the ID was unregistered and registered again, or re-registered without a selector it had (a holder
 * may have obtained it through that selector).
 */
export type { Registration } from '../../api/identity.ts';

/** What is left of an unregistered ID: SVIDs issued before `at` never renew under a later registration. */
interface UnregisteredRecord {
  spiffe_id: string;
  at: string;
}

/** When the SVID a workload authenticated with was issued (ms), by the identity it authenticated as. */
export type SvidIssueTimes = WeakMap<Identity, number>;

export interface Registrations {
  /** The registration of `spiffeId`, if any. */
  registrationFor(spiffeId: string): Promise<Registration | undefined>;
  /** Every `cidr` selector of the registration (if any) matches the caller's address. */
  fromAllowedNetwork(reg: Registration, request: RequestInfo): boolean;
  /**
   * The registration that entitles this caller to `spiffeId` now, or undefined: there must be a
   * registration for the ID (issue 13: deleting it ends the workload's identity at its next
   * issuance), the caller must come from a network its `cidr` selectors allow (they only narrow),
   * and either match one of its `app`/`user`/`spiffe` selectors or be the workload itself renewing,
   * a workload only while its own identity is alive.
   */
  entitled(spiffeId: string, ctx: OperationContext): Promise<Registration | undefined>;
  /**
   * Deletes the registration and the ID's unused join tokens, and remembers when: no SVID is issued
   * for the ID from now on, and SVIDs issued before never renew themselves, even under a later
   * registration of the same ID. SVIDs already issued stay valid until they expire (docs/identity.md).
   */
  unregister(spiffeId: string): Promise<boolean>;
}

function selectorMatches(sel: string, identity: Identity | undefined, request: RequestInfo): boolean {
  const m = SELECTOR_RE.exec(sel);
  if (!m) return false;
  const [, type, value] = m;
  if (type === 'cidr') return inCidr(request.client_address, value!);
  if (!identity) return false;
  if (type === 'app') return identity.owner.type === 'app' && identity.owner.name === value;
  if (type === 'user') return identity.owner.type === 'user' && identity.owner.name === value;
  if (type === 'spiffe') return identity.owner.type === 'workload' && identity.owner.id === value;
  return false;
}

/** The longest SVID `reg` allows, within the server's maximum `max` (seconds). */
export const regMax = (reg: Registration | undefined, max: number) =>
  reg?.x509_ttl ? Math.min(reg.x509_ttl, max) : max;

export function refuseNotEntitled(spiffeId: string): never {
  throw new StrongroomError(
    'permission_denied',
    `not entitled to ${spiffeId}: register the caller for it first (strongroom identity register ${spiffeId} --app NAME)`,
  );
}

export function createRegistrations(deps: {
  store: BarrierStore;
  clock: Clock;
  trustDomain: string;
  /** Set by workload authentication for every identity it makes from an SVID. */
  svidIssuedAt: SvidIssueTimes;
}): Registrations {
  const { store, clock, trustDomain, svidIssuedAt } = deps;

  async function registrationFor(spiffeId: string): Promise<Registration | undefined> {
    return (await store.getJson<Registration>(`reg/${sha(spiffeId)}`)) as Registration | undefined;
  }

  /**
   * Is this workload's identity still alive as a source of new SVIDs? One of this trust domain needs
   * its own registration, and an SVID issued since that registration's `renewable_since` (issue 13:
   * unregistering ends an identity; it must not live on by renewing itself, or as a `spiffe:`
   * selector of another ID). A federated workload is vouched for by its trust domain's bundle.
   */
  async function liveWorkload(identity: Identity): Promise<boolean> {
    if (identity.owner.type !== 'workload') return false;
    const id = identity.owner.id;
    if (!id.startsWith(`spiffe://${trustDomain}/`)) return true;
    const reg = await registrationFor(id);
    if (!reg) return false;
    const issuedAt = svidIssuedAt.get(identity);
    const since = reg.renewable_since === undefined ? 0 : Date.parse(reg.renewable_since);
    return issuedAt !== undefined && issuedAt >= since;
  }

  function fromAllowedNetwork(reg: Registration, request: RequestInfo): boolean {
    const where = reg.selectors.filter((s) => s.startsWith('cidr:'));
    return where.length === 0 || where.some((s) => selectorMatches(s, undefined, request));
  }

  async function entitled(spiffeId: string, ctx: OperationContext): Promise<Registration | undefined> {
    const reg = await registrationFor(spiffeId);
    const who = ctx.identity;
    if (!reg || !who || !fromAllowedNetwork(reg, ctx.request)) return undefined;
    const self = who.owner.type === 'workload' && who.owner.id === spiffeId;
    const matches = reg.selectors.some((s) => !s.startsWith('cidr:') && selectorMatches(s, who, ctx.request));
    if (!self && !matches) return undefined;
    if (who.owner.type === 'workload' && !(await liveWorkload(who))) return undefined;
    return reg;
  }

  async function unregister(spiffeId: string): Promise<boolean> {
    const key = sha(spiffeId);
    const joins = await joinTokenPaths(store);
    const deleted = await store.transaction(async (tx) => {
      if (!(await tx.get(`reg/${key}`))) return false;
      await tx.delete(`reg/${key}`);
      const rec: UnregisteredRecord = { spiffe_id: spiffeId, at: isoTime(clock.now()) };
      await tx.put(`unreg/${key}`, Buffer.from(JSON.stringify(rec)));
      await deleteJoinTokensFor(tx, joins, spiffeId);
      return true;
    });
    return deleted;
  }

  return { registrationFor, fromAllowedNetwork, entitled, unregister };
}

function checkSelectors(selectors: readonly string[]): void {
  if (selectors.length === 0 || selectors.length > MAX_SELECTORS) {
    throw bad(
      'invalid_value',
      `selectors: give 1 to ${MAX_SELECTORS} (app:NAME, user:NAME, spiffe:ID, cidr:NET)`,
    );
  }
  for (const s of selectors) {
    const m = SELECTOR_RE.exec(s);
    if (!m)
      throw bad(
        'invalid_value',
        `selector ${JSON.stringify(s.slice(0, 80))}: use app:NAME, user:NAME, spiffe:ID or cidr:NET`,
      );
    if (m[1] === 'spiffe') spiffeIdOf(m[2]!, `selector ${s}`);
    if (m[1] === 'cidr' && !validCidr(m[2]!)) {
      throw bad('invalid_value', `selector ${s}: a network like 10.0.0.0/8 or fd00::/8`);
    }
  }
  if (!selectors.some((s) => !s.startsWith('cidr:'))) {
    throw bad('invalid_value', 'selectors: a cidr selector only narrows; add who (app:, user: or spiffe:)');
  }
}

/** The caller may grant these roles and this scope to a workload. */
function checkGrant(ctx: OperationContext, roles: readonly string[], scope: Scope | undefined): void {
  if (roles.includes('root')) throw bad('invalid_value', 'roles: a workload cannot hold root');
  // as for users and apps: nobody grants a role they do not hold (auth/users.ts checkGrantable)
  const held = ctx.identity?.policies ?? [];
  const extra = held.includes('root') || held.includes('admin') ? [] : roles.filter((r) => !held.includes(r));
  if (extra.length) {
    throw new StrongroomError(
      'permission_denied',
      `you cannot grant roles you do not hold yourself: ${extra.join(', ')}`,
    );
  }
  // both read secrets: app its own, gateway the provider keys it injects
  const reading = roles.find((r) => r === 'app' || r === 'gateway');
  if (reading && !scope) {
    throw bad(
      'invalid_value',
      `roles: a workload with the ${reading} role needs a scope (e.g. {"paths": ["myproj/prod"]})`,
    );
  }
  if (scope) {
    const problem = scopeProblem(scope);
    if (problem) throw bad('invalid_value', `scope: ${problem}`);
  }
  if (scope && ctx.identity?.scope && !scopeWithin(scope, ctx.identity.scope)) {
    throw new StrongroomError('permission_denied', 'scope: you cannot grant a scope wider than your own');
  }
}

/**
 * Stores `base` as the registration of its ID. SVIDs issued under an earlier registration, or
 * through a selector taken away, do not renew themselves under this one (they must be obtained
 * again through a selector it has).
 */
function saveRegistration(store: BarrierStore, base: Registration): Promise<Registration> {
  const key = sha(base.spiffe_id);
  const who = (sels: readonly string[]) => sels.filter((s) => !s.startsWith('cidr:'));
  return store.transaction(async (tx) => {
    const old = (await tx.getJson<Registration>(`reg/${key}`)) as Registration | undefined;
    const gone = (await tx.getJson<UnregisteredRecord>(`unreg/${key}`)) as UnregisteredRecord | undefined;
    let since: string | undefined;
    if (old) {
      const kept = who(old.selectors).every((s) => base.selectors.includes(s));
      since = kept ? old.renewable_since : base.created_at;
    } else if (gone) {
      since = gone.at;
    }
    const next: Registration = since === undefined ? base : { ...base, renewable_since: since };
    await tx.put(`reg/${key}`, Buffer.from(JSON.stringify(next)));
    if (gone) await tx.delete(`unreg/${key}`);
    return next;
  });
}

export interface RegistrationOperationDeps {
  store: BarrierStore;
  clock: Clock;
  trustDomain: string;
  /** The longest X.509-SVID (seconds): a registration's `x509_ttl` stays within it. */
  x509Max: number;
  registrations: Registrations;
}

/** `identity.registration.create`, `.list` and `.delete`. */
export function registrationOperations(deps: RegistrationOperationDeps) {
  const { store, clock, trustDomain, x509Max, registrations } = deps;

  const register = implement(api.IdentityRegistrationCreate, {
    action: 'identity.register',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id),
    async handle(ctx, i) {
      const id = ownSpiffeId(i.spiffe_id, trustDomain);
      checkSelectors(i.selectors);
      const roles = i.roles ?? [];
      checkGrant(ctx, roles, i.scope);
      const reg = await saveRegistration(store, {
        id: sha(id.toString()).slice(0, 16),
        spiffe_id: id.toString(),
        selectors: [...new Set(i.selectors)],
        roles,
        scope: i.scope ?? null,
        x509_ttl: i.x509_ttl === undefined ? 0 : ttlOf(i.x509_ttl, 0, x509Max, 'x509_ttl'),
        created_at: isoTime(clock.now()),
        created_by: ctx.identity?.display_name ?? 'unknown',
      });
      // workloads already seen take the new roles and scope at their next request (read at every one)
      return { registration: reg };
    },
  });

  const listRegs = implement(api.IdentityRegistrationList, {
    action: 'identity.read',
    auth: 'token',
    resource: identitySystem,
    async handle() {
      const out: Registration[] = [];
      for (const p of await store.list('reg/')) {
        const r = await store.getJson<Registration>(p);
        if (r) out.push(r as Registration);
      }
      out.sort((a, b) => a.spiffe_id.localeCompare(b.spiffe_id));
      return { registrations: out, trust_domain: trustDomain };
    },
  });

  const deleteReg = implement(api.IdentityRegistrationDelete, {
    action: 'identity.register',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id),
    async handle(_ctx, i) {
      if (!(await registrations.unregister(spiffeIdOf(i.spiffe_id).toString())))
        throw new StrongroomError('not_found', `no registration for ${i.spiffe_id}`);
      return { deleted: i.spiffe_id };
    },
  });

  return { register, listRegs, deleteReg };
}
