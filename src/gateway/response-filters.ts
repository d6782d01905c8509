import { secretRedactor } from './stages/output-filter.ts';
import type { CallInfo, ResponseFilter, ResponseStage } from './types.ts';

/**
 * The response side of one call: the configured response stages, then the key redactor (the
 * injected keys, their encodings, partial and masked forms), which runs last whatever the stages did.
 */
export interface CallFilters {
  /** A fresh chain of filters (one per text stream of an answer). */
  open(): ResponseFilter;
  /** One complete text (a string of an answer, a whole event) through one reused chain. */
  clean(text: string): string;
}

export function callFilters(
  stages: readonly ResponseStage[],
  call: CallInfo,
  injected: readonly string[],
): CallFilters {
  const open = () => {
    const filters = [...stages.map((s) => s.open(call, injected)), secretRedactor(injected)];
    return {
      push: (t: string) => filters.reduce((acc, f) => f.push(acc), t),
      end: () => {
        let out = '';
        for (let i = 0; i < filters.length; i++) {
          let tail = filters[i]!.end();
          for (let j = i + 1; j < filters.length; j++) tail = filters[j]!.push(tail);
          out += tail;
        }
        return out;
      },
    } satisfies ResponseFilter;
  };
  // one filter for complete texts (strings of an answer, whole events), reused: end() resets it
  const whole = open();
  return { open, clean: (text: string) => whole.push(text) + whole.end() };
}
