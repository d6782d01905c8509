import type { FastifyReply } from 'fastify';
import type { GatewayVault, Session } from './vault-port.ts';

/**
 * The ways a forwarded call ends early (issue 12 items 9 and 10): the client goes away, the call
 * runs past max_call_duration, or the credential stops being valid (checked for every open call
 * every revocation_check_ms, in one question to the vault). Each aborts the upstream request.
 */

/** Why a call ended before its answer did; each is also the error code the client is told (its status from the one map). */
export type EndReason = 'client_closed' | 'call_timeout' | 'credential_revoked' | 'vault_unavailable';

/** What the client is told when its call ends early. */
export const END_MESSAGES: Record<EndReason, string> = {
  client_closed: 'the client went away',
  call_timeout: 'the call took longer than the gateway allows (max_call_duration)',
  credential_revoked: 'the credential was revoked or expired during the call',
  vault_unavailable: 'the gateway could not confirm the credential with its vault during the call',
};

/** How long open calls go on while the vault cannot confirm their credentials. */
const LIVE_GRACE_MS = 5_000;

export interface CallGuard {
  /** Aborts the upstream request when the call ends early. */
  readonly signal: AbortSignal;
  readonly reason: EndReason | undefined;
  done(): void;
}

export interface CallGuards {
  /** Starts guarding one forwarded call (until `done`). */
  guard(reply: FastifyReply, who: Session): CallGuard;
  /** Stops the clock of open calls. */
  close(): void;
}

/** An open call whose credential is checked while it runs. */
interface Watched {
  session: Session;
  end(reason: EndReason): void;
  lastOk: number;
  /** When max_call_duration ends it. */
  until: number;
}

export function createCallGuards(opts: {
  vault: Pick<GatewayVault, 'live'>;
  maxCallMs: number;
  revocationMs: number;
}): CallGuards {
  const { vault, maxCallMs, revocationMs } = opts;
  const open = new Set<Watched>();
  let monitor: NodeJS.Timeout | undefined;
  let checking = false;

  function watch(w: Watched) {
    open.add(w);
    if (monitor) return;
    monitor = setInterval(() => {
      if (open.size) {
        // one clock for every open call (no timer per call): max_call_duration to within a tick
        const now = Date.now();
        for (const w of open) if (now >= w.until) w.end('call_timeout');
        void checkOpen();
      } else {
        clearInterval(monitor);
        monitor = undefined;
      }
    }, revocationMs);
    monitor.unref();
  }

  /** Every open call's credential, in one question: a revoked one ends its call. */
  async function checkOpen() {
    if (checking) return;
    checking = true;
    const list = [...open];
    try {
      const live = await vault.live(list.map((w) => w.session));
      const now = Date.now();
      list.forEach((w, i) => {
        if (live[i]) w.lastOk = now;
        else w.end('credential_revoked');
      });
    } catch {
      // the vault cannot say: calls go on for a short grace, then end (fail closed)
      const now = Date.now();
      for (const w of list) if (now - w.lastOk > LIVE_GRACE_MS) w.end('vault_unavailable');
    } finally {
      checking = false;
    }
  }

  return {
    guard(reply, who) {
      const controller = new AbortController();
      let reason: EndReason | undefined;
      const end = (r: EndReason) => {
        if (reason) return;
        reason = r;
        controller.abort();
      };
      const onClose = () => {
        if (!reply.raw.writableFinished) end('client_closed');
      };
      reply.raw.on('close', onClose);
      const now = Date.now();
      const watched: Watched = { session: who, end, lastOk: now, until: now + maxCallMs };
      watch(watched);
      return {
        signal: controller.signal,
        get reason() {
          return reason;
        },
        done() {
          reply.raw.off('close', onClose);
          open.delete(watched);
        },
      };
    },
    close() {
      if (monitor) clearInterval(monitor);
    },
  };
}
