import type { Resource } from '../../contract/resource.ts';

/** Adds what policies need to know about a resource of one type (production flag, provider, tags). */
export type Describer = (resource: Resource) => Promise<Resource>;

/**
 * The pipeline's describe step: each engine describes the resource types it
 * owns (the secrets engine: projects, environments, secrets); a resource of a
 * type no engine describes is authorized as the operation named it.
 */
export function describeStep(describers: ReadonlyMap<Resource['type'], Describer>): Describer {
  return async (resource) => {
    const describe = describers.get(resource.type);
    return describe ? describe(resource) : resource;
  };
}
