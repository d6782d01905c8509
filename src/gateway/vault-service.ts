import { randomBytes } from 'node:crypto';
import type {
  VaultAuditRequest,
  VaultAuthenticateRequest,
  VaultAuthorizeRequest,
  VaultHoldsRequest,
  VaultReserveRequest,
  VaultRevokeRequest,
  VaultSettleRequest,
} from '../api/gateway.ts';
import type { Core } from '../core/core.ts';
import type { AnyOperation, Identity, Operation, OperationContext, Resource } from '../core/types.ts';
import { isStrongroomError, StrongroomError } from '../errors/errors.ts';
import { createProviderKeys, type ProviderKeys } from './keys.ts';
import type { Reservation } from './types.ts';
import { type GatewayVault, type LocalEngines, localVault } from './vault-port.ts';

/**
 * The vault's side of a remote gateway (docs/gateway-remote.md): the
 * GatewayVault port served as operations, so a gateway in another process
 * (another machine) makes exactly the decisions an in-process one makes, on
 * this vault's tokens, virtual keys, policies, budgets and audit log. The
 * caller must be a workload (its X.509-SVID over mTLS, or a JWT-SVID) holding
 * the `gateway` role; provider keys are read with the ordinary `secret.read`,
 * which that role grants within the registration's scope.
 *
 * The operations are audited only when refused (Operation.audit): the record
 * of a model call is the one entry the gateway appends through
 * `gateway.vault.audit`, stamped here with the gateway's SPIFFE ID.
 */
const RESOURCE: Resource = { type: 'System', id: 'gateway' };
/** A reservation the gateway never settled (it crashed, say) is forgotten after this long: what it took stays taken. */
const RESERVATION_TTL_MS = 15 * 60_000;

type ServiceEngines = Omit<LocalEngines, 'keys'> & { exclusiveStorage: boolean };

export function gatewayVaultService(core: Core, engines: () => ServiceEngines): AnyOperation[] {
  let keys: ProviderKeys | undefined;
  let port: GatewayVault | undefined;
  const vault = (): GatewayVault => {
    if (!port) {
      const e = engines();
      // the fingerprints of vault values are made on first use, by a vault that serves a gateway
      keys = createProviderKeys(core, { exclusive: e.exclusiveStorage });
      port = localVault(core, { ...e, keys });
    }
    return port;
  };
  const reservations = new Map<string, { r: Reservation; timer: NodeJS.Timeout }>();

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
  const op = <I>(
    name: string,
    handle: (ctx: OperationContext, input: I, gateway: Identity) => Promise<unknown>,
  ): Operation<I, unknown> => ({
    name: `gateway.vault.${name}`,
    action: 'gateway.vault',
    auth: 'token',
    audit: 'refusals',
    rateLimit: false,
    resource: () => RESOURCE,
    handle: (ctx, input) => handle(ctx, input, gatewayOf(ctx)),
  });

  const authenticate = op<VaultAuthenticateRequest>('authenticate', async (ctx, i) => {
    let chain: Buffer[] | undefined;
    if (i.peer_certificates) chain = i.peer_certificates.map((c) => Buffer.from(c, 'base64'));
    try {
      const a = await vault().authenticate(
        { ...(i.credential === undefined ? {} : { credential: i.credential }), ...(chain ? { chain } : {}) },
        { request_id: ctx.request.request_id, client_address: i.client_address },
      );
      return {
        ...(a.svid ? { svid: a.svid } : {}),
        ...(a.credential
          ? {
              credential:
                a.credential.kind === 'virtual_key'
                  ? { kind: 'virtual_key', key: a.credential.key ?? null }
                  : a.credential,
            }
          : {}),
      };
    } catch (err) {
      return outcome(err);
    }
  });

  const authorize = op<VaultAuthorizeRequest>('authorize', async (_ctx, i) => {
    const resources: Resource[] = i.resources.map((r) => ({
      type: 'Model',
      id: `${r.provider}/${r.model}`,
      attrs: { provider: r.provider, model: r.model, route: r.route },
    }));
    return { decisions: await vault().authorize(i.identity as Identity, resources, i.context) };
  });

  const reserve = op<VaultReserveRequest>('reserve', async (_ctx, i) => {
    let r: Reservation;
    try {
      r = await vault().budgets.reserve(i.subjects, {
        tokens: i.estimate.tokens,
        costUsd: i.estimate.cost_usd,
      });
    } catch (err) {
      return outcome(err);
    }
    // on shared storage the reservation travels as its ticket: any vault server sharing it can settle it
    if (r.ticket) return { reservation: `t.${Buffer.from(r.ticket).toString('base64url')}` };
    const id = randomBytes(18).toString('base64url');
    const timer = setTimeout(() => reservations.delete(id), RESERVATION_TTL_MS);
    timer.unref();
    reservations.set(id, { r, timer });
    return { reservation: id };
  });

  async function settleHeld(i: VaultSettleRequest): Promise<boolean> {
    let r: Reservation | undefined;
    if (i.reservation.startsWith('t.')) {
      const budgets = vault().budgets;
      if (!budgets.resume) return false;
      r = budgets.resume(Buffer.from(i.reservation.slice(2), 'base64url').toString('utf8'));
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

  const settle = op<VaultSettleRequest>('settle', async (_ctx, i) => ({ settled: await settleHeld(i) }));

  const audit = op<VaultAuditRequest>('audit', async (_ctx, { settle: owed, ...i }, gateway) => {
    if (owed) await settleHeld(owed);
    await vault().audit({
      ...i,
      type: 'response',
      action: 'gateway.invoke',
      // which gateway vouches for this record
      request: { ...i.request, gateway: gateway.owner.id },
    });
    return { recorded: true };
  });

  const revoke = op<VaultRevokeRequest>('revoke', async (_ctx, i) => {
    await vault().revoke({ kind: i.kind, id: i.id, display_name: i.id });
    return { revoked: true };
  });

  const holds = op<VaultHoldsRequest>('holds', async (_ctx, i) => ({
    found: await vault().holdsAny(i.candidates),
  }));

  return [authenticate, authorize, reserve, settle, audit, revoke, holds] as AnyOperation[];
}
