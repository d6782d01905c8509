import { isObj, type Json } from './json-values.ts';
import type { Piece, TextStream } from './relay-basics.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * What one step of the relay (one upstream event in) put out, as the Responses checks of what the
 * SDK holds (responses-held.ts) read it without parsing it again: the events whose text is exactly
 * their object serialized, with those objects, and the pieces of text streams in them.
 */
export interface StepRecord {
  /** A new step: the lists start again (overwritten, not shrunk: they are short). */
  newStep(): void;
  noteExact(e: SseEvent, data: Json): void;
  notePiece(obj: Json, key: string, stream: TextStream, from: number, text: string): void;
  /** The piece of a text stream this step put at `obj[key]`, if that is what it holds. */
  pieceAt(obj: unknown, key: string, text: string): Piece | undefined;
  /** How many exact events this step made (the first entries of `events` and `objects`). */
  readonly exact: number;
  readonly events: readonly (SseEvent | undefined)[];
  readonly objects: readonly (Json | undefined)[];
}

/** `pieces`: the pieces are noted (Responses only: nothing else reads them). */
export function createStepRecord(pieces: boolean): StepRecord {
  /**
   * This step's Responses events whose text is exactly their object serialized, in the order they were
   * made (the order they go out), and those objects: what the client parses, with no parse needed.
   */
  const stepEvents: (SseEvent | undefined)[] = [];
  const stepObjects: (Json | undefined)[] = [];
  let stepExact = 0;
  /** This step's pieces of text streams in the objects of its events (Responses), latest last. */
  const stepPieces: (Piece | undefined)[] = [];
  let stepPieceCount = 0;
  let pieceIndex: Map<Json, Piece[]> | undefined;
  /** A new step: the lists start again (overwritten, not shrunk: they are short). */
  const newStep = () => {
    stepExact = 0;
    stepPieceCount = 0;
    pieceIndex = undefined;
  };
  const noteExact = (e: SseEvent, data: Json) => {
    stepEvents[stepExact] = e;
    stepObjects[stepExact++] = data;
  };
  const notePiece = (obj: Json, key: string, stream: TextStream, from: number, text: string) => {
    if (pieces) stepPieces[stepPieceCount++] = { obj, key, stream, from, text };
  };
  /** The piece of a text stream this step put at `obj[key]`, if that is what it holds. */
  const pieceAt = (obj: unknown, key: string, text: string): Piece | undefined => {
    if (!isObj(obj)) return undefined;
    let p: Piece | undefined;
    if (stepPieceCount <= 16) {
      for (let i = stepPieceCount - 1; i >= 0 && !p; i--)
        if (stepPieces[i]!.obj === obj && stepPieces[i]!.key === key) p = stepPieces[i];
    } else {
      if (!pieceIndex) {
        pieceIndex = new Map();
        for (const x of stepPieces.slice(0, stepPieceCount) as Piece[]) {
          const l = pieceIndex.get(x.obj);
          if (l) l.push(x);
          else pieceIndex.set(x.obj, [x]);
        }
      }
      p = pieceIndex.get(obj)?.findLast((x) => x.key === key);
    }
    return p && p.text === text ? p : undefined;
  };

  return {
    newStep,
    noteExact,
    notePiece,
    pieceAt,
    get exact() {
      return stepExact;
    },
    events: stepEvents,
    objects: stepObjects,
  };
}
