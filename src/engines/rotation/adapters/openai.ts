import { StrongroomError } from '../../../errors/errors.ts';
import {
  type AdapterSettings,
  checkBaseUrl,
  providerCall,
  type RotationAdapter,
  requireString,
} from './http.ts';

const OPENAI_BASE_URL = 'https://api.openai.com/v1';

/**
 * OpenAI: each rotation creates a project service account, whose creation
 * answers its API key once (`api_key.value`), and revokes the previous one by
 * deleting its service account (which deletes its keys). Authenticated with an
 * organisation admin key (`sk-admin-…`).
 *
 *   POST   /organization/projects/{project_id}/service_accounts       {name}
 *   DELETE /organization/projects/{project_id}/service_accounts/{id}
 *
 * https://platform.openai.com/docs/api-reference/project-service-accounts
 * Options: project_id (proj_…), admin_secret (vault path of the admin key).
 */
export function createOpenAiAdapter(settings: AdapterSettings = {}): RotationAdapter {
  const base = checkBaseUrl(settings.base_url ?? OPENAI_BASE_URL, 'openai adapter');
  const project = (options: Readonly<Record<string, string>>) => encodeURIComponent(options.project_id!);
  return {
    id: 'openai',
    provider: 'openai',
    checkOptions(options) {
      if (!options.project_id) return 'the openai adapter needs rotation.options.project_id (proj_…)';
      if (!/^[A-Za-z0-9_-]{1,100}$/.test(options.project_id))
        return 'rotation.options.project_id must be an OpenAI project id like proj_abc123';
      return undefined;
    },
    async create(ctx) {
      const { json } = await providerCall({
        provider: 'OpenAI',
        base,
        method: 'POST',
        path: `/organization/projects/${project(ctx.options)}/service_accounts`,
        adminKey: ctx.adminKey,
        body: { name: ctx.label },
        settings,
      });
      const r = json as { id?: unknown; api_key?: { value?: unknown } | null } | undefined;
      const id = requireString('OpenAI', r?.id, 'a service account id');
      if (!r?.api_key) {
        throw new StrongroomError(
          'provider_error',
          `OpenAI created service account ${id} without an API key; delete it in the OpenAI dashboard`,
        );
      }
      return { id, value: requireString('OpenAI', r.api_key.value, 'an API key') };
    },
    async findByLabel(ctx) {
      // GET …/service_accounts?limit=100&after=<last id>: {data: [{id, name, …}], has_more, last_id}
      const ids: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < 100; page++) {
        const { json } = await providerCall({
          provider: 'OpenAI',
          base,
          method: 'GET',
          path: `/organization/projects/${project(ctx.options)}/service_accounts?limit=100${after ? `&after=${encodeURIComponent(after)}` : ''}`,
          adminKey: ctx.adminKey,
          settings,
        });
        const r = json as
          | { data?: { id?: unknown; name?: unknown }[]; has_more?: unknown; last_id?: unknown }
          | undefined;
        for (const a of r?.data ?? []) if (a.name === ctx.label && typeof a.id === 'string') ids.push(a.id);
        if (r?.has_more !== true || typeof r.last_id !== 'string') break;
        after = r.last_id;
      }
      return ids;
    },
    async revoke(ctx, id) {
      await providerCall({
        provider: 'OpenAI',
        base,
        method: 'DELETE',
        path: `/organization/projects/${project(ctx.options)}/service_accounts/${encodeURIComponent(id)}`,
        adminKey: ctx.adminKey,
        settings,
        // already deleted (by hand, or by an earlier attempt whose answer was lost)
        accept: [404],
      });
    },
  };
}
