import * as api from '../../api/bulk.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { implement, type OperationContext } from '../../contract/operation.ts';
import { scopeAllows } from '../../contract/scope.ts';
import type { Clock } from '../../lib/clock.ts';
import { publicFields } from './fields.ts';
import { checkSlug } from './names.ts';
import type { EnvAddress, SecretRecord } from './records.ts';
import { type Allows, bulkSecretResource, envResource } from './resources.ts';
import { environment, readValue } from './secret-store.ts';

/** Bulk export of an environment's secrets, with or without values (docs/import-export.md). */
export function exportOperations(deps: { store: BarrierStore; clock: Clock; allows: Allows }) {
  const { store, clock, allows } = deps;

  async function exportEnv(
    ctx: OperationContext,
    i: EnvAddress,
    values: boolean,
  ): Promise<api.ExportResponse> {
    checkSlug('project', i.project);
    checkSlug('environment', i.env);
    await environment(store, i);
    const scope = ctx.identity?.scope ?? null;
    const secrets: api.ExportedSecret[] = [];
    for (const path of await store.list(`meta/${i.project}/${i.env}/`)) {
      const rec = await store.getJson<SecretRecord>(path);
      if (!rec || rec.deleted_at !== null) continue;
      // like the list, an export shows only what the token's scope reaches
      if (scope) {
        const r = bulkSecretResource(i, rec.name, rec.provider ?? null);
        if (!scopeAllows(scope, { ...r, attrs: { ...r.attrs, tags: [...(rec.tags ?? [])] } })) continue;
      }
      // with values, each secret must also be readable by policy (a forbid on one secret is not bypassed)
      if (
        values &&
        ctx.identity &&
        !(await allows(
          ctx.identity,
          'secret.read',
          bulkSecretResource(i, rec.name, rec.provider ?? null),
          ctx.request,
        ))
      ) {
        continue;
      }
      const f = publicFields(rec);
      secrets.push({
        name: rec.name,
        version: rec.current_version,
        updated_at: rec.updated_at,
        ...(values
          ? { value: await readValue(store, `${i.project}/${i.env}/${rec.name}`, rec.current_version) }
          : {}),
        provider: f.provider,
        owner: f.owner,
        expires_at: f.expires_at,
        rotation: f.rotation,
        tags: [...f.tags],
        metadata: { ...rec.metadata },
      });
    }
    secrets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return {
      project: i.project,
      env: i.env,
      values,
      exported_at: new Date(clock.now()).toISOString(),
      secrets,
    };
  }

  const exportNames = implement(api.SecretExportMetadata, {
    // names and fields only: what the list shows, so the list's permission suffices
    action: 'secret.list',
    auth: 'token',
    resource: envResource,
    handle: (ctx, i) => exportEnv(ctx, i, false),
  });

  const exportValues = implement(api.SecretExport, {
    action: 'secret.export',
    auth: 'token',
    resource: envResource,
    handle: (ctx, i) => exportEnv(ctx, i, true),
  });

  return { exportNames, exportValues };
}
