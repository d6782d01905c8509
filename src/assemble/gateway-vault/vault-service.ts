import { type KeyObject, randomBytes } from 'node:crypto';
import type { VaultSettleRequest } from '../../api/gateway.ts';
import * as api from '../../api/gateway.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { loadOrCreateKey } from '../../barrier/stored-keys.ts';
import type { Identity } from '../../contract/identity.ts';
import type { VaultModule } from '../../contract/module.ts';
import {
  type AnyOperation,
  implement,
  type Operation,
  type OperationContext,
  type OpSpec,
  type Resource,
} from '../../contract/operation.ts';
import { scopeAllows } from '../../contract/scope.ts';
import { open, seal } from '../../crypto/aead.ts';
import type { SecretsPort } from '../../engines/ports.ts';
import { isStrongroomError, StrongroomError } from '../../errors/errors.ts';
import type { Reservation } from '../../gateway/types.ts';
import type { Session } from '../../gateway/vault-port.ts';
import {
  actorOf,
  type LocalEngines,
  type LocalVault,
  localVault,
  SESSION_TTL_MS,
  type SessionData,
  sessionData,
  sessionOf,
  type VaultSide,
} from './local-vault.ts';
import { createProviderKeys } from './provider-keys.ts';

/**
 * The vault's side of a remote gateway (docs/gateway-remote.md): the
 * GatewayVault port served as operations, so a gateway in another process
 * (another machine) makes exactly the decisions an in-process one makes, on
 * this vault's tokens, virtual keys, policies, budgets and audit log. The
 * caller must be a workload (its X.509-SVID over mTLS, or a JWT-SVID) holding
 * the `gateway` role; provider keys are read with the ordinary `secret.read`,
 * which that role grants within the registration's scope.
 *
 * Least privilege (issue 12 item 13): the gateway never describes its caller.
 * `authenticate` derives the caller from the credential the gateway forwards
 * and returns the session sealed (AES-256-GCM under a key kept in the barrier,
 * bound to the gateway's SPIFFE ID, expiring): every later question —
 * authorize, holds, admit, revoke, live — is answered for the session inside
 * the ticket, so a gateway can act only on callers that presented their
 * credential to it. Value matching only counts secrets within the gateway's
 * registration scope (what it may read anyway), and revocations and
 * compromise signals are audited here, with the gateway's ID.
 *
 * The operations are audited only when refused (Operation.audit): the record
 * of a model call is the entries the gateway appends through
 * `gateway.vault.admit` and `gateway.vault.audit`, stamped here with the
 * gateway's SPIFFE ID and the session's actor.
 */
const RESOURCE: Resource = { type: 'System', id: 'gateway' };
/** A reservation the gateway never settled (it crashed, say) is forgotten after this long: what it took stays taken. */
const RESERVATION_TTL_MS = 15 * 60_000;
const TICKET_KEY_PATH = 'ticket-key';
const TICKET_PREFIX = 'st1.';
/** A session this young needs no liveness check (it was derived from a live credential). */
const FRESH_MS = 1_000;

type ServiceEngines = Omit<LocalEngines, 'keys'> & { exclusiveStorage: boolean };

/** The vault's side of gateways running elsewhere, as a module: it serves them the virtual keys and workloads. */
export function gatewayVaultModule(
  engines: () => ServiceEngines,
): VaultModule<VaultSide & SecretsPort, BarrierStore> {
  return {
    name: 'gateway-vault',
    needs: ['gateway-keys', 'identity', 'secrets'],
    // the ticket key, and claims under once/
    mount: 'sys/gateway-service/',
    operations: (core, store) => gatewayVaultService(core, store, engines),
  };
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the vault side of the remote gateway port, an operation each over one ticket key; to move to an engine with vault-port.ts (the debt list of docs/module-map.json)
function gatewayVaultService(
  core: VaultSide & SecretsPort,
  keyStore: BarrierStore,
  engines: () => ServiceEngines,
): AnyOperation[] {
  let port: LocalVault | undefined;
  const vault = (): LocalVault => {
    if (!port) {
      const e = engines();
      // the fingerprints of vault values are made on first use, by a vault that serves a gateway
      const keys = createProviderKeys(core, { exclusive: e.exclusiveStorage });
      port = localVault(core, { ...e, keys });
    }
    return port;
  };
  const reservations = new Map<string, { r: Reservation; timer: NodeJS.Timeout }>();

  // ---------------------------------------------------------------- sealed sessions

  let ticketKey: KeyObject | undefined;
  async function key(): Promise<KeyObject> {
    if (core.barrier.sealed) {
      ticketKey = undefined;
      throw new StrongroomError('sealed', 'Strongroom is sealed');
    }
    ticketKey ??= await loadOrCreateKey(keyStore, TICKET_KEY_PATH);
    return ticketKey;
  }
  /**
   * Things that may be used once — a session's admission (a session serves one call), a reservation
   * ticket's settlement — claimed in the barrier, so every vault server sharing the storage sees a
   * claim: a replayed ticket admits or settles nothing. Claims are kept by the hour they were made
   * and dropped once nothing they guard can still be used.
   */
  const onceStore = keyStore.view('once/');
  const ONCE_HOUR_MS = 3600_000;
  let prunedBelow = 0;
  /** Exclusive storage (one vault process owns it): claims live in its memory, no write per call. */
  const claimedHere = new Map<number, Set<string>>();
  async function claimOnce(what: string, nonce: string, issuedAt: number): Promise<boolean> {
    const hour = Math.floor(issuedAt / ONCE_HOUR_MS);
    if (engines().exclusiveStorage) {
      let set = claimedHere.get(hour);
      if (!set) {
        set = new Set();
        claimedHere.set(hour, set);
        // the hours whose sessions have all ended are forgotten
        const below = Math.floor((core.clock.now() - SESSION_TTL_MS) / ONCE_HOUR_MS) - 1;
        for (const h of claimedHere.keys()) if (h < below) claimedHere.delete(h);
      }
      const id = `${what}-${nonce}`;
      if (set.has(id)) return false;
      set.add(id);
      return true;
    }
    const path = `${hour}/${what}-${nonce}`;
    const fresh = await onceStore.transaction(async (tx) => {
      if (await tx.get(path)) return false;
      await tx.put(path, Buffer.from('1'));
      return true;
    });
    void pruneOnce().catch(() => {});
    return fresh;
  }
  /** Drops the claims of hours whose tickets have all ended (sessions live 2 hours). */
  async function pruneOnce(): Promise<void> {
    const below = Math.floor((core.clock.now() - SESSION_TTL_MS) / ONCE_HOUR_MS) - 1;
    if (below <= prunedBelow) return;
    const start = prunedBelow === 0 ? below - 48 : prunedBelow;
    prunedBelow = below;
    for (let hour = Math.max(0, start); hour < below; hour++) {
      const paths = await onceStore.list(`${hour}/`);
      if (paths.length === 0) continue;
      await onceStore.transaction(async (tx) => {
        for (const p of paths) await tx.delete(p);
      });
    }
  }

  /** Sealed things are bound to what they are and to the gateway they were made for. */
  const aad = (what: 'session' | 'reservation', gateway: Identity) =>
    Buffer.from(`strongroom-gateway-${what}\u0000${gateway.owner.id}`);

  async function sealSession(s: Session, gateway: Identity): Promise<string> {
    const plain = Buffer.from(JSON.stringify(sessionData(s)));
    return TICKET_PREFIX + seal(await key(), plain, aad('session', gateway)).toString('base64url');
  }

  /** The session in a ticket this vault sealed for this gateway, still in its lifetime; anything else is refused. */
  async function unseal(ticket: string, gateway: Identity): Promise<Session> {
    const refused = () =>
      new StrongroomError('invalid_value', 'the session ticket is not one this vault issued to this gateway');
    if (!ticket.startsWith(TICKET_PREFIX)) throw refused();
    const plain = open(
      await key(),
      Buffer.from(ticket.slice(TICKET_PREFIX.length), 'base64url'),
      aad('session', gateway),
    );
    if (!plain) throw refused();
    const data = JSON.parse(plain.toString('utf8')) as SessionData;
    if (!(core.clock.now() < data.until)) {
      throw new StrongroomError(
        'invalid_token',
        'the caller session has ended: authenticate the caller again',
      );
    }
    return sessionOf(data);
  }

  /**
   * A session for a question that acts on its caller (authorize, holds, admit): its credential must
   * still be valid now, not only when it was sealed (a ticket would outlive a revocation otherwise).
   */
  async function unsealLive(ticket: string, gateway: Identity): Promise<Session> {
    const session = await unseal(ticket, gateway);
    // a session sealed within the last second was derived from a live credential then (the call it
    // serves is on its way): asked again only after that, which is when a replay or a revocation counts
    if (core.clock.now() - (sessionData(session).until - SESSION_TTL_MS) < FRESH_MS) return session;
    const [live] = await vault().live([session]);
    if (!live) {
      throw new StrongroomError(
        'invalid_token',
        "the caller's credential was revoked or expired: authenticate the caller again",
      );
    }
    return session;
  }

  /**
   * Answers for the caller in `ticket` while its credential is valid: a caller whose credential
   * ended is the caller's outcome (a 200 with an error); a ticket not ours is the gateway's fault.
   */
  async function forLiveCaller<T>(
    ticket: string,
    gateway: Identity,
    answer: (session: Session) => Promise<T>,
  ): Promise<T | ReturnType<typeof outcome>> {
    let session: Session;
    try {
      session = await unsealLive(ticket, gateway);
    } catch (err) {
      if (isStrongroomError(err, 'invalid_token')) return outcome(err);
      throw err;
    }
    return answer(session);
  }

  /** The gateway calling: a workload (SVID), never a token or a person. */
  const gatewayOf = (ctx: OperationContext): Identity => {
    const id = ctx.identity;
    if (id?.kind !== 'workload') {
      throw new StrongroomError(
        'permission_denied',
        'the gateway service is for gateway workloads: present the gateway X.509-SVID (or a JWT-SVID)',
      );
    }
    return id;
  };
  /** What the gateway's caller did wrong, told to the gateway in a 200 answer. */
  const outcome = (err: unknown) => {
    if (!isStrongroomError(err) || err.code === 'sealed' || err.code === 'internal') throw err;
    return {
      error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
    };
  };
  const op = <I, O>(
    spec: OpSpec<I, O>,
    handle: (ctx: OperationContext, input: I, gateway: Identity) => Promise<NoInfer<O>>,
  ): Operation<I, O> =>
    implement(spec, {
      action: 'gateway.vault',
      auth: 'token',
      audit: 'refusals',
      rateLimit: false,
      resource: () => RESOURCE,
      handle: (ctx, input) => handle(ctx, input, gatewayOf(ctx)),
    });

  const authenticate = op(api.GatewayVaultAuthenticate, async (ctx, i, gateway) => {
    try {
      const s = await vault().authenticate(
        {
          ...(i.credential === undefined ? {} : { credential: i.credential }),
          ...(i.peer_certificates ? { chain: i.peer_certificates.map((c) => Buffer.from(c, 'base64')) } : {}),
          ...(i.require_svid ? { requireSvid: true } : {}),
        },
        { request_id: ctx.request.request_id, client_address: i.client_address },
      );
      return { caller: s.caller, identity: s.identity, session: await sealSession(s, gateway) };
    } catch (err) {
      return outcome(err);
    }
  });

  const authorize = op(api.GatewayVaultAuthorize, (_ctx, i, gateway) =>
    forLiveCaller(i.session, gateway, async (session) => {
      const resources: Resource[] = i.resources.map((r) => ({
        type: 'Model',
        id: `${r.provider}/${r.model}`,
        attrs: { provider: r.provider, model: r.model, route: r.route },
      }));
      return { decisions: await vault().authorize(session, resources, i.context) };
    }),
  );

  const holds = op(api.GatewayVaultHolds, (ctx, i, gateway) =>
    forLiveCaller(i.session, gateway, async (session) => {
      // only values the gateway may read itself count: a gateway learns nothing about the rest of the vault
      const within = (path: string) => {
        const [project, environment, name] = path.split('/');
        return scopeAllows(gateway.scope, {
          type: 'Secret',
          id: path,
          attrs: { project, environment, name },
        });
      };
      const info = {
        request_id: i.request_id ?? ctx.request.request_id,
        ...(i.trace_id ? { trace_id: i.trace_id } : {}),
        client_address: i.client_address ?? '-',
      };
      const answer = await vault().holds(session, i.candidates, info, within);
      // every question a gateway asks about vault values is on record, with the caller it asked for
      await core.audit({
        type: 'response',
        request_id: info.request_id,
        ...(info.trace_id ? { trace_id: info.trace_id } : {}),
        operation: 'gateway.vault.holds',
        action: 'gateway.vault',
        resource: 'System::gateway',
        actor: actorOf(session.identity),
        client_address: info.client_address,
        decision: { allowed: true, reason: 'value check for a gateway' },
        request: {
          gateway: gateway.owner.id,
          candidates: i.candidates.length,
          found: answer.found,
          compromised: answer.compromised === true,
        },
        status: 'ok',
      });
      return { found: answer.found, ...(answer.compromised ? { compromised: true } : {}) };
    }),
  );

  async function hold(r: Reservation, gateway: Identity): Promise<string> {
    // on shared storage the reservation travels as its ticket, sealed like sessions: any vault server
    // sharing the storage opens it, and no gateway can make one up to refund or drain anyone's budget
    if (r.ticket) {
      // with its own nonce: settled once, whatever is sent back
      const plain = JSON.stringify({
        r: r.ticket,
        n: randomBytes(16).toString('base64url'),
        at: core.clock.now(),
      });
      const sealed = seal(await key(), Buffer.from(plain), aad('reservation', gateway));
      return `t.${sealed.toString('base64url')}`;
    }
    const id = randomBytes(18).toString('base64url');
    const timer = setTimeout(() => reservations.delete(id), RESERVATION_TTL_MS);
    timer.unref();
    reservations.set(id, { r, timer });
    return id;
  }

  const admit = op(api.GatewayVaultAdmit, async (_ctx, { session: ticket, reserve, ...record }, gateway) => {
    let r: Reservation | undefined;
    try {
      const session = await unsealLive(ticket, gateway);
      // a session serves one call: a ticket sent again (by a gateway replaying it) admits nothing
      const data = sessionData(session);
      if (!(await claimOnce('admit', data.nonce, data.until - SESSION_TTL_MS))) {
        throw new StrongroomError(
          'invalid_value',
          'this caller session was admitted already: a session serves one call, authenticate the caller again',
        );
      }
      r = await vault().admit(
        session,
        {
          ...record,
          type: 'request',
          action: 'gateway.invoke',
          request: { ...record.request, gateway: gateway.owner.id },
        },
        reserve
          ? {
              defaults: reserve.defaults,
              estimate: {
                tokens: reserve.estimate.tokens,
                costUsd: reserve.estimate.cost_usd,
                ...(reserve.estimate.unpriced ? { unpriced: true } : {}),
              },
            }
          : undefined,
      );
    } catch (err) {
      // about the caller (no room in a budget, a model it may not spend on, a revoked credential):
      // told in a 200 answer
      if (
        isStrongroomError(err, 'rate_limited') ||
        isStrongroomError(err, 'permission_denied') ||
        isStrongroomError(err, 'invalid_token')
      )
        return outcome(err);
      throw err;
    }
    return r ? { reservation: await hold(r, gateway) } : {};
  });

  async function settleHeld(i: VaultSettleRequest, gateway: Identity): Promise<boolean> {
    let r: Reservation | undefined;
    if (i.reservation.startsWith('t.')) {
      const budgets = engines().budgets;
      if (!budgets.resume) return false;
      const ticket = open(
        await key(),
        Buffer.from(i.reservation.slice(2), 'base64url'),
        aad('reservation', gateway),
      );
      // a ticket this vault did not seal for this gateway settles nothing, nor one settled already
      if (!ticket) return false;
      const { r: inner, n, at } = JSON.parse(ticket.toString('utf8')) as { r: string; n: string; at: number };
      if (!(await claimOnce('settle', n, at))) return false;
      r = budgets.resume(inner);
    } else {
      const held = reservations.get(i.reservation);
      // settling twice, or after the reservation was forgotten, changes nothing (settle and release are idempotent)
      if (!held) return false;
      reservations.delete(i.reservation);
      clearTimeout(held.timer);
      r = held.r;
    }
    if (i.usage) {
      await r.settle(
        { input_tokens: i.usage.input_tokens, output_tokens: i.usage.output_tokens },
        i.usage.cost_usd,
      );
    } else await r.release();
    return true;
  }

  const settle = op(api.GatewayVaultSettle, async (_ctx, i, gateway) => ({
    settled: await settleHeld(i, gateway),
  }));

  const audit = op(api.GatewayVaultAudit, async (_ctx, { settle: owed, session: ticket, ...i }, gateway) => {
    if (owed) await settleHeld(owed, gateway);
    // the record's actor is the session's (the vault's word), or nobody: never one the gateway names
    const session = ticket ? await unseal(ticket, gateway) : undefined;
    await vault().audit(
      {
        ...i,
        actor: null,
        type: 'response',
        action: 'gateway.invoke',
        // which gateway vouches for this record
        request: { ...i.request, gateway: gateway.owner.id },
      },
      session ? { session } : undefined,
    );
    return { recorded: true };
  });

  const revoke = op(api.GatewayVaultRevoke, async (_ctx, i, gateway) => {
    const session = await unseal(i.session, gateway);
    await vault().revoke(session, i.reason, gateway.owner.id);
    return { revoked: true };
  });

  const live = op(api.GatewayVaultLive, async (_ctx, i, gateway) => {
    const sessions = await Promise.all(i.sessions.map((t) => unseal(t, gateway).catch(() => undefined)));
    const known = sessions.filter((s): s is Session => s !== undefined);
    const answers = await vault().live(known);
    let k = 0;
    return { live: sessions.map((s) => (s === undefined ? false : answers[k++]!)) };
  });

  return [authenticate, authorize, holds, admit, settle, audit, revoke, live] as AnyOperation[];
}
