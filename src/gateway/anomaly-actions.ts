import type { Logger } from 'pino';
import type { RequestInfo } from '../contract/operation.ts';
import type { ErrorCode } from '../errors/errors.ts';
import type { Counter } from '../lib/metrics.ts';
import type { AnomalyDetector } from './anomaly.ts';
import type { CallInfo } from './types.ts';
import type { GatewayVault, Session } from './vault-port.ts';

/**
 * What the gateway does about anomalies (anomaly.ts detects them): a caller revoked or narrowed by an
 * alert is refused here from then on; every alert is counted, logged, recorded and POSTed to the
 * webhook (JSON, no secrets and no prompt text).
 */
export interface AnomalyActions {
  /** A compromise signal from the vault (decision 0010): the caller is refused from now on, and alerted on. */
  compromised(call: CallInfo, who: Session): void;
  /** Whether an earlier alert, or one this call raises, refuses the call (and why). */
  check(
    call: CallInfo,
    who: Session,
    info: RequestInfo,
  ): Promise<{ code: ErrorCode; message: string } | undefined>;
}

export function createAnomalyActions(deps: {
  vault: Pick<GatewayVault, 'audit' | 'revoke'>;
  logger: Logger;
  counter: Counter;
  detector?: AnomalyDetector | undefined;
  webhook?: string | undefined;
}): AnomalyActions {
  const { vault, logger, counter: anomalies, detector, webhook } = deps;
  const blocked = new Set<string>();
  const narrowed = new Map<string, Set<string>>();

  const post = (body: Record<string, unknown>) => {
    if (!webhook) return;
    void fetch(webhook, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      redirect: 'error',
      signal: AbortSignal.timeout(5_000),
    }).catch(() => {});
  };

  function compromised(call: CallInfo, who: Session) {
    blocked.add(who.caller.id);
    anomalies.inc(['vault_value_outside_scope', 'revoke']);
    logger.warn(
      { anomaly: 'vault_value_outside_scope', action: 'revoke', caller: who.caller.id },
      'a prompt carried a vault value its caller may not read: the credential was revoked',
    );
    post({
      source: 'strongroom-gateway',
      kind: 'vault_value_outside_scope',
      action: 'revoke',
      caller: { kind: who.caller.kind, id: who.caller.id },
      request_id: call.request_id,
    });
  }

  async function check(
    call: CallInfo,
    who: Session,
    info: RequestInfo,
  ): Promise<{ code: ErrorCode; message: string } | undefined> {
    const id = who.caller.id;
    if (blocked.has(id))
      return { code: 'anomaly_revoked', message: 'this credential was revoked after an anomaly' };
    const narrow = narrowed.get(id);
    if (narrow && !narrow.has(call.model)) {
      return {
        code: 'anomaly_narrowed',
        message: `after an anomaly this caller may only use ${[...narrow].join(', ')}`,
      };
    }
    if (!detector) return undefined;
    const before = detector.modelsOf(id);
    const alerts = detector.observe(call);
    let result: { code: ErrorCode; message: string } | undefined;
    for (const a of alerts) {
      anomalies.inc([a.kind, a.action]);
      logger.warn({ anomaly: a.kind, action: a.action, caller: a.caller.display_name }, 'gateway anomaly');
      await vault.audit(
        {
          type: 'response',
          request_id: call.request_id,
          trace_id: call.trace_id,
          operation: 'gateway.anomaly',
          action: 'gateway.invoke',
          resource: `Model::${call.provider}/${call.model}`,
          actor: null,
          client_address: info.client_address,
          decision: { allowed: a.action === 'alert', reason: `anomaly:${a.kind}` },
          request: { kind: a.kind, action: a.action, detail: a.detail },
          status: a.action === 'alert' ? 'ok' : 'error',
        },
        { session: who },
      );
      post({ source: 'strongroom-gateway', ...a });
      if (a.action === 'revoke') {
        blocked.add(id);
        await vault.revoke(who, `anomaly:${a.kind}`).catch(() => {});
        result = { code: 'anomaly_revoked', message: `revoked after an anomaly (${a.kind})` };
      } else if (a.action === 'narrow' && !result) {
        narrowed.set(id, new Set(before));
        if (!before.includes(call.model)) {
          result = {
            code: 'anomaly_narrowed',
            message: `narrowed after an anomaly (${a.kind}) to the models used so far`,
          };
        }
      }
    }
    return result;
  }

  return { compromised, check };
}
