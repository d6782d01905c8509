import { createHash, randomBytes } from 'node:crypto';
import { type FakeServerControls, startFakeServer } from './http-fake.ts';

/**
 * A fake of OpenRouter's key management (provisioning) API, written from the
 * published reference (openrouter.ai/docs/features/provisioning-api-keys):
 *
 *   POST   /api/v1/keys {name, limit?} -> 201 {data: {hash, name, label, disabled, limit, usage, created_at, ...}, key}
 *   DELETE /api/v1/keys/{hash}         -> {deleted: true}
 *
 * with `Authorization: Bearer <provisioning key>`; and, to check a key works,
 * GET /api/v1/key with `Authorization: Bearer <api key>` (401 for a dead key).
 */
export interface FakeOpenRouter extends FakeServerControls {
  /** Base URL to give the adapter, e.g. http://127.0.0.1:1234/api/v1 */
  url: string;
  provisioningKeys: Set<string>;
  isLive(key: string): boolean;
  /** hash -> {key, name, limit} */
  keys: Map<string, { key: string; name: string; limit: number | null }>;
}

export const openRouterKey = () => `sk-or-v1-${randomBytes(32).toString('hex')}`;

export async function startFakeOpenRouter(opts: { provisioningKey: string }): Promise<FakeOpenRouter> {
  const provisioningKeys = new Set([opts.provisioningKey]);
  const keys = new Map<string, { key: string; name: string; limit: number | null }>();
  const isLive = (key: string) => [...keys.values()].some((k) => k.key === key);
  const server = await startFakeServer(
    (req, res) => {
      if (req.method === 'GET' && req.path === '/api/v1/key') {
        const k = [...keys.values()].find((x) => x.key === req.bearer);
        if (k) res.json(200, { data: { label: k.name, usage: 0, limit: k.limit, is_free_tier: false } });
        else res.json(401, { error: { code: 401, message: 'No auth credentials found' } });
        return;
      }
      const m = /^\/api\/v1\/keys\/?([^/]*)$/.exec(req.path);
      if (!m) {
        res.json(404, { error: { code: 404, message: 'Not Found' } });
        return;
      }
      if (!req.bearer || !provisioningKeys.has(req.bearer)) {
        res.json(401, { error: { code: 401, message: `Invalid provisioning key ${req.bearer ?? ''}` } });
        return;
      }
      if (req.method === 'POST' && !m[1]) {
        const b = (req.body ?? {}) as { name?: unknown; limit?: unknown };
        if (typeof b.name !== 'string' || b.name === '') {
          res.json(400, { error: { code: 400, message: 'name is required' } });
          return;
        }
        const key = openRouterKey();
        const hash = createHash('sha256').update(key).digest('hex');
        const limit = typeof b.limit === 'number' ? b.limit : null;
        keys.set(hash, { key, name: b.name, limit });
        res.json(201, {
          data: {
            hash,
            name: b.name,
            label: `${key.slice(0, 12)}...${key.slice(-4)}`,
            disabled: false,
            limit,
            limit_remaining: limit,
            usage: 0,
            created_at: new Date().toISOString(),
            updated_at: null,
          },
          key,
        });
        return;
      }
      if (req.method === 'DELETE' && m[1]) {
        if (!keys.delete(m[1])) {
          res.json(404, { error: { code: 404, message: 'Key not found' } });
          return;
        }
        res.json(200, { deleted: true });
        return;
      }
      res.json(405, { error: { code: 405, message: 'Method not allowed' } });
    },
    (path) => path.startsWith('/api/v1/keys'),
  );
  return Object.assign(server, {
    url: `http://127.0.0.1:${server.port}/api/v1`,
    provisioningKeys,
    isLive,
    keys,
  });
}
