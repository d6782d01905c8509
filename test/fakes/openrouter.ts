import { createHash, randomBytes } from 'node:crypto';
import { type FakeServerControls, startFakeServer } from './http-fake.ts';

/**
 * A fake of OpenRouter's key management (provisioning) API, written from the
 * published reference (openrouter.ai/docs/features/provisioning-api-keys):
 *
 *   POST   /api/v1/keys {name, limit?, expires_at?} -> 201 {data: {hash, name, label, disabled, limit, usage, created_at, expires_at, ...}, key}
 *   DELETE /api/v1/keys/{hash}         -> {deleted: true}
 *   GET    /api/v1/keys?offset=N       -> {data: [ ...the 100 most recent from N ]}
 *
 * `expires_at` must be ISO 8601 in UTC (a `Z` suffix; other zones are refused); a key past it is dead.
 *
 * with `Authorization: Bearer <provisioning key>`; and, to check a key works,
 * GET /api/v1/key with `Authorization: Bearer <api key>` (401 for a dead key).
 */
export interface FakeOpenRouter extends FakeServerControls {
  /** Base URL to give the adapter, e.g. http://127.0.0.1:1234/api/v1 */
  url: string;
  provisioningKeys: Set<string>;
  isLive(key: string): boolean;
  /** hash -> {key, name, limit, expires_at} */
  keys: Map<string, { key: string; name: string; limit: number | null; expires_at: string | null }>;
}

export const openRouterKey = () => `sk-or-v1-${randomBytes(32).toString('hex')}`;

export async function startFakeOpenRouter(opts: { provisioningKey: string }): Promise<FakeOpenRouter> {
  const provisioningKeys = new Set([opts.provisioningKey]);
  const keys = new Map<
    string,
    { key: string; name: string; limit: number | null; expires_at: string | null }
  >();
  const isLive = (key: string) =>
    [...keys.values()].some(
      (k) => k.key === key && (k.expires_at === null || Date.parse(k.expires_at) > Date.now()),
    );
  const server = await startFakeServer(
    (req, res) => {
      if (req.method === 'GET' && req.path === '/api/v1/key') {
        const k = [...keys.values()].find((x) => x.key === req.bearer);
        if (k && req.bearer && isLive(req.bearer))
          res.json(200, { data: { label: k.name, usage: 0, limit: k.limit, is_free_tier: false } });
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
      if (req.method === 'GET' && !m[1]) {
        const offset = Number(req.query.get('offset') ?? 0) || 0;
        const all = [...keys.entries()].reverse().slice(offset, offset + 100);
        res.json(200, {
          data: all.map(([hash, k]) => ({
            hash,
            name: k.name,
            limit: k.limit,
            expires_at: k.expires_at,
            disabled: false,
          })),
        });
        return;
      }
      if (req.method === 'POST' && !m[1]) {
        const b = (req.body ?? {}) as { name?: unknown; limit?: unknown; expires_at?: unknown };
        if (
          b.expires_at !== undefined &&
          (typeof b.expires_at !== 'string' ||
            !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(b.expires_at))
        ) {
          res.json(400, { error: { code: 400, message: 'expires_at must be an ISO 8601 timestamp in UTC' } });
          return;
        }
        if (typeof b.name !== 'string' || b.name === '') {
          res.json(400, { error: { code: 400, message: 'name is required' } });
          return;
        }
        const key = openRouterKey();
        const hash = createHash('sha256').update(key).digest('hex');
        const limit = typeof b.limit === 'number' ? b.limit : null;
        const expires_at = typeof b.expires_at === 'string' ? b.expires_at : null;
        keys.set(hash, { key, name: b.name, limit, expires_at });
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
            expires_at,
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
