import type { GatewayConfig } from '../config/gateway.ts';
import { type AnomalyConfig, createAnomalyDetector } from './anomaly.ts';
import type { GatewayDeps } from './gateway.ts';
import type { GatewayIdentity } from './self-identity.ts';
import { createPromptFirewall, type FirewallConfig } from './stages/firewall.ts';
import { createOutputFilter, type OutputFilterConfig } from './stages/output-filter.ts';
import { type RemoteStage, remoteStage } from './stages/remote.ts';
import type { GatewayVault, Session } from './vault-port.ts';

/**
 * The gateway's parts from its configuration, the same whether the vault is
 * in this process or remote: the prompt firewall (asking the vault about
 * vault values by fingerprint), the output filter, the remote stages reached
 * with the gateway's SVID, and anomaly detection.
 */
export function gatewayParts(
  config: GatewayConfig,
  vault: GatewayVault,
  identity: GatewayIdentity | undefined,
): Omit<GatewayDeps, 'config' | 'logger'> {
  const anomaly = config.anomaly as (AnomalyConfig & { enabled?: boolean }) | undefined;
  return {
    vault,
    requestStages:
      config.firewall === false
        ? []
        : [
            createPromptFirewall((config.firewall ?? {}) as FirewallConfig, {
              holdsAny: (c, call) => {
                // the gateway always has the vault's session of its caller; without one there is no answer
                if (!call.session)
                  throw new TypeError('the firewall asked about vault values without a session');
                return vault.holds(call.session as Session, c, {
                  request_id: call.request_id,
                  trace_id: call.trace_id,
                  client_address: call.client_address,
                });
              },
            }),
          ],
    responseStages: [createOutputFilter((config.output_filter ?? {}) as OutputFilterConfig)],
    ...(identity ? { identity } : {}),
    ...(identity && config.remote_stages?.length
      ? {
          remoteStages: (): RemoteStage[] =>
            config.remote_stages!.map((r) =>
              remoteStage({ url: r.url, expectSpiffeId: r.spiffe_id, source: identity.source, name: r.name }),
            ),
        }
      : {}),
    ...(anomaly && anomaly.enabled !== false
      ? {
          anomaly: createAnomalyDetector(anomaly, { now: () => vault.now(), onAlert: () => {} }),
          ...(anomaly.webhook ? { anomalyWebhook: anomaly.webhook } : {}),
        }
      : {}),
  };
}
