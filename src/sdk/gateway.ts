import type * as api from '../api/gateway.ts';
import type { KeyCreateRequest, KeyUpdateRequest } from '../api/gateway.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

export type {
  BudgetLimits,
  KeyCreateRequest,
  KeyScope,
  KeyUpdateRequest,
  VirtualKey,
} from '../api/gateway.ts';

const seg = (s: string) => encodeURIComponent(s);

/**
 * Typed calls for the AI gateway's virtual keys (docs/gateway-keys.md), built
 * on a client's low-level `request`.
 *
 * @example
 * const gw = gatewayClient(sr.request);
 * const { virtual_key } = await gw.createKey({
 *   name: 'chatbot', scope: { providers: ['openai'], models: ['gpt-4o*'] },
 *   limits: { requests_per_minute: 60, spend: { usd: 5, period: 'day' } }, ttl: '8h',
 * });
 */
export function gatewayClient(call: Call) {
  return {
    /**
     * Mints a key; the `srv_…` string is in this response only. The key ends with the calling token
     * (expires no later than it, dies when it is revoked) unless `orphan: true` (needs Cedar action
     * `gateway.key.orphan`); a TTL cut to the token's expiry shows in `ttl` and `warnings`.
     */
    createKey: (req: KeyCreateRequest) =>
      call<Out<typeof api.GatewayKeyCreate>>('POST', '/v1/gateway/keys', req),
    /** Keys you may see (yours, or all with gateway.key.read on System::"gateway-keys/all"); active ones unless `includeInactive`. */
    listKeys: (options: { includeInactive?: boolean } = {}) =>
      call<Out<typeof api.GatewayKeyList>>(
        'GET',
        `/v1/gateway/keys${options.includeInactive ? '?include_inactive=true' : ''}`,
      ),
    /** A key's metadata (never its string). */
    readKey: (id: string) => call<Out<typeof api.GatewayKeyRead>>('GET', `/v1/gateway/keys/${seg(id)}`),
    /** Narrows a key: scope, limits, a shorter lifetime, a SPIFFE ID binding. */
    updateKey: (id: string, req: KeyUpdateRequest) =>
      call<Out<typeof api.GatewayKeyUpdate>>('PUT', `/v1/gateway/keys/${seg(id)}`, req),
    /** Revokes a key: the gateway refuses it from the next request on. */
    revokeKey: (id: string) =>
      call<Out<typeof api.GatewayKeyRevoke>>('DELETE', `/v1/gateway/keys/${seg(id)}`),
  };
}

export type GatewayClient = ReturnType<typeof gatewayClient>;
