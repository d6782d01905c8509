import type { Price, Usage } from '../contract/budgets.ts';
import { globMatch } from '../lib/glob.ts';

export type { Price, Usage } from '../contract/budgets.ts';

/**
 * The one price function (issue 12): what a model costs and how many tokens a
 * call used, shared by the gateway (reservations, settlement) and the budgets
 * engine. Pure, so both sides of a remote gateway compute the same figures.
 */

/**
 * The price of `model` in a table of model globs (`gpt-4o-mini`, `gpt-4o*`,
 * `claude-*`): an exact entry first, else the matching glob with the longest
 * literal text; between globs as specific as each other, the higher price
 * (so the answer never depends on the table's order, and an ambiguity never
 * undercharges). Undefined: an unknown model (it costs 0, its tokens still count).
 */
export function priceOf(model: string, prices: Readonly<Record<string, Price>>): Price | undefined {
  const exact = Object.hasOwn(prices, model) ? prices[model] : undefined;
  if (exact) return exact;
  let best: { price: Price; weight: number } | undefined;
  for (const [pattern, price] of Object.entries(prices)) {
    if (!pattern.includes('*') || !globMatch(pattern, model)) continue;
    const weight = pattern.replaceAll('*', '').length;
    if (!best || weight > best.weight) best = { price, weight };
    else if (weight === best.weight) best = { price: dearest(best.price, price), weight };
  }
  return best?.price;
}

/** Each component at the higher of two prices: what an ambiguous price table can never undercharge. */
function dearest(a: Price, b: Price): Price {
  const out: Price = { input: Math.max(a.input, b.input), output: Math.max(a.output, b.output) };
  for (const k of ['cache_read', 'cache_write_5m', 'cache_write_1h'] as const) {
    const v = Math.max(a[k] ?? rateOf(a, k), b[k] ?? rateOf(b, k));
    if (a[k] !== undefined || b[k] !== undefined) out[k] = v;
  }
  return out;
}

/** A prompt-cache price: the table's, or its usual multiple of the input price. */
function rateOf(price: Price, k: 'cache_read' | 'cache_write_5m' | 'cache_write_1h'): number {
  return price[k] ?? price.input * CACHE_MULTIPLE[k];
}
const CACHE_MULTIPLE = { cache_read: 0.1, cache_write_5m: 1.25, cache_write_1h: 2 } as const;

/** Every token a call used: input (prompt-cache reads and writes included) and output. */
export function tokensOf(usage: Usage): number {
  return (
    usage.input_tokens +
    usage.output_tokens +
    (usage.cache_read_tokens ?? 0) +
    (usage.cache_write_5m_tokens ?? 0) +
    (usage.cache_write_1h_tokens ?? 0)
  );
}

/** The dearest an input token can be at `price` (a prompt-cache write for an hour): for upper bounds. */
export function dearestInput(price: Price): number {
  return Math.max(price.input, rateOf(price, 'cache_write_5m'), rateOf(price, 'cache_write_1h'));
}

/** What `usage` costs at `price` (USD per million tokens), in USD; 0 when the price is unknown. */
export function costOf(usage: Usage, price: Price | undefined): number {
  if (!price) return 0;
  return (
    (usage.input_tokens * price.input +
      usage.output_tokens * price.output +
      (usage.cache_read_tokens ?? 0) * rateOf(price, 'cache_read') +
      (usage.cache_write_5m_tokens ?? 0) * rateOf(price, 'cache_write_5m') +
      (usage.cache_write_1h_tokens ?? 0) * rateOf(price, 'cache_write_1h')) /
    1_000_000
  );
}
