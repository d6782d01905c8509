import * as api from '../../api/v1.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { implement } from '../../contract/operation.ts';
import { scopeAllows } from '../../contract/scope.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { checkSlug } from './names.ts';
import { dec, defaultProduction, enc, type ProjectRecord } from './records.ts';
import { envResource, projectResource } from './resources.ts';
import { project } from './secret-store.ts';

/** Projects and their environments: `project.create`, `.list`, `.read` and `environment.create`. */
export function projectOperations(store: BarrierStore, clock: Clock) {
  const iso = () => new Date(clock.now()).toISOString();
  return {
    createProject: implement(api.ProjectCreate, {
      action: 'project.create',
      auth: 'token',
      resource: (i) => projectResource(i.name),
      async handle(_ctx, i) {
        checkSlug('project', i.name);
        const envs = [...new Set(i.environments ?? ['dev', 'staging', 'prod'])];
        for (const e of envs) checkSlug('environment', e);
        return store.transaction(async (tx) => {
          if (await tx.get(`projects/${i.name}`)) {
            throw new StrongroomError('already_exists', `project ${JSON.stringify(i.name)} already exists`);
          }
          const now = iso();
          const rec: ProjectRecord = {
            name: i.name,
            created_at: now,
            environments: Object.fromEntries(
              envs.map((e) => [e, { created_at: now, production: defaultProduction(e) }]),
            ),
          };
          await tx.put(`projects/${i.name}`, enc(rec));
          return { name: rec.name, created_at: rec.created_at, environments: envs };
        });
      },
    }),

    listProjects: implement(api.ProjectList, {
      action: 'project.list',
      auth: 'token',
      // a listing filtered to the caller's scope, so scoped tokens may ask for it
      resource: () => ({ type: 'System', id: 'projects', attrs: { filtered_by_scope: true } }),
      async handle(ctx) {
        const projects = [];
        const scope = ctx.identity?.scope ?? null;
        for (const path of await store.list('projects/')) {
          const raw = await store.get(path);
          if (!raw) continue;
          const p = dec<ProjectRecord>(raw);
          if (!scopeAllows(scope, projectResource(p.name))) continue;
          projects.push({
            name: p.name,
            created_at: p.created_at,
            environments: Object.keys(p.environments).sort(),
          });
        }
        return { projects };
      },
    }),

    getProject: implement(api.ProjectRead, {
      action: 'project.read',
      auth: 'token',
      resource: (i) => projectResource(i.project),
      async handle(_ctx, i) {
        checkSlug('project', i.project);
        const p = await project(store, i.project);
        return { name: p.name, created_at: p.created_at, environments: Object.keys(p.environments).sort() };
      },
    }),

    createEnvironment: implement(api.EnvironmentCreate, {
      action: 'environment.create',
      auth: 'token',
      // the requested production flag is part of the resource, so a policy can keep
      // someone from creating a production environment under another name
      resource: (i) => {
        const r = envResource({ project: i.project, env: i.name });
        // a production-looking name is production for authorization even if created with production: false
        return {
          ...r,
          attrs: { ...r.attrs, production: i.production === true || defaultProduction(i.name) },
        };
      },
      async handle(_ctx, i) {
        checkSlug('project', i.project);
        checkSlug('environment', i.name);
        return store.transaction(async (tx) => {
          const p = await project(tx, i.project);
          if (Object.hasOwn(p.environments, i.name)) {
            throw new StrongroomError(
              'already_exists',
              `environment ${JSON.stringify(i.name)} already exists in ${i.project}`,
            );
          }
          const production = i.production ?? defaultProduction(i.name);
          p.environments[i.name] = { created_at: iso(), production };
          await tx.put(`projects/${i.project}`, enc(p));
          return {
            project: i.project,
            name: i.name,
            production,
            created_at: p.environments[i.name]!.created_at,
          };
        });
      },
    }),
  };
}
