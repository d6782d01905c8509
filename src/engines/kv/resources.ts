import type { BarrierReader } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import type { RequestInfo, Resource } from '../../contract/operation.ts';
import { checkSecretName, checkSlug } from './names.ts';
import {
  defaultProduction,
  type EnvAddress,
  type ProjectRecord,
  type SecretAddress,
  type SecretRecord,
} from './records.ts';

/** The policy resources of the kv engine's operations, and what policies learn about them. */

export function secretResource(a: SecretAddress): Resource {
  return {
    type: 'Secret',
    id: `${a.project}/${a.env}/${a.name}`,
    attrs: { project: a.project, environment: a.env, name: a.name },
  };
}

export function envResource(a: EnvAddress): Resource {
  return {
    type: 'Environment',
    id: `${a.project}/${a.env}`,
    attrs: { project: a.project, environment: a.env },
  };
}

/**
 * A secret as bulk import and export describe it to policy: by its provider (the one it will have
 * after an import), with no tags.
 */
export function bulkSecretResource(a: EnvAddress, name: string, provider: string | null): Resource {
  return {
    type: 'Secret',
    id: `${a.project}/${a.env}/${name}`,
    attrs: { project: a.project, environment: a.env, name, provider: provider ?? '', tags: [] },
  };
}

export function projectResource(project: string): Resource {
  return { type: 'Project', id: project, attrs: { project } };
}

/** Policy-visible attributes of a secret, from its metadata. */
export function secretAttrs(r: Readonly<SecretRecord>): { provider: string; tags: string[] } {
  return { provider: r.provider ?? '', tags: [...(r.tags ?? [])] };
}

/**
 * Adds what policies need to know about a resource: whether its environment
 * is production, and a secret's provider and tags. Names are checked here,
 * before authorization, so a malformed name is a 400 for everyone.
 */
export function describer(store: BarrierReader): (r: Resource) => Promise<Resource> {
  return async function describe(r: Resource): Promise<Resource> {
    if (r.type !== 'Secret' && r.type !== 'Environment') {
      if (r.type === 'Project') checkSlug('project', r.id);
      return r;
    }
    const a = r.attrs as { project: string; environment: string; name?: string; production?: boolean };
    checkSlug('project', a.project);
    checkSlug('environment', a.environment);
    if (r.type === 'Secret') checkSecretName(a.name!);
    const env = (await store.getJson<ProjectRecord>(`projects/${a.project}`))?.environments[a.environment];
    const production = a.production ?? env?.production ?? defaultProduction(a.environment);
    if (r.type === 'Environment') return { ...r, attrs: { ...a, production } };
    const meta = await store.getJson<SecretRecord>(`meta/${a.project}/${a.environment}/${a.name}`);
    return {
      ...r,
      attrs: {
        ...a,
        production,
        ...(meta ? secretAttrs(meta) : { provider: '', tags: [] }),
      },
    };
  };
}

/** Whether policy lets `identity` do `action` on `resource` (the core's decision, cached). */
export type Allows = (
  identity: Identity,
  action: string,
  resource: Resource,
  request: RequestInfo,
) => Promise<boolean>;
