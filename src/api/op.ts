import type { Static, TSchema } from 'typebox';
import type { OpSpec } from '../contract/operation.ts';

/**
 * Declares an operation of the wire contract: `op<Input>()(name, ResponseSchema)`.
 * The input type is given (it joins path, query and body, as the route builds
 * it); the output type is the response schema's. Without a response schema the
 * body is sent as it comes: for operations that do not answer JSON (a stream,
 * Prometheus text), whose output type is given as `op<Input, Output>()(name)`.
 */
export function op<I = Record<string, never>, O = unknown>() {
  function spec<R extends TSchema>(name: string, response: R): OpSpec<I, Static<R>>;
  /** An operation that does not answer JSON (a stream, text): `O` is what its handler returns. */
  function spec(name: string): OpSpec<I, O>;
  function spec(name: string, response?: TSchema): OpSpec<I, unknown> {
    return Object.freeze(response ? { name, response } : { name });
  }
  return spec;
}
