import { costOf } from '../api/pricing.ts';
import { parseJsonLimited } from '../lib/json.ts';
import type { Relaying } from './call-context.ts';
import { sendError, statusOf } from './error-answers.ts';
import { errorBody, usageOf } from './providers.ts';
import type { Recorder } from './record.ts';
import { PROVENANCE_HEADER } from './stages/signing.ts';
import { joinedTexts, jsonCleaner, needsWalk } from './stream.ts';

/** Deepest JSON nesting accepted in an upstream answer or event (provider answers nest under 10). */
export const ANSWER_MAX_DEPTH = 128;

/**
 * A complete upstream answer (an error, or a call that did not stream) to the client: read whole,
 * every string through the response filters, recorded (and its reservation settled) before a byte
 * is sent, with the output's provenance link over the exact bytes sent.
 */
export async function relayAnswer(r: Relaying, finish: Recorder['finish']) {
  const { f, res, g, filters, upstreamHost, outputLink } = r;
  const { ep, target, reply, price } = f;
  const { clean } = filters;
  const status = res.statusCode;
  let raw: string;
  try {
    raw = await res.body.text();
  } catch (err) {
    if (g.reason) return r.endedEarly(g.reason);
    throw err;
  }
  // A provider that echoes the key (in an error message, say) never gets it past here. The JSON
  // is parsed first, so a key written with escapes (\u0073k-…, \/) is seen as the client will see
  // it, and so are the strings clients parse once more (tool-call arguments: their escapes of
  // printable ASCII normalised, stream.ts); every string is filtered (logprobs checked joined),
  // then the text sent is filtered whole once more.
  const answer = jsonCleaner(clean, ep.route, f.jsonOutput);
  let json: unknown;
  try {
    json = parseJsonLimited(raw, { maxDepth: ANSWER_MAX_DEPTH });
  } catch {
    // not JSON, or nested deeper than any answer should be: the client gets an error of ours
    json = undefined;
  }
  // with no escapes and no logprobs, one pass over the text sent sees every string as the client will
  let text = json === undefined ? clean(raw) : needsWalk(raw) ? undefined : answer.trySerialize(json, false);
  if (text === undefined) {
    json = answer.value(json);
    text = answer.serialize(json);
  }
  const usage = status < 300 ? usageOf(target.api, ep.route, json) : undefined;
  const cost = usage ? costOf(usage, price) : 0;
  // strings a client joins (Responses output_text, Anthropic text blocks) are each clean; a key
  // split across two of them would show only joined: such an answer is withheld
  const withheld =
    status < 300 &&
    json !== undefined &&
    joinedTexts(ep.route, json).length > 0 &&
    joinedTexts(ep.route, JSON.parse(text)).some((g) => {
      const joined = g.join('');
      return clean(joined) !== joined;
    });
  // the record (and the settlement) is written while the answer's link is signed; both before a byte is sent
  // an answer that reports no usage keeps what was reserved (fail closed: it was served, and may be
  // billed); an error answer gives the reservation back
  const finishing = finish(f, {
    status: withheld ? statusOf('upstream_error') : status,
    usage,
    cost,
    upstream: upstreamHost,
    settle: usage !== undefined || status >= 300,
  });
  finishing.catch(() => {});
  const provenance = status < 300 && !withheld ? await outputLink(text) : undefined;
  await finishing;
  if (withheld) {
    return sendError(
      reply,
      ep.api,
      'upstream_error',
      `${target.provider}'s answer was withheld: its parts, joined, hold a credential`,
    );
  }
  if (status >= 300 && status < 400) {
    // a redirect is never followed, nor passed on
    return sendError(reply, ep.api, 'upstream_redirect', `${target.provider} answered with a redirect`);
  }
  // an answer that is not JSON (or is nested absurdly deep) is not passed on: the client gets our error
  reply
    .code(json === undefined && status < 400 ? statusOf('upstream_error') : status)
    .type('application/json');
  if (provenance && json !== undefined) reply.header(PROVENANCE_HEADER, provenance);
  const retry = res.headers['retry-after'];
  if (status === 429 && typeof retry === 'string' && /^\d{1,6}$/.test(retry))
    reply.header('retry-after', retry);
  if (json === undefined) {
    // the provider's own error status is passed on (ours, 502, for an answer that is not one)
    return reply.send(
      errorBody(
        ep.api,
        status >= 400 ? status : statusOf('upstream_error'),
        'upstream_error',
        `${target.provider} answered HTTP ${status}`,
      ),
    );
  }
  // the bytes signed are the bytes sent
  return reply.send(text);
}
