// biome-ignore-all lint/style/noExcessiveLinesPerFile: the vault side of the gateway port: sessions, subjects and one method per port question over the same core and engines
import { randomBytes, randomUUID } from 'node:crypto';
import type { Identity } from '../../contract/identity.ts';
import type { RequestInfo, Resource } from '../../contract/operation.ts';
import type { Core } from '../../core/core.ts';
import { keyIdentity, type VirtualKey } from '../../engines/gateway/virtual-keys.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { ProviderKeys } from '../../gateway/provider-keys.ts';
import type { BudgetLimits, Budgets, Caller } from '../../gateway/types.ts';
import {
  type AuthenticateInput,
  type Decision,
  type DefaultLimits,
  type GatewayVault,
  type HoldsAnswer,
  type InvokeContext,
  type Session,
  settle,
} from '../../gateway/vault-port.ts';
import { globMatch } from '../../lib/glob.ts';

/**
 * The vault's side of the gateway port (src/gateway/vault-port.ts), in the
 * composition root: the gateway defines the port, and this adapter answers it
 * with the vault's core and engines, in this process (`localVault`) and, through
 * the vault service (vault-service.ts), for gateways running elsewhere.
 */

/** What of the core the vault side uses: the pipeline's authentication and authorization, audit and the clock. */
export type VaultSide = Pick<
  Core,
  | 'allows'
  | 'audit'
  | 'authenticate'
  | 'barrier'
  | 'clock'
  | 'metrics'
  | 'policies'
  | 'tokens'
  | 'workloadAuth'
>;

/** The vault's engines the gateway uses, in this process. */
export interface LocalEngines {
  keys: ProviderKeys;
  virtualKeys: {
    /** The key a key string names, if it is usable now (src/engines/gateway/virtual-keys.ts `lookup`). */
    lookup(key: string): Promise<VirtualKey | undefined>;
    /** A key's record by id (revoked and expired ones too). */
    get(id: string): Promise<VirtualKey | undefined>;
    revoke(id: string): Promise<void>;
    /** Whether the key can still be used: not revoked, not expired, its creator still live. */
    live(id: string): Promise<boolean>;
    /** Whose read permissions a key's caller has (its creator token's), if any. */
    reader(key: VirtualKey): Promise<Identity | undefined>;
  };
  budgets: Budgets;
  /** Workload identities (absent: SVIDs are off): a compromised workload loses its registration. */
  workloads?: { unregister(spiffeId: string): Promise<boolean> };
}

// ---------------------------------------------------------------- sessions

/** What must stay valid while a call goes on. */
export type LiveRef =
  | { kind: 'token'; accessor: string }
  | { kind: 'virtual_key'; id: string }
  | { kind: 'workload'; credential?: string; chain?: string[] }
  | { kind: 'none' };

/** A budget subject of a caller: its limits come from a virtual key, or from the gateway's defaults by `kind`. */
export interface Subject {
  key: string;
  kind: 'key' | 'app' | 'user' | 'token' | 'workload';
  limits?: BudgetLimits;
}

/**
 * A session as the vault keeps it (in process) or seals it (for a remote gateway): everything later
 * questions about the call depend on, derived here from the credential, never from the gateway.
 */
export interface SessionData {
  caller: Caller;
  identity: Identity;
  /** A virtual key's own scope (providers and model globs), on top of Cedar. */
  keyScope?: { providers?: string[]; models?: string[] };
  subjects: Subject[];
  live: LiveRef;
  /** For a virtual key: its id, to find whose read permissions its caller has. */
  keyId?: string;
  /** When the session stops being usable whatever happens (ms). */
  until: number;
  /** Unique per session: a session serves one call (a remote vault admits it once). */
  nonce: string;
}

const LOCAL = Symbol('strongroom.gateway.session');
/** How long a session may serve one call (the longest call: streams are cut well before). */
export const SESSION_TTL_MS = 2 * 3600_000;

interface LocalSession extends Session {
  readonly [LOCAL]: SessionData;
}

/** The data of a session made by `localVault` (a TypeError for anything else: sessions are not made up). */
export function sessionData(s: Session): SessionData {
  const d = (s as Partial<LocalSession>)[LOCAL];
  if (!d) throw new TypeError('not a session of this vault');
  return d;
}

/** A session object for data the vault derived (or unsealed from its own ticket). */
export function sessionOf(data: SessionData): Session {
  return { caller: data.caller, identity: data.identity, [LOCAL]: data } as LocalSession;
}

/** The budget subject of whoever owns a credential (an app's tokens share one, and so do a token's children). */
function ownerSubject(owner: Identity['owner'], fallback: string): Subject {
  switch (owner.type) {
    case 'app':
      return { key: `app:${owner.id}`, kind: 'app' };
    case 'user':
      return { key: `user:${owner.id}`, kind: 'user' };
    case 'workload':
      return { key: `wl:${owner.id}`, kind: 'workload' };
    case 'token':
      return { key: `token:${owner.id}`, kind: 'token' };
    default:
      return { key: `token:${fallback}`, kind: 'token' };
  }
}

/** The subjects with their limits: a key's own, the gateway's defaults for the rest; unlimited ones dropped. */
function subjectLimits(
  subjects: readonly Subject[],
  defaults: DefaultLimits,
): { key: string; limits: BudgetLimits }[] {
  const out: { key: string; limits: BudgetLimits }[] = [];
  for (const s of subjects) {
    const limits =
      s.kind === 'key'
        ? s.limits
        : s.kind === 'app'
          ? defaults.apps
          : s.kind === 'workload'
            ? defaults.workloads
            : defaults.tokens;
    if (limits && Object.keys(limits).length) out.push({ key: s.key, limits });
  }
  return out;
}

/** The in-process port, with what the vault service adds for a remote gateway (its scope, its name). */
export interface LocalVault extends GatewayVault {
  /** `within`: only values of secrets it accepts count (a remote gateway's registration scope). */
  holds(
    session: Session,
    candidates: readonly string[],
    info: RequestInfo,
    within?: (path: string) => boolean,
  ): Promise<HoldsAnswer>;
  /** `gateway`: the SPIFFE ID of the remote gateway that asked, for the record. */
  revoke(session: Session, reason: string, gateway?: string): Promise<void>;
}

/** The gateway on the vault's core in this process (decision 0006); the vault service serves it to remote gateways. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the vault side of the gateway port, a short method each over one core; to move to an engine with vault-service.ts (the debt list of docs/module-map.json)
export function localVault(core: VaultSide, engines: LocalEngines): LocalVault {
  const unauthenticated = (message: string) => new StrongroomError('unauthenticated', message);

  async function workload(
    request: RequestInfo,
    token: string | undefined,
    chain: readonly Buffer[] | undefined,
  ): Promise<Identity | undefined> {
    if (!core.workloadAuth) return undefined;
    return core.workloadAuth({
      ...request,
      token,
      peer_certificates: token === undefined ? chain : undefined,
    });
  }

  async function derive(input: AuthenticateInput, info: RequestInfo): Promise<Omit<SessionData, 'nonce'>> {
    const { credential, chain } = input;
    const until = core.clock.now() + SESSION_TTL_MS;
    // the SVID presented over mTLS (verified by the SPIFFE rules, its registration read)
    const svid = chain?.length ? await workload(info, undefined, chain) : undefined;
    if (input.requireSvid && !svid) {
      throw unauthenticated('this gateway requires a client certificate (an X.509-SVID)');
    }
    const chainText = chain?.length ? chain.map((c) => c.toString('base64')) : undefined;
    if (credential === undefined) {
      if (!svid) {
        throw unauthenticated(
          'send a Strongroom credential as the API key (Authorization: Bearer or x-api-key): a virtual key, a token or a JWT-SVID',
        );
      }
      return {
        caller: {
          kind: 'workload',
          id: svid.owner.id,
          display_name: svid.display_name,
          spiffe_id: svid.owner.id,
        },
        identity: svid,
        subjects: [ownerSubject(svid.owner, svid.accessor)],
        live: { kind: 'workload', ...(chainText ? { chain: chainText } : {}) },
        until,
      };
    }
    if (credential.startsWith('srv_')) {
      const key = await engines.virtualKeys.lookup(credential);
      if (!key) throw new StrongroomError('invalid_token', 'the key is unknown, revoked or expired');
      if (key.spiffe_id && svid?.owner.id !== key.spiffe_id) {
        // a leaked key string is useless without the certificate it is bound to
        throw new StrongroomError(
          'invalid_token',
          'this key is bound to a workload identity: present its X.509-SVID',
        );
      }
      const identity = keyIdentity(key);
      // root mints without limits of its own: its keys are bound by their own only
      const creator = key.owner.type === 'root' ? [] : [ownerSubject(key.owner as Identity['owner'], key.id)];
      return {
        caller: {
          kind: 'virtual_key',
          id: key.id,
          display_name: identity.display_name,
          ...(key.spiffe_id ? { spiffe_id: key.spiffe_id } : {}),
          ...(key.classification ? { classification: key.classification } : {}),
        },
        identity,
        keyScope: key.scope,
        // limits on the creator bind what it mints (issue 12 item 8)
        subjects: [{ key: `vk:${key.id}`, kind: 'key', limits: key.limits }, ...creator],
        live: { kind: 'virtual_key', id: key.id },
        keyId: key.id,
        until,
      };
    }
    if (credential.startsWith('eyJ')) {
      const identity = await workload(info, credential, undefined);
      if (!identity) throw unauthenticated('workload identities are not enabled');
      return {
        caller: {
          kind: 'workload',
          id: identity.owner.id,
          display_name: identity.display_name,
          spiffe_id: identity.owner.id,
        },
        identity,
        subjects: [ownerSubject(identity.owner, identity.accessor)],
        live: { kind: 'workload', credential },
        until,
      };
    }
    // the pipeline's own step: a limited-use token spends a use here (issue 12 item 7); the gateway
    // applies its own per-caller limits, so the vault API's request rate is not charged
    const { identity, exhausted } = await core.authenticate(
      { ...info, token: credential },
      { rateLimit: false },
    );
    return {
      caller: {
        kind: 'token',
        id: identity.accessor,
        display_name: identity.display_name,
        ...(svid ? { spiffe_id: svid.owner.id } : {}),
      },
      identity,
      subjects: [ownerSubject(identity.owner, identity.accessor)],
      // a token whose last use this call spent is gone already: nothing left to revoke mid-call
      live: exhausted ? { kind: 'none' } : { kind: 'token', accessor: identity.accessor },
      until,
    };
  }

  async function decide(data: SessionData, resource: Resource, context: InvokeContext): Promise<Decision> {
    const provider = resource.attrs?.provider as string;
    const model = resource.attrs?.model as string;
    const ks = data.keyScope;
    if (ks?.providers && !ks.providers.includes(provider))
      return { allowed: false, reason: `this key may not call ${provider}` };
    if (ks?.models && !ks.models.some((g) => globMatch(g, model)))
      return { allowed: false, reason: `this key may not call the model ${model}` };
    const scope = data.identity.scope;
    if (scope?.providers && !scope.providers.includes(provider))
      return { allowed: false, reason: "outside the token's scope" };
    try {
      return await core.policies.authorize(data.identity, 'gateway.invoke', resource, {
        client_address: context.client_address,
        now: core.clock.now(),
        classification: context.classification,
        estimated_tokens: context.estimated_tokens,
      } as Parameters<Core['policies']['authorize']>[3]);
    } catch {
      // an evaluation error is a deny
      return { allowed: false, reason: 'policy evaluation failed' };
    }
  }

  async function isLive(data: SessionData): Promise<boolean> {
    if (core.clock.now() >= data.until) return false;
    const l = data.live;
    try {
      switch (l.kind) {
        case 'token':
          return (await core.tokens.lookupAccessor(l.accessor)) !== undefined;
        case 'virtual_key':
          return await engines.virtualKeys.live(l.id);
        case 'workload': {
          const chain = l.chain?.map((c) => Buffer.from(c, 'base64'));
          const again = await workload(
            { request_id: 'gateway-live', client_address: '127.0.0.1' },
            l.credential,
            chain,
          );
          // the same workload with the same roles and scope (its accessor says both): a registration
          // removed or narrowed since ends the session
          return again !== undefined && again.accessor === data.identity.accessor;
        }
        default:
          return true;
      }
    } catch {
      return false;
    }
  }

  async function revokeData(data: SessionData, reason: string, gateway?: string): Promise<void> {
    const l = data.live;
    let done: 'revoked' | 'not_revocable' = 'not_revocable';
    if (l.kind === 'token' && !data.identity.policies.includes('root')) {
      await core.tokens.revokeAccessor(l.accessor);
      done = 'revoked';
    } else if (l.kind === 'virtual_key') {
      await engines.virtualKeys.revoke(l.id);
      done = 'revoked';
    } else if (l.kind === 'workload' && engines.workloads) {
      // an SVID cannot be taken back: the registration that gives the workload its roles is, and its
      // next call (on any gateway, after any restart) has none; registering it again restores it
      if (await engines.workloads.unregister(data.identity.owner.id)) done = 'revoked';
    }
    await core.audit({
      type: 'response',
      request_id: randomUUID(),
      operation: 'gateway.revoke',
      action: 'gateway.invoke',
      resource: `Token::${data.identity.accessor}`,
      actor: actorOf(data.identity),
      client_address: '-',
      decision: { allowed: done === 'revoked', reason },
      request: {
        target: data.caller.kind,
        id: data.caller.id,
        outcome: done,
        ...(gateway ? { gateway } : {}),
      },
      status: done === 'revoked' ? 'ok' : 'error',
    });
  }

  return {
    sealed: () => core.barrier.sealed,
    health: async () => (core.barrier.sealed ? 'sealed' : 'ok'),
    now: () => core.clock.now(),
    metrics: core.metrics,
    async authenticate(input, info) {
      return sessionOf({ ...(await derive(input, info)), nonce: randomBytes(16).toString('base64url') });
    },
    async authorize(session, resources, context) {
      const data = sessionData(session);
      const out: Decision[] = [];
      for (const r of resources) out.push(await decide(data, r, context));
      return out;
    },
    async holds(session, candidates, info, within) {
      return holdsFor(sessionData(session), candidates, info, within);
    },
    async admit(session, record, reserve) {
      const data = sessionData(session);
      const subjects = reserve ? subjectLimits(data.subjects, reserve.defaults) : [];
      if (reserve?.estimate.unpriced && subjects.some((x) => x.limits.spend)) {
        // a spend budget must hold: a model with no price would spend without counting
        throw new StrongroomError(
          'permission_denied',
          'this model has no price in the gateway configuration (gateway.prices), so the spend budget that applies to this caller cannot be enforced',
          { details: { refusal: 'model_not_priced' } },
        );
      }
      const reservation = subjects.length
        ? await engines.budgets.reserve(subjects, reserve!.estimate)
        : undefined;
      try {
        await core.audit({ ...record, actor: actorOf(data.identity) });
      } catch (err) {
        await reservation?.release().catch(() => {});
        throw err;
      }
      return reservation;
    },
    async audit(entry, opts) {
      if (opts?.settle) await settle(opts.settle);
      await core.audit(
        opts?.session ? { ...entry, actor: actorOf(sessionData(opts.session).identity) } : entry,
      );
    },
    async revoke(session, reason, gateway) {
      await revokeData(sessionData(session), reason, gateway);
    },
    async live(sessions) {
      return Promise.all(sessions.map((s) => isLive(sessionData(s))));
    },
    keys: engines.keys,
    async close() {},
  };

  /** Fingerprint matches, told apart by whether the caller may read what matched. */
  async function holdsFor(
    data: SessionData,
    candidates: readonly string[],
    info: RequestInfo,
    within?: (path: string) => boolean,
  ): Promise<HoldsAnswer> {
    const paths = new Set<string>();
    for (const c of candidates) for (const p of engines.keys.match(c)) if (!within || within(p)) paths.add(p);
    if (paths.size === 0) return { found: false };
    const reader = await readerOf(data);
    const outside: string[] = [];
    for (const p of paths) {
      const [project, env, name] = p.split('/') as [string, string, string];
      const resource: Resource = {
        type: 'Secret',
        id: p,
        attrs: { project, environment: env, name },
      };
      if (!reader || !(await core.allows(reader, 'secret.read', resource, info).catch(() => false)))
        outside.push(p);
    }
    if (outside.length === 0) return { found: true };
    // a value the caller cannot read reached it: a compromise signal, answered once (decision 0010)
    await core.audit({
      type: 'response',
      request_id: info.request_id,
      ...(info.trace_id ? { trace_id: info.trace_id } : {}),
      operation: 'gateway.compromise',
      action: 'gateway.invoke',
      resource: `Secret::${outside[0]}`,
      actor: actorOf(data.identity),
      client_address: info.client_address,
      decision: { allowed: false, reason: 'vault_value_outside_scope' },
      request: { secrets: outside.slice(0, 16), caller: data.caller.kind },
      status: 'error',
      error_code: 'credential_detected',
    });
    await revokeData(data, 'vault_value_outside_scope').catch(() => {});
    return { found: true, compromised: true };
  }

  async function readerOf(data: SessionData): Promise<Identity | undefined> {
    if (data.keyId === undefined) return data.identity;
    const key = await engines.virtualKeys.get(data.keyId);
    return key ? engines.virtualKeys.reader(key) : undefined;
  }
}

/** The audit actor of an identity. */
export function actorOf(identity: Identity) {
  return {
    accessor: identity.accessor,
    display_name: identity.display_name,
    type: identity.owner.type,
    id: identity.owner.id,
  };
}
