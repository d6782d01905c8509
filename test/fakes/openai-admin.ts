import { randomBytes } from 'node:crypto';
import { type FakeServerControls, startFakeServer } from './http-fake.ts';

/**
 * A fake of the OpenAI Admin API's project service accounts, written from the
 * published reference (platform.openai.com/docs/api-reference/project-service-accounts):
 *
 *   POST   /v1/organization/projects/{project_id}/service_accounts {name}
 *          -> {object: "organization.project.service_account", id, name, role, created_at,
 *              api_key: {object: "organization.project.service_account.api_key", value, name, created_at, id}}
 *   DELETE /v1/organization/projects/{project_id}/service_accounts/{id}
 *   GET    /v1/organization/projects/{project_id}/service_accounts?limit&after
 *          -> {object: 'list', data: [{object, id, name, role, created_at}], first_id, last_id, has_more}
 *          -> {object: "organization.project.service_account.deleted", id, deleted: true}
 *
 * both with `Authorization: Bearer <admin key>`; and, to check a key works,
 * GET /v1/models with `Authorization: Bearer <api key>` (401 for a dead key).
 */
export interface FakeOpenAi extends FakeServerControls {
  /** Base URL to give the adapter, e.g. http://127.0.0.1:1234/v1 */
  url: string;
  /** Admin keys the fake accepts. */
  adminKeys: Set<string>;
  /** Projects the fake knows. */
  projects: Set<string>;
  /** Whether an API key is live (its service account exists). */
  isLive(key: string): boolean;
  /** Service accounts of a project: id -> key. */
  accounts(project: string): Map<string, string>;
  /** Creates a service account directly (a key minted before Strongroom managed it). */
  seed(project: string, name?: string): { id: string; key: string };
  /** Service account names, by id. */
  names: Map<string, string>;
}

const id = (prefix: string) => `${prefix}_${randomBytes(8).toString('hex')}`;
export const openAiKey = () => `sk-svcacct-${randomBytes(36).toString('base64url')}`;
export const openAiAdminKey = () => `sk-admin-${randomBytes(36).toString('base64url')}`;

export async function startFakeOpenAi(opts: { adminKey: string; project: string }): Promise<FakeOpenAi> {
  const adminKeys = new Set([opts.adminKey]);
  const projects = new Set([opts.project]);
  const accounts = new Map<string, Map<string, string>>();
  const of = (p: string) => {
    let m = accounts.get(p);
    if (!m) {
      m = new Map();
      accounts.set(p, m);
    }
    return m;
  };
  const live = () => new Set([...accounts.values()].flatMap((m) => [...m.values()]));
  const names = new Map<string, string>();
  const seed = (project: string, name = 'seeded') => {
    const sa = { id: id('svc_acct'), key: openAiKey() };
    of(project).set(sa.id, sa.key);
    names.set(sa.id, name);
    return sa;
  };
  const SA = /^\/v1\/organization\/projects\/([^/]+)\/service_accounts(?:\/([^/]+))?$/;
  const server = await startFakeServer(
    (req, res) => {
      if (req.method === 'GET' && req.path === '/v1/models') {
        if (req.bearer && live().has(req.bearer)) {
          res.json(200, { object: 'list', data: [{ id: 'gpt-4o', object: 'model', owned_by: 'openai' }] });
        } else {
          res.json(401, {
            error: {
              message: 'Incorrect API key provided.',
              type: 'invalid_request_error',
              code: 'invalid_api_key',
            },
          });
        }
        return;
      }
      const m = SA.exec(req.path);
      if (!m) {
        res.json(404, { error: { message: 'Not found', type: 'invalid_request_error' } });
        return;
      }
      if (!req.bearer || !adminKeys.has(req.bearer)) {
        res.json(401, {
          error: {
            message: `Incorrect API key provided: ${req.bearer ?? ''}. You can find your API key at https://platform.openai.com/account/api-keys.`,
            type: 'invalid_request_error',
            code: 'invalid_api_key',
          },
        });
        return;
      }
      const project = decodeURIComponent(m[1]!);
      if (!projects.has(project)) {
        res.json(404, { error: { message: `No such project: ${project}`, type: 'invalid_request_error' } });
        return;
      }
      const created_at = Math.floor(Date.now() / 1000);
      if (req.method === 'POST' && !m[2]) {
        const name = (req.body as { name?: unknown } | undefined)?.name;
        if (typeof name !== 'string' || name === '') {
          res.json(400, { error: { message: 'name is required', type: 'invalid_request_error' } });
          return;
        }
        const sa = seed(project, name);
        res.json(200, {
          object: 'organization.project.service_account',
          id: sa.id,
          name,
          role: 'member',
          created_at,
          api_key: {
            object: 'organization.project.service_account.api_key',
            value: sa.key,
            name: 'Secret Key',
            created_at,
            id: id('key'),
          },
        });
        return;
      }
      if (req.method === 'GET' && !m[2]) {
        const limit = Math.min(100, Math.max(1, Number(req.query.get('limit') ?? 20) || 20));
        const all = [...of(project).keys()];
        const after = req.query.get('after');
        const start = after ? all.indexOf(after) + 1 : 0;
        const page = all.slice(start, start + limit);
        res.json(200, {
          object: 'list',
          data: page.map((sid) => ({
            object: 'organization.project.service_account',
            id: sid,
            name: names.get(sid) ?? '',
            role: 'member',
            created_at,
          })),
          first_id: page[0] ?? null,
          last_id: page.at(-1) ?? null,
          has_more: start + limit < all.length,
        });
        return;
      }
      if (req.method === 'DELETE' && m[2]) {
        const sid = decodeURIComponent(m[2]);
        if (!of(project).delete(sid)) {
          res.json(404, {
            error: { message: `No such service account: ${sid}`, type: 'invalid_request_error' },
          });
          return;
        }
        res.json(200, { object: 'organization.project.service_account.deleted', id: sid, deleted: true });
        return;
      }
      res.json(405, { error: { message: 'Method not allowed', type: 'invalid_request_error' } });
    },
    (path) => path.startsWith('/v1/organization/'),
  );
  return Object.assign(server, {
    url: `http://127.0.0.1:${server.port}/v1`,
    adminKeys,
    projects,
    isLive: (key: string) => live().has(key),
    accounts: of,
    seed,
    names,
  });
}
