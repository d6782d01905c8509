import type { EventWriter } from './event-writer.ts';
import type { JoinChecks } from './joins.ts';
import type { JsonCleaner } from './json-cleaner.ts';
import type { TextStream } from './relay-basics.ts';
import type { SseEvent } from './sse-parser.ts';
import type { StepRecord } from './step-record.ts';
import type { TextStreams } from './text-streams.ts';

/** What the readers of each provider's events (chat, Responses, Anthropic) share of one relay. */
export interface RelayKit {
  jc: JsonCleaner;
  checks: JoinChecks;
  streams: TextStreams;
  writer: EventWriter;
  step: StepRecord;
  /** Everything still held, before a terminal event (but `except`, ended inline). */
  flushAll(out: SseEvent[], except?: ReadonlySet<TextStream>): void;
  /** The call asked for structured output: the generated text is JSON text too. */
  jsonOutput: boolean;
  /** The most text streams (and chat choices with logprobs) one answer may open. */
  maxStreams: number;
}
