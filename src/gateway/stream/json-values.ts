/** JSON values of parsed events, as the relay reads and changes them in place. */
export type Json = Record<string, unknown>;

export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Sets an own property (`__proto__` too, which plain assignment would not). */
export const put = (o: Json, k: string, v: unknown): void => {
  if (k === '__proto__')
    Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
};

/** A string of an event the relay leaves to the text streams (the walk skips it). */
export interface Skip {
  obj: Json;
  key: string;
}
