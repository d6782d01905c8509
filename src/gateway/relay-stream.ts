import type { Logger } from 'pino';
import { costOf } from '../api/pricing.ts';
import type { ErrorCode } from '../errors/errors.ts';
import { jsonDepth } from '../lib/json.ts';
import type { Relaying } from './call-context.ts';
import { END_MESSAGES, type EndReason } from './call-guard.ts';
import { statusOf } from './error-answers.ts';
import { errorBody, streamUsageTracker } from './providers.ts';
import type { Recorder } from './record.ts';
import { ANSWER_MAX_DEPTH } from './relay-answer.ts';
import { encodeProvenanceHeader, PROVENANCE_HEADER } from './stages/signing.ts';
import { createSseParser, createStreamRelay, type SseEvent } from './stream.ts';

const MAX_STREAM_LINE = 1024 * 1024;

/**
 * A streamed answer to the client, event by event through the relay (stream.ts): every text field
 * through its own cross-event filter, everything else cleaned whole; usage followed. The outcome
 * record is written before the last event reaches the client (fail closed: a record that no sink took
 * ends the stream with an error event instead); a stream that ends early ends with an error event
 * in the caller's API format.
 */
export async function relayStream(r: Relaying, finish: Recorder['finish'], logger: Logger) {
  const { f, res, g, filters, injected, upstreamHost, links, outputLink } = r;
  const { ep, target, reply, call, price } = f;
  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': call.request_id,
    // the request side of the chain; the full chain ends the stream (a comment line before the last event)
    ...(links.length ? { [PROVENANCE_HEADER]: encodeProvenanceHeader(links) } : {}),
  });
  const tracker = streamUsageTracker(target.api);
  const relay = createStreamRelay({
    api: target.api,
    // events are read as the endpoint called defines them, never by their shape
    route: ep.route,
    filter: filters.open,
    clean: filters.clean,
    secrets: injected,
    jsonOutput: f.jsonOutput,
    observe: (ev, data) => tracker.observe(ev, data),
  });
  // SSE as the clients parse it (CRLF, LF or CR line ends): stream.ts
  const sse = createSseParser({ maxEventSize: MAX_STREAM_LINE });
  /** The outcome record: attempted once; `recorded` only once a sink took it. */
  let recording: Promise<void> | undefined;
  let provenanceSent = false;

  const emit = (ev: string | undefined, data: string) => {
    const lines = data.includes('\n') ? data.split('\n').join('\ndata: ') : data;
    out.write(`${ev ? `event: ${ev}\n` : ''}data: ${lines}\n\n`);
  };
  const write = (e: SseEvent) => emit(e.event, e.data);
  /** An error event in the caller's API format: the stream did not end cleanly. */
  const fail = (code: ErrorCode, message: string) =>
    emit('error', JSON.stringify(errorBody(target.api, statusOf(code), code, message)));
  const record = (how?: EndReason) => {
    recording ??= (() => {
      const usage = tracker.result();
      const cost = usage ? costOf(usage, price) : 0;
      // ended early with no usage reported: what the provider may have billed stays reserved
      return finish(f, {
        status: how ? statusOf(how) : 200,
        usage,
        cost,
        upstream: upstreamHost,
        // a stream that reported no usage (ended early, or a provider that does not say) keeps its reservation
        settle: usage !== undefined,
        ...(how ? { ended: how } : {}),
      });
    })();
    return recording;
  };

  const dispatch = async (ev: string | undefined, raw: string) => {
    // no provider nests an event this deep: a hostile one ends the stream (nothing walks it)
    if (jsonDepth(raw, ANSWER_MAX_DEPTH) > ANSWER_MAX_DEPTH)
      throw new Error('an upstream event is nested too deeply');
    const step = relay.push(ev, raw);
    if (!step.terminal) {
      for (const e of step.events) write(e);
      return;
    }
    // a terminal event comes last, after everything the filters held back
    const last = step.events.length - 1;
    for (let i = 0; i < last; i++) write(step.events[i]!);
    // the outcome record is written before the last event reaches the client (fail closed: a record
    // that no sink took ends the stream with an error event instead)
    await record();
    if (!provenanceSent) {
      provenanceSent = true;
      const provenance = await outputLink(relay.text());
      if (provenance) out.write(`: ${PROVENANCE_HEADER} ${provenance}\n\n`);
    }
    write(step.events[last]!);
  };

  try {
    upstream: for await (const chunk of res.body) {
      for (const e of sse.push(chunk as Buffer)) {
        await dispatch(e.event, e.data);
        // after its terminal event the relay passes nothing on: stop reading
        if (relay.ended) break upstream;
      }
      if (g.reason) break;
    }
    if (g.reason) throw new Error(g.reason);
    // an event the input ended in the middle of is dropped, as clients drop it
    // the input ended without a terminal event: the record first, then what the filters held back
    const rest = relay.end();
    await record();
    for (const e of rest) write(e);
  } catch (err) {
    const how = g.reason;
    if (how) {
      if (how !== 'client_closed') fail(how, END_MESSAGES[how]);
      await record(how).catch(() => {});
    } else if (recording) {
      // the record could not be written: the client must not take the stream as complete
      await recording.catch(() => {});
      fail('audit_unavailable', 'the call could not be audited');
    } else {
      logger.warn(
        { provider: target.provider, reason: (err as Error).message },
        'stream ended with an error',
      );
      try {
        await record();
        fail('upstream_error', `${target.provider} ended the stream with an error`);
      } catch {
        fail('audit_unavailable', 'the call could not be audited');
      }
    }
  } finally {
    out.end();
  }
}
