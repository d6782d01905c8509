import { type Static, Type } from 'typebox';
import { op } from './op.ts';

/**
 * Wire contract of the watch stream, `GET /v1/secrets/{project}/{env}/watch`:
 * a `text/event-stream` (server-sent events) of changes to the secrets the
 * caller may read. Events never carry values.
 *
 *   event: ready    data: WatchReady     (first, once: current versions)
 *   event: change   data: WatchEvent     (id: the change time in ms, for Last-Event-ID)
 *   event: close    data: WatchClose     (last, when the server ends the stream)
 *   : heartbeat                          (a comment, every `heartbeat` seconds)
 */
const Strict = { additionalProperties: false } as const;

export const WatchQuery = Type.Object(
  {
    /** Only this secret's events. */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /** Replay changes made since this time (ISO 8601 or milliseconds since the epoch); `Last-Event-ID` does the same. */
    since: Type.Optional(Type.String({ minLength: 1, maxLength: 40, pattern: '^[0-9A-Za-z:.+-]+$' })),
    /** Seconds between heartbeats (1 to 60, default 15); each heartbeat re-checks the token. */
    heartbeat: Type.Optional(Type.String({ pattern: '^[1-9][0-9]?$' })),
  },
  Strict,
);
export type WatchQuery = Static<typeof WatchQuery>;

export type WatchEventKind = 'write' | 'rollback' | 'rotation' | 'delete' | 'restore' | 'destroy';

/** One change (never the value): re-read the secret to get it. */
export interface WatchEvent {
  project: string;
  env: string;
  name: string;
  kind: WatchEventKind;
  version: number;
  at: string;
  /** True when the event is a replay of a change made before the stream opened (`since`/`Last-Event-ID`). */
  replayed?: boolean;
}

/** The first message: what the caller may read now, so it can detect changes it missed. */
export interface WatchReady {
  project: string;
  env: string;
  at: string;
  secrets: { name: string; version: number; deleted: boolean }[];
}

/** Why the server ended the stream. */
export interface WatchClose {
  reason: 'token_invalid' | 'overflow' | 'shutdown' | 'error';
  message: string;
}

export type WatchMessage =
  | { event: 'ready'; data: WatchReady }
  | { event: 'change'; id: string; data: WatchEvent }
  | { event: 'close'; data: WatchClose };

/** Default seconds between heartbeats. */
export const WATCH_HEARTBEAT_SECONDS = 15;

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
/** The input of `secret.watch`: the environment (and secret) from the path, the rest from the query. */
export interface WatchInput {
  project: string;
  env: string;
  name?: string;
  /** ISO time or milliseconds since the epoch. */
  since?: string;
  /** Seconds between heartbeats. */
  heartbeat?: number;
}
/** One message of the stream; the server writes it as a server-sent event (or a comment). */
export type StreamMessage =
  | { event: 'ready'; data: WatchReady }
  | { event: 'change'; id: string; data: WatchEvent }
  | { event: 'close'; data: WatchClose }
  | { comment: string };

/** What `secret.watch` returns: iterate for messages; `close()` ends it (idempotent). */
export interface WatchStream extends AsyncIterable<StreamMessage> {
  close(): void;
}

/** Answered as server-sent events (src/server/sse.ts), not JSON: no response schema. */
export const SecretWatch = op<WatchInput, WatchStream>()('secret.watch');
