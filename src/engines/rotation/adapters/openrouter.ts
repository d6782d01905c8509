import { StrongroomError } from '../../../errors/errors.ts';
import {
  type AdapterSettings,
  checkBaseUrl,
  providerCall,
  type RotationAdapter,
  requireString,
} from './http.ts';

const OPENROUTER_BASE_URL = 'https://openrouter.ai/api/v1';

/**
 * OpenRouter: keys are created and deleted with a provisioning (management)
 * key; creation answers the key once (`key`) with its `data.hash`, the id used
 * to delete it.
 *
 *   POST   /keys          {name, limit?}  -> {data: {hash, ...}, key}
 *   DELETE /keys/{hash}                   -> {deleted: true}
 *
 * https://openrouter.ai/docs/features/provisioning-api-keys
 * Options: admin_secret (vault path of the provisioning key), limit (USD credit limit, optional).
 */
export function createOpenRouterAdapter(settings: AdapterSettings = {}): RotationAdapter {
  const base = checkBaseUrl(settings.base_url ?? OPENROUTER_BASE_URL, 'openrouter adapter');
  return {
    id: 'openrouter',
    provider: 'openrouter',
    checkOptions(options) {
      if (options.limit !== undefined && !/^\d{1,9}(\.\d{1,4})?$/.test(options.limit))
        return 'rotation.options.limit must be a credit limit in USD, like 50 or 12.5';
      return undefined;
    },
    async create(ctx) {
      const { json } = await providerCall({
        provider: 'OpenRouter',
        base,
        method: 'POST',
        path: '/keys',
        adminKey: ctx.adminKey,
        body: {
          name: ctx.label,
          ...(ctx.options.limit === undefined ? {} : { limit: Number(ctx.options.limit) }),
          // ISO 8601 in UTC: the provider ends the key itself even if Strongroom never gets to
          ...(ctx.expiresAt ? { expires_at: ctx.expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z') } : {}),
        },
        settings,
      });
      const r = json as { data?: { hash?: unknown }; key?: unknown } | undefined;
      const id = requireString('OpenRouter', r?.data?.hash, 'a key hash');
      if (typeof r?.key !== 'string' || r.key === '') {
        throw new StrongroomError(
          'provider_error',
          `OpenRouter created key ${id} without answering its value`,
        );
      }
      return { id, value: r.key };
    },
    async findByLabel(ctx) {
      // GET /keys?offset=N: the most recent 100 keys a page ({data: [{hash, name, …}]})
      const ids: string[] = [];
      for (let offset = 0; offset < 10_000; offset += 100) {
        const { json } = await providerCall({
          provider: 'OpenRouter',
          base,
          method: 'GET',
          path: `/keys?offset=${offset}`,
          adminKey: ctx.adminKey,
          settings,
        });
        const data = (json as { data?: { hash?: unknown; name?: unknown }[] } | undefined)?.data ?? [];
        for (const k of data) if (k.name === ctx.label && typeof k.hash === 'string') ids.push(k.hash);
        if (data.length < 100) break;
      }
      return ids;
    },
    async revoke(ctx, id) {
      await providerCall({
        provider: 'OpenRouter',
        base,
        method: 'DELETE',
        path: `/keys/${encodeURIComponent(id)}`,
        adminKey: ctx.adminKey,
        settings,
        accept: [404],
      });
    },
  };
}
