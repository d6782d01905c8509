import * as api from '../../api/v1.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { implement } from '../../contract/operation.ts';
import { scopeAllows } from '../../contract/scope.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { publicFields } from './fields.ts';
import { checkSlug } from './names.ts';
import { dec, type SecretRecord } from './records.ts';
import { envResource, secretAttrs, secretResource } from './resources.ts';
import { environment, readValue, secret } from './secret-store.ts';

/** Operations that read secrets: a value, an environment's listing, a secret's versions. */
export function secretReadOperations(store: BarrierStore) {
  return {
    readSecret: implement(api.SecretRead, {
      action: 'secret.read',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        const rec = await secret(store, i);
        const version = i.version ?? rec.current_version;
        const info = rec.versions.find((v) => v.version === version);
        if (!info) {
          throw new StrongroomError(
            'version_not_found',
            `${i.project}/${i.env}/${i.name} has no version ${version} (latest is ${rec.current_version})`,
          );
        }
        const value = await readValue(store, `${i.project}/${i.env}/${i.name}`, version);
        return {
          name: rec.name,
          value,
          version,
          current_version: rec.current_version,
          metadata: rec.metadata,
          ...publicFields(rec),
          created_at: info.created_at,
        };
      },
    }),

    listSecrets: implement(api.SecretList, {
      action: 'secret.list',
      auth: 'token',
      resource: envResource,
      async handle(ctx, i) {
        checkSlug('project', i.project);
        checkSlug('environment', i.env);
        await environment(store, i);
        const prefix = `meta/${i.project}/${i.env}/`;
        const secrets = [];
        const scope = ctx.identity?.scope ?? null;
        for (const path of await store.list(prefix)) {
          const raw = await store.get(path);
          if (!raw) continue;
          const r = dec<SecretRecord>(raw);
          // a scoped token sees only the names its scope reaches
          if (
            scope &&
            !scopeAllows(scope, {
              ...secretResource({ ...i, name: r.name }),
              attrs: { ...secretResource({ ...i, name: r.name }).attrs, ...secretAttrs(r) },
            })
          )
            continue;
          secrets.push({
            name: r.name,
            version: r.current_version,
            updated_at: r.updated_at,
            deleted: r.deleted_at !== null,
            provider: r.provider ?? null,
            tags: r.tags ?? [],
            expires_at: r.expires_at ?? null,
          });
        }
        return { project: i.project, env: i.env, secrets };
      },
    }),

    secretVersions: implement(api.SecretVersions, {
      action: 'secret.history',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        const rec = await secret(store, i, { allowDeleted: true });
        const path = `${i.project}/${i.env}/${i.name}`;
        const present = new Set(
          (await store.list(`data/${path}/`)).map((p) => Number(p.slice(p.lastIndexOf('/') + 1))),
        );
        return {
          name: rec.name,
          current_version: rec.current_version,
          deleted_at: rec.deleted_at,
          metadata: rec.metadata,
          ...publicFields(rec),
          versions: rec.versions.map((v) => ({ ...v, destroyed: !present.has(v.version) })),
        };
      },
    }),
  };
}
