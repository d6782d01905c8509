import type { Static, TSchema } from 'typebox';
import type { OpSpec } from '../contract/operation.ts';

/**
 * Declares an operation of the wire contract: `op<Input>()(name, ResponseSchema)`.
 * The input type is given (it joins path, query and body, as the route builds
 * it); the output type is the response schema's. Without a response schema the
 * body is serialized as it comes and documented as any JSON.
 */
export function op<I = Record<string, never>>() {
  function spec<R extends TSchema>(name: string, response: R): OpSpec<I, Static<R>>;
  function spec(name: string): OpSpec<I, unknown>;
  function spec(name: string, response?: TSchema): OpSpec<I, unknown> {
    return Object.freeze(response ? { name, response } : { name });
  }
  return spec;
}
