import { StrongroomError } from '../../errors/errors.ts';
import type { ResponseFilter } from '../types.ts';
import type { Json, Skip } from './json-values.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * What the parts of the stream relay (src/gateway/stream.ts) share: its refusal, its limits, how
 * clients read indexes and appended values, and the shapes of text streams, joins and slots.
 */

/** The relay will not pass an upstream event on (see src/gateway/stream.ts): the stream ends. */
export class StreamRefused extends StrongroomError {
  override name = 'StreamRefused';
  constructor(message: string) {
    super('upstream_error', message);
  }
}

export const refuse = (why: string): never => {
  throw new StreamRefused(why);
};

/** Fields SDKs overwrite rather than concatenate: checked whole, event by event. */
export const OVERWRITTEN = new Set(['role', 'id', 'type', 'name', 'signature']);
/** Text streams one answer may open (n = 128 choices with several tool calls each fit). */
export const MAX_STREAMS = 1024;
/** Choice and tool-call indexes above this are refused (OpenAI allows n <= 128). */
export const MAX_INDEX = 4096;
/**
 * How much of text clients join across streams is looked at around each junction: more than the
 * longest form of a key the redactor knows (hex of a 108-character key is 216) and its run rules'
 * reach (three candidates within 256 characters).
 */
export const JOIN_WINDOW = 256;
/** Strings replaced (closed to deltas), at most. */
export const MAX_CLOSED = 4 * MAX_STREAMS;

/**
 * How a client appends a field's value `v` to its string (`s += v`, under the SDK's condition):
 * `truthy` only a truthy value (chat `content`: `if (content)`), `nonnull` any but null and
 * undefined, `always` anything (a missing one as `undefined`), `string` strings only (fields no SDK
 * joins, which other clients concatenate). The text appended, or undefined for none.
 */
export type Mode = 'truthy' | 'nonnull' | 'always' | 'string';
export function pieceOf(v: unknown, mode: Mode): string | undefined {
  if (typeof v === 'string') return v;
  if (mode === 'string' || (mode === 'truthy' && !v) || (mode === 'nonnull' && v == null)) return undefined;
  try {
    return String(v);
  } catch {
    // an object whose `toString` is not a function: the SDK's `+=` throws as well
    return refuse('a streamed text field no client can read');
  }
}

/** A non-negative integer index, as the SDKs key it (a property name); anything else is refused. */
export function indexKey(v: unknown, what: string, below = MAX_INDEX): string {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < below) return String(v);
  return refuse(`an event whose ${what} is not an index the clients agree on`);
}

/** A string clients join across streams: its last characters, to check each junction. */
export interface Join {
  add(text: string, from: TextStream): void;
}

/** The text a stream sent, as far as joining it with others needs (its start and its end). */
export interface Kept {
  text: string;
  head: string | undefined;
}

export interface Main {
  order: number;
  seq: number;
  out: string;
}

export interface TextStream {
  key: string;
  filter: ResponseFilter;
  /** The event carrying `text` as the next piece of this stream. */
  shape: (text: string) => SseEvent;
  /** The joins the shaped events' text goes into. */
  joins: readonly Join[];
  /** The text sent, kept for the final join check (parts and blocks of text). */
  kept: Kept | undefined;
  /** Its place in the final join (position, then part). */
  place: number[] | undefined;
  /** The generated text (main streams only). */
  main: Main | undefined;
  /** How many characters of text it sent (where its next piece starts in its output). */
  sentLen: number;
}

export interface StreamSpec {
  shape: (text: string) => SseEvent;
  joins?: readonly Join[];
  place?: number[];
  main?: number;
  /** The string is JSON text clients parse: its filter reads it normalised (`jsonTextNormalizer`). */
  json?: boolean;
}

/** A piece of a text stream's output, in an event sent (field `key` of an object of it), from `from` on. */
export interface Piece {
  obj: Json;
  key: string;
  stream: TextStream;
  from: number;
  text: string;
}

/** A string of an event that belongs to a text stream, and the piece of the stream it carries. */
export interface Slot extends Skip {
  stream: TextStream;
  piece: string;
  joins: readonly Join[];
}
