import type { RequestInfo, Resource } from '../contract/operation.ts';
import { isStrongroomError } from '../errors/errors.ts';
import type { CallInfo } from './types.ts';
import type { Decision, GatewayVault, Session } from './vault-port.ts';

/**
 * `gateway.invoke` on each resource, as the vault decides it (a key's own scope, a token's
 * providers, then Cedar): one decision per resource, in order. A vault that cannot answer is a deny
 * for each (sealed, unreachable and a credential gone stale are told apart: they are thrown).
 */
export async function authorizeCall(
  vault: Pick<GatewayVault, 'authorize'>,
  who: Session,
  resources: readonly Resource[],
  info: RequestInfo,
  call: CallInfo,
): Promise<Decision[]> {
  if (!resources.length) return [];
  try {
    return await vault.authorize(who, resources, {
      client_address: info.client_address,
      classification: call.classification,
      estimated_tokens: call.estimated_input_tokens + call.max_output_tokens,
    });
  } catch (err) {
    // the vault could not answer: no decision is a deny (sealed and unreachable are told apart)
    if (
      isStrongroomError(err) &&
      (err.code === 'sealed' || err.code === 'vault_unavailable' || err.code === 'invalid_token')
    )
      throw err;
    return resources.map(() => ({ allowed: false, reason: 'policy evaluation failed' }));
  }
}
