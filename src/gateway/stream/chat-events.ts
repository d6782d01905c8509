import { createChatSlots } from './chat-slots.ts';
import { isObj, type Json, put } from './json-values.ts';
import { indexKey, refuse, type Slot } from './relay-basics.ts';
import type { RelayKit } from './relay-kit.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * Chat Completions chunks through the relay: each choice's delta strings through their text
 * streams (chat-slots.ts), a `message` ending the choice's strings, logprobs held per choice until
 * the terminal event (delivered only when nothing in them would be redacted).
 */
export interface ChatEvents {
  /** One chunk (parsed), its events in `out`; `terminal`: everything held goes out first. */
  chunk(data: Json, out: SseEvent[], terminal: boolean): void;
  /** Held chat logprobs, as chunks: checked (null if anything in them would be redacted). */
  releaseAllLogprobs(out: SseEvent[]): void;
}

export function createChatEvents(kit: RelayKit): ChatEvents {
  const { streams, writer } = kit;
  /** The last chat chunk sent (cleaned): the envelope of the chunks the relay makes. */
  let lastChunk: Json | undefined;
  /** Chat logprobs held per choice until the terminal event. */
  const heldLogprobs = new Map<string, { index: unknown; content?: unknown[]; refusal?: unknown[] }>();

  /** A chunk shaped like the provider's, for `choice` (envelope of the last chunk sent). */
  const chunkFor = (choice: Json): SseEvent => {
    const env: Json = { ...(lastChunk ?? { object: 'chat.completion.chunk' }) };
    delete env.obfuscation;
    if ('usage' in env) env.usage = null;
    env.choices = [choice];
    return writer.serialize(undefined, env);
  };
  const chatSlots = createChatSlots(kit, chunkFor);

  const holdLogprobs = (group: string, index: unknown, lp: unknown) => {
    if (!isObj(lp)) return;
    let h = heldLogprobs.get(group);
    if (!h) {
      if (heldLogprobs.size >= kit.maxStreams) refuse('too many choices with logprobs');
      h = { index };
      heldLogprobs.set(group, h);
    }
    for (const k of ['content', 'refusal'] as const) {
      const l = lp[k];
      if (Array.isArray(l)) {
        h[k] ??= [];
        h[k].push(...l);
      }
    }
  };
  /** Held chat logprobs, as chunks: checked (null if anything in them would be redacted). */
  const releaseAllLogprobs = (out: SseEvent[]) => {
    for (const [group, h] of heldLogprobs) {
      heldLogprobs.delete(group);
      const lp = kit.jc.safeLogprobs({ content: h.content ?? null, refusal: h.refusal ?? null });
      out.push(
        chunkFor({
          ...(h.index === undefined ? {} : { index: h.index }),
          delta: {},
          logprobs: lp,
          finish_reason: null,
        }),
      );
    }
  };

  const chatChunk = (data: Json, out: SseEvent[], terminal: boolean) => {
    const slots: Slot[] = [];
    const choices = data.choices;
    if (Array.isArray(choices)) {
      for (let pos = 0; pos < choices.length; pos++) {
        const c = choices[pos];
        if (!isObj(c)) continue;
        const group = c.index === undefined ? 'cu' : `c${indexKey(c.index, 'choice index')}`;
        const choice = { group, index: c.index, pos };
        // `message` replaces the choice's message (Object.assign(choice, other)): its strings end
        if (Object.hasOwn(c, 'message')) streams.replacedGroup(group, out);
        if (isObj(c.delta)) chatSlots.chatDelta(c.delta, choice, slots);
        if (c.logprobs !== undefined && c.logprobs !== null) {
          holdLogprobs(group, c.index, c.logprobs);
          put(c, 'logprobs', null);
        }
      }
    }
    if (terminal) {
      kit.flushAll(out, new Set(slots.map((s) => s.stream)));
      streams.runSlots(slots, true);
    } else streams.runSlots(slots, false);
    writer.emitEvent(undefined, data, slots, out);
    lastChunk = data;
  };

  return { chunk: chatChunk, releaseAllLogprobs };
}
